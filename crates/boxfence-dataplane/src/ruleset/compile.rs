//! Compiles a box's `EffectivePolicy` into kernel objects. Every decision
//! was made by the policy core; this only translates its layers.

use boxfence_policy::matchers::{CidrSet, IpRange, PortSet};
use boxfence_policy::{
    BoxLayer, CompiledAppPolicy, CompiledRule, Direction, EffectivePolicy, Protocol,
};

use super::names::{BoxNames, PolicyNames};
use super::objects::{Object, SetKind};
use super::{DENY_APP, DENY_BLOCKED, DENY_BOX};

/// The objects of one box: its sets, then its chains (in the order they
/// must be created: app chains before the chains that jump to them).
pub(crate) fn box_objects(id: &str, policy: &EffectivePolicy) -> Vec<Object> {
    let names = BoxNames::new(id);
    let mut objects = Vec::new();
    let (denied, allowed) = match &policy.box_layer {
        BoxLayer::Custom(custom) => (Some(&custom.denied), Some(&custom.allowed_cidrs)),
        BoxLayer::AllowAll | BoxLayer::DenyAll => (None, None),
    };
    let empty = CidrSet::default();
    let (deny4, deny6) = split(denied.unwrap_or(&empty));
    let (allow4, allow6) = split(allowed.unwrap_or(&empty));
    objects.push(Object::set(names.set("deny4"), SetKind::Ipv4, deny4));
    objects.push(Object::set(names.set("deny6"), SetKind::Ipv6, deny6));
    objects.push(Object::set(names.set("allow4"), SetKind::Ipv4, allow4));
    objects.push(Object::set(names.set("allow6"), SetKind::Ipv6, allow6));
    objects.push(Object::set(
        names.set("learn4"),
        SetKind::Ipv4Learned,
        Vec::new(),
    ));
    objects.push(Object::set(
        names.set("learn6"),
        SetKind::Ipv6Learned,
        Vec::new(),
    ));
    for counter in [NEW_OUT, NEW_IN, DENIED] {
        objects.push(Object::Counter {
            name: names.set(counter),
        });
    }
    let denied = format!("counter name {} ", names.set(DENIED));
    for direction in [Direction::Egress, Direction::Ingress] {
        let rules = counted(app_layer(policy, direction), &denied);
        objects.push(Object::chain(names.app_chain(direction), rules));
    }
    let mut egress = vec![format!("counter name {}", names.set(NEW_OUT))];
    egress.extend(counted(egress_chain(&names, policy), &denied));
    let mut ingress = vec![format!("counter name {}", names.set(NEW_IN))];
    ingress.extend(counted(ingress_chain(&names, policy), &denied));
    objects.push(Object::chain(names.chain(Direction::Egress), egress));
    objects.push(Object::chain(names.chain(Direction::Ingress), ingress));
    objects
}

/// Per-box counters: new flows out, new flows in, and denied packets
/// (allowed = new - denied). Read for metrics.
pub const NEW_OUT: &str = "new_out";
/// See [`NEW_OUT`].
pub const NEW_IN: &str = "new_in";
/// See [`NEW_OUT`].
pub const DENIED: &str = "denied";

/// Counts every path that ends in a deny chain.
fn counted(rules: Vec<String>, counter: &str) -> Vec<String> {
    rules
        .into_iter()
        .map(|rule| match rule.find("goto deny_") {
            Some(at) => format!("{}{counter}{}", &rule[..at], &rule[at..]),
            None => rule,
        })
        .collect()
}

/// Always-blocked ranges, then the box layer, then the app layer.
fn egress_chain(names: &BoxNames, policy: &EffectivePolicy) -> Vec<String> {
    let app = names.app_chain(Direction::Egress);
    let mut rules = vec![
        format!("ip daddr @blocked4 goto {DENY_BLOCKED}"),
        format!("ip6 daddr @blocked6 goto {DENY_BLOCKED}"),
    ];
    match &policy.box_layer {
        BoxLayer::DenyAll => rules.push(format!("goto {DENY_BOX}")),
        BoxLayer::AllowAll => rules.push(format!("goto {app}")),
        BoxLayer::Custom(custom) => {
            rules.push(format!("ip daddr @{} goto {DENY_BOX}", names.set("deny4")));
            rules.push(format!("ip6 daddr @{} goto {DENY_BOX}", names.set("deny6")));
            if custom.default_deny() {
                for (family, set) in [
                    ("ip", "allow4"),
                    ("ip6", "allow6"),
                    ("ip", "learn4"),
                    ("ip6", "learn6"),
                ] {
                    rules.push(format!("{family} daddr @{} goto {app}", names.set(set)));
                }
                rules.push(format!("goto {DENY_BOX}"));
            } else {
                rules.push(format!("goto {app}"));
            }
        }
    }
    rules
}

/// The box layer governs ingress only in deny-all.
fn ingress_chain(names: &BoxNames, policy: &EffectivePolicy) -> Vec<String> {
    match policy.box_layer {
        BoxLayer::DenyAll => vec![format!("goto {DENY_BOX}")],
        BoxLayer::AllowAll | BoxLayer::Custom(_) => {
            vec![format!("goto {}", names.app_chain(Direction::Ingress))]
        }
    }
}

