//! The static part of the table: base chains, dispatch maps, the
//! always-blocked sets and the chains that deny with a reason.

use super::compile::range_elements;
use super::objects::{Batch, Object};
use super::{DENY_APP, DENY_BLOCKED, DENY_BOX, DENY_HOST, OTHER_SOURCE, TableConfig};
use crate::nft::SetKind;

/// NFLOG group of denials (read by the flow log).
pub const LOG_GROUP: u16 = 7;

/// Declares the table's maps and base chains and fills its static sets
/// and chains. Idempotent: a batch may carry it again.
pub(crate) fn render(config: &TableConfig, batch: &mut Batch) {
    let table = &config.table;
    let prefix = &config.ifname_prefix;
    let boxes = format!("\"{prefix}*\"");
    let mark = config.mark;
    batch.line(format!("add table inet {table}"));
    for (name, kind) in [
        ("out_chains", "type ifname : verdict;"),
        ("in4", "type ipv4_addr : verdict;"),
        ("in6", "type ipv6_addr : verdict;"),
    ] {
        batch.line(format!("add map inet {table} {name} {{ {kind} }}"));
    }

    let (blocked4, blocked6) = range_elements(&config.always_blocked);
    batch.upsert(&Object::set("blocked4".into(), SetKind::Ipv4, blocked4));
    batch.upsert(&Object::set("blocked6".into(), SetKind::Ipv6, blocked6));

    text_chain(
        batch,
        "reject_flow",
        vec![
            "meta l4proto tcp reject with tcp reset".into(),
            "reject with icmpx admin-prohibited".into(),
        ],
    );
    for (chain, layer) in [
        (DENY_BLOCKED, "always_blocked"),
        (DENY_BOX, "box_policy"),
        (DENY_APP, "app_policy"),
        (DENY_HOST, "host"),
    ] {
        text_chain(batch, chain, deny_rules(layer, "goto reject_flow"));
    }
    text_chain(batch, "deny_spoof", deny_rules("anti_spoof", "drop"));
    // Neighbour discovery is sent from link-local addresses.
    text_chain(
        batch,
        OTHER_SOURCE,
        vec![
            "ip6 saddr fe80::/10 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept"
                .into(),
            "goto deny_spoof".into(),
        ],
    );
    let (gateway4, gateway6) = (config.gateway4, config.gateway6);
    let (pool4, pool6) = (config.pool4, config.pool6);
    text_chain(
        batch,
        "box_to_host",
        vec![
            "ct state established,related accept".into(),
            "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept".into(),
            format!(
                "ip daddr {gateway4} meta l4proto {{ tcp, udp }} th dport {} accept",
                config.resolver_port
            ),
            format!(
                "ip6 daddr {gateway6} meta l4proto {{ tcp, udp }} th dport {} accept",
                config.resolver_port
            ),
            format!("goto {DENY_HOST}"),
        ],
    );
    // The gateway (the resolver, after the DNS redirect) and the link's
    // own scope are judged as host access, everything else by the box's
    // egress chain. A packet that chain lets through to another address
    // of the host still meets `box_to_host` in the input chain; a FIB
    // lookup here would find those too, but costs every new flow a route
    // lookup.
    text_chain(
        batch,
        "from_box",
        vec![
            format!("ip daddr {gateway4} goto box_to_host"),
            format!("ip6 daddr {{ {gateway6}, fe80::/10, ff02::/16 }} goto box_to_host"),
            "ct state invalid drop".into(),
            // Only a source the box's device chain proved (and marked) is
            // judged: should that chain be missing, its box's traffic is
            // refused, not judged with any source.
            format!("meta mark & {mark:#x} == 0 goto deny_spoof"),
            "iifname vmap @out_chains".into(),
            format!("goto {DENY_BOX}"),
        ],
    );
    text_chain(
        batch,
        "to_box",
        vec![
            format!("meta mark set meta mark | {mark:#x}"),
            "ct state invalid drop".into(),
            "ip daddr vmap @in4".into(),
            "ip6 daddr vmap @in6".into(),
            format!("goto {DENY_BOX}"),
        ],
    );

    let base = |name: &str, hook: &str, rules: Vec<String>| -> Vec<String> {
        let mut lines = vec![format!(
            "add chain inet {table} {name} {{ {hook}; policy accept; }}"
        )];
        lines.push(format!("flush chain inet {table} {name}"));
        lines.extend(
            rules
                .into_iter()
                .map(|rule| format!("add rule inet {table} {name} {rule}")),
        );
        lines
    };
    let masquerade_out = if config.uplinks.is_empty() {
        format!("oifname != {boxes}")
    } else {
        format!("oifname {{ {} }}", quoted(&config.uplinks))
    };
    // What a box sends got its zone and mark (and its source was proved)
    // in the box's own chain on its device's ingress hook, before
    // conntrack (`box_objects`), so this table has no raw hook.
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
        base(
            "prerouting_filter",
            "type filter hook prerouting priority dstnat + 10",
            vec![
                format!("ct state established,related meta mark set meta mark | {mark:#x} accept"),
                format!("iifname {boxes} goto from_box"),
                format!("ip daddr {pool4} goto to_box"),
                format!("ip6 daddr {pool6} goto to_box"),
            ],
        ),
        // Every DNS query of a box, to any address, goes to the resolver.
        // The kernel runs this chain for every new flow, so the first rule
        // lets all other flows go after one comparison.
        base(
            "prerouting_nat",
            "type nat hook prerouting priority dstnat",
            vec![
                "th dport != 53 accept".into(),
                format!(
                    "iifname {boxes} meta nfproto ipv4 meta l4proto {{ tcp, udp }} th dport 53 dnat ip to {gateway4}:{}",
                    config.resolver_port
                ),
                format!(
                    "iifname {boxes} meta nfproto ipv6 meta l4proto {{ tcp, udp }} th dport 53 dnat ip6 to [{gateway6}]:{}",
                    config.resolver_port
                ),
            ],
        ),
        // What a box sends to the host's other addresses (its uplink's,
        // say) was judged in prerouting by the box's policy, which may
        // allow it: here it meets `box_to_host` like all that reaches the
        // host, whatever the routing tables say.
        base(
            "input",
            "type filter hook input priority filter",
            vec![format!("iifname {boxes} goto box_to_host")],
        ),
        base(
            "postrouting_nat",
            "type nat hook postrouting priority srcnat",
            vec![
                format!("ip saddr {pool4} {masquerade_out} masquerade"),
                format!("ip6 saddr {pool6} {masquerade_out} masquerade"),
            ],
        ),
    ];
    for line in chains.into_iter().flatten() {
        batch.line(line);
    }
}

/// A regular chain with exactly these rules (nft syntax).
fn text_chain(batch: &mut Batch, name: &str, rules: Vec<String>) {
    let table = batch.table().to_owned();
    batch.line(format!("add chain inet {table} {name}"));
    batch.line(format!("flush chain inet {table} {name}"));
    for rule in rules {
        batch.line(format!("add rule inet {table} {name} {rule}"));
    }
}

/// Counts, logs (rate-limited) and then ends the flow with `verdict`.
fn deny_rules(layer: &str, verdict: &str) -> Vec<String> {
    vec![
        "counter".into(),
        format!(
            "limit rate 50/second burst 100 packets log prefix \"boxfence {layer} \" group {LOG_GROUP}"
        ),
        verdict.into(),
    ]
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}
