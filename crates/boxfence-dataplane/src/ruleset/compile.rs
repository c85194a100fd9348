//! Compiles a box's `EffectivePolicy` into kernel objects. Every decision
//! was made by the policy core; this only translates its layers.

use boxfence_policy::matchers::{CidrSet, IpRange, PortSet};
use boxfence_policy::{
    BoxLayer, CompiledAppPolicy, CompiledRule, Direction, EffectivePolicy, Protocol,
};
use ipnet::IpNet;

use super::name_check::{self, NameCheck};
use super::names::{BoxNames, PolicyNames};
use super::objects::Object;
use super::{BoxLink, DENY_APP, DENY_BLOCKED, DENY_BOX, OTHER_SOURCE};
use crate::nft::{Element, Family, Match, Peer, Rule, SetKind, Statement, Verdict};

/// The objects of one box: its sets, then its chains (in the order they
/// must be created: app chains before the chains that jump to them).
/// `mark` is the bit that says the table saw a packet.
pub(crate) fn box_objects(
    link: &BoxLink,
    policy: &EffectivePolicy,
    mark: u32,
    name_check: Option<NameCheck>,
) -> Vec<Object> {
    let names = BoxNames::new(&link.id);
    let mut objects = Vec::new();
    let (denied, allowed) = match &policy.box_layer {
        BoxLayer::Custom(custom) => (Some(&custom.denied), Some(&custom.allowed_cidrs)),
        BoxLayer::AllowAll | BoxLayer::DenyAll => (None, None),
    };
    // Only lists with blocks get a set: a lookup in a set that stays empty
    // matches nothing, so a connection's first packet does only the
    // lookups that can decide it.
    let mut lookups = |list: Option<&CidrSet>, v4: &str, v6: &str| -> Vec<Match> {
        let families = [(Family::Ipv4, v4), (Family::Ipv6, v6)];
        let found = families.into_iter().filter_map(|(family, suffix)| {
            cidr_lookup(&names.set(suffix), family, Peer::Destination, list?)
        });
        let (sets, matches): (Vec<Object>, Vec<Match>) = found.unzip();
        objects.extend(sets);
        matches
    };
    let deny = lookups(denied, "deny4", "deny6");
    let allow = lookups(allowed, "allow4", "allow6");
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
    let denied = names.set(DENIED);
    for direction in [Direction::Egress, Direction::Ingress] {
        let rules = counted(app_layer(policy, direction, name_check), &denied);
        objects.push(Object::chain(names.app_chain(direction), rules));
    }
    let mut egress = vec![Rule::count(names.set(NEW_OUT))];
    egress.extend(counted(
        egress_chain(&names, policy, &deny, &allow, name_check),
        &denied,
    ));
    let mut ingress = vec![Rule::count(names.set(NEW_IN))];
    ingress.extend(counted(ingress_chain(&names, policy), &denied));
    objects.push(Object::chain(names.chain(Direction::Egress), egress));
    objects.push(Object::chain(names.chain(Direction::Ingress), ingress));
    objects.push(link_chain(&names, link, mark));
    objects
}

/// The chain every packet the box sends meets first, on the ingress hook
/// of its host-side device, before conntrack: a packet from one of the
/// box's own addresses gets the box's conntrack zone and the mark, any
/// other goes to [`OTHER_SOURCE`]. The box's addresses and zone are
/// constants here, so a packet costs comparisons, not a lookup, and no
/// other packet of the host passes a hook for this.
fn link_chain(names: &BoxNames, link: &BoxLink, mark: u32) -> Object {
    let mut rules: Vec<Rule> = [link.ipv4.into(), link.ipv6.into()]
        .into_iter()
        .map(|addr| Rule {
            statements: vec![Statement::OriginalZone(link.zone), Statement::Mark(mark)],
            ..Rule::when(
                vec![Match::AddrIs {
                    peer: Peer::Source,
                    addr,
                }],
                Verdict::Accept,
            )
        })
        .collect();
    rules.push(Rule::verdict(goto(OTHER_SOURCE)));
    Object::ingress_chain(names.link_chain(), link.ifname.clone(), rules)
}

/// Per-box counters: new flows out, new flows in, and denied packets
/// (allowed = new - denied). Read for metrics.
pub const NEW_OUT: &str = "new_out";
/// See [`NEW_OUT`].
pub const NEW_IN: &str = "new_in";
/// See [`NEW_OUT`].
pub const DENIED: &str = "denied";

/// Counts every path that ends in a deny chain.
fn counted(mut rules: Vec<Rule>, counter: &str) -> Vec<Rule> {
    for rule in &mut rules {
        if matches!(&rule.verdict, Some(Verdict::Goto(chain)) if chain.starts_with("deny_")) {
            rule.counter = Some(counter.to_owned());
        }
    }
    rules
}

fn goto(chain: impl Into<String>) -> Verdict {
    Verdict::Goto(chain.into())
}

fn daddr_in(family: Family, set: String) -> Vec<Match> {
    vec![Match::Addr {
        family,
        peer: Peer::Destination,
        set,
    }]
}

