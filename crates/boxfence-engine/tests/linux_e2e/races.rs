//! Races between a box and its policy changes: an answer in flight while
//! its domain is removed, and flows that outlive their learned address.

use super::rig::*;

/// Tests that build their own rig.
pub(crate) const TESTS: &[(&str, OwnRigTest)] = &[(
    "an_answer_in_flight_cannot_reauthorise_a_removed_domain",
    an_answer_in_flight_cannot_reauthorise_a_removed_domain,
)];

/// Tests on a usual rig.
pub(crate) const SHARED_TESTS: &[(&str, Test)] = &[(
    "an_unrelated_update_keeps_a_flow_whose_address_expired",
    an_unrelated_update_keeps_a_flow_whose_address_expired,
)];

/// A box asks for an allowed name while the upstream is slow; meanwhile
/// its policy drops the name. Once the update has returned, the answer
/// still in flight must not authorise its address.
fn an_answer_in_flight_cannot_reauthorise_a_removed_domain() {
    let upstream_delay = Duration::from_millis(1500);
    let rig = Rig::with_slow_upstream(upstream_delay);
    let b = rig.create(
        "race1",
        json!({"mode": "custom", "allowedDomains": ["api.github.com", "registry.npmjs.org"]}),
        &[],
    );
    let asked = Instant::now();
    std::thread::scope(|scope| {
        let query = scope.spawn(|| dig(&rig, &b, &["+short", "+time=5", "api.github.com", "A"]));
        // The query is at the upstream (it answers after 1.5 s).
        std::thread::sleep(Duration::from_millis(500));
        rig.update(
            &b,
            json!({"mode": "custom", "allowedDomains": ["registry.npmjs.org"]}),
            &[],
        );
        assert!(
            asked.elapsed() < upstream_delay,
            "the update must land while the answer is in flight"
        );
        let answer = query.join().expect("query thread");
        assert!(
            !answer.contains(&SERVER_V4.to_string()),
            "the box is not given the removed name's address: {answer:?}"
        );
    });
    assert_eq!(
        rig.curl(&b, &format!("http://{SERVER_V4}/")),
        REFUSED,
        "the removed name's address is not authorised"
    );
    assert_eq!(
        rig.curl(&b, "http://registry.npmjs.org/"),
        "200",
        "the kept name still resolves and connects"
    );
}

/// A connection to a learned address stays open past the address's
/// expiry (DESIGN.md 1.6); a later update that changes nothing about its
/// name must not cut it.
fn an_unrelated_update_keeps_a_flow_whose_address_expired(rig: &Rig) {
    let b = rig.create(
        "keep1",
        json!({"mode": "custom", "allowedDomains": ["api.github.com"]}),
        &[],
    );
    // The lab answers with TTL 1: the kernel keeps the address for
    // max(1, floor 3) + grace 2 = 5 s; the update comes after 7 s.
    let script = "import socket,time\n\
        ip=socket.getaddrinfo('api.github.com',9000,socket.AF_INET)[0][4][0]\n\
        s=socket.create_connection((ip,9000),timeout=5); s.sendall(b'one\\n'); print(s.recv(100).decode().strip(), flush=True)\n\
        time.sleep(9)\n\
        try:\n  s.sendall(b'two\\n'); r=s.recv(100); print('after', r.decode().strip() or 'closed')\n\
        except Exception as e: print('after cut', type(e).__name__)\n";
    std::thread::scope(|scope| {
        let held = scope.spawn(|| rig.exec(&b, &["python3", "-c", script]));
        std::thread::sleep(Duration::from_secs(7));
        rig.update(
            &b,
            json!({"mode": "custom", "allowedDomains": ["api.github.com"], "allowedCidrs": ["203.0.113.0/24"]}),
            &[],
        );
        let out = held.join().expect("exec thread");
        assert!(out.stdout.starts_with("one"), "worked before: {out:?}");
        assert!(
            out.stdout.contains("after two"),
            "the open flow outlives its address and the unrelated update: {out:?}"
        );
    });
}
