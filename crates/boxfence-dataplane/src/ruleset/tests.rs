//! The generated batches load into a real kernel (a scratch network
//! namespace) in every sequence the engine produces.

use std::sync::Arc;

use boxfence_policy::{AlwaysBlocked, AppPolicy, BoxPolicy, EffectivePolicy, Machine};
use serde_json::json;

use super::*;
use crate::nft_watch::NftWatch;
use crate::testing::ScratchNetns;

pub(super) fn config() -> TableConfig {
    TableConfig {
        table: "boxfence".into(),
        ifname_prefix: "bf-".into(),
        pool4: "10.200.0.0/16".parse().expect("net"),
        pool6: "fd00:b0f::/64".parse().expect("net"),
        gateway4: "10.200.0.1".parse().expect("ip"),
        gateway6: "fd00:b0f::1".parse().expect("ip"),
        uplinks: vec![],
        resolver_port: 53,
        mark: 0x0100_0000,
        log_group: 7,
        always_blocked: AlwaysBlocked::default().intervals(),
        flowtable_uplinks: None,
        // nft 1.0.6 cannot write the xtables NFQUEUE target that name
        // checks use, so the text twins leave them out; the listing tests
        // read them back over netlink.
        name_check: None,
    }
}

pub(super) fn link(id: &str, n: u8) -> BoxLink {
    BoxLink {
        id: id.into(),
        ifname: format!("bf-{id}"),
        ipv4: format!("10.200.0.{n}").parse().expect("ip"),
        ipv6: format!("fd00:b0f::{n}").parse().expect("ip"),
        zone: u16::from(n),
    }
}

pub(super) fn effective(
    id: &str,
    box_policy: serde_json::Value,
    policies: &[serde_json::Value],
) -> EffectivePolicy {
    let machine = Machine {
        id: id.into(),
        network_policy: BoxPolicy::from_json(&box_policy).expect("box policy"),
        ..Machine::default()
    };
    let policies: Vec<AppPolicy> = policies
        .iter()
        .map(|p| AppPolicy::from_json(p).expect("policy"))
        .collect();
    EffectivePolicy::from_policies(&machine, &policies, Arc::new(AlwaysBlocked::default()))
}

pub(super) fn web_policy(ports: &[u16]) -> serde_json::Value {
    let ports: Vec<_> = ports
        .iter()
        .map(|p| json!({"protocol": "tcp", "port": p}))
        .collect();
    json!({"name": "web", "selector": {"all": true}, "rules": [
        {"action": "allow", "direction": "egress", "ports": ports},
        {"action": "allow", "direction": "egress", "ports": [{"protocol": "tcp", "port": 443}], "domains": ["api.github.com"], "cidrs": ["151.101.0.0/16"]},
        {"action": "allow", "direction": "ingress", "ports": [{"protocol": "tcp", "port": 22}, {"protocol": "icmp"}], "cidrs": ["151.101.0.0/16", "2001:db8::/32"]}
    ]})
}

/// The same ruleset in two scratch namespaces: one takes every batch as
/// `nft -f` text, the other over netlink. After each step both kernels
/// must list the same table: our netlink encoding says what nft's does.
/// Where the kernel refuses nft's own encoding (see [`nft_text_loads`])
/// there is no text twin, and the netlink one is checked alone.
struct Twins {
    text: Option<ScratchNetns>,
    netlink: ScratchNetns,
    socket: crate::nft_netlink::NftSocket,
}

/// Whether nft's encoding of a protocol and port lookup in an interval
/// set loads: nft 1.0.6 adds a byteorder of one byte that Linux 6.12
/// refuses (EOPNOTSUPP), which ours leaves out.
fn nft_text_loads(ns: &ScratchNetns) -> bool {
    let probe = "table inet boxfence_probe {\n\
                 set s { type inet_proto . inet_service; flags interval; }\n\
                 chain c { meta l4proto . th dport @s accept; }\n}\n\
                 delete table inet boxfence_probe\n";
    match ns.host().nft(probe) {
        Ok(_) => true,
        Err(error) => {
            eprintln!("no text twin: this kernel refuses nft's own encoding: {error}");
            false
        }
    }
}

