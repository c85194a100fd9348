//! The nftables commands the data plane issues, as data: one model that
//! renders as `nft -f` text ([`text`], for messages and tests), lowers to
//! the kernel's expressions and elements ([`expr`], [`lower`]), which the
//! netlink client encodes ([`crate::nft_netlink`]) and decodes back from a
//! dump of the table into a [`Listing`] of the same kind as the one the
//! model expects.
//!
//! Only the shapes boxfence needs are modelled: the table, its base
//! chains, dispatch maps, the per-box and per-policy chains, sets,
//! counters and the flowtable of the fast path.

pub mod expr;
mod listing;
pub mod lower;
mod rule;
mod text;

#[cfg(test)]
mod header_only_tests;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use boxfence_policy::matchers::IpRange;

pub use listing::{Difference, ListedChain, ListedFlowtable, ListedSet, Listing};
pub use rule::{
    CT_ESTABLISHED, CT_INVALID, CT_RELATED, Interface, MapKey, Match, QueueBy, Reject, Rule,
    Statement, Verdict,
};

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
    /// Interface → verdict (`out_chains`).
    IfnameVerdicts,
    /// IPv4 address → verdict (`in4`).
    Ipv4Verdicts,
    /// IPv6 address → verdict (`in6`).
    Ipv6Verdicts,
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

/// The kind of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainType {
    /// `type filter`.
    Filter,
    /// `type nat`.
    Nat,
}

/// Where a base chain is hooked in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    /// `hook prerouting`.
    Prerouting,
    /// `hook input`.
    Input,
    /// `hook forward`.
    Forward,
    /// `hook postrouting`.
    Postrouting,
    /// `hook ingress device "<device>"` (the device need not exist yet:
    /// the kernel hooks the chain in when it appears, since Linux 6.16).
    Ingress(String),
}

/// A base chain's hook; its policy is `accept` (what it must refuse, it
/// refuses by rules that say why).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseChain {
    /// Filter or nat.
    pub chain_type: ChainType,
    /// The hook.
    pub hook: Hook,
    /// Its priority (`dstnat` is -100, `filter` 0, `srcnat` 100).
    pub priority: i32,
}

impl BaseChain {
    /// A filter chain on the ingress hook of `device`, at priority `filter`.
    pub fn ingress(device: String) -> Self {
        Self {
            chain_type: ChainType::Filter,
            hook: Hook::Ingress(device),
            priority: 0,
        }
    }
}

/// A flowtable: flows a rule adds to it (`flow add @<name>`) are
/// forwarded by the flowtable's own hook on the ingress of its devices,
/// before any chain, so their packets skip the hooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flowtable {
    /// The priority of its ingress hooks (chains on the same devices
    /// with a higher one see only what the flowtable does not forward).
    pub priority: i32,
    /// The devices it hooks (a flow is forwarded by it only on them).
    pub devices: Vec<String>,
}

/// One command of a transaction on the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Creates the table unless it exists.
    AddTable,
    /// Deletes the table and everything in it.
    DeleteTable,
    /// Creates a regular chain unless it exists.
    AddChain(String),
    /// Creates a base chain unless it exists.
    AddBaseChain {
        /// The chain's name.
        name: String,
        /// Its hook.
        base: BaseChain,
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
    /// Creates a flowtable, or adds to an existing one the devices it
    /// lacks (its priority must be the same).
    AddFlowtable {
        /// Its name.
        name: String,
        /// Its hook priority and devices.
        flowtable: Flowtable,
    },
    /// Removes devices from a flowtable (each must be in it).
    DeleteFlowtableDevices {
        /// The flowtable.
        name: String,
        /// The devices.
        devices: Vec<String>,
    },
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
