//! The packaged systemd unit's sandboxing, tried without systemd: the
//! daemon runs in a sealed lab under exactly the capabilities the unit's
//! `CapabilityBoundingSet` names and with `NoNewPrivileges` (setpriv does
//! what systemd would), and still makes boxes, resolves and checks names,
//! denies and logs with reasons, and adopts its boxes after a restart.

mod support;

use boxfence_lab::require_root;
use support::{Daemon, REFUSED};

/// The unit as packaged.
const UNIT: &str = include_str!("../../../packaging/deb/boxfence.service");

/// Bits of the capabilities a unit may name (linux/capability.h).
const BITS: [(&str, u32); 15] = [
    ("CAP_CHOWN", 0),
    ("CAP_DAC_OVERRIDE", 1),
    ("CAP_FOWNER", 3),
    ("CAP_FSETID", 4),
    ("CAP_KILL", 5),
    ("CAP_SETGID", 6),
    ("CAP_SETUID", 7),
    ("CAP_SETPCAP", 8),
    ("CAP_NET_BIND_SERVICE", 10),
    ("CAP_NET_ADMIN", 12),
    ("CAP_NET_RAW", 13),
    ("CAP_SYS_CHROOT", 18),
    ("CAP_SYS_PTRACE", 19),
    ("CAP_SYS_ADMIN", 21),
    ("CAP_SYS_RESOURCE", 24),
];

/// The capability set of `names`.
fn mask(names: &[&str]) -> u64 {
    names
        .iter()
        .map(|name| {
            let (_, bit) = BITS
                .iter()
                .find(|(known, _)| known == name)
                .unwrap_or_else(|| panic!("{name} is in BITS"));
            1u64 << bit
        })
        .sum()
}

/// The value of the unit's `key=`.
fn setting(key: &str) -> &'static str {
    UNIT.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("the unit sets {key}"))
}

#[test]
fn the_daemon_works_under_the_unit_s_capabilities_and_no_new_privileges() {
    if !require_root("the_daemon_works_under_the_unit_s_capabilities_and_no_new_privileges") {
        return;
    }
    let names: Vec<&str> = setting("CapabilityBoundingSet")
        .split_whitespace()
        .collect();
    assert_eq!(setting("NoNewPrivileges"), "yes");
    let bounding = std::iter::once("-all".to_owned())
        .chain(names.iter().map(|name| {
            let bare = name.strip_prefix("CAP_").expect("CAP_ name");
            format!("+{}", bare.to_lowercase())
        }))
        .collect::<Vec<_>>()
        .join(",");
    let under = [
        "setpriv",
        "--bounding-set",
        &bounding,
        "--no-new-privs",
        "--",
    ]
    .map(str::to_owned);
    let daemon = Daemon::start_under(&under);

    // The daemon holds exactly those (not all of root's).
    let expected = mask(&names);
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid())).expect("status");
    let field = |key: &str| {
        let hex = status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .expect("capability line")
            .trim();
        u64::from_str_radix(hex, 16).expect("hex")
    };
    assert_eq!(field("CapEff:"), expected, "{status}");
    assert_eq!(field("NoNewPrivs:"), 1, "{status}");

    let id = daemon.create_box(r#"{"mode": "custom", "allowedDomains": ["api.github.com"]}"#);
    let exec = format!("/v1/boxes/{id}/exec");
    let works = |when: &str| {
        // Resolved by the resolver on port 53, its name checked through
        // NFQUEUE, the rest denied and logged through NFLOG.
        assert_eq!(
            daemon.curl(&exec, "https://api.github.com/"),
            "200",
            "{when}"
        );
        assert_eq!(daemon.curl(&exec, "http://104.17.0.5/"), REFUSED, "{when}");
    };
    works("started");
    // A box's root still gets every capability a box is made with (the
    // runtime would drop, silently, those outside the daemon's bounding
    // set).
    let out = daemon.ok(
        "POST",
        &exec,
        r#"{"command": ["grep", "CapEff", "/proc/self/status"]}"#,
    );
    let box_caps = out["stdout"].as_str().expect("stdout");
    let box_caps = box_caps.trim().trim_start_matches("CapEff:").trim();
    assert_eq!(
        u64::from_str_radix(box_caps, 16).expect("hex"),
        mask(&boxfence_sandbox::bundle::CAPABILITIES),
        "{out}"
    );
    let events = daemon.flows(&id, "deny", 1);
    assert!(
        events.iter().any(|e| e["dst"] == "104.17.0.5"),
        "{events:?}"
    );
    daemon.kill();
    daemon.spawn();
    works("restarted: its box adopted");
    assert_eq!(daemon.kernel_boxes(), [id].into());
}
