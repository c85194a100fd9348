//! A set of CIDR blocks with most-specific-block lookup and the merged,
//! non-overlapping intervals that nftables interval sets need.
//!
//! CIDR blocks either nest or are disjoint. Sorted by start (outer block
//! first on a tie), each block knows its nearest enclosing block, so a
//! lookup is one binary search plus a walk up that is at most the nesting
//! depth long, whatever the number of blocks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// An inclusive range of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct IpRange {
    /// Lowest address.
    pub first: IpAddr,
    /// Highest address.
    pub last: IpAddr,
}

/// A compiled set of CIDR blocks.
#[derive(Debug, Clone, Default)]
pub struct CidrSet {
    v4: Family<u32>,
    v6: Family<u128>,
}

impl CidrSet {
    /// Compiles the blocks (duplicates and nesting are fine).
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for net in nets {
            match net.trunc() {
                IpNet::V4(net) => v4.push(Node::new(
                    net.network().to_bits(),
                    net.broadcast().to_bits(),
                    IpNet::V4(net),
                )),
                IpNet::V6(net) => v6.push(Node::new(
                    net.network().to_bits(),
                    net.broadcast().to_bits(),
                    IpNet::V6(net),
                )),
            }
        }
        Self {
            v4: Family::new(v4),
            v6: Family::new(v6),
        }
    }

    /// The most specific block that contains `ip`.
    pub fn lookup(&self, ip: IpAddr) -> Option<&IpNet> {
        match ip {
            IpAddr::V4(ip) => self.v4.lookup(ip.to_bits()),
            IpAddr::V6(ip) => self.v6.lookup(ip.to_bits()),
        }
    }

    /// True when some block contains `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.lookup(ip).is_some()
    }

    /// True when the set has no block.
    pub fn is_empty(&self) -> bool {
        self.v4.nodes.is_empty() && self.v6.nodes.is_empty()
    }

    /// The blocks, IPv4 first, each once, in address order.
    pub fn blocks(&self) -> impl Iterator<Item = &IpNet> {
        let v4 = self.v4.nodes.iter().map(|node| &node.net);
        v4.chain(self.v6.nodes.iter().map(|node| &node.net))
    }

    /// The covered addresses as merged, sorted, non-overlapping ranges,
    /// IPv4 first.
    pub fn intervals(&self) -> Vec<IpRange> {
        let v4 = self
            .v4
            .intervals()
            .into_iter()
            .map(|(first, last)| IpRange {
                first: Ipv4Addr::from_bits(first).into(),
                last: Ipv4Addr::from_bits(last).into(),
            });
        let v6 = self
            .v6
            .intervals()
            .into_iter()
            .map(|(first, last)| IpRange {
                first: Ipv6Addr::from_bits(first).into(),
                last: Ipv6Addr::from_bits(last).into(),
            });
        v4.chain(v6).collect()
    }

    /// The ranges this set covers minus those `other` covers.
    pub fn intervals_without(&self, other: &Self) -> Vec<IpRange> {
        let v4 = subtract(&self.v4.intervals(), &other.v4.intervals())
            .into_iter()
            .map(|(first, last)| IpRange {
                first: Ipv4Addr::from_bits(first).into(),
                last: Ipv4Addr::from_bits(last).into(),
            });
        let v6 = subtract(&self.v6.intervals(), &other.v6.intervals())
            .into_iter()
            .map(|(first, last)| IpRange {
                first: Ipv6Addr::from_bits(first).into(),
                last: Ipv6Addr::from_bits(last).into(),
            });
        v4.chain(v6).collect()
    }
}

/// Address bits of one family.
trait Bits: Copy + Ord + std::fmt::Debug {
    /// `self + 1`, or `None` at the top of the address space.
    fn next(self) -> Option<Self>;
    /// `self - 1`, or `None` at zero.
    fn prev(self) -> Option<Self>;
}

impl Bits for u32 {
    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn prev(self) -> Option<Self> {
        self.checked_sub(1)
    }
}

impl Bits for u128 {
    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn prev(self) -> Option<Self> {
        self.checked_sub(1)
    }
}

#[derive(Debug, Clone)]
struct Node<T> {
    first: T,
    last: T,
    /// Index of the nearest enclosing block.
    parent: Option<u32>,
    net: IpNet,
}

impl<T> Node<T> {
    fn new(first: T, last: T, net: IpNet) -> Self {
        Self {
            first,
            last,
            parent: None,
            net,
        }
    }
}

#[derive(Debug, Clone)]
struct Family<T> {
    nodes: Vec<Node<T>>,
}

impl<T> Default for Family<T> {
    fn default() -> Self {
        Self { nodes: Vec::new() }
    }
}

