//! The static part of the table: base chains, dispatch maps, the
//! always-blocked sets and the chains that deny with a reason.

use std::net::IpAddr;

use boxfence_policy::matchers::CidrSet;
use ipnet::{IpNet, Ipv6Net};

use super::compile::range_elements;
use super::objects::{Batch, Object};
use super::{DENY_APP, DENY_BLOCKED, DENY_BOX, DENY_HOST, OTHER_SOURCE, TableConfig};
use crate::nft::{
    BaseChain, CT_ESTABLISHED, CT_INVALID, CT_RELATED, ChainType, Command, Family, Flowtable, Hook,
    Interface, MapKey, Match, Peer, Reject, Rule, SetKind, Statement, Verdict,
};

/// The flowtable of the fast path.
pub const FLOWTABLE: &str = "fastpath";
/// Its hooks' priority: before the box's device chain (filter), so an
/// offloaded packet meets no chain at all. Skipping that chain's source
/// check is safe: the flowtable finds a flow by its whole tuple and the
/// device it came in on, so a box can only send packets of flows it
/// started itself (with its proved source) or that were started to it.
const FLOWTABLE_PRIORITY: i32 = FILTER - 10;

/// IANA protocol numbers.
const TCP: u8 = 6;
const UDP: u8 = 17;
/// ICMPv6 types: router solicitation, neighbour solicitation and advertisement.
const ND_ROUTER_SOLICIT: u8 = 133;
const ND_NEIGHBOR_SOLICIT: u8 = 135;
const ND_NEIGHBOR_ADVERT: u8 = 136;
/// The port every DNS query of a box is sent to the resolver from.
const DNS: u16 = 53;

/// Declares the table's maps and base chains and fills its static sets
/// and chains, into a batch that starts from an empty table.
pub(crate) fn render(config: &TableConfig, batch: &mut Batch) {
    for (name, kind) in [
        ("out_chains", SetKind::IfnameVerdicts),
        ("in4", SetKind::Ipv4Verdicts),
        ("in6", SetKind::Ipv6Verdicts),
    ] {
        // Filled box by box (`dispatch_to_chains`).
        batch.push(Command::AddSet {
            name: name.into(),
            kind,
        });
    }
    let (blocked4, blocked6) = range_elements(&config.always_blocked);
    batch.upsert(&Object::set("blocked4".into(), SetKind::Ipv4, blocked4));
    batch.upsert(&Object::set("blocked6".into(), SetKind::Ipv6, blocked6));

    let chain = |batch: &mut Batch, name: &str, rules: Vec<Rule>| {
        batch.upsert(&Object::chain(name.into(), rules));
    };
    chain(
        batch,
        "reject_flow",
        vec![
            Rule::then(
                vec![Match::L4proto(TCP)],
                vec![Statement::Reject(Reject::TcpReset)],
            ),
            Rule::then(Vec::new(), vec![Statement::Reject(Reject::AdminProhibited)]),
        ],
    );
    for (name, layer) in [
        (DENY_BLOCKED, "always_blocked"),
        (DENY_BOX, "box_policy"),
        (DENY_APP, "app_policy"),
        (DENY_HOST, "host"),
    ] {
        chain(
            batch,
            name,
            deny_rules(layer, config.log_group, goto("reject_flow")),
        );
    }
    chain(
        batch,
        "deny_spoof",
        deny_rules("anti_spoof", config.log_group, Verdict::Drop),
    );
    // Neighbour discovery is sent from link-local addresses.
    chain(
        batch,
        OTHER_SOURCE,
        vec![
            Rule::when(
                vec![
                    Match::AddrInNet {
                        peer: Peer::Source,
                        net: link_local().into(),
                    },
                    Match::Icmpv6TypeIn(vec![
                        ND_NEIGHBOR_SOLICIT,
                        ND_NEIGHBOR_ADVERT,
                        ND_ROUTER_SOLICIT,
                    ]),
                ],
                Verdict::Accept,
            ),
            Rule::verdict(goto("deny_spoof")),
        ],
    );
    let (gateway4, gateway6) = (config.gateway4.into(), config.gateway6.into());
    let resolver = |gateway: IpAddr| {
        Rule::when(
            vec![
                Match::AddrIs {
                    peer: Peer::Destination,
                    addr: gateway,
                },
                Match::L4protoIn(vec![TCP, UDP]),
                dport(config.resolver_port),
            ],
            Verdict::Accept,
        )
    };
    chain(
        batch,
        "box_to_host",
        vec![
            Rule::when(
                vec![Match::CtState(CT_ESTABLISHED | CT_RELATED)],
                Verdict::Accept,
            ),
            Rule::when(
                vec![Match::Icmpv6TypeIn(vec![
                    ND_NEIGHBOR_SOLICIT,
                    ND_NEIGHBOR_ADVERT,
                ])],
                Verdict::Accept,
            ),
            resolver(gateway4),
            resolver(gateway6),
            Rule::verdict(goto(DENY_HOST)),
        ],
    );
    // The gateway (the resolver, after the DNS redirect) and the link's
    // own scope are judged as host access, everything else by the box's
    // egress chain. A packet that chain lets through to another address
    // of the host still meets `box_to_host` in the input chain; a FIB
    // lookup here would find those too, but costs every new flow a route
    // lookup.
    let host6 = CidrSet::new([
        IpNet::from(gateway6),
        link_local().into(),
        "ff02::/16".parse::<Ipv6Net>().expect("a network").into(),
    ]);
    let mark = config.mark;
    chain(
        batch,
        "from_box",
        vec![
            Rule::when(
                vec![Match::AddrIs {
                    peer: Peer::Destination,
                    addr: gateway4,
                }],
                goto("box_to_host"),
            ),
            Rule::when(
                vec![Match::AddrInList {
                    family: Family::Ipv6,
                    peer: Peer::Destination,
                    ranges: host6.intervals(),
                }],
                goto("box_to_host"),
            ),
            Rule::when(vec![Match::CtState(CT_INVALID)], Verdict::Drop),
            // Only a source the box's device chain proved (and marked) is
            // judged: should that chain be missing, its box's traffic is
            // refused, not judged with any source.
            Rule::when(vec![Match::MarkClear(mark)], goto("deny_spoof")),
            dispatch(MapKey::Iifname, "out_chains"),
            Rule::verdict(goto(DENY_BOX)),
        ],
    );
    chain(
        batch,
        "to_box",
        vec![
            Rule::then(Vec::new(), vec![Statement::MarkOr(mark)]),
            Rule::when(vec![Match::CtState(CT_INVALID)], Verdict::Drop),
            dispatch(MapKey::Daddr(Family::Ipv4), "in4"),
            dispatch(MapKey::Daddr(Family::Ipv6), "in6"),
            Rule::verdict(goto(DENY_BOX)),
        ],
    );
    if let Some(name_check) = &config.name_check {
        name_check.render(batch, config.log_group);
    }
    base_chains(config, batch);
    if config.flowtable_uplinks.is_some() {
        batch.upsert(&Object::base_chain(
            "forward".into(),
            BaseChain {
                chain_type: ChainType::Filter,
                hook: Hook::Forward,
                priority: FILTER,
            },
            offload_rules(config),
        ));
    }
}