impl Twins {
    fn new() -> Option<Self> {
        let text = ScratchNetns::new("ruleset-text")?;
        let netlink = ScratchNetns::new("ruleset-netlink")?;
        for ns in [&text, &netlink] {
            ns.add_links(&["bf-aaa", "bf-bbb"]);
        }
        let socket = netlink.nft_socket();
        Some(Self {
            text: nft_text_loads(&text).then_some(text),
            netlink,
            socket,
        })
    }

    fn full(&mut self, batch: &Batch) {
        self.apply("full", batch);
    }

    fn apply(&mut self, step: &str, batch: &Batch) {
        if let Some(text) = &self.text {
            text.host()
                .nft(&batch.to_text())
                .unwrap_or_else(|e| panic!("{step}: text batch: {e}"));
        }
        self.socket
            .apply(batch.table(), batch.commands())
            .unwrap_or_else(|e| panic!("{step}: netlink batch: {e}"));
        self.same(step);
    }

    fn list(&self) -> String {
        self.netlink
            .host()
            .run("nft", &["list", "table", "inet", "boxfence"], None)
            .expect("lists")
    }

    /// The netlink twin holds exactly what the model says, read back over
    /// netlink: what the watchdog expects after the engine's changes.
    fn matches_model(&self, step: &str, model: &Ruleset) {
        let found = NftWatch::open_in(&self.netlink.host())
            .expect("a socket")
            .list_table("boxfence")
            .expect("a dump")
            .expect("the table");
        let differences = model.listing().expect("lowers").differences(&found);
        assert_eq!(differences, [], "{step}: the table differs from the model");
    }

    fn same(&self, step: &str) {
        let Some(text) = &self.text else {
            return;
        };
        let text = text
            .host()
            .run("nft", &["list", "table", "inet", "boxfence"], None)
            .expect("lists");
        let netlink = self.list();
        if text != netlink {
            let diff: Vec<_> = text
                .lines()
                .zip(netlink.lines())
                .filter(|(a, b)| a != b)
                .take(10)
                .collect();
            panic!("{step}: the two kernels differ (text, netlink): {diff:#?}\n{netlink}");
        }
    }
}