impl<T: Bits> Family<T> {
    fn new(mut nodes: Vec<Node<T>>) -> Self {
        nodes.sort_by(|a, b| a.first.cmp(&b.first).then(b.last.cmp(&a.last)));
        nodes.dedup_by(|a, b| a.first == b.first && a.last == b.last);
        let mut open: Vec<u32> = Vec::new();
        for index in 0..nodes.len() {
            while let Some(&top) = open.last() {
                if nodes[top as usize].last < nodes[index].first {
                    open.pop();
                } else {
                    break;
                }
            }
            nodes[index].parent = open.last().copied();
            // Blocks number fewer than u32::MAX: lists are bounded far lower.
            open.push(u32::try_from(index).unwrap_or(u32::MAX));
        }
        Self { nodes }
    }

    fn lookup(&self, ip: T) -> Option<&IpNet> {
        let after = self.nodes.partition_point(|node| node.first <= ip);
        let mut node = self.nodes.get(after.checked_sub(1)?)?;
        loop {
            if ip <= node.last {
                return Some(&node.net);
            }
            node = &self.nodes[node.parent? as usize];
        }
    }

    /// Outermost blocks, merged where they touch.
    fn intervals(&self) -> Vec<(T, T)> {
        let mut merged: Vec<(T, T)> = Vec::new();
        for node in self.nodes.iter().filter(|node| node.parent.is_none()) {
            match merged.last_mut() {
                Some(last) if last.1.next() == Some(node.first) => last.1 = node.last,
                _ => merged.push((node.first, node.last)),
            }
        }
        merged
    }
}

/// `from` minus `remove`; both sorted and non-overlapping.
fn subtract<T: Bits>(from: &[(T, T)], remove: &[(T, T)]) -> Vec<(T, T)> {
    let mut out = Vec::new();
    let mut cuts = remove.iter().peekable();
    for &(mut first, last) in from {
        let mut open = true;
        while let Some(&&(cut_first, cut_last)) = cuts.peek() {
            if cut_last < first {
                cuts.next();
                continue;
            }
            if cut_first > last {
                break;
            }
            if cut_first > first {
                out.push((first, cut_first.prev().unwrap_or(first)));
            }
            match cut_last.next() {
                Some(next) if cut_last < last => {
                    first = next;
                    cuts.next();
                }
                _ => {
                    open = false;
                    break;
                }
            }
        }
        if open {
            out.push((first, last));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(nets: &[&str]) -> CidrSet {
        CidrSet::new(nets.iter().map(|net| net.parse().expect("test net")))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    #[test]
    fn lookup_returns_the_most_specific_block() {
        let set = set(&["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.3.0.0/16"]);
        assert_eq!(
            set.lookup(ip("10.1.2.3"))
                .map(ToString::to_string)
                .as_deref(),
            Some("10.1.2.0/24")
        );
        assert_eq!(
            set.lookup(ip("10.1.3.3"))
                .map(ToString::to_string)
                .as_deref(),
            Some("10.1.0.0/16")
        );
        assert_eq!(
            set.lookup(ip("10.2.0.1"))
                .map(ToString::to_string)
                .as_deref(),
            Some("10.0.0.0/8")
        );
        assert_eq!(
            set.lookup(ip("10.200.0.1"))
                .map(ToString::to_string)
                .as_deref(),
            Some("10.0.0.0/8")
        );
        assert_eq!(set.lookup(ip("11.0.0.0")), None);
        assert_eq!(set.lookup(ip("::1")), None);
    }

    #[test]
    fn intervals_merge_adjacent_and_nested_blocks() {
        let set = set(&[
            "10.0.0.0/25",
            "10.0.0.128/25",
            "10.0.0.0/30",
            "0.0.0.0/32",
            "255.255.255.255/32",
        ]);
        let text: Vec<String> = set
            .intervals()
            .iter()
            .map(|r| format!("{}-{}", r.first, r.last))
            .collect();
        assert_eq!(
            text,
            [
                "0.0.0.0-0.0.0.0",
                "10.0.0.0-10.0.0.255",
                "255.255.255.255-255.255.255.255"
            ]
        );
    }

    #[test]
    fn subtraction_cuts_holes_and_edges() {
        let blocked = set(&["10.0.0.0/8", "192.168.0.0/16"]);
        let exempt = set(&["10.0.0.0/16", "10.5.0.0/16", "192.168.0.0/16"]);
        let text: Vec<String> = blocked
            .intervals_without(&exempt)
            .iter()
            .map(|r| format!("{}-{}", r.first, r.last))
            .collect();
        assert_eq!(text, ["10.1.0.0-10.4.255.255", "10.6.0.0-10.255.255.255"]);
        let everything = set(&["0.0.0.0/0"]);
        let top = set(&["255.255.255.255/32"]);
        assert_eq!(everything.intervals_without(&top).len(), 1);
    }
}
