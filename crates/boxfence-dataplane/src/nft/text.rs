//! The commands as `nft -f` lines, for messages and tests.

use std::fmt::Write as _;

use super::{
    BaseChain, ChainType, Command, Element, Family, Hook, Interface, MapKey, Match, Peer, QueueBy,
    Reject, Rule, SetKind, Statement, Verdict,
};

/// The set declaration inside `{ … }`.
fn declaration(kind: SetKind) -> &'static str {
    match kind {
        SetKind::Ipv4 => "type ipv4_addr; flags interval;",
        SetKind::Ipv6 => "type ipv6_addr; flags interval;",
        SetKind::Ipv4Networks => "type ipv4_addr;",
        SetKind::Ipv6Networks => "type ipv6_addr;",
        SetKind::ProtoPort => "type inet_proto . inet_service; flags interval;",
        SetKind::Ipv4Learned => "type ipv4_addr; flags timeout;",
        SetKind::Ipv6Learned => "type ipv6_addr; flags timeout;",
        SetKind::IfnameIpv4Learned => "type ifname . ipv4_addr; flags timeout;",
        SetKind::IfnameIpv6Learned => "type ifname . ipv6_addr; flags timeout;",
        SetKind::IfnameVerdicts => "type ifname : verdict;",
        SetKind::Ipv4Verdicts => "type ipv4_addr : verdict;",
        SetKind::Ipv6Verdicts => "type ipv6_addr : verdict;",
    }
}

/// One command as one line for table `inet <table>`.
pub fn command_line(table: &str, command: &Command) -> String {
    match command {
        Command::AddTable => format!("add table inet {table}"),
        Command::DeleteTable => format!("delete table inet {table}"),
        Command::AddChain(name) => format!("add chain inet {table} {name}"),
        Command::AddBaseChain { name, base } => {
            format!("add chain inet {table} {name} {{ {} }}", hook_text(base))
        }
        Command::FlushChain(name) => format!("flush chain inet {table} {name}"),
        Command::DeleteChain(name) => format!("delete chain inet {table} {name}"),
        Command::AddRule { chain, rule } => {
            format!("add rule inet {table} {chain} {}", rule_text(rule))
        }
        Command::AddSet { name, kind } => {
            let noun = if matches!(
                kind,
                SetKind::IfnameVerdicts | SetKind::Ipv4Verdicts | SetKind::Ipv6Verdicts
            ) {
                "map"
            } else {
                "set"
            };
            format!(
                "add {noun} inet {table} {name} {{ {} }}",
                declaration(*kind)
            )
        }
        Command::FlushSet(name) => format!("flush set inet {table} {name}"),
        Command::DeleteSet(name) => format!("delete set inet {table} {name}"),
        Command::AddElements { set, elements } => {
            format!("add element inet {table} {set} {{ {} }}", list(elements))
        }
        Command::DeleteElements { set, elements } => {
            format!("delete element inet {table} {set} {{ {} }}", list(elements))
        }
        Command::AddCounter(name) => format!("add counter inet {table} {name}"),
        Command::DeleteCounter(name) => format!("delete counter inet {table} {name}"),
        Command::AddFlowtable { name, flowtable } => format!(
            "add flowtable inet {table} {name} {{ hook ingress priority {}; devices = {{ {} }}; }}",
            flowtable.priority,
            flowtable.devices.join(", ")
        ),
        Command::DeleteFlowtableDevices { name, devices } => format!(
            "delete flowtable inet {table} {name} {{ devices = {{ {} }}; }}",
            devices.join(", ")
        ),
    }
}

fn hook_text(base: &BaseChain) -> String {
    let chain_type = match base.chain_type {
        ChainType::Filter => "filter",
        ChainType::Nat => "nat",
    };
    let hook = match &base.hook {
        Hook::Prerouting => "prerouting".to_owned(),
        Hook::Input => "input".to_owned(),
        Hook::Forward => "forward".to_owned(),
        Hook::Postrouting => "postrouting".to_owned(),
        Hook::Ingress(device) => format!("ingress device \"{device}\""),
    };
    format!(
        "type {chain_type} hook {hook} priority {}; policy accept;",
        base.priority
    )
}

