//! The built-in resolver as a box meets it: allowed and refused names, wildcards, rebinding, expiry, app-rule domains.

use super::rig::*;

/// This module's tests, in the order they run.
pub(crate) const TESTS: &[(&str, Test)] = &[
    (
        "resolver_seed_domains_and_no_leak",
        resolver_seed_domains_and_no_leak,
    ),
    (
        "resolver_wildcards_cidrs_and_no_direct_ip",
        resolver_wildcards_cidrs_and_no_direct_ip,
    ),
    (
        "resolver_rebinding_and_hardcoded_servers",
        resolver_rebinding_and_hardcoded_servers,
    ),
    (
        "resolver_expiry_keeps_open_connections",
        resolver_expiry_keeps_open_connections,
    ),
    (
        "app_rule_domains_allow_that_name_and_port_only",
        app_rule_domains_allow_that_name_and_port_only,
    ),
    ("deny_all_refuses_every_query", deny_all_refuses_every_query),
];

fn resolver_seed_domains_and_no_leak(rig: &Rig) {
    let policy =
        json!({"mode": "custom", "allowedDomains": ["api.github.com", "registry.npmjs.org"]});
    let b = rig.create("dns1", policy, &[]);
    assert_eq!(rig.curl(&b, "https://api.github.com/"), "200");
    assert_eq!(rig.curl(&b, "http://registry.npmjs.org/"), "200");
    assert_eq!(rig.curl(&b, "https://github.com/"), UNRESOLVED);
    let refused = dig(rig, &b, &["github.com"]);
    assert!(refused.contains("status: REFUSED"), "{refused}");
    assert!(refused.contains("EDE: 18 (Prohibited)"), "{refused}");
    assert!(
        rig.dns.was_asked("api.github.com"),
        "allowed names go upstream"
    );
    assert!(
        !rig.dns.was_asked("github.com"),
        "a denied name never reaches upstream: {}",
        rig.dns.queries()
    );
}

fn resolver_wildcards_cidrs_and_no_direct_ip(rig: &Rig) {
    let policy = json!({"mode": "custom", "allowedDomains": ["api.github.com", "*.githubusercontent.com"], "allowedCidrs": ["104.16.0.0/12"]});
    let b = rig.create("dns2", policy, &[]);
    assert_eq!(
        rig.curl(&b, &format!("http://{SERVER_V4}/")),
        REFUSED,
        "an allowed name's address before resolving it"
    );
    assert_eq!(rig.curl(&b, "http://raw.githubusercontent.com/"), "200");
    assert_eq!(
        rig.curl(&b, "http://githubusercontent.com/"),
        UNRESOLVED,
        "never the apex"
    );
    assert_eq!(
        rig.curl(&b, &format!("http://{CDN_OUTSIDE_DENIED_V4}/")),
        "200",
        "allowedCidrs"
    );
    assert_eq!(rig.curl(&b, "https://api.github.com/"), "200");
}

fn resolver_rebinding_and_hardcoded_servers(rig: &Rig) {
    let policy = json!({"mode": "custom", "allowedDomains": ["metadata.example", "private.example", "api.github.com"]});
    let b = rig.create("dns3", policy, &[]);
    assert_eq!(
        dig(rig, &b, &["+short", "metadata.example"]).trim(),
        "",
        "169.254.169.254 is removed"
    );
    assert_eq!(
        dig(rig, &b, &["+short", "private.example"]).trim(),
        "",
        "10.0.0.1 is removed"
    );
    let direct = dig(rig, &b, &["@8.8.8.8", "+short", "api.github.com"]);
    assert_eq!(
        direct.trim(),
        "198.51.100.10",
        "a hard-coded server is answered by the resolver"
    );
    let denied = dig(rig, &b, &["@1.1.1.1", "evil.example"]);
    assert!(denied.contains("status: REFUSED"), "{denied}");
    assert!(!rig.dns.was_asked("evil.example"));
    let tcp = dig(rig, &b, &["+tcp", "+short", "api.github.com", "AAAA"]);
    assert_eq!(tcp.trim(), "2001:db8::10", "TCP and AAAA");
}

fn resolver_expiry_keeps_open_connections(rig: &Rig) {
    let b = rig.create(
        "dns4",
        json!({"mode": "custom", "allowedDomains": ["api.github.com"]}),
        &[],
    );
    // The lab answers with TTL 1: the kernel keeps the address for
    // max(1, floor 3) + grace 2 = 5 s.
    let script = "import socket,time\n\
        ip=socket.getaddrinfo('api.github.com',9000,socket.AF_INET)[0][4][0]\n\
        s=socket.create_connection((ip,9000),timeout=5); s.sendall(b'one\\n'); print(s.recv(100).decode().strip())\n\
        time.sleep(7)\n\
        s.sendall(b'two\\n'); print(s.recv(100).decode().strip())\n\
        try:\n  socket.create_connection((ip,9000),timeout=3); print('new connected')\n\
        except Exception as e: print('new refused', type(e).__name__)\n";
    let out = rig.exec(&b, &["python3", "-c", script]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first().copied(), Some("one"), "{out:?}");
    assert_eq!(
        lines.get(1).copied(),
        Some("two"),
        "the open connection outlives the expiry: {out:?}"
    );
    assert!(
        lines.get(2).is_some_and(|l| l.starts_with("new refused")),
        "a new one is refused: {out:?}"
    );
}

fn app_rule_domains_allow_that_name_and_port_only(rig: &Rig) {
    let policy = json!({"name": "gh", "selector": {"all": true}, "rules": [
        {"action": "allow", "direction": "egress", "ports": [{"protocol": "tcp", "port": 443}], "domains": ["api.github.com"]}]});
    let repairs = || {
        metric(
            &rig.engine.metrics_text(),
            "boxfence_reconcile_repairs_total",
        )
    };
    let repairs_before = repairs();
    let b = rig.create("dns5", json!({"mode": "allow-all"}), &[policy]);
    assert_eq!(rig.curl(&b, "https://api.github.com/"), "200");
    assert_eq!(
        rig.curl(&b, "http://api.github.com/"),
        REFUSED,
        "port 80 is not in the rule"
    );
    assert_eq!(
        rig.curl(&b, "https://github.com/"),
        UNRESOLVED,
        "no rule names github.com"
    );
    assert_eq!(
        rig.curl(&b, &format!("https://{OTHER}/")),
        REFUSED,
        "no rule allows other destinations"
    );
    // The table, with the resolver's learned elements in it, is what the
    // model says: the watchdog finds nothing to repair.
    assert!(
        !rig.engine.repair().expect("check"),
        "the engine's own changes and learned addresses are not tampering"
    );
    assert_eq!(repairs(), repairs_before, "nor did the watchdog repair");
}

const OTHER: &str = "203.0.113.10";

fn deny_all_refuses_every_query(rig: &Rig) {
    let b = rig.create("dns6", json!({"mode": "deny-all"}), &[]);
    let out = dig(rig, &b, &["api.github.com"]);
    assert!(out.contains("status: REFUSED"), "{out}");
    assert!(!rig.dns.was_asked("api.github.com"));
}
