//! A set of CIDR blocks with most-specific-block lookup and the merged,
//! non-overlapping intervals that nftables interval sets need.
//!
//! CIDR blocks either nest or are disjoint. Sorted by start (outer block
//! first on a tie), each block knows its nearest enclosing block, so a
//! lookup is one binary search plus a walk up that is at most the nesting
//! depth long, whatever the number of blocks.
//!
//! The blocks are kept as parallel arrays (starts, ends, parents, blocks)
//! rather than one array of nodes, so the binary search walks a dense array
//! of starts (4 or 16 bytes each, not a 40-64 byte node) and a lookup
//! touches few cache lines. IPv6 starts are searched on a dense array of
//! their upper 64 bits, which halves the memory the search walks and
//! compiles to a branchless search (a `u128` comparison does not); see
//! `Bits::count_le`.

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
        self.v4.nets.is_empty() && self.v6.nets.is_empty()
    }

    /// The blocks, IPv4 first, each once, in address order.
    pub fn blocks(&self) -> impl Iterator<Item = &IpNet> {
        self.v4.nets.iter().chain(self.v6.nets.iter())
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
    /// What the binary search compares: the address, or a prefix of it.
    type Key: Copy + Ord + std::fmt::Debug;

    /// The search key of an address; keys are ordered as addresses are.
    fn key(self) -> Self::Key;

    /// How many of `sorted` are `<= ip`, given their `keys`.
    fn count_le(keys: &[Self::Key], sorted: &[Self], ip: Self) -> usize;

    /// `self + 1`, or `None` at the top of the address space.
    fn next(self) -> Option<Self>;
    /// `self - 1`, or `None` at zero.
    fn prev(self) -> Option<Self>;
}

impl Bits for u32 {
    type Key = u32;

    fn key(self) -> u32 {
        self
    }

    fn count_le(keys: &[u32], _sorted: &[u32], ip: u32) -> usize {
        keys.partition_point(|&first| first <= ip)
    }

    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn prev(self) -> Option<Self> {
        self.checked_sub(1)
    }
}

impl Bits for u128 {
    /// The upper 64 bits.
    type Key = u64;

    fn key(self) -> u64 {
        (self >> 64) as u64
    }

    /// Searches the upper 64 bits, and falls back to the full comparison
    /// only when the last candidate shares those bits with `ip` and lies
    /// above it.
    fn count_le(keys: &[u64], sorted: &[Self], ip: Self) -> usize {
        let end = keys.partition_point(|&key| key <= ip.key());
        match end.checked_sub(1).and_then(|last| sorted.get(last)) {
            Some(&candidate) if candidate > ip => {
                sorted[..end].partition_point(|&first| first <= ip)
            }
            _ => end,
        }
    }

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

/// The blocks of one family, sorted by start (outer block first on a tie),
/// as parallel arrays.
#[derive(Debug, Clone)]
struct Family<T: Bits> {
    /// First address of each block.
    firsts: Vec<T>,
    /// The search key of each first address.
    keys: Vec<T::Key>,
    /// Last address of each block.
    lasts: Vec<T>,
    /// Index of each block's nearest enclosing block, [`NO_PARENT`] if none.
    parents: Vec<u32>,
    /// The blocks.
    nets: Vec<IpNet>,
}

/// `parents` entry of an outermost block.
const NO_PARENT: u32 = u32::MAX;

impl<T: Bits> Default for Family<T> {
    fn default() -> Self {
        Self {
            firsts: Vec::new(),
            keys: Vec::new(),
            lasts: Vec::new(),
            parents: Vec::new(),
            nets: Vec::new(),
        }
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
        Self {
            firsts: nodes.iter().map(|node| node.first).collect(),
            keys: nodes.iter().map(|node| node.first.key()).collect(),
            lasts: nodes.iter().map(|node| node.last).collect(),
            parents: nodes
                .iter()
                .map(|node| node.parent.unwrap_or(NO_PARENT))
                .collect(),
            nets: nodes.iter().map(|node| node.net).collect(),
        }
    }

    fn lookup(&self, ip: T) -> Option<&IpNet> {
        let mut index = T::count_le(&self.keys, &self.firsts, ip).checked_sub(1)?;
        loop {
            if ip <= *self.lasts.get(index)? {
                return self.nets.get(index);
            }
            match *self.parents.get(index)? {
                NO_PARENT => return None,
                parent => index = parent as usize,
            }
        }
    }

    /// Outermost blocks, merged where they touch.
    fn intervals(&self) -> Vec<(T, T)> {
        let mut merged: Vec<(T, T)> = Vec::new();
        let outermost = (0..self.nets.len()).filter(|&i| self.parents[i] == NO_PARENT);
        for (first, last) in outermost.map(|i| (self.firsts[i], self.lasts[i])) {
            match merged.last_mut() {
                Some(merged_last) if merged_last.1.next() == Some(first) => merged_last.1 = last,
                _ => merged.push((first, last)),
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
