//! The nftables commands the data plane issues, as data: one model that
//! renders as `nft -f` text ([`text`]) and encodes as nf_tables netlink
//! messages ([`crate::nft_netlink`]), so both paths say the same thing.
//!
//! Only the shapes boxfence needs are modelled: the per-box and per-policy
//! chains, sets and counters, and the elements of the table's maps. The
//! static base chains are written as text once per full ruleset.

mod text;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use boxfence_policy::matchers::IpRange;

/// What a set holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    /// IPv4 addresses and ranges.
    Ipv4,
    /// IPv6 addresses and ranges.
    Ipv6,
    /// IPv4 network addresses of one prefix length, looked up masked (a
    /// hash: one probe, where an interval set takes a binary search).
    Ipv4Networks,
    /// IPv6 counterpart of [`SetKind::Ipv4Networks`].
    Ipv6Networks,
    /// Protocol · port ranges.
    ProtoPort,
    /// IPv4 addresses that expire (resolver-learned).
    Ipv4Learned,
    /// IPv6 addresses that expire (resolver-learned).
    Ipv6Learned,
    /// Box interface · IPv4 address pairs that expire (resolver-learned
    /// for one app rule, per box).
    IfnameIpv4Learned,
    /// Box interface · IPv6 address pairs that expire.
    IfnameIpv6Learned,
}

impl SetKind {
    /// Learned sets keep their elements when their owner is updated: the
    /// resolver fills them, a policy update does not.
    pub fn keeps_elements(self) -> bool {
        matches!(
            self,
            Self::Ipv4Learned
                | Self::Ipv6Learned
                | Self::IfnameIpv4Learned
                | Self::IfnameIpv6Learned
        )
    }
}

/// An address family of a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `ip`.
    Ipv4,
    /// `ip6`.
    Ipv6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::Ipv4,
            IpAddr::V6(_) => Self::Ipv6,
        }
    }

    /// The netmask of a prefix length in this family.
    pub fn mask(self, prefix_len: u8) -> IpAddr {
        // A shift by the whole width (prefix length 0) leaves no bit set.
        let host_bits = |width: u32| width - u32::from(prefix_len);
        match self {
            Self::Ipv4 => IpAddr::V4(Ipv4Addr::from(
                u32::MAX.checked_shl(host_bits(32)).unwrap_or(0),
            )),
            Self::Ipv6 => IpAddr::V6(Ipv6Addr::from(
                u128::MAX.checked_shl(host_bits(128)).unwrap_or(0),
            )),
        }
    }
}

/// Which address of the packet a match reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// `saddr`.
    Source,
    /// `daddr`.
    Destination,
}

/// One condition of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// `ip daddr @set` and the like.
    Addr {
        /// The family (also a condition: an IPv4 match skips IPv6).
        family: Family,
        /// Source or destination.
        peer: Peer,
        /// The set looked up.
        set: String,
    },
    /// `ip daddr & 255.255.255.0 @set` and the like: the address masked
    /// to a prefix length, looked up in a set of networks.
    AddrMasked {
        /// The family.
        family: Family,
        /// Source or destination.
        peer: Peer,
        /// The prefix length the address is masked to.
        prefix_len: u8,
        /// The set looked up.
        set: String,
    },
    /// `iifname . ip daddr @set` and the like.
    IfnameAddr {
        /// The family.
        family: Family,
        /// Source or destination.
        peer: Peer,
        /// The set looked up.
        set: String,
    },
    /// `meta l4proto . th dport @set`.
    ProtoPort {
        /// The set looked up.
        set: String,
    },
    /// `meta l4proto <number>`.
    L4proto(u8),
    /// `ip saddr 10.200.0.2` and the like: one address.
    AddrIs {
        /// Source or destination.
        peer: Peer,
        /// The address (its family is also a condition).
        addr: IpAddr,
    },
}

/// What a rule does to a packet before its verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statement {
    /// `ct original zone set <zone>`: the conntrack zone of the flow the
    /// packet starts or belongs to, in the original direction only (a
    /// reply is found by the tuple conntrack keeps for it).
    OriginalZone(u16),
    /// `meta mark set <mark>`.
    Mark(u32),
}