#[test]
fn netlink_and_text_batches_build_the_same_table_in_every_sequence() {
    let Some(mut twins) = Twins::new() else {
        return;
    };
    let mut ruleset = Ruleset::new(config());
    twins.full(&ruleset.full());

    let custom = json!({"mode": "custom", "allowedDomains": ["api.github.com"], "allowedCidrs": ["104.16.0.0/12", "0.0.0.0/8", "255.255.255.0/24", "2001:db8::/32"], "deniedCidrs": ["104.16.120.0/24"]});
    let a = effective("aaa", custom, &[web_policy(&[80, 443])]);
    let b = effective(
        "bbb",
        json!({"mode": "deny-all"}),
        &[web_policy(&[80, 443])],
    );
    let batch = ruleset.upsert_boxes(&[(link("aaa", 2), &a), (link("bbb", 3), &b)]);
    twins.apply("two boxes", &batch);
    twins.matches_model("two boxes", &ruleset);
    let listed = twins.list();
    assert!(
        listed.contains("104.16.0.0/12")
            && listed.contains("ip daddr & 255.255.255.0 == @b_aaa_deny4_nets counter"),
        "mixed prefix lengths are an interval set, one /24 a network masked: {listed}"
    );
    assert!(
        listed.contains(
            "chain b_aaa_link {\n\t\ttype filter hook ingress device \"bf-aaa\" priority filter; policy accept;\n\
             \t\tip saddr 10.200.0.2 ct original zone set 2 meta mark set 0x01000000 accept\n\
             \t\tip6 saddr fd00:b0f::2 ct original zone set 2 meta mark set 0x01000000 accept\n\
             \t\tgoto other_source\n"
        ),
        "a box's own addresses get its zone and the mark on its device, before conntrack: {listed}"
    );
    assert_eq!(
        listed.matches("chain a_").count(),
        2,
        "one shared chain per direction: {listed}"
    );

    // Nothing changed: nothing to do.
    let batch = ruleset.upsert_boxes(&[(link("aaa", 2), &a), (link("bbb", 3), &b)]);
    assert!(batch.is_empty(), "{}", batch.to_text());

    // A list changes how it is looked up: the interval set and the unused
    // denied set go, a set of host addresses comes.
    let hosts = json!({"mode": "custom", "allowedCidrs": ["198.51.100.7/32", "203.0.113.9/32"]});
    let a3 = effective("aaa", hosts, &[web_policy(&[80, 443])]);
    twins.apply(
        "a list looked up another way",
        &ruleset.upsert_boxes(&[(link("aaa", 2), &a3)]),
    );
    twins.matches_model("a list looked up another way", &ruleset);
    let listed = twins.list();
    assert!(
        listed.contains("ip daddr @b_aaa_allow4_nets goto b_aaa_app_out")
            && !listed.contains("set b_aaa_allow4 ")
            && !listed.contains("b_aaa_deny4_nets"),
        "{listed}"
    );

    // The app policy changes: new shared objects, one app chain per box,
    // the old ones go; the boxes' own sets are not touched.
    let a2 = effective("aaa", json!({"mode": "allow-all"}), &[web_policy(&[8080])]);
    let b2 = effective("bbb", json!({"mode": "deny-all"}), &[web_policy(&[8080])]);
    let batch = ruleset.upsert_boxes(&[(link("aaa", 2), &a2), (link("bbb", 3), &b2)]);
    assert!(
        !batch.to_text().contains("b_bbb_allow4"),
        "{}",
        batch.to_text()
    );
    twins.apply("app policy update", &batch);
    twins.matches_model("app policy update", &ruleset);
    let listed = twins.list();
    assert_eq!(
        listed.matches("chain a_").count(),
        2,
        "old policy objects removed: {listed}"
    );
    assert!(
        listed.contains("tcp . 8080") && !listed.contains("tcp . 80,"),
        "{listed}"
    );

    // (A box failed closed differs from the model until its next batch;
    // the watchdog would restore it to the model.)
    twins.apply("fail closed", &ruleset.fail_closed(&["aaa"]));
    twins.apply(
        "recovering from fail-closed",
        &ruleset.upsert_boxes(&[(link("aaa", 2), &a2)]),
    );
    twins.matches_model("recovering from fail-closed", &ruleset);
    twins.apply("removal", &ruleset.remove_box("bbb").expect("present"));
    twins.matches_model("removal", &ruleset);
    twins.apply(
        "removal of the last user",
        &ruleset.remove_box("aaa").expect("present"),
    );
    twins.matches_model("removal of the last user", &ruleset);
    let listed = twins.list();
    assert!(
        !listed.contains("chain a_") && !listed.contains("b_aaa"),
        "{listed}"
    );

    twins.apply("re-add", &ruleset.upsert_boxes(&[(link("aaa", 2), &a)]));
    twins.matches_model("re-add", &ruleset);
    twins.full(&ruleset.full());
    // Named uplinks: box traffic is masqueraded out of those only (a list
    // of one is a comparison, as nft writes it).
    for (uplinks, listed) in [
        (
            &["eth0", "uplink1"][..],
            "oifname { \"eth0\", \"uplink1\" } masquerade",
        ),
        (&["eth0"][..], "oifname \"eth0\" masquerade"),
    ] {
        let mut named = Ruleset::new(TableConfig {
            uplinks: uplinks.iter().map(|u| (*u).to_owned()).collect(),
            resolver_port: 5353,
            ..config()
        });
        let _ = named.upsert_boxes(&[(link("aaa", 2), &a)]);
        twins.full(&named.full());
        let table = twins.list();
        assert!(
            table.contains(listed) && table.contains("dnat ip to 10.200.0.1:5353"),
            "{table}"
        );
    }
    let teardown = ruleset.teardown();
    if let Some(text) = &twins.text {
        text.host()
            .nft(&teardown.to_text())
            .expect("teardown loads");
    }
    twins
        .socket
        .apply(teardown.table(), teardown.commands())
        .expect("teardown over netlink");
    for ns in twins.text.iter().chain([&twins.netlink]) {
        let listed = ns
            .host()
            .run("nft", &["list", "table", "inet", "boxfence"], None);
        assert!(listed.is_err(), "the table is gone: {listed:?}");
    }
}

