//! Rules: conditions, statements, a verdict.

use std::net::IpAddr;

use boxfence_policy::matchers::IpRange;
use ipnet::IpNet;

use super::{Family, Peer};

/// Which interface of the packet a match reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    /// `iifname`.
    Input,
    /// `oifname`.
    Output,
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
    /// `ip daddr 10.200.0.0/16` and the like: an address in a network.
    AddrInNet {
        /// Source or destination.
        peer: Peer,
        /// The network (its family is also a condition).
        net: IpNet,
    },
    /// `ip6 daddr { fd00::1, fe80::/10 }` and the like: an address in a
    /// constant list written in the rule.
    AddrInList {
        /// The family.
        family: Family,
        /// Source or destination.
        peer: Peer,
        /// The ranges, sorted and disjoint.
        ranges: Vec<IpRange>,
    },
    /// `meta nfproto ipv4`.
    Nfproto(Family),
    /// `meta l4proto { tcp, udp }`: one of these protocols.
    L4protoIn(Vec<u8>),
    /// `th dport 53`, or with `equal` false `th dport != 53`.
    Dport {
        /// The port.
        port: u16,
        /// Equal, or not equal.
        equal: bool,
    },
    /// `icmpv6 type { nd-neighbor-solicit, ... }`: one of these types.
    Icmpv6TypeIn(Vec<u8>),
    /// `ct state established,related`: any of these `NF_CT_STATE_*` bits.
    CtState(u32),
    /// `iifname "bf-*"`, `oifname != "eth0"`: a name, or with a trailing
    /// `*` a prefix.
    Ifname {
        /// Input or output.
        interface: Interface,
        /// The name or pattern.
        name: String,
        /// Equal, or not equal.
        equal: bool,
    },
    /// `oifname { "eth0", "eth1" }`: one of these names.
    IfnameIn {
        /// Input or output.
        interface: Interface,
        /// The names.
        names: Vec<String>,
    },
    /// `meta mark & <mask> == 0`: none of these bits is set.
    MarkClear(u32),
    /// `meta mark & <mask> != 0`: one of these bits is set.
    MarkAny(u32),
    /// `ct mark & <mask> == 0`: the flow has none of these bits.
    CtMarkClear(u32),
    /// `ct mark & <mask> != 0`: the flow has one of these bits.
    CtMarkAny(u32),
    /// `ct direction original`: the packet goes the way the flow started.
    CtOriginal,
    /// `tcp flags & syn == syn`: a TCP packet that opens a connection.
    TcpSyn,
    /// `meta nfproto ipv4 tcp doff <doff> ip length <20 + 4·doff>` (IPv6:
    /// `ip6 length <4·doff>`): a TCP segment of `family` that certainly
    /// carries no data, its IP length being a bare header's and its TCP
    /// header `doff` words. IP options and IPv6 extension headers only
    /// make a segment look longer, never shorter, so no segment with data
    /// matches.
    TcpHeaderOnly {
        /// IPv4 or IPv6.
        family: Family,
        /// The TCP header's length in 32-bit words (5–15).
        doff: u8,
    },
}

/// The IP length field of a TCP segment of `family` whose header is
/// `doff` words and that carries no data and no IP options or extension
/// headers: IPv4's total length, IPv6's payload length.
pub(crate) fn header_only_ip_length(family: Family, doff: u8) -> u16 {
    let tcp = 4 * u16::from(doff);
    match family {
        Family::Ipv4 => 20 + tcp,
        Family::Ipv6 => tcp,
    }
}

/// `NF_CT_STATE_INVALID_BIT`.
pub const CT_INVALID: u32 = 1;
/// `NF_CT_STATE_BIT(IP_CT_ESTABLISHED)`.
pub const CT_ESTABLISHED: u32 = 2;
/// `NF_CT_STATE_BIT(IP_CT_RELATED)`.
pub const CT_RELATED: u32 = 4;

/// How a rejected packet is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// `reject with tcp reset`.
    TcpReset,
    /// `reject with icmpx admin-prohibited`.
    AdminProhibited,
}

/// Which key a verdict map is looked up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapKey {
    /// `iifname`.
    Iifname,
    /// `ip daddr` / `ip6 daddr`.
    Daddr(Family),
}

/// What a rule does to a packet before its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// `ct original zone set <zone>`: the conntrack zone of the flow the
    /// packet starts or belongs to, in the original direction only (a
    /// reply is found by the tuple conntrack keeps for it).
    OriginalZone(u16),
    /// `meta mark set <mark>`.
    Mark(u32),
    /// `meta mark set meta mark | <bits>`.
    MarkOr(u32),
    /// `ct mark set ct mark | <bits>`.
    CtMarkOr(u32),
    /// `ct mark set ct mark & ~<bits>` (nft writes the mask itself).
    CtMarkClear(u32),
    /// `queue num <num>`: the packet goes to user space, and with no
    /// reader bound to the queue it is dropped (no `bypass`: fail closed).
    Queue {
        /// The queue.
        num: u16,
        /// Which of the kernel's two ways queues it.
        by: QueueBy,
    },
    /// `counter`: an anonymous counter.
    Counter,
    /// `limit rate <per_second>/second burst <burst> packets`: the rule
    /// goes on only while under the rate.
    Limit {
        /// Packets per second.
        per_second: u64,
        /// Burst, in packets.
        burst: u32,
    },
    /// `log prefix "<prefix>" group <group>`: to NFLOG.
    Log {
        /// The prefix.
        prefix: String,
        /// The NFLOG group.
        group: u16,
    },
    /// `reject with ...`: ends the packet.
    Reject(Reject),
    /// `dnat ip to <addr>:<port>` (`ip6 to [<addr>]:<port>`).
    Dnat {
        /// The new destination address.
        addr: IpAddr,
        /// The new destination port.
        port: u16,
    },
    /// `masquerade`.
    Masquerade,
    /// `flow add @<flowtable>`: the packet's flow is offloaded to the
    /// flowtable (the kernel takes only established TCP and UDP flows it
    /// can forward; its packets then skip the hooks).
    FlowOffload(String),
    /// `iifname vmap @map` and the like: the verdict the map holds for the
    /// key, if it holds one.
    VerdictMap {
        /// The key.
        key: MapKey,
        /// The map.
        map: String,
    },
}

/// How a rule sends a packet to a queue: both drop it when no reader is
/// bound, and differ only in which kernel module does it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueBy {
    /// nf_tables' own `queue` expression (`nft_queue`).
    Expression,
    /// The xtables `NFQUEUE` target run through `nft_compat`, for kernels
    /// built without `nft_queue`.
    XtTarget,
}

/// How a rule ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
    /// `jump <chain>`.
    Jump(String),
    /// `goto <chain>`.
    Goto(String),
    /// `return`: back to the rule after the `jump` that came here.
    Return,
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
        Self::when(Vec::new(), verdict)
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

    /// `matches` then `statements`, and no verdict.
    pub fn then(matches: Vec<Match>, statements: Vec<Statement>) -> Self {
        Self {
            matches,
            statements,
            counter: None,
            verdict: None,
        }
    }

    /// A rule that only counts.
    pub fn count(counter: String) -> Self {
        Self {
            counter: Some(counter),
            ..Self::then(Vec::new(), Vec::new())
        }
    }
}