/// How one family of a CIDR list is looked up, and the set it needs; none
/// when the family has no block. When every block has one prefix length
/// (a list of /32s, say), the address masked to it is looked up in a hash
/// of networks, one probe; otherwise in an interval set, a binary search.
fn cidr_lookup(name: &str, family: Family, peer: Peer, list: &CidrSet) -> Option<(Object, Match)> {
    let blocks: Vec<&IpNet> = list
        .blocks()
        .filter(|block| Family::of(block.addr()) == family)
        .collect();
    let prefix_len = blocks.first()?.prefix_len();
    if prefix_len > 0 && blocks.iter().all(|b| b.prefix_len() == prefix_len) {
        let set = format!("{name}_nets");
        let kind = match family {
            Family::Ipv4 => SetKind::Ipv4Networks,
            Family::Ipv6 => SetKind::Ipv6Networks,
        };
        let elements = blocks.iter().map(|b| Element::Addr(b.network())).collect();
        let lookup = if prefix_len == blocks[0].max_prefix_len() {
            Match::Addr {
                family,
                peer,
                set: set.clone(),
            }
        } else {
            Match::AddrMasked {
                family,
                peer,
                prefix_len,
                set: set.clone(),
            }
        };
        return Some((Object::set(set, kind, elements), lookup));
    }
    let (v4, v6) = split(list);
    let (kind, elements) = match family {
        Family::Ipv4 => (SetKind::Ipv4, v4),
        Family::Ipv6 => (SetKind::Ipv6, v6),
    };
    let lookup = Match::Addr {
        family,
        peer,
        set: name.to_owned(),
    };
    Some((Object::set(name.to_owned(), kind, elements), lookup))
}

/// Always-blocked ranges, then the box layer (`deny` and `allow`: the
/// lookups of its CIDR lists), then the app layer.
fn egress_chain(
    names: &BoxNames,
    policy: &EffectivePolicy,
    deny: &[Match],
    allow: &[Match],
    name_check: Option<NameCheck>,
) -> Vec<Rule> {
    let app = names.app_chain(Direction::Egress);
    let mut rules = vec![
        Rule::when(
            daddr_in(Family::Ipv4, "blocked4".into()),
            goto(DENY_BLOCKED),
        ),
        Rule::when(
            daddr_in(Family::Ipv6, "blocked6".into()),
            goto(DENY_BLOCKED),
        ),
    ];
    match &policy.box_layer {
        BoxLayer::DenyAll => rules.push(Rule::verdict(goto(DENY_BOX))),
        BoxLayer::AllowAll => rules.push(Rule::verdict(goto(app))),
        BoxLayer::Custom(custom) => {
            for lookup in deny {
                rules.push(Rule::when(vec![lookup.clone()], goto(DENY_BOX)));
            }
            if custom.default_deny() {
                for lookup in allow {
                    rules.push(Rule::when(vec![lookup.clone()], goto(&app)));
                }
                // Only `allowedDomains` ever fill the learned sets.
                if !custom.allowed_domains.is_empty() {
                    // Checked names: the flow is marked as one a domain
                    // authorised, for the app layer's accept to see.
                    let statements: Vec<Statement> = name_check
                        .iter()
                        .map(|n| Statement::MarkOr(n.by_box()))
                        .collect();
                    for (family, set) in [(Family::Ipv4, "learn4"), (Family::Ipv6, "learn6")] {
                        rules.push(Rule {
                            statements: statements.clone(),
                            ..Rule::when(daddr_in(family, names.set(set)), goto(&app))
                        });
                    }
                }
                rules.push(Rule::verdict(goto(DENY_BOX)));
            } else {
                rules.push(Rule::verdict(goto(app)));
            }
        }
    }
    rules
}

/// The box layer governs ingress only in deny-all.
fn ingress_chain(names: &BoxNames, policy: &EffectivePolicy) -> Vec<Rule> {
    match policy.box_layer {
        BoxLayer::DenyAll => vec![Rule::verdict(goto(DENY_BOX))],
        BoxLayer::AllowAll | BoxLayer::Custom(_) => {
            vec![Rule::verdict(goto(names.app_chain(Direction::Ingress)))]
        }
    }
}

/// Jumps to the shared chain of each selecting policy with rules in this
/// direction; none means the app layer is open in this direction. With
/// checked names, egress accepts go through the name gate, and a flow
/// that a rule matched only by a domain (and no rule otherwise) is
/// pending.
fn app_layer(
    policy: &EffectivePolicy,
    direction: Direction,
    name_check: Option<NameCheck>,
) -> Vec<Rule> {
    let name_check = name_check.filter(|_| direction == Direction::Egress);
    let mut chains: Vec<String> = policy
        .app_policies
        .iter()
        .filter(|p| !p.rules(direction).is_empty())
        .map(|p| PolicyNames::new(p).chain(direction))
        .collect();
    if chains.is_empty() {
        return vec![Rule::verdict(accept(name_check))];
    }
    chains.sort();
    chains.dedup();
    let mut rules: Vec<Rule> = chains
        .into_iter()
        .map(|chain| Rule::verdict(Verdict::Jump(chain)))
        .collect();
    if let Some(name_check) = name_check {
        rules.push(Rule::when(
            vec![Match::MarkAny(name_check.by_app())],
            goto(name_check::PENDING),
        ));
    }
    rules.push(Rule::verdict(goto(DENY_APP)));
    rules
}

