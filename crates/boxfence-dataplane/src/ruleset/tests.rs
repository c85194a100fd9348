//! The generated batches load into a real kernel (a scratch network
//! namespace) in every sequence the engine produces.

use std::sync::Arc;

use boxfence_policy::{AlwaysBlocked, AppPolicy, BoxPolicy, EffectivePolicy, Machine};
use serde_json::json;

use super::*;
use crate::testing::ScratchNetns;

fn config() -> TableConfig {
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
        always_blocked: AlwaysBlocked::default().intervals(),
    }
}

fn link(id: &str, n: u8) -> BoxLink {
    BoxLink {
        id: id.into(),
        ifname: format!("bf-{id}"),
        ipv4: format!("10.200.0.{n}").parse().expect("ip"),
        ipv6: format!("fd00:b0f::{n}").parse().expect("ip"),
        zone: u16::from(n),
    }
}

fn effective(
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

fn web_policy(ports: &[u16]) -> serde_json::Value {
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

#[test]
fn batches_load_into_the_kernel_in_every_sequence() {
    let Some(netns) = ScratchNetns::new("ruleset") else {
        return;
    };
    let host = netns.host();
    let mut ruleset = Ruleset::new(config());
    host.nft(&ruleset.full()).expect("empty table loads");

    let custom = json!({"mode": "custom", "allowedDomains": ["api.github.com"], "allowedCidrs": ["104.16.0.0/12"], "deniedCidrs": ["104.16.120.0/24"]});
    let a = effective("aaa", custom, &[web_policy(&[80, 443])]);
    let b = effective(
        "bbb",
        json!({"mode": "deny-all"}),
        &[web_policy(&[80, 443])],
    );
    host.nft(&ruleset.upsert_boxes(&[(link("aaa", 2), &a), (link("bbb", 3), &b)]))
        .expect("two boxes load");
    let listed = host
        .run("nft", &["list", "table", "inet", "boxfence"], None)
        .expect("lists");
    assert!(
        listed.contains("104.16.0.0/12") && listed.contains("104.16.120.0/24"),
        "{listed}"
    );
    assert_eq!(
        listed.matches("chain a_").count(),
        2,
        "one shared chain per direction: {listed}"
    );

    // The app policy changes: new shared objects, the old ones go.
    let a2 = effective("aaa", json!({"mode": "allow-all"}), &[web_policy(&[8080])]);
    let b2 = effective("bbb", json!({"mode": "allow-all"}), &[web_policy(&[8080])]);
    host.nft(&ruleset.upsert_boxes(&[(link("aaa", 2), &a2), (link("bbb", 3), &b2)]))
        .expect("update loads");
    let listed = host
        .run("nft", &["list", "table", "inet", "boxfence"], None)
        .expect("lists");
    assert_eq!(
        listed.matches("chain a_").count(),
        2,
        "old policy objects removed: {listed}"
    );
    assert!(
        listed.contains("tcp . 8080") && !listed.contains("tcp . 80,"),
        "{listed}"
    );

    host.nft(&ruleset.fail_closed(&["aaa"]))
        .expect("fail closed loads");
    host.nft(&ruleset.upsert_boxes(&[(link("aaa", 2), &a2)]))
        .expect("recovering from fail-closed loads");
    host.nft(&ruleset.remove_box("bbb").expect("present"))
        .expect("removal loads");
    host.nft(&ruleset.remove_box("aaa").expect("present"))
        .expect("removal of the last user loads");
    let listed = host
        .run("nft", &["list", "table", "inet", "boxfence"], None)
        .expect("lists");
    assert!(
        !listed.contains("chain a_") && !listed.contains("b_aaa"),
        "{listed}"
    );

    host.nft(&ruleset.upsert_boxes(&[(link("aaa", 2), &a)]))
        .expect("re-add loads");
    host.nft(&ruleset.full())
        .expect("full replace loads over an existing table");
    host.nft(&ruleset.teardown()).expect("teardown loads");
}