/// A rule in nft syntax.
pub fn rule_text(rule: &Rule) -> String {
    let mut text = String::new();
    for m in &rule.matches {
        text.push_str(&match_text(m));
        text.push(' ');
    }
    for statement in &rule.statements {
        text.push_str(&statement_text(statement));
        text.push(' ');
    }
    if let Some(counter) = &rule.counter {
        let _ = write!(text, "counter name {counter} ");
    }
    match &rule.verdict {
        Some(verdict) => text.push_str(&verdict_text(verdict)),
        None => {
            text.pop();
        }
    }
    text
}

fn match_text(m: &Match) -> String {
    match m {
        Match::Addr { family, peer, set } => format!("{} @{set}", address(*family, *peer)),
        Match::AddrMasked {
            family,
            peer,
            prefix_len,
            set,
        } => {
            let mask = family.mask(*prefix_len);
            format!("{} & {mask} @{set}", address(*family, *peer))
        }
        Match::IfnameAddr { family, peer, set } => {
            format!("iifname . {} @{set}", address(*family, *peer))
        }
        Match::ProtoPort { set } => format!("meta l4proto . th dport @{set}"),
        Match::L4proto(protocol) => format!("meta l4proto {}", protocol_word(*protocol)),
        Match::AddrIs { peer, addr } => format!("{} {addr}", address(Family::of(*addr), *peer)),
        Match::AddrInNet { peer, net } => {
            format!("{} {net}", address(Family::of(net.addr()), *peer))
        }
        Match::AddrInList {
            family,
            peer,
            ranges,
        } => {
            let ranges: Vec<Element> = ranges.iter().map(|r| Element::Range(*r)).collect();
            format!("{} {{ {} }}", address(*family, *peer), list(&ranges))
        }
        Match::Nfproto(Family::Ipv4) => "meta nfproto ipv4".to_owned(),
        Match::Nfproto(Family::Ipv6) => "meta nfproto ipv6".to_owned(),
        Match::L4protoIn(protocols) => {
            let words: Vec<String> = protocols.iter().map(|p| protocol_word(*p)).collect();
            format!("meta l4proto {{ {} }}", words.join(", "))
        }
        Match::Dport { port, equal } => format!("th dport {}{port}", not(*equal)),
        Match::Icmpv6TypeIn(types) => {
            let words: Vec<String> = types.iter().map(|t| icmpv6_word(*t)).collect();
            format!("icmpv6 type {{ {} }}", words.join(", "))
        }
        Match::CtState(bits) => {
            let names = [
                (super::CT_ESTABLISHED, "established"),
                (super::CT_RELATED, "related"),
                (super::CT_INVALID, "invalid"),
            ];
            let set: Vec<&str> = names
                .iter()
                .filter(|(bit, _)| bits & bit != 0)
                .map(|(_, name)| *name)
                .collect();
            format!("ct state {}", set.join(","))
        }
        Match::Ifname {
            interface,
            name,
            equal,
        } => format!("{} {}\"{name}\"", ifname_word(*interface), not(*equal)),
        Match::IfnameIn { interface, names } => {
            let names: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
            format!("{} {{ {} }}", ifname_word(*interface), names.join(", "))
        }
        Match::MarkClear(mask) => format!("meta mark & {mask:#x} == 0"),
        Match::MarkAny(mask) => format!("meta mark & {mask:#x} != 0"),
        Match::CtMarkClear(mask) => format!("ct mark & {mask:#x} == 0"),
        Match::CtMarkAny(mask) => format!("ct mark & {mask:#x} != 0"),
        Match::CtOriginal => "ct direction original".to_owned(),
        Match::TcpSyn => "tcp flags & syn == syn".to_owned(),
        Match::TcpHeaderOnly { family, doff } => {
            let (nfproto, ip) = match family {
                Family::Ipv4 => ("ipv4", "ip"),
                Family::Ipv6 => ("ipv6", "ip6"),
            };
            let length = super::rule::header_only_ip_length(*family, *doff);
            format!("meta nfproto {nfproto} tcp doff {doff} {ip} length {length}")
        }
    }
}

