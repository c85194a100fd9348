//! ICMP echo from inside a box: the box's root has no CAP_NET_RAW, so
//! ping uses an ICMP datagram socket, which the box's network namespace
//! allows its own gids (`ping_group_range`); the policy then judges it
//! like any flow.

use super::rig::*;

/// This module's tests, in the order they run.
pub(crate) const TESTS: &[(&str, Test)] = &[(
    "ping_works_where_icmp_is_allowed_and_is_refused_where_not",
    ping_works_where_icmp_is_allowed_and_is_refused_where_not,
)];

fn ping_works_where_icmp_is_allowed_and_is_refused_where_not(rig: &Rig) {
    let icmp = json!({"name": "icmp", "selector": {"all": true}, "rules": [
        {"action": "allow", "direction": "egress", "ports": [{"protocol": "icmp"}]}]});
    let b = rig.create("ping1", json!({"mode": "allow-all"}), &[icmp]);
    let server = SERVER_V4.to_string();
    let ping = ["ping", "-c", "1", "-W", "2", &server];
    let allowed = rig.exec(&b, &ping);
    assert_eq!(allowed.exit_code, 0, "ping is allowed: {allowed:?}");
    assert!(allowed.stdout.contains("1 received"), "{allowed:?}");
    let web_only = json!({"name": "web", "selector": {"all": true}, "rules": [
        {"action": "allow", "direction": "egress", "ports": [{"protocol": "tcp", "port": 443}]}]});
    rig.update(&b, json!({"mode": "allow-all"}), &[web_only]);
    let refused = rig.exec(&b, &ping);
    assert_ne!(refused.exit_code, 0, "{refused:?}");
    // Sent and dropped by the policy, not refused a socket in the box.
    assert!(refused.stdout.contains("0 received"), "{refused:?}");
    assert!(!refused.stderr.contains("not permitted"), "{refused:?}");
}
