//! Two daemons on one host (issue 17), in one sealed lab host: each with
//! its own state, box namespace prefix, nftables table, interface prefix,
//! routing-rule preferences, mark bits, name-check queue, log group,
//! pools and uids. Each enforces and logs its own boxes; restarting one
//! leaves the other's boxes, table and rules as they were; a third whose
//! settings meet a running one's refuses to start, naming it.

mod support;

use boxfence_lab::require_root;
use support::{Daemon, REFUSED};

/// The first daemon: every setting a lone daemon has but its pool, made
/// small enough (4,096 zones) that a second daemon's uids fit above.
const A: &str = "ipv4_pool = \"10.200.0.0/20\"";

/// The second daemon: every setting its own.
const B: &str = "ifname_prefix = \"bb-\"\n\
                 rule_pref = 10100\n\
                 mark = 0x100\n\
                 name_check_queue = 20\n\
                 log_group = 8\n\
                 ipv4_pool = \"10.201.0.0/20\"\n\
                 ipv6_pool = \"fd00:b0f:1::/64\"\n\
                 [runtime]\n\
                 uid_base = 268959744";

#[test]
fn two_daemons_on_one_host_each_enforce_their_own_and_survive_the_other_s_restart() {
    if !require_root(
        "two_daemons_on_one_host_each_enforce_their_own_and_survive_the_other_s_restart",
    ) {
        return;
    }
    let [a, b] = Daemon::side_by_side([("a", "boxfence", A), ("b", "boxfence_b", B)]);
    // Opposite policies, so that a box judged by the other daemon's
    // rules would show it.
    let custom = |cidr: &str| format!(r#"{{"mode": "custom", "allowedCidrs": ["{cidr}"]}}"#);
    let box_a = a.create_box(&custom("104.16.0.0/12"));
    let box_b = b.create_box(&custom("198.51.100.0/24"));
    let exec = |id: &str| format!("/v1/boxes/{id}/exec");
    let enforced = |when: &str| {
        assert_eq!(a.curl(&exec(&box_a), "http://104.17.0.5/"), "200", "{when}");
        assert_eq!(
            a.curl(&exec(&box_a), "http://198.51.100.10/"),
            REFUSED,
            "{when}"
        );
        assert_eq!(
            b.curl(&exec(&box_b), "http://198.51.100.10/"),
            "200",
            "{when}"
        );
        assert_eq!(
            b.curl(&exec(&box_b), "http://104.17.0.5/"),
            REFUSED,
            "{when}"
        );
    };
    enforced("side by side");
    assert!(b.place().table != a.place().table);
    assert_eq!(
        a.kernel_boxes(),
        [box_a.clone()].into(),
        "a's table: a's box"
    );
    assert_eq!(
        b.kernel_boxes(),
        [box_b.clone()].into(),
        "b's table: b's box"
    );
    assert_eq!(a.netns_boxes(), [box_a.clone()].into());
    assert_eq!(b.netns_boxes(), [box_b.clone()].into());
    // Each logs its own box's denials (each reads its own NFLOG group).
    for (daemon, id, dst) in [(&a, &box_a, "198.51.100.10"), (&b, &box_b, "104.17.0.5")] {
        let denials = daemon.flows(id, "deny", 1);
        let event = denials.first().expect("a denial logged");
        assert_eq!(event["dst"], dst, "{event}");
        assert_eq!(event["layer"], "box_policy", "{event}");
    }

    // A restart of b (killed, as a crash) leaves a's box, table and rules
    // untouched, and b adopts its own box again.
    let rules = || a.lab.host_exec(["ip", "rule", "show"]).expect("ip rule");
    // Without counters (-s): they move with the checks themselves.
    let table = |daemon: &Daemon| {
        let out = daemon
            .lab
            .host_exec(["nft", "-s", "list", "table", "inet", &daemon.place().table])
            .expect("nft");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (rules_before, a_table) = (rules(), table(&a));
    assert!(
        String::from_utf8_lossy(&rules_before.stdout).contains("10090:")
            && String::from_utf8_lossy(&rules_before.stdout).contains("10100:"),
        "both daemons' rules: {}",
        String::from_utf8_lossy(&rules_before.stdout)
    );
    b.kill();
    enforced_by_a(&a, &box_a);
    b.spawn();
    enforced("after b's restart");
    assert_eq!(table(&a), a_table, "a's table as it was");
    assert_eq!(rules().stdout, rules_before.stdout, "every rule as it was");
    assert_eq!(a.kernel_boxes(), [box_a.clone()].into());
    assert_eq!(b.kernel_boxes(), [box_b.clone()].into(), "b's box adopted");

    // And the other way round, a stopped as an operator would.
    let b_table = table(&b);
    a.kill();
    a.spawn();
    enforced("after a's restart");
    assert_eq!(table(&b), b_table, "b's table as it was");
    assert_eq!(rules().stdout, rules_before.stdout, "every rule as it was");

    // A third daemon like b but with a's table and log group refuses to
    // start, naming each daemon's pid and what it shares with it, and
    // touches nothing.
    let third = a.lab.workdir().join("boxfence-c.toml");
    let text = std::fs::read_to_string(&b.place().config)
        .expect("b's config")
        .replace("boxfence_b", "boxfence")
        .replace("log_group = 8", "log_group = 7")
        .replace("127.0.0.1:4281", "127.0.0.1:4282")
        .replace("state-b", "state-c")
        .replace("b.db", "c.db")
        .replace(
            &b.place().netns_prefix,
            &format!("{}c-", a.lab.namespace_prefix()),
        );
    std::fs::write(&third, text).expect("third config");
    let a_table = table(&a);
    let refused = a
        .lab
        .host_exec([
            env!("CARGO_BIN_EXE_boxfence"),
            "serve",
            "--config",
            &third.display().to_string(),
        ])
        .expect("third daemon runs");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    for part in [
        format!("pid {}: network.table \"boxfence\"", a.pid()),
        "network.log_group 7 (theirs: 7)".into(),
        format!("pid {}: network.ifname_prefix \"bb-\"", b.pid()),
    ] {
        assert!(stderr.contains(&part), "{part:?} in {stderr}");
    }
    enforced("after the third's refusal");
    assert_eq!(table(&a), a_table, "a's table as it was");
    assert_eq!(rules().stdout, rules_before.stdout, "every rule as it was");
}

/// While b is down, a's box is judged by a alone.
fn enforced_by_a(a: &Daemon, box_a: &str) {
    let exec = format!("/v1/boxes/{box_a}/exec");
    assert_eq!(a.curl(&exec, "http://104.17.0.5/"), "200", "b down");
    assert_eq!(a.curl(&exec, "http://198.51.100.10/"), REFUSED, "b down");
}