fn statement_text(statement: &Statement) -> String {
    match statement {
        Statement::OriginalZone(zone) => format!("ct original zone set {zone}"),
        Statement::Mark(mark) => format!("meta mark set {mark:#010x}"),
        Statement::MarkOr(bits) => format!("meta mark set meta mark | {bits:#x}"),
        Statement::CtMarkOr(bits) => format!("ct mark set ct mark | {bits:#x}"),
        Statement::CtMarkClear(bits) => format!("ct mark set ct mark & {:#x}", !bits),
        Statement::Queue {
            num,
            by: QueueBy::Expression,
        } => format!("queue num {num}"),
        Statement::Queue {
            num,
            by: QueueBy::XtTarget,
        } => format!("xt target \"NFQUEUE\" num {num}"),
        Statement::Counter => "counter".to_owned(),
        Statement::Limit { per_second, burst } => {
            format!("limit rate {per_second}/second burst {burst} packets")
        }
        Statement::Log { prefix, group } => format!("log prefix \"{prefix}\" group {group}"),
        Statement::Reject(Reject::TcpReset) => "reject with tcp reset".to_owned(),
        Statement::Reject(Reject::AdminProhibited) => {
            "reject with icmpx admin-prohibited".to_owned()
        }
        Statement::Dnat { addr, port } => match Family::of(*addr) {
            Family::Ipv4 => format!("dnat ip to {addr}:{port}"),
            Family::Ipv6 => format!("dnat ip6 to [{addr}]:{port}"),
        },
        Statement::Masquerade => "masquerade".to_owned(),
        Statement::FlowOffload(flowtable) => format!("flow add @{flowtable}"),
        Statement::VerdictMap { key, map } => {
            let key = match key {
                MapKey::Iifname => "iifname",
                MapKey::Daddr(family) => address(*family, Peer::Destination),
            };
            format!("{key} vmap @{map}")
        }
    }
}

fn verdict_text(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Accept => "accept".to_owned(),
        Verdict::Drop => "drop".to_owned(),
        Verdict::Return => "return".to_owned(),
        Verdict::Jump(chain) => format!("jump {chain}"),
        Verdict::Goto(chain) => format!("goto {chain}"),
    }
}

fn not(equal: bool) -> &'static str {
    if equal { "" } else { "!= " }
}

/// `ip daddr` and the like.
fn address(family: Family, peer: Peer) -> &'static str {
    match (family, peer) {
        (Family::Ipv4, Peer::Source) => "ip saddr",
        (Family::Ipv4, Peer::Destination) => "ip daddr",
        (Family::Ipv6, Peer::Source) => "ip6 saddr",
        (Family::Ipv6, Peer::Destination) => "ip6 daddr",
    }
}

fn ifname_word(interface: Interface) -> &'static str {
    match interface {
        Interface::Input => "iifname",
        Interface::Output => "oifname",
    }
}

fn protocol_word(protocol: u8) -> String {
    match protocol {
        1 => "icmp".to_owned(),
        6 => "tcp".to_owned(),
        17 => "udp".to_owned(),
        58 => "ipv6-icmp".to_owned(),
        other => other.to_string(),
    }
}

fn icmpv6_word(icmpv6_type: u8) -> String {
    match icmpv6_type {
        133 => "nd-router-solicit".to_owned(),
        135 => "nd-neighbor-solicit".to_owned(),
        136 => "nd-neighbor-advert".to_owned(),
        other => other.to_string(),
    }
}

fn list(elements: &[Element]) -> String {
    let items: Vec<String> = elements.iter().map(element_text).collect();
    items.join(", ")
}

fn element_text(element: &Element) -> String {
    match element {
        Element::Range(range) if range.first == range.last => range.first.to_string(),
        Element::Range(range) => format!("{}-{}", range.first, range.last),
        Element::ProtoPorts {
            protocol,
            first,
            last,
        } if first == last => format!("{} . {first}", protocol_word(*protocol)),
        Element::ProtoPorts {
            protocol,
            first,
            last,
        } => format!("{} . {first}-{last}", protocol_word(*protocol)),
        Element::IfnameVerdict(ifname, verdict) => {
            format!("\"{ifname}\" : {}", verdict_text(verdict))
        }
        Element::Ifname(ifname) => format!("\"{ifname}\""),
        Element::AddrVerdict(addr, verdict) => format!("{addr} : {}", verdict_text(verdict)),
        Element::Addr(addr) => addr.to_string(),
    }
}