#[test]
fn a_refused_netlink_batch_changes_nothing_and_names_the_command() {
    let Some(ns) = ScratchNetns::new("ruleset-refused") else {
        return;
    };
    ns.add_links(&["bf-aaa"]);
    let mut socket = ns.nft_socket();
    let mut ruleset = Ruleset::new(config());
    ns.host().nft(&ruleset.full().to_text()).expect("loads");
    let before = ns
        .host()
        .run("nft", &["list", "table", "inet", "boxfence"], None)
        .expect("lists");
    let a = effective("aaa", json!({"mode": "allow-all"}), &[web_policy(&[80])]);
    let batch = ruleset.upsert_boxes(&[(link("aaa", 2), &a)]);
    let mut commands = batch.commands().to_vec();
    // A jump to a chain that does not exist, at the very end.
    commands.push(crate::nft::Command::AddRule {
        chain: "b_aaa_out".into(),
        rule: crate::nft::Rule::verdict(crate::nft::Verdict::Jump("nosuchchain".into())),
    });
    let error = socket.apply("boxfence", &commands).expect_err("refused");
    let text = error.to_string();
    assert!(text.contains("jump nosuchchain"), "{text}");
    let after = ns
        .host()
        .run("nft", &["list", "table", "inet", "boxfence"], None)
        .expect("lists");
    assert_eq!(before, after, "nothing of the batch applied");
}

#[test]
fn after_a_failed_batch_the_next_update_sends_everything_again() {
    let Some(ns) = ScratchNetns::new("ruleset-retry") else {
        return;
    };
    ns.add_links(&["bf-aaa"]);
    let mut socket = ns.nft_socket();
    let mut apply = |batch: &Batch| {
        socket
            .apply(batch.table(), batch.commands())
            .expect("applies");
    };
    let mut ruleset = Ruleset::new(config());
    ns.host().nft(&ruleset.full().to_text()).expect("loads");
    let before = json!({"mode": "custom", "allowedCidrs": ["104.16.0.0/12"]});
    let after = json!({"mode": "custom", "allowedCidrs": ["151.101.0.0/16"]});
    let a1 = effective("aaa", before, &[web_policy(&[80])]);
    apply(&ruleset.upsert_boxes(&[(link("aaa", 2), &a1)]));
    // The kernel refuses the update (not sent here); the engine then cuts
    // the box off and, later, applies the same policy again.
    let a2 = effective("aaa", after, &[web_policy(&[8080])]);
    let refused = ruleset.upsert_boxes(&[(link("aaa", 2), &a2)]);
    assert!(!refused.is_empty());
    apply(&ruleset.fail_closed(&["aaa"]));
    apply(&ruleset.upsert_boxes(&[(link("aaa", 2), &a2)]));
    let listed = ns
        .host()
        .run("nft", &["list", "table", "inet", "boxfence"], None)
        .expect("lists");
    assert!(
        listed.contains("151.101.0.0") && !listed.contains("104.16.0.0"),
        "the box's sets hold the new policy: {listed}"
    );
    assert!(
        listed.contains("tcp . 8080") && !listed.contains("tcp . 80,"),
        "the new shared app policy exists: {listed}"
    );
    assert!(
        listed.contains("\"bf-aaa\" : goto b_aaa_out"),
        "the box is dispatched to its chains again: {listed}"
    );
}

