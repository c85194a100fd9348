//! `boxfence doctor` on a host it can read: the lab host, first as a
//! daemon would want it, then with a NAT chain that rewrites destinations
//! after boxfence's judgement; and the kernel features it probes, as a
//! table and as JSON.

mod support;

use boxfence_dataplane::features::Feature;
use boxfence_lab::{Lab, require_root};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_boxfence");

/// The doctor's JSON report and exit status in `lab`'s host.
fn doctor(lab: &Lab) -> (Value, Option<i32>) {
    let out = lab
        .host_exec([BIN, "--json", "doctor"])
        .expect("doctor runs");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "JSON report ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (report, out.status.code())
}

fn status<'a>(report: &'a Value, name: &str) -> &'a str {
    report["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["name"] == name))
        .and_then(|check| check["status"].as_str())
        .unwrap_or_else(|| panic!("check {name} in {report}"))
}

#[test]
fn doctor_fails_on_a_destination_rewrite_after_the_judgement() {
    if !require_root("doctor_fails_on_a_destination_rewrite_after_the_judgement") {
        return;
    }
    let lab = Lab::new().expect("lab comes up");
    let (report, code) = doctor(&lab);
    assert_eq!(status(&report, "rewrite_after_judgement"), "ok", "{report}");
    assert_eq!(status(&report, "policy_routing"), "ok", "{report}");
    assert_eq!(
        (report["ok"].as_bool(), code),
        (Some(true), Some(0)),
        "{report}"
    );

    // A later NAT chain, as another tool on the host might add one.
    for command in [
        "add table ip other",
        "add chain ip other pre { type nat hook prerouting priority 0; }",
        "add chain ip other send",
        "add rule ip other pre jump send",
        "add rule ip other send ip daddr 198.51.100.10 dnat to 203.0.113.10",
    ] {
        let out = lab.host_exec(["nft", command]).expect("nft runs");
        assert!(out.status.success(), "{command}: {out:?}");
    }
    let out = lab
        .host_exec([
            "ip", "rule", "add", "pref", "100", "fwmark", "0x7", "table", "100",
        ])
        .expect("ip runs");
    assert!(out.status.success(), "{out:?}");
    let (report, code) = doctor(&lab);
    assert_eq!(
        status(&report, "rewrite_after_judgement"),
        "fail",
        "{report}"
    );
    assert_eq!(status(&report, "policy_routing"), "warn", "{report}");
    assert_eq!(
        (report["ok"].as_bool(), code),
        (Some(false), Some(1)),
        "{report}"
    );
    let detail = report["checks"][1]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("ip other send"), "{report}");
}

#[test]
fn doctor_reports_each_kernel_feature_as_a_table_and_as_json() {
    if !require_root("doctor_reports_each_kernel_feature_as_a_table_and_as_json") {
        return;
    }
    let lab = Lab::new().expect("lab comes up");
    let (report, code) = doctor(&lab);
    assert_eq!(code, Some(0), "{report}");
    let host = &report["host"];
    assert_eq!(host["ok"], true, "{report}");
    // What mainline has by this kernel's version (the kernel matrix's
    // Debian kernels backport none of these; the host's 6.18 has all).
    let release = host["kernel"].as_str().expect("a release");
    let found: Vec<&str> = host["features"]
        .as_array()
        .expect("features")
        .iter()
        .filter(|f| f["status"] == "found")
        .filter_map(|f| f["name"].as_str())
        .collect();
    let expected: Vec<&str> = Feature::ALL
        .into_iter()
        .filter(|f| f.mainline_has(release) && support::status_here(*f) == "found")
        .map(Feature::name)
        .collect();
    assert_eq!(found, expected, "{report}");
    assert_eq!(
        host["uplinks"][0]["name"],
        lab.uplink(),
        "the default route's"
    );

    // The daemon's config: its uplink, and a feature it avoids.
    let config = lab.workdir().join("doctor.toml");
    std::fs::write(
        &config,
        format!(
            "[network]\nuplink = \"{}\"\n[kernel]\navoid = [\"destroy_element\"]\n",
            lab.uplink()
        ),
    )
    .expect("config written");
    let out = lab
        .host_exec([BIN, "doctor", "--config", config.to_str().expect("UTF-8")])
        .expect("doctor runs");
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{table}");
    for f in Feature::ALL {
        let line = table
            .lines()
            .find(|line| line.split_whitespace().next() == Some(f.name()))
            .unwrap_or_else(|| panic!("a line for {f} in\n{table}"));
        let status = match (f.mainline_has(release), f == Feature::DestroyElement) {
            (false, _) => "missing",
            (true, true) => "avoided",
            (true, false) => support::status_here(f),
        };
        assert_eq!(line.split_whitespace().nth(1), Some(status), "{line}");
    }
    let removal = table
        .lines()
        .find(|line| line.starts_with("learned address removal"))
        .unwrap_or_else(|| panic!("the removal path in\n{table}"));
    assert!(removal.ends_with("yes"), "the fallback: {removal}");
    assert!(
        table.contains("ok: boxfence can keep its promises"),
        "{table}"
    );

    // Name checks (on by default) with neither way of queueing: a problem
    // that names the feature; with name checks off, none.
    for (name_check, ok) in [("on", false), ("off", true)] {
        std::fs::write(
            &config,
            format!(
                "[network]\nuplink = \"{}\"\nname_check = \"{name_check}\"\n\
                 [kernel]\navoid = [\"queue_expression\", \"queue_target\"]\n",
                lab.uplink()
            ),
        )
        .expect("config written");
        let out = lab
            .host_exec([
                BIN,
                "--json",
                "doctor",
                "--config",
                config.to_str().expect("UTF-8"),
            ])
            .expect("doctor runs");
        let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(report["ok"], ok, "name_check {name_check}: {report}");
        let problems = report["host"]["problems"].to_string();
        assert_eq!(
            problems.contains("queue_expression"),
            !ok,
            "name_check {name_check}: {problems}"
        );
    }
}
