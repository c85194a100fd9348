//! What the daemon says it found, in a sealed lab: `GET /v1/host` with the
//! daemon's own probe (every feature on this 6.18 kernel; an avoided one
//! shown avoided, with its part's fallback), the admin's only; the
//! start-up log, one line per feature and part; and a daemon told to
//! avoid a required feature refusing to start, naming it.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use boxfence_dataplane::features::{Feature, KernelFeatures};
use boxfence_lab::{Lab, require_root};
use serde_json::Value;
use support::{Daemon, write_config};

const BIN: &str = env!("CARGO_BIN_EXE_boxfence");
const AVOID_DESTROY: &str = "[kernel]\navoid = [\"destroy_element\"]\n";

/// The feature called `name` in a host report.
fn feature<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["features"]
        .as_array()
        .and_then(|all| all.iter().find(|f| f["name"] == name))
        .unwrap_or_else(|| panic!("feature {name} in {report}"))
}

/// The parts of a host report that take their fallback.
fn fallbacks(report: &Value) -> Vec<&str> {
    report["paths"]
        .as_array()
        .expect("paths")
        .iter()
        .filter(|p| p["fallback"] == true)
        .filter_map(|p| p["part"].as_str())
        .collect()
}

#[test]
fn the_host_report_is_the_daemons_probe_for_the_admin_only() {
    if !require_root("the_host_report_is_the_daemons_probe_for_the_admin_only") {
        return;
    }
    let daemon = Daemon::start();
    let (status, report) = daemon.api("GET", "/v1/host", None);
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["problems"], serde_json::json!([]), "{report}");
    for f in Feature::ALL {
        let found = feature(&report, f.name());
        assert_eq!(found["status"], support::status_here(f), "{found}");
        assert_eq!(found["required"], f.required(), "{found}");
        assert_eq!(found["since"], f.since(), "{found}");
    }
    assert!(!report["paths"].as_array().expect("paths").is_empty());
    assert_eq!(fallbacks(&report), support::fallbacks_here(), "{report}");
    assert_eq!(
        report["uplinks"],
        serde_json::json!([{"name": daemon.lab.uplink(), "present": true, "up": true,
                            "default_route": true}]),
    );
    let required: Vec<&Value> = report["binaries"]
        .as_array()
        .expect("binaries")
        .iter()
        .filter(|b| b["required"] == true)
        .map(|b| &b["name"])
        .collect();
    // Besides itself, only what boxes run in: the OCI runtime and the
    // box init.
    assert_eq!(
        required,
        ["boxfence", "crun", "catatonit"],
        "nothing else at run time"
    );
    assert!(report["kernel"].as_str().is_some_and(|k| !k.is_empty()));

    let (status, body) = daemon.api_as(None, "GET", "/v1/host", None);
    assert_eq!(status, 401, "{body}");
    daemon.ok("POST", "/v1/apps", r#"{"app_name": "tenant"}"#);
    let minted = daemon.ok("POST", "/v1/apps/tenant/tokens", "");
    let token = minted["token"].as_str().expect("token");
    let (status, body) = daemon.api_as(Some(token), "GET", "/v1/host", None);
    assert_eq!(status, 403, "{body}");
}

#[test]
fn an_avoided_feature_shows_avoided_and_its_part_the_fallback() {
    if !require_root("an_avoided_feature_shows_avoided_and_its_part_the_fallback") {
        return;
    }
    let daemon = Daemon::start_with_config(AVOID_DESTROY);
    let (status, report) = daemon.api("GET", "/v1/host", None);
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ok"], true, "an optional feature: {report}");
    for f in Feature::ALL {
        let expected = if f == Feature::DestroyElement {
            "avoided"
        } else {
            support::status_here(f)
        };
        assert_eq!(feature(&report, f.name())["status"], expected, "{report}");
    }
    let expected = [vec!["learned address removal"], support::fallbacks_here()].concat();
    assert_eq!(fallbacks(&report), expected);
}

/// `boxfence --log-format json serve` in `lab`'s host: its log lines up
/// to and with the first whose message is `last` (within 30 s, usually
/// 1 s), then the daemon is stopped.
fn start_up_log(lab: &Lab, last: &str) -> Vec<Value> {
    let config = support::config_path(lab);
    let config = config.to_str().expect("UTF-8 path");
    let mut child = lab
        .host_command([BIN, "--log-format", "json", "serve", "--config", config])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let stderr = child.stderr.take().expect("stderr");
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut log = Vec::new();
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let entry: Value = serde_json::from_str(&line).unwrap_or(Value::String(line));
        let done = entry["fields"]["message"] == last;
        log.push(entry);
        if done {
            break;
        }
    }
    let _ = lab.host_exec(["kill", "-TERM", &child.id().to_string()]);
    let _ = child.wait();
    assert!(
        log.iter().any(|entry| entry["fields"]["message"] == last),
        "no {last:?} line in {log:#?}"
    );
    log
}

#[test]
fn serve_logs_each_feature_and_each_parts_path_at_start() {
    if !require_root("serve_logs_each_feature_and_each_parts_path_at_start") {
        return;
    }
    let lab = Lab::new().expect("lab comes up");
    write_config(&lab, None, AVOID_DESTROY);
    let log = start_up_log(&lab, "uplink");
    let lines = |message: &str| -> Vec<&Value> {
        log.iter()
            .filter(|entry| entry["fields"]["message"] == message)
            .map(|entry| &entry["fields"])
            .collect()
    };
    let features = lines("kernel feature");
    assert_eq!(
        features.len(),
        Feature::ALL.len(),
        "one line each: {log:#?}"
    );
    for (line, f) in features.iter().zip(Feature::ALL) {
        let status = if f == Feature::DestroyElement {
            "avoided"
        } else {
            support::status_here(f)
        };
        assert_eq!(
            (&line["feature"], &line["status"], &line["required"]),
            (
                &Value::from(f.name()),
                &Value::from(status),
                &Value::from(f.required())
            ),
        );
    }
    let paths = lines("data plane path");
    let parts = KernelFeatures::new("", BTreeMap::new()).paths().describe();
    assert_eq!(paths.len(), parts.len(), "one line per part: {log:#?}");
    let fallbacks: Vec<&Value> = paths
        .iter()
        .filter(|p| p["fallback"] == true)
        .map(|p| &p["part"])
        .collect();
    let expected = [vec!["learned address removal"], support::fallbacks_here()].concat();
    assert_eq!(fallbacks, expected);
    assert_eq!(lines("uplink")[0]["uplink"], lab.uplink());
}

#[test]
fn serve_refuses_to_start_without_a_required_feature_naming_it() {
    if !require_root("serve_refuses_to_start_without_a_required_feature_naming_it") {
        return;
    }
    let lab = Lab::new().expect("lab comes up");
    let config = write_config(&lab, None, "[kernel]\navoid = [\"inet_ingress\"]\n");
    // `timeout` ends a daemon that starts all the same (status 124).
    let out = lab
        .host_exec([
            "timeout",
            "60",
            BIN,
            "serve",
            "--config",
            config.to_str().expect("UTF-8 path"),
        ])
        .expect("serve runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let inet = Feature::InetIngress;
    for part in [
        inet.name(),
        inet.purpose(),
        "Linux 5.10",
        "avoided by the configuration",
    ] {
        assert!(stderr.contains(part), "{part:?} in {stderr}");
    }
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "it did not serve"
    );
}
