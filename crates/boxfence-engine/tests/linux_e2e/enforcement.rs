//! What the kernel lets through and what it cuts: the seeds' policies, box and app layers, spoofing, escapes, ingress.

use super::held::hold_across;
use super::rig::*;

/// This module's tests, in the order they run.
pub(crate) const TESTS: &[(&str, Test)] = &[
    (
        "seed_egress_policy_allows_http_and_https_only",
        seed_egress_policy_allows_http_and_https_only,
    ),
    (
        "box_cidrs_with_denied_precedence",
        box_cidrs_with_denied_precedence,
    ),
    ("deny_all_and_allow_all", deny_all_and_allow_all),
    (
        "private_ranges_refused_even_when_allowed",
        private_ranges_refused_even_when_allowed,
    ),
    (
        "live_update_cuts_an_open_connection",
        live_update_cuts_an_open_connection,
    ),
    (
        "a_later_update_cuts_a_flow_an_earlier_one_kept",
        a_later_update_cuts_a_flow_an_earlier_one_kept,
    ),
    (
        "deleting_a_box_flushes_its_flows",
        deleting_a_box_flushes_its_flows,
    ),
    (
        "a_box_whose_elements_were_removed_is_still_deleted_whole",
        a_box_whose_elements_were_removed_is_still_deleted_whole,
    ),
    ("spoofed_source_is_dropped", spoofed_source_is_dropped),
    (
        "flushed_ruleset_fails_closed_until_repaired",
        flushed_ruleset_fails_closed_until_repaired,
    ),
    ("box_processes_cannot_escape", box_processes_cannot_escape),
    (
        "ingress_rules_and_deny_all_inbound",
        ingress_rules_and_deny_all_inbound,
    ),
];

fn seed_egress_policy() -> Value {
    json!({"name": "specific-egress", "selector": {"all": true}, "rules": [
        {"action": "allow", "direction": "egress",
         "ports": [{"protocol": "tcp", "port": 80}, {"protocol": "tcp", "port": 443}]}]})
}

fn seed_egress_policy_allows_http_and_https_only(rig: &Rig) {
    let b = rig.create(
        "seed1",
        json!({"mode": "allow-all"}),
        &[seed_egress_policy()],
    );
    assert_eq!(rig.curl(&b, &format!("http://{SERVER_V4}/")), "200");
    assert_eq!(rig.curl(&b, &format!("https://{SERVER_V4}/")), "200");
    assert_eq!(
        rig.curl(&b, &format!("http://[{SERVER_V6}]/")),
        "200",
        "IPv6 parity"
    );
    assert_eq!(rig.curl(&b, &format!("http://{SERVER_V4}:8080/")), REFUSED);
    assert_eq!(
        rig.curl(&b, &format!("http://[{SERVER_V6}]:8080/")),
        REFUSED
    );
    assert_eq!(udp_echo(rig, &b), "no echo", "UDP 5353 is not allowed");
}

fn box_cidrs_with_denied_precedence(rig: &Rig) {
    let policy = json!({"mode": "custom", "allowedCidrs": ["104.16.0.0/12"], "deniedCidrs": ["104.16.120.0/24"]});
    let b = rig.create("cidr1", policy, &[]);
    assert_eq!(
        rig.curl(&b, &format!("http://{CDN_OUTSIDE_DENIED_V4}/")),
        "200"
    );
    assert_eq!(
        rig.curl(&b, &format!("http://{CDN_INSIDE_DENIED_V4}/")),
        REFUSED
    );
    assert_eq!(rig.curl(&b, &format!("http://{SERVER_V4}/")), REFUSED);
}

fn deny_all_and_allow_all(rig: &Rig) {
    let b = rig.create("deny1", json!({"mode": "deny-all"}), &[]);
    assert_eq!(rig.curl(&b, &format!("http://{SERVER_V4}/")), REFUSED);
    assert_eq!(rig.curl(&b, &format!("http://[{SERVER_V6}]/")), REFUSED);
    assert_eq!(udp_echo(rig, &b), "no echo");
    rig.update(&b, json!({"mode": "allow-all"}), &[]);
    assert_eq!(rig.curl(&b, &format!("http://{SERVER_V4}:8080/")), "200");
    assert_eq!(udp_echo(rig, &b), "echo", "UDP works when allowed");
}

