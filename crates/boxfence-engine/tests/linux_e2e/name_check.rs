//! Name checks (issue 19): a box allowed one name of a shared (CDN)
//! address reaches that name, and every other name claimed on the same
//! address is reset, with an event naming the claimed and the authorised
//! name. CIDR-authorised flows are never checked.

use super::rig::*;

/// This module's tests, in the order they run.
pub(crate) const TESTS: &[(&str, Test)] = &[
    (
        "name_check_lets_the_allowed_name_through_and_resets_others",
        name_check_lets_the_allowed_name_through_and_resets_others,
    ),
    (
        "name_check_applies_wildcards_and_spares_cidr_flows",
        name_check_applies_wildcards_and_spares_cidr_flows,
    ),
];

/// The lab's shared address: registry.npmjs.org, github.com and
/// evil.example all resolve to it.
const SHARED: &str = "203.0.113.10";

/// What curl in the box gets with `args`: the HTTP status, or
/// `err<curl exit code>`.
fn curl(rig: &Rig, spec: &MachineSpec, args: &[&str]) -> String {
    let mut argv = vec![
        "curl",
        "-sk",
        "-m",
        "5",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
    ];
    argv.extend_from_slice(args);
    let out = rig.exec(spec, &argv);
    if out.exit_code == 0 {
        out.stdout
    } else {
        format!("err{}", out.exit_code)
    }
}

/// A refusal is a reset, at once: not a timeout (28), not a success.
fn assert_reset(outcome: &str, what: &str) {
    assert!(
        outcome.starts_with("err") && outcome != "err28",
        "{what}: {outcome}"
    );
}

fn name_check_lets_the_allowed_name_through_and_resets_others(rig: &Rig) {
    let policy = json!({"mode": "custom", "allowedDomains": ["registry.npmjs.org"]});
    let b = rig.create("names1", policy, &[]);
    assert_eq!(curl(rig, &b, &["https://registry.npmjs.org/"]), "200");
    assert_eq!(curl(rig, &b, &["http://registry.npmjs.org/"]), "200");
    let evil = format!("evil.example:443:{SHARED}");
    assert_reset(
        &curl(rig, &b, &["--resolve", &evil, "https://evil.example/"]),
        "another SNI on the same address",
    );
    assert_reset(
        &curl(
            rig,
            &b,
            &["-H", "Host: evil.example", "http://registry.npmjs.org/"],
        ),
        "another Host on the same address",
    );
    assert_reset(
        &curl(rig, &b, &[&format!("https://{SHARED}/")]),
        "a ClientHello without SNI",
    );
    let events = events_until(rig, &b, |e| e.layer == Some(Layer::Host));
    let sni = events
        .iter()
        .find(|e| e.layer == Some(Layer::Sni) && e.claimed.as_deref() == Some("evil.example"))
        .unwrap_or_else(|| panic!("an sni event: {events:#?}"));
    assert_eq!(sni.domain.as_deref(), Some("registry.npmjs.org"));
    assert!(
        sni.reason.contains("TLS SNI evil.example"),
        "{}",
        sni.reason
    );
    assert!(
        events
            .iter()
            .any(|e| e.layer == Some(Layer::Host) && e.claimed.as_deref() == Some("evil.example")),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.layer == Some(Layer::Sni) && e.reason.contains("without SNI")),
        "{events:#?}"
    );
    // The allowed name still passes after the refusals.
    assert_eq!(curl(rig, &b, &["https://registry.npmjs.org/"]), "200");
}

fn name_check_applies_wildcards_and_spares_cidr_flows(rig: &Rig) {
    let policy = json!({"mode": "custom", "allowedDomains": ["*.githubusercontent.com", "github.com"], "allowedCidrs": ["104.17.0.0/16"]});
    let b = rig.create("names2", policy, &[]);
    // raw.githubusercontent.com is 198.51.100.10; githubusercontent.com
    // (the apex, never under the wildcard) shares 203.0.113.10 with github.com.
    assert_eq!(
        curl(rig, &b, &["https://raw.githubusercontent.com/"]),
        "200"
    );
    assert_eq!(curl(rig, &b, &["https://github.com/"]), "200");
    let apex = format!("githubusercontent.com:443:{SHARED}");
    assert_reset(
        &curl(
            rig,
            &b,
            &["--resolve", &apex, "https://githubusercontent.com/"],
        ),
        "the apex is not under its wildcard",
    );
    let deep = format!("a.b.githubusercontent.com:443:{SHARED}");
    assert_eq!(
        curl(
            rig,
            &b,
            &["--resolve", &deep, "https://a.b.githubusercontent.com/"]
        ),
        "200",
        "a name under the wildcard passes on any address the policy authorised"
    );
    assert_eq!(
        curl(
            rig,
            &b,
            &[
                "-H",
                "Host: anything.example",
                &format!("http://{CDN_OUTSIDE_DENIED_V4}/")
            ]
        ),
        "200",
        "an allowedCidrs address needs no name"
    );
}
