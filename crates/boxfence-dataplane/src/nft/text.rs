//! The commands as `nft -f` lines.

use std::fmt::Write as _;

use super::{Command, Element, Family, Match, Peer, Rule, SetKind, Statement, Verdict};

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
    }
}

/// One command as one line for table `inet <table>`.
pub fn command_line(table: &str, command: &Command) -> String {
    match command {
        Command::AddTable => format!("add table inet {table}"),
        Command::AddChain(name) => format!("add chain inet {table} {name}"),
        Command::AddIngressChain { name, device } => format!(
            "add chain inet {table} {name} {{ type filter hook ingress device \"{device}\" priority filter; policy accept; }}"
        ),
        Command::FlushChain(name) => format!("flush chain inet {table} {name}"),
        Command::DeleteChain(name) => format!("delete chain inet {table} {name}"),
        Command::AddRule { chain, rule } => {
            format!("add rule inet {table} {chain} {}", rule_text(rule))
        }
        Command::AddSet { name, kind } => {
            format!("add set inet {table} {name} {{ {} }}", declaration(*kind))
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
    }
}

/// A rule in nft syntax.
pub fn rule_text(rule: &Rule) -> String {
    let mut text = String::new();
    for m in &rule.matches {
        match m {
            Match::Addr { family, peer, set } => {
                let _ = write!(text, "{} @{set} ", address(*family, *peer));
            }
            Match::AddrMasked {
                family,
                peer,
                prefix_len,
                set,
            } => {
                let mask = family.mask(*prefix_len);
                let _ = write!(text, "{} & {mask} @{set} ", address(*family, *peer));
            }
            Match::IfnameAddr { family, peer, set } => {
                let _ = write!(text, "iifname . {} @{set} ", address(*family, *peer));
            }
            Match::ProtoPort { set } => {
                let _ = write!(text, "meta l4proto . th dport @{set} ");
            }
            Match::L4proto(protocol) => {
                let _ = write!(text, "meta l4proto {} ", protocol_word(*protocol));
            }
            Match::AddrIs { peer, addr } => {
                let _ = write!(text, "{} {addr} ", address(Family::of(*addr), *peer));
            }
        }
    }
    for statement in &rule.statements {
        let _ = match statement {
            Statement::OriginalZone(zone) => write!(text, "ct original zone set {zone} "),
            Statement::Mark(mark) => write!(text, "meta mark set {mark:#010x} "),
        };
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

fn verdict_text(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Accept => "accept".to_owned(),
        Verdict::Jump(chain) => format!("jump {chain}"),
        Verdict::Goto(chain) => format!("goto {chain}"),
    }
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

fn protocol_word(protocol: u8) -> String {
    match protocol {
        1 => "icmp".to_owned(),
        6 => "tcp".to_owned(),
        17 => "udp".to_owned(),
        58 => "ipv6-icmp".to_owned(),
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