fn private_ranges_refused_even_when_allowed(rig: &Rig) {
    let everything = json!({"mode": "custom", "allowedCidrs": ["0.0.0.0/0", "::/0"]});
    let b = rig.create("priv1", everything, &[]);
    for url in [
        "http://169.254.169.254/",
        "http://10.0.0.1/",
        "http://[::ffff:10.0.0.1]/",
        "http://[fd00::1]/",
        "http://192.0.2.254/",
    ] {
        assert_eq!(rig.curl(&b, url), REFUSED, "{url}");
    }
    assert_eq!(
        rig.curl(&b, &format!("http://{SERVER_V4}/")),
        "200",
        "exempted documentation range"
    );
    let other = rig.create("priv2", json!({"mode": "allow-all"}), &[]);
    let other_ip = other.addresses.ipv4;
    assert_eq!(
        rig.curl(&b, &format!("http://{other_ip}/")),
        REFUSED,
        "a box never reaches another"
    );
    let gateway = rig.pool.gateways().ipv4;
    assert_eq!(
        rig.curl(&b, &format!("http://{gateway}:22/")),
        REFUSED,
        "nor the host"
    );
}

fn live_update_cuts_an_open_connection(rig: &Rig) {
    let deny = json!({"mode": "custom", "deniedCidrs": ["198.51.100.0/24"]});
    held_connection_is_cut(rig, "live1", &[deny]);
}

/// The first update finds the open connection in conntrack and keeps it
/// (still allowed); no new flow starts, so the second update checks the
/// flow the first one found instead of walking conntrack, and must cut it.
fn a_later_update_cuts_a_flow_an_earlier_one_kept(rig: &Rig) {
    let still_allowed = json!({"mode": "custom", "deniedCidrs": ["203.0.113.0/24"]});
    let deny = json!({"mode": "custom", "deniedCidrs": ["198.51.100.0/24"]});
    held_connection_is_cut(rig, "live2", &[still_allowed, deny]);
}

/// Opens a connection from a new allow-all box to the echo server, applies
/// `updates` in turn while it is open, then checks that the connection
/// was cut (nothing echoed after the last update returned) and new ones
/// are refused.
fn held_connection_is_cut(rig: &Rig, id: &str, updates: &[serde_json::Value]) {
    let b = rig.create(id, json!({"mode": "allow-all"}), &[]);
    let held = hold_across(rig, &b, &format!("'{SERVER_V4}'"), 60, || {
        for update in updates {
            rig.update(&b, update.clone(), &[]);
        }
    });
    assert!(
        held.cut && held.echoes_after == 0,
        "connection must be cut: {:?}",
        held.output
    );
    assert_eq!(rig.curl(&b, &format!("http://{SERVER_V4}/")), REFUSED);
}

