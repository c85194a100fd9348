//! The flow log across a restart (issue 17): the daemon keeps it under its
//! state_dir, so a killed and restarted daemon still answers a box's last
//! events with their reasons, and a box that logged its allowed
//! connections still does, without being asked again. `boxfence logs`
//! exports it as JSON lines to a file, filtered by app and by reason, and
//! to syslog.

mod support;

use boxfence_lab::require_root;
use serde_json::Value;
use support::{Daemon, REFUSED, TOKEN};

#[test]
fn a_restart_keeps_the_flow_log_and_log_allowed_and_logs_exports_it_filtered() {
    if !require_root("a_restart_keeps_the_flow_log_and_log_allowed_and_logs_exports_it_filtered") {
        return;
    }
    let daemon = Daemon::start();
    let id = daemon.create_box(r#"{"mode": "custom", "allowedCidrs": ["104.16.0.0/12"]}"#);
    let exec = format!("/v1/boxes/{id}/exec");
    assert_eq!(daemon.curl(&exec, "http://198.51.100.10/"), REFUSED);
    daemon.ok(
        "PUT",
        &format!("/v1/boxes/{id}/flow-log"),
        r#"{"logAllowed": true}"#,
    );
    assert_eq!(daemon.curl(&exec, "http://104.17.0.5/"), "200");
    let denied = daemon.flows(&id, "deny", 1);
    let allowed = daemon.flows(&id, "allow", 1);
    assert_eq!(
        (denied.len(), allowed.len()),
        (1, 1),
        "{denied:?} {allowed:?}"
    );

    daemon.kill();
    daemon.spawn();
    assert_eq!(
        daemon.flows(&id, "deny", 1),
        denied,
        "kept across the restart"
    );
    assert_eq!(
        daemon.flows(&id, "allow", 1),
        allowed,
        "kept across the restart"
    );
    // logAllowed survived: a new allowed connection is logged unasked.
    assert_eq!(daemon.curl(&exec, "http://104.17.0.5:8080/"), "200");
    let allowed = daemon.flows(&id, "allow", 2);
    assert_eq!(allowed.len(), 2, "{allowed:?}");
    assert_eq!(allowed[1]["dport"], 8080);

    // Exported: every machine of the app (a box's is `default`), those
    // the box policy denied only, as JSON lines into a file.
    let file = daemon.lab.workdir().join("denials.jsonl");
    let cli = |args: &[&str]| {
        daemon
            .lab
            .host_command(
                [env!("CARGO_BIN_EXE_boxfence"), "logs"]
                    .into_iter()
                    .chain(args.iter().copied()),
            )
            .env("BOXFENCE_URL", "http://127.0.0.1:4280")
            .env("BOXFENCE_TOKEN", TOKEN)
            .output()
            .expect("boxfence logs")
    };
    let out = cli(&[
        "-a",
        "default",
        "--reason",
        "box_policy",
        "-o",
        &file.display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = std::fs::read_to_string(&file).expect("exported");
    let lines: Vec<Value> = written
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 1, "{written}");
    assert_eq!(lines[0]["dst"], "198.51.100.10");
    assert_eq!(lines[0]["layer"], "box_policy");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&file).expect("file").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // To syslog: one message per event, facility daemon, a denial a
    // warning (<28>), its JSON the message.
    let socket = daemon.lab.workdir().join("syslog.sock");
    let syslog = std::os::unix::net::UnixDatagram::bind(&socket).expect("a syslog socket");
    let out = cli(&[
        &id,
        "--verdict",
        "deny",
        "--syslog",
        &socket.display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut buffer = [0; 4096];
    syslog
        .set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .expect("timeout");
    let length = syslog.recv(&mut buffer).expect("a message");
    let message = String::from_utf8_lossy(&buffer[..length]);
    let json = message
        .strip_prefix("<28>boxfence-flow[")
        .and_then(|rest| rest.split_once("]: "))
        .map(|(_, json)| json)
        .unwrap_or_else(|| panic!("a syslog message: {message}"));
    let sent: Value = serde_json::from_str(json).expect("JSON");
    assert_eq!(sent["dst"], "198.51.100.10", "{message}");
    // A reason no event has: nothing, and it says so.
    let out = cli(&[&id, "--reason", "no such reason"]);
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no events yet"));
}