/// How a rule ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `accept`.
    Accept,
    /// `jump <chain>`.
    Jump(String),
    /// `goto <chain>`.
    Goto(String),
}

/// A rule: conditions, statements, an optional named counter, an
/// optional verdict (none: the packet goes on to the next rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// All must hold.
    pub matches: Vec<Match>,
    /// Carried out in order when the matches hold.
    pub statements: Vec<Statement>,
    /// `counter name <name>`, counted when the matches hold.
    pub counter: Option<String>,
    /// The verdict when the matches hold.
    pub verdict: Option<Verdict>,
}

impl Rule {
    /// A rule that only ends with `verdict`.
    pub fn verdict(verdict: Verdict) -> Self {
        Self {
            matches: Vec::new(),
            statements: Vec::new(),
            counter: None,
            verdict: Some(verdict),
        }
    }

    /// `matches` then `verdict`.
    pub fn when(matches: Vec<Match>, verdict: Verdict) -> Self {
        Self {
            matches,
            statements: Vec::new(),
            counter: None,
            verdict: Some(verdict),
        }
    }

    /// A rule that only counts.
    pub fn count(counter: String) -> Self {
        Self {
            matches: Vec::new(),
            statements: Vec::new(),
            counter: Some(counter),
            verdict: None,
        }
    }
}

/// One element of a set or map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Element {
    /// An address range of an [`SetKind::Ipv4`] / [`SetKind::Ipv6`] set.
    Range(IpRange),
    /// A protocol (IANA number) with a port range, of a [`SetKind::ProtoPort`] set.
    ProtoPorts {
        /// The protocol number.
        protocol: u8,
        /// First port.
        first: u16,
        /// Last port (inclusive).
        last: u16,
    },
    /// An interface and the verdict it maps to (`out_chains`).
    IfnameVerdict(String, Verdict),
    /// An interface as a key alone (to delete it from a map).
    Ifname(String),
    /// An address and the verdict it maps to (`in4`/`in6`).
    AddrVerdict(IpAddr, Verdict),
    /// An address: a key alone (to delete it from a map), or an element of
    /// a [`SetKind::Ipv4Networks`] / [`SetKind::Ipv6Networks`] set.
    Addr(IpAddr),
}

/// One command of a transaction on the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Creates the table unless it exists.
    AddTable,
    /// Creates a regular chain unless it exists.
    AddChain(String),
    /// Creates a base chain on the ingress hook of one device unless it
    /// exists (the device need not exist yet: the kernel hooks the chain
    /// in when it appears, since Linux 6.16).
    AddIngressChain {
        /// The chain's name.
        name: String,
        /// The device's name.
        device: String,
    },
    /// Deletes every rule of a chain.
    FlushChain(String),
    /// Deletes an empty chain nothing jumps to.
    DeleteChain(String),
    /// Appends a rule to a chain.
    AddRule {
        /// The chain.
        chain: String,
        /// The rule.
        rule: Rule,
    },
    /// Creates a set unless it exists.
    AddSet {
        /// The set's name.
        name: String,
        /// What it holds.
        kind: SetKind,
    },
    /// Deletes every element of a set.
    FlushSet(String),
    /// Deletes a set no rule refers to.
    DeleteSet(String),
    /// Adds elements (existing ones are no error).
    AddElements {
        /// The set or map.
        set: String,
        /// The elements, ranges sorted and disjoint.
        elements: Vec<Element>,
    },
    /// Deletes elements (each must exist).
    DeleteElements {
        /// The set or map.
        set: String,
        /// The elements (keys).
        elements: Vec<Element>,
    },
    /// Creates a named counter unless it exists (an existing one keeps its values).
    AddCounter(String),
    /// Deletes a named counter no rule refers to.
    DeleteCounter(String),
}

impl Command {
    /// Adds one element to `set`.
    pub fn add_element(set: &str, element: Element) -> Self {
        Self::AddElements {
            set: set.to_owned(),
            elements: vec![element],
        }
    }

    /// Deletes one element (its key) from `set`.
    pub fn delete_element(set: &str, element: Element) -> Self {
        Self::DeleteElements {
            set: set.to_owned(),
            elements: vec![element],
        }
    }
}

pub use text::{command_line, rule_text};