/// Someone removed one of the box's elements, so the kernel refuses the
/// delete batch (`ENOENT`): the engine rebuilds the table without the box
/// rather than leave its chains behind.
fn a_box_whose_elements_were_removed_is_still_deleted_whole(rig: &Rig) {
    let b = rig.create("gone1", json!({"mode": "allow-all"}), &[]);
    let element = format!("{{ {} }}", b.addresses.ipv4);
    let removed = rig.host(&[
        "nft", "delete", "element", "inet", "boxfence", "in4", &element,
    ]);
    assert!(removed.status.success(), "{removed:?}");
    rig.runtime
        .block_on(SharedLinuxEngine(Arc::clone(&rig.engine)).delete_machine(&b.id))
        .expect("delete");
    let out = rig.host(&["nft", "list", "table", "inet", "boxfence"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("chain prerouting_filter"),
        "the table is there: {table}"
    );
    assert!(
        !table.contains("b_gone1"),
        "nothing of the box is left: {table}"
    );
}

fn deleting_a_box_flushes_its_flows(rig: &Rig) {
    let b = rig.create("ctflush1", json!({"mode": "allow-all"}), &[]);
    assert_eq!(rig.curl(&b, &format!("http://{SERVER_V4}/")), "200");
    let ip = b.addresses.ipv4.to_string();
    // A finished TCP connection stays tracked (TIME_WAIT) for two minutes.
    let tracked = || {
        let out = rig.host(&["conntrack", "-L", "-s", &ip]);
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    assert!(tracked() >= 1, "the box's connection is tracked");
    // In the box's own conntrack zone (set on its device, before conntrack).
    let listed = rig.host(&["conntrack", "-L", "-s", &ip]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed
            .lines()
            .all(|flow| flow.contains("zone-orig=") && !flow.contains("zone-orig=0 ")),
        "{listed}"
    );
    rig.runtime
        .block_on(SharedLinuxEngine(Arc::clone(&rig.engine)).delete_machine(&b.id))
        .expect("delete");
    assert_eq!(tracked(), 0, "no flow of a deleted box outlives it");
}

fn spoofed_source_is_dropped(rig: &Rig) {
    let b = rig.create("spoof1", json!({"mode": "allow-all"}), &[]);
    let netns = format!("--net={}", rig.box_netns(&b).display());
    let in_box = |argv: &[&str]| {
        std::process::Command::new("nsenter")
            .arg(&netns)
            .args(argv)
            .output()
            .expect("nsenter")
    };
    let send_from = |source: &str| {
        let url = format!("http://{SERVER_V4}/");
        in_box(&["curl", "-s", "-m", "2", "--interface", source, &url])
    };
    // Dropped before conntrack, or never confirmed: no flow state.
    let tracked = |source: &str| {
        let listed = rig.host(&["conntrack", "-L", "-s", source]);
        String::from_utf8_lossy(&listed.stdout).lines().count()
    };
    // As root from outside (a box process has no capability to do this),
    // give the box a second address and send from it: one in the pool
    // (another box's, as far as the box knows) and one outside it, which
    // the fail-closed routing rules alone would let through.
    for spoofed in ["10.200.9.9", "192.0.2.9"] {
        let added = in_box(&["ip", "addr", "add", &format!("{spoofed}/32"), "dev", "eth0"]);
        assert!(added.status.success(), "{added:?}");
        let sent = send_from(spoofed);
        assert!(
            !sent.status.success(),
            "a spoofed source must not get through: {sent:?}"
        );
        let source: std::net::IpAddr = spoofed.parse().expect("ip");
        let events = events_until(rig, &b, |e| e.src == Some(source));
        let event = events
            .iter()
            .find(|e| e.src == Some(source))
            .unwrap_or_else(|| panic!("an event for {spoofed}: {events:#?}"));
        assert_eq!(event.layer, Some(Layer::AntiSpoof), "{event:#?}");
        assert_eq!(
            event.reason,
            format!("source {spoofed} is not the box's address")
        );
        assert_eq!(tracked(spoofed), 0, "{spoofed} left flow state");
    }
    // Should the box's device chain be gone (until the watchdog puts it
    // back), what the box sends is refused, not judged with any source.
    rig.engine.while_locked(|| {
        let deleted = rig.host(&[
            "nft",
            "delete",
            "chain",
            "inet",
            "boxfence",
            "b_spoof1_link",
        ]);
        assert!(deleted.status.success(), "{deleted:?}");
        assert!(!send_from("192.0.2.9").status.success());
        assert_eq!(tracked("192.0.2.9"), 0, "an unproved source was judged");
    });
    rig.engine.repair().expect("the table is restored");
    assert_eq!(
        rig.curl(&b, &format!("http://{SERVER_V4}/")),
        "200",
        "its own address still works"
    );
}

fn flushed_ruleset_fails_closed_until_repaired(rig: &Rig) {
    let b = rig.create("flush1", json!({"mode": "allow-all"}), &[]);
    assert_eq!(rig.curl(&b, &format!("http://{SERVER_V4}/")), "200");
    // The watchdog repairs within a second or two; hold the engine's lock
    // so it cannot while the flushed state is checked.
    rig.engine.while_locked(|| {
        let flushed = rig.host(&["nft", "flush", "ruleset"]);
        assert!(flushed.status.success());
        let out = rig
            .lab
            .host_exec([
                "nsenter",
                &format!("--net={}", rig.box_netns(&b).display()),
                "curl",
                "-s",
                "-m",
                "3",
                "-o",
                "/dev/null",
                &format!("http://{SERVER_V4}/"),
            ])
            .expect("curl");
        assert!(
            !out.status.success(),
            "with no ruleset, box traffic must be denied: {out:?}"
        );
        let inbound = rig
            .lab
            .internet_exec([
                "curl",
                "-s",
                "-m",
                "3",
                &format!("http://{}/", b.addresses.ipv4),
            ])
            .expect("curl");
        assert!(
            !inbound.status.success(),
            "nor may anything reach the box: {inbound:?}"
        );
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    while rig.curl(&b, &format!("http://{SERVER_V4}/")) != "200" {
        assert!(
            Instant::now() < deadline,
            "the watchdog did not restore the ruleset"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn box_processes_cannot_escape(rig: &Rig) {
    let b = rig.create("esc1", json!({"mode": "allow-all"}), &[]);
    // Root inside, mapped onto the box's own unprivileged host uids.
    let map = rig.exec(&b, &["cat", "/proc/self/uid_map"]);
    let zone = u32::from(b.addresses.ipv4.octets()[3]);
    let first = crate::lab_config::lab_sandbox().uid_base + zone * 65_536;
    let fields: Vec<&str> = map.stdout.split_whitespace().collect();
    assert_eq!(fields, ["0", &first.to_string(), "65536"], "{map:?}");
    // Only the eight capabilities of the box's root (CHOWN, DAC_OVERRIDE,
    // FOWNER, FSETID, KILL, SETGID, SETUID, SETPCAP): no NET_ADMIN,
    // NET_RAW or SYS_ADMIN, none ambient.
    let caps = rig.exec(
        &b,
        &["grep", "-E", "^Cap(Prm|Eff|Bnd|Amb)", "/proc/self/status"],
    );
    let values: Vec<&str> = caps
        .stdout
        .lines()
        .filter_map(|l| l.split('\t').nth(1))
        .collect();
    assert_eq!(
        values,
        [
            "00000000000001fb",
            "00000000000001fb",
            "00000000000001fb",
            "0000000000000000"
        ],
        "{caps:?}"
    );
    let escape = rig.exec(&b, &["nsenter", "-t", "1", "-n", "true"]);
    assert_ne!(escape.exit_code, 0, "nsenter must fail: {escape:?}");
    let nft = rig.exec(&b, &["nft", "list", "ruleset"]);
    assert_ne!(nft.exit_code, 0, "no access to rules: {nft:?}");
    let pid1 = rig.exec(&b, &["cat", "/proc/1/cmdline"]);
    assert!(
        pid1.stdout.starts_with("/dev/.boxfence-init"),
        "own pid namespace, the box's init its pid 1: {pid1:?}"
    );
    let resolv = rig.exec(&b, &["cat", "/etc/resolv.conf"]);
    assert!(
        resolv
            .stdout
            .contains(&format!("nameserver {}", rig.pool.gateways().ipv4)),
        "{resolv:?}"
    );

    let timed = rig
        .runtime
        .block_on(SharedLinuxEngine(Arc::clone(&rig.engine)).exec(
            &b.id,
            &ExecRequest {
                command: vec!["sh".into(), "-c".into(), "sleep 30 & sleep 30".into()],
                stdin: None,
                timeout: Some(Duration::from_millis(500)),
            },
        ))
        .expect("exec");
    assert_eq!(timed.exit_code, boxfence_sandbox::TIMED_OUT);
}

fn ingress_rules_and_deny_all_inbound(rig: &Rig) {
    let inbound = json!({"name": "web-in", "selector": {"all": true}, "rules": [
        {"action": "allow", "direction": "ingress", "ports": [{"protocol": "tcp", "port": 8080}]}]});
    let b = rig.create(
        "in1",
        json!({"mode": "allow-all"}),
        std::slice::from_ref(&inbound),
    );
    let ip = b.addresses.ipv4;
    let from_internet = |port: u16| {
        rig.lab
            .internet_curl(&format!("http://{ip}:{port}/"))
            .expect("curl")
    };
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let request = ExecRequest {
                command: ["sh", "-c", "python3 -m http.server 8080 -b 0.0.0.0 & python3 -m http.server 8081 -b 0.0.0.0"]
                    .map(String::from)
                    .to_vec(),
                stdin: None,
                // Ended sooner: killed below.
                timeout: Some(Duration::from_secs(120)),
            };
            rig.runtime.block_on(SharedLinuxEngine(Arc::clone(&rig.engine)).exec(&b.id, &request))
        });
        listening(rig, &b, &[8080, 8081]);
        assert_eq!(from_internet(8080), "200", "the ingress rule allows 8080");
        assert_eq!(from_internet(8081), REFUSED, "no rule allows 8081");
        rig.update(
            &b,
            json!({"mode": "deny-all"}),
            std::slice::from_ref(&inbound),
        );
        assert_eq!(
            from_internet(8080),
            REFUSED,
            "deny-all refuses inbound connections too"
        );
        kill_box_processes(rig, &b);
    });
}

/// Kills every process in the box's network namespace: the servers the
/// test started there.
fn kill_box_processes(rig: &Rig, spec: &MachineSpec) {
    use std::os::unix::fs::MetadataExt as _;
    let netns = std::fs::metadata(rig.box_netns(spec)).expect("the box's namespace");
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        let same = std::fs::metadata(entry.path().join("ns/net"))
            .is_ok_and(|ns| (ns.dev(), ns.ino()) == (netns.dev(), netns.ino()));
        if same && pid.bytes().all(|b| b.is_ascii_digit()) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid])
                .status();
        }
    }
}

/// Waits until the box listens on each of `ports` (TCP): within 60 s
/// (natively 0.2 s; under emulation Python takes seconds to start).
fn listening(rig: &Rig, spec: &MachineSpec, ports: &[u16]) {
    let netns = format!("--net={}", rig.box_netns(spec).display());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = std::process::Command::new("nsenter")
            .args([netns.as_str(), "ss", "-Hltn"])
            .output()
            .expect("nsenter ss");
        let listed = String::from_utf8_lossy(&out.stdout);
        let listens = |port: &u16| {
            listed.lines().any(|line| {
                line.split_whitespace()
                    .nth(3)
                    .is_some_and(|local| local.ends_with(&format!(":{port}")))
            })
        };
        if ports.iter().all(listens) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "listening on {ports:?} within 60 s: {listed}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