/// Jumps to the shared chain of each selecting policy with rules in this
/// direction; none means the app layer is open in this direction.
fn app_layer(policy: &EffectivePolicy, direction: Direction) -> Vec<String> {
    let with_rules: Vec<_> = policy
        .app_policies
        .iter()
        .filter(|p| !p.rules(direction).is_empty())
        .collect();
    if with_rules.is_empty() {
        return vec!["accept".to_owned()];
    }
    let mut rules: Vec<String> = with_rules
        .iter()
        .map(|p| format!("jump {}", PolicyNames::new(p).chain(direction)))
        .collect();
    rules.sort();
    rules.dedup();
    rules.push(format!("goto {DENY_APP}"));
    rules
}

/// The shared objects of one app policy: per rule its sets, and per
/// direction a chain that accepts what a rule matches and returns otherwise.
pub(crate) fn policy_objects(policy: &CompiledAppPolicy) -> Vec<Object> {
    let names = PolicyNames::new(policy);
    let mut objects = Vec::new();
    for direction in [Direction::Egress, Direction::Ingress] {
        let mut chain = Vec::new();
        for rule in policy.rules(direction) {
            chain.extend(rule_matches(&names, direction, rule, &mut objects));
        }
        objects.push(Object::chain(names.chain(direction), chain));
    }
    objects
}

/// The nft rules of one policy rule: every combination of a port match and
/// a peer match, each accepting.
fn rule_matches(
    names: &PolicyNames,
    direction: Direction,
    rule: &CompiledRule,
    objects: &mut Vec<Object>,
) -> Vec<String> {
    let set = |what: &str| names.rule_set(direction, rule.index, what);
    let ports: Vec<String> = match &rule.ports {
        None => vec![String::new()],
        Some(ports) => {
            let mut matches = Vec::new();
            let elements = port_elements(ports);
            if !elements.is_empty() {
                objects.push(Object::set(set("ports"), SetKind::ProtoPort, elements));
                matches.push(format!("meta l4proto . th dport @{} ", set("ports")));
            }
            if ports.icmp() {
                matches.push("meta l4proto { icmp, ipv6-icmp } ".to_owned());
            }
            matches
        }
    };
    let peer = if direction == Direction::Egress {
        "daddr"
    } else {
        "saddr"
    };
    let peers: Vec<String> = match &rule.peers {
        None => vec![String::new()],
        Some(peers) => {
            let (v4, v6) = split(&peers.cidrs);
            let mut matches = Vec::new();
            for (family, kind, suffix, elements) in [
                ("ip", SetKind::Ipv4, "net4", v4),
                ("ip6", SetKind::Ipv6, "net6", v6),
            ] {
                if !elements.is_empty() {
                    objects.push(Object::set(set(suffix), kind, elements));
                    matches.push(format!("{family} {peer} @{} ", set(suffix)));
                }
            }
            // Domain peers match the addresses the resolver learned for
            // this box from a matching name; until it learns some, they
            // match nothing.
            if !peers.domains.is_empty() {
                for (family, kind, suffix) in [
                    ("ip", SetKind::IfnameIpv4Learned, "dom4"),
                    ("ip6", SetKind::IfnameIpv6Learned, "dom6"),
                ] {
                    objects.push(Object::set(set(suffix), kind, Vec::new()));
                    matches.push(format!("iifname . {family} {peer} @{} ", set(suffix)));
                }
            }
            matches
        }
    };
    ports
        .iter()
        .flat_map(|port| peers.iter().map(move |peer| format!("{port}{peer}accept")))
        .collect()
}

fn port_elements(ports: &PortSet) -> Vec<String> {
    [Protocol::Tcp, Protocol::Udp]
        .into_iter()
        .flat_map(|protocol| {
            ports.ranges(protocol).iter().map(move |range| {
                if range.first == range.last {
                    format!("{} . {}", protocol.as_str(), range.first)
                } else {
                    format!("{} . {}-{}", protocol.as_str(), range.first, range.last)
                }
            })
        })
        .collect()
}

/// Set elements of a CIDR set's merged intervals, IPv4 and IPv6 apart.
pub(crate) fn split(set: &CidrSet) -> (Vec<String>, Vec<String>) {
    range_elements(&set.intervals())
}

/// Set elements of merged ranges, IPv4 and IPv6 apart.
pub(crate) fn range_elements(ranges: &[IpRange]) -> (Vec<String>, Vec<String>) {
    let (v4, v6): (Vec<&IpRange>, Vec<&IpRange>) = ranges.iter().partition(|r| r.first.is_ipv4());
    let text = |r: &&IpRange| {
        if r.first == r.last {
            r.first.to_string()
        } else {
            format!("{}-{}", r.first, r.last)
        }
    };
    (v4.iter().map(text).collect(), v6.iter().map(text).collect())
}