/// The sets a box's egress chain looks addresses up in, in order.
fn egress_lookups(policy: &EffectivePolicy) -> Vec<String> {
    let objects = compile::box_objects(&link("b1", 1), policy, config().mark, config().name_check);
    let Some(Object::Chain { rules, .. }) = objects
        .iter()
        .find(|o| matches!(o, Object::Chain { name, .. } if name == "b_b1_out"))
    else {
        panic!("no egress chain in {objects:?}");
    };
    rules
        .iter()
        .flat_map(|rule| &rule.matches)
        .filter_map(|m| match m {
            crate::nft::Match::Addr { set, .. } => Some(set.clone()),
            crate::nft::Match::AddrMasked {
                set, prefix_len, ..
            } => Some(format!("{set} & /{prefix_len}")),
            _ => None,
        })
        .collect()
}

#[test]
fn a_box_chain_looks_up_only_sets_that_can_hold_an_address() {
    let cidrs = effective(
        "b1",
        json!({"mode": "custom", "allowedCidrs": ["151.101.0.0/16", "192.0.2.0/24"]}),
        &[],
    );
    assert_eq!(
        egress_lookups(&cidrs),
        ["blocked4", "blocked6", "b_b1_allow4"],
        "no denied CIDRs, no IPv6 CIDRs, no domains: those lookups are left out"
    );
    let everything = effective(
        "b1",
        json!({"mode": "custom", "allowedCidrs": ["151.101.0.0/16", "192.0.2.0/24", "2001:db8::/32", "2001:db9::/48"],
               "deniedCidrs": ["151.101.1.0/24", "2001:db8:1::/48"], "allowedDomains": ["github.com"]}),
        &[],
    );
    assert_eq!(
        egress_lookups(&everything),
        [
            "blocked4",
            "blocked6",
            "b_b1_deny4_nets & /24",
            "b_b1_deny6_nets & /48",
            "b_b1_allow4",
            "b_b1_allow6",
            "b_b1_learn4",
            "b_b1_learn6"
        ]
    );
}

#[test]
fn a_list_of_one_prefix_length_is_one_hash_probe() {
    let hosts = effective(
        "b1",
        json!({"mode": "custom", "allowedCidrs": ["198.51.100.7/32", "203.0.113.9", "2001:db8::1"],
               "deniedCidrs": ["198.51.100.0/24", "203.0.113.0/24"]}),
        &[],
    );
    assert_eq!(
        egress_lookups(&hosts),
        [
            "blocked4",
            "blocked6",
            "b_b1_deny4_nets & /24",
            "b_b1_allow4_nets",
            "b_b1_allow6_nets"
        ],
        "host addresses need no mask; /24s are masked to /24"
    );
    let objects = compile::box_objects(&link("b1", 1), &hosts, config().mark, config().name_check);
    let elements = |name: &str| match objects.iter().find(|o| o.name() == name) {
        Some(Object::Set { kind, elements, .. }) => (*kind, elements.clone()),
        other => panic!("{name}: {other:?}"),
    };
    let addr = |a: &str| crate::nft::Element::Addr(a.parse().expect("ip"));
    assert_eq!(
        elements("b_b1_deny4_nets"),
        (
            crate::nft::SetKind::Ipv4Networks,
            vec![addr("198.51.100.0"), addr("203.0.113.0")]
        )
    );
    let everywhere = effective(
        "b1",
        json!({"mode": "custom", "allowedCidrs": ["0.0.0.0/0"]}),
        &[],
    );
    assert_eq!(
        egress_lookups(&everywhere),
        ["blocked4", "blocked6", "b_b1_allow4"],
        "a /0 is an interval: no mask of length 0"
    );
}