/// The flowtable command that makes it (or adds `devices` to it).
pub(crate) fn flowtable(devices: Vec<String>) -> Command {
    Command::AddFlowtable {
        name: FLOWTABLE.into(),
        flowtable: Flowtable {
            priority: FLOWTABLE_PRIORITY,
            devices,
        },
    }
}

/// Box flows are offloaded from the forward hook: every policy decision
/// was taken in prerouting for the flow's first packets, a flow reaches
/// this hook only if they were accepted, and only an established one (a
/// reply seen) is offloaded; the kernel itself takes only TCP flows
/// past the handshake. Denied packets never get here, so the counters
/// and logging of denials are the same with or without the fast path.
fn offload_rules(config: &TableConfig) -> Vec<Rule> {
    [Interface::Input, Interface::Output]
        .into_iter()
        .map(|interface| {
            let mut matches = vec![
                Match::Ifname {
                    interface,
                    name: format!("{}*", config.ifname_prefix),
                    equal: true,
                },
                Match::CtState(CT_ESTABLISHED),
                Match::L4protoIn(vec![TCP, UDP]),
            ];
            matches.extend(config.name_check.map(|n| n.offload_condition()));
            Rule::then(matches, vec![Statement::FlowOffload(FLOWTABLE.into())])
        })
        .collect()
}