/// How an egress path that the app layer allows ends.
fn accept(name_check: Option<NameCheck>) -> Verdict {
    match name_check {
        Some(_) => goto(name_check::GATE),
        None => Verdict::Accept,
    }
}

/// The shared objects of one app policy: per rule its sets, and per
/// direction a chain that accepts what a rule matches and returns otherwise.
pub(crate) fn policy_objects(
    policy: &CompiledAppPolicy,
    name_check: Option<NameCheck>,
) -> Vec<Object> {
    let names = PolicyNames::new(policy);
    let mut objects = Vec::new();
    for direction in [Direction::Egress, Direction::Ingress] {
        let name_check = name_check.filter(|_| direction == Direction::Egress);
        let mut chain = Vec::new();
        for rule in policy.rules(direction) {
            chain.extend(rule_matches(
                &names,
                direction,
                rule,
                name_check,
                &mut objects,
            ));
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
    name_check: Option<NameCheck>,
    objects: &mut Vec<Object>,
) -> Vec<Rule> {
    let set = |what: &str| names.rule_set(direction, rule.index, what);
    let ports: Vec<Option<Match>> = match &rule.ports {
        None => vec![None],
        Some(ports) => {
            let mut matches = Vec::new();
            let elements = port_elements(ports);
            if !elements.is_empty() {
                objects.push(Object::set(set("ports"), SetKind::ProtoPort, elements));
                matches.push(Some(Match::ProtoPort { set: set("ports") }));
            }
            if ports.icmp() {
                matches.push(Some(Match::L4proto(ICMP)));
                matches.push(Some(Match::L4proto(ICMPV6)));
            }
            matches
        }
    };
    let peer = if direction == Direction::Egress {
        Peer::Destination
    } else {
        Peer::Source
    };
    // Each peer match, and whether it is by domain.
    let peers: Vec<(Option<Match>, bool)> = match &rule.peers {
        None => vec![(None, false)],
        Some(peers) => {
            let mut matches = Vec::new();
            for (family, suffix) in [(Family::Ipv4, "net4"), (Family::Ipv6, "net6")] {
                if let Some((net, lookup)) = cidr_lookup(&set(suffix), family, peer, &peers.cidrs) {
                    objects.push(net);
                    matches.push((Some(lookup), false));
                }
            }
            // Domain peers match the addresses the resolver learned for
            // this box from a matching name; until it learns some, they
            // match nothing.
            if !peers.domains.is_empty() {
                for (family, kind, suffix) in [
                    (Family::Ipv4, SetKind::IfnameIpv4Learned, "dom4"),
                    (Family::Ipv6, SetKind::IfnameIpv6Learned, "dom6"),
                ] {
                    objects.push(Object::set(set(suffix), kind, Vec::new()));
                    matches.push((
                        Some(Match::IfnameAddr {
                            family,
                            peer,
                            set: set(suffix),
                        }),
                        true,
                    ));
                }
            }
            matches
        }
    };
    ports
        .iter()
        .flat_map(|port| {
            peers.iter().map(move |(peer, by_domain)| {
                let matches = port.iter().chain(peer).cloned().collect();
                match name_check {
                    // Only marked: a later rule may match without a
                    // domain, and then the name is not checked.
                    Some(n) if *by_domain => {
                        Rule::then(matches, vec![Statement::MarkOr(n.by_app())])
                    }
                    _ => Rule::when(matches, accept(name_check)),
                }
            })
        })
        .collect()
}

/// IANA protocol numbers.
const ICMP: u8 = 1;
const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMPV6: u8 = 58;

fn port_elements(ports: &PortSet) -> Vec<Element> {
    [(Protocol::Tcp, TCP), (Protocol::Udp, UDP)]
        .into_iter()
        .flat_map(|(protocol, number)| {
            ports
                .ranges(protocol)
                .iter()
                .map(move |range| Element::ProtoPorts {
                    protocol: number,
                    first: range.first,
                    last: range.last,
                })
        })
        .collect()
}

/// Set elements of a CIDR set's merged intervals, IPv4 and IPv6 apart.
pub(crate) fn split(set: &CidrSet) -> (Vec<Element>, Vec<Element>) {
    range_elements(&set.intervals())
}

/// Set elements of merged ranges, IPv4 and IPv6 apart.
pub(crate) fn range_elements(ranges: &[IpRange]) -> (Vec<Element>, Vec<Element>) {
    let (v4, v6): (Vec<&IpRange>, Vec<&IpRange>) = ranges.iter().partition(|r| r.first.is_ipv4());
    let elements = |ranges: Vec<&IpRange>| ranges.into_iter().map(|r| Element::Range(*r)).collect();
    (elements(v4), elements(v6))
}