/// The chains on the netfilter hooks.
fn base_chains(config: &TableConfig, batch: &mut Batch) {
    let boxes = |equal| Match::Ifname {
        interface: Interface::Input,
        name: format!("{}*", config.ifname_prefix),
        equal,
    };
    let pool4 = Match::AddrInNet {
        peer: Peer::Destination,
        net: config.pool4.into(),
    };
    let pool6 = Match::AddrInNet {
        peer: Peer::Destination,
        net: config.pool6.into(),
    };
    let from_pool = |net: IpNet| Match::AddrInNet {
        peer: Peer::Source,
        net,
    };
    let masquerade_out = if config.uplinks.is_empty() {
        Match::Ifname {
            interface: Interface::Output,
            name: format!("{}*", config.ifname_prefix),
            equal: false,
        }
    } else {
        Match::IfnameIn {
            interface: Interface::Output,
            names: config.uplinks.clone(),
        }
    };
    let redirect = |family: Family, addr: IpAddr| {
        Rule::then(
            vec![
                boxes(true),
                Match::Nfproto(family),
                Match::L4protoIn(vec![TCP, UDP]),
                dport(DNS),
            ],
            vec![Statement::Dnat {
                addr,
                port: config.resolver_port,
            }],
        )
    };
    let masquerade = |net: IpNet| {
        Rule::then(
            vec![from_pool(net), masquerade_out.clone()],
            vec![Statement::Masquerade],
        )
    };
    let mark = config.mark;
    let chains = [
        // The whole policy is judged here, before routing: one hook after
        // dstnat instead of a forward chain saves every packet a hook, and
        // a packet of an established flow leaves after one rule that loads
        // nothing but its conntrack state.
        // Policy routing makes unmarked box traffic unreachable, so a
        // flushed or missing table fails closed. Box packets were marked
        // at ingress; a packet of an established flow is marked here, the
        // flow having been judged at its first packet (the mark bit is
        // boxfence's, and outside the pools it changes no route); the
        // first packet of a flow to a box is marked in `to_box`.
        // What a box sends got its zone and mark (and its source was
        // proved) in the box's own chain on its device's ingress hook,
        // before conntrack (`box_objects`), so this table has no raw hook.
        (
            "prerouting_filter",
            ChainType::Filter,
            Hook::Prerouting,
            DSTNAT + 10,
            config
                .name_check
                .iter()
                .map(|n| n.dispatch())
                .chain([
                    Rule {
                        statements: vec![Statement::MarkOr(mark)],
                        ..Rule::when(
                            vec![Match::CtState(CT_ESTABLISHED | CT_RELATED)],
                            Verdict::Accept,
                        )
                    },
                    Rule::when(vec![boxes(true)], goto("from_box")),
                    Rule::when(vec![pool4], goto("to_box")),
                    Rule::when(vec![pool6], goto("to_box")),
                ])
                .collect(),
        ),
        // Every DNS query of a box, to any address, goes to the resolver.
        // The kernel runs this chain for every new flow, so the first rule
        // lets all other flows go after one comparison.
        (
            "prerouting_nat",
            ChainType::Nat,
            Hook::Prerouting,
            DSTNAT,
            vec![
                Rule::when(
                    vec![Match::Dport {
                        port: DNS,
                        equal: false,
                    }],
                    Verdict::Accept,
                ),
                redirect(Family::Ipv4, config.gateway4.into()),
                redirect(Family::Ipv6, config.gateway6.into()),
            ],
        ),
        // What a box sends to the host's other addresses (its uplink's,
        // say) was judged in prerouting by the box's policy, which may
        // allow it: here it meets `box_to_host` like all that reaches the
        // host, whatever the routing tables say.
        (
            "input",
            ChainType::Filter,
            Hook::Input,
            FILTER,
            vec![Rule::when(vec![boxes(true)], goto("box_to_host"))],
        ),
        (
            "postrouting_nat",
            ChainType::Nat,
            Hook::Postrouting,
            SRCNAT,
            vec![
                masquerade(config.pool4.into()),
                masquerade(config.pool6.into()),
            ],
        ),
    ];
    for (name, chain_type, hook, priority, rules) in chains {
        let base = BaseChain {
            chain_type,
            hook,
            priority,
        };
        batch.upsert(&Object::base_chain(name.into(), base, rules));
    }
}

/// nft's named priorities.
const DSTNAT: i32 = -100;
const FILTER: i32 = 0;
const SRCNAT: i32 = 100;

/// Counts, logs (rate-limited, to NFLOG `group`) and then ends the flow
/// with `verdict`.
pub(super) fn deny_rules(layer: &str, group: u16, verdict: Verdict) -> Vec<Rule> {
    vec![
        Rule::then(Vec::new(), vec![Statement::Counter]),
        Rule::then(
            Vec::new(),
            vec![
                Statement::Limit {
                    per_second: 50,
                    burst: 100,
                },
                Statement::Log {
                    prefix: format!("boxfence {layer} "),
                    group,
                },
            ],
        ),
        Rule::verdict(verdict),
    ]
}

/// The verdict the map `map` holds for the packet's `key`.
fn dispatch(key: MapKey, map: &str) -> Rule {
    Rule::then(
        Vec::new(),
        vec![Statement::VerdictMap {
            key,
            map: map.into(),
        }],
    )
}

fn dport(port: u16) -> Match {
    Match::Dport { port, equal: true }
}

fn goto(chain: &str) -> Verdict {
    Verdict::Goto(chain.into())
}

fn link_local() -> Ipv6Net {
    "fe80::/10".parse().expect("a network")
}
