//! Every write route of the daemon with its database on a full disk: a
//! 503, the store as it was and the kernel enforcing what the store holds;
//! then, with space back, the same requests succeed and are enforced. The
//! daemon runs in a sealed lab with the real data plane; its database is
//! on a small tmpfs the test fills.

mod support;

use boxfence_lab::{SmallFs, require_root};
use serde_json::{Value, json};
use support::{Daemon, REFUSED};

/// Room for the database with margin: the test writes well under 1 MiB.
const FS_BYTES: u64 = 4 * 1024 * 1024;

/// A lab server on port 80.
const SERVER: &str = "http://198.51.100.10/";

/// Machines with `role: db` reach only port 443.
const DB_HTTPS: &str = r#"{"name": "db-https", "selector": {"metadata": {"role": "db"}},
    "rules": [{"action": "allow", "direction": "egress", "ports": [{"protocol": "tcp", "port": 443}]}]}"#;

/// Every machine of the app reaches only port 443.
const LOCKDOWN: &str = r#"{"name": "lockdown", "selector": {"all": true},
    "rules": [{"action": "allow", "direction": "egress", "ports": [{"protocol": "tcp", "port": 443}]}]}"#;

fn id_of(answer: &Value) -> String {
    answer["id"].as_str().expect("an id").to_owned()
}

/// What the daemon answers about everything a test writes, and what the
/// kernel holds.
fn state(daemon: &Daemon) -> Value {
    let get = |path: &str| {
        let (status, answer) = daemon.api("GET", path, None);
        if status == 404 { Value::Null } else { answer }
    };
    json!({
        "apps": get("/v1/apps"),
        "policies": get("/v1/apps/web/network_policies"),
        "machines": get("/v1/apps/web/machines"),
        "boxes": get("/v1/apps/default/machines"),
        "kernel": daemon.kernel_boxes(),
        "netns": daemon.netns_boxes(),
    })
}

/// Ids of every stored machine.
fn stored_ids(daemon: &Daemon) -> Vec<String> {
    let mut ids = Vec::new();
    for app in daemon.ok("GET", "/v1/apps", "").as_array().expect("apps") {
        let app = app["app_name"].as_str().expect("app name");
        let machines = daemon.ok("GET", &format!("/v1/apps/{app}/machines"), "");
        ids.extend(machines.as_array().expect("machines").iter().map(id_of));
    }
    ids.sort();
    ids
}

#[test]
fn every_write_route_answers_503_on_a_full_disk_and_converges() {
    if !require_root("every_write_route_answers_503_on_a_full_disk_and_converges") {
        return;
    }
    let fs = SmallFs::mount(FS_BYTES).expect("tmpfs");
    let daemon = Daemon::start_with_database(Some(&fs.path().join("boxfence.db")));
    daemon.ok("POST", "/v1/apps", r#"{"app_name": "web"}"#);
    let db_https = id_of(&daemon.ok("POST", "/v1/apps/web/network_policies", DB_HTTPS));
    let web1 = id_of(&daemon.ok(
        "POST",
        "/v1/apps/web/machines",
        r#"{"config": {"metadata": {"role": "web"}}}"#,
    ));
    let db1 = id_of(&daemon.ok(
        "POST",
        "/v1/apps/web/machines",
        r#"{"config": {"metadata": {"role": "db"}}}"#,
    ));
    let b1 = id_of(&daemon.ok(
        "POST",
        "/v1/boxes",
        r#"{"networkPolicy": {"mode": "allow-all"}}"#,
    ));
    let web1_exec = format!("/v1/apps/web/machines/{web1}/exec");
    let db1_exec = format!("/v1/apps/web/machines/{db1}/exec");
    let b1_exec = format!("/v1/boxes/{b1}/exec");
    let reach =
        |daemon: &Daemon| [&web1_exec, &db1_exec, &b1_exec].map(|exec| daemon.curl(exec, SERVER));
    let before = state(&daemon);
    assert_eq!(
        before["kernel"].as_array().map(Vec::len),
        Some(3),
        "{before}"
    );
    assert_eq!(before["kernel"], before["netns"]);
    let reached = reach(&daemon);
    assert_eq!(reached, ["200", REFUSED, "200"]);

    let box_policy = format!("/v1/boxes/{b1}/network-policy");
    let writes: Vec<(&str, String, Option<&str>)> = vec![
        ("POST", "/v1/apps".into(), Some(r#"{"app_name": "other"}"#)),
        ("POST", "/v1/apps/web/tokens".into(), None),
        (
            "POST",
            "/v1/apps/web/network_policies".into(),
            Some(LOCKDOWN),
        ),
        (
            "DELETE",
            format!("/v1/apps/web/network_policies/{db_https}"),
            None,
        ),
        ("POST", "/v1/apps/web/machines".into(), Some("{}")),
        ("POST", "/v1/boxes".into(), Some("{}")),
        ("PUT", box_policy.clone(), Some(r#"{"mode": "deny-all"}"#)),
        (
            "PATCH",
            format!("/v1/apps/web/machines/{web1}/metadata"),
            Some(r#"{"role": "db"}"#),
        ),
        ("DELETE", format!("/v1/apps/web/machines/{web1}"), None),
        ("DELETE", format!("/v1/boxes/{b1}"), None),
        ("DELETE", "/v1/apps/web?force=true".into(), None),
    ];
    fs.fill().expect("fill");
    for (method, path, body) in &writes {
        let (status, answer) = daemon.api(method, path, *body);
        assert_eq!(status, 503, "{method} {path} on a full disk: {answer}");
        assert_eq!(answer["error"]["code"], "store_unavailable", "{answer}");
        assert_eq!(state(&daemon), before, "{method} {path} changed nothing");
        assert_eq!(
            reach(&daemon),
            reached,
            "after {method} {path}, the kernel enforces what is stored"
        );
    }

    // Space is back: the same requests succeed, each enforced before its
    // answer.
    fs.free().expect("free");
    daemon.ok("PUT", &box_policy, r#"{"mode": "deny-all"}"#);
    assert_eq!(daemon.curl(&b1_exec, SERVER), REFUSED);
    daemon.ok("POST", "/v1/apps/web/network_policies", LOCKDOWN);
    assert_eq!(daemon.curl(&web1_exec, SERVER), REFUSED);
    daemon.ok(
        "DELETE",
        &format!("/v1/apps/web/network_policies/{db_https}"),
        "",
    );
    let patched = daemon.ok(
        "PATCH",
        &format!("/v1/apps/web/machines/{web1}/metadata"),
        r#"{"role": "db"}"#,
    );
    assert_eq!(patched["config"]["metadata"]["role"], "db", "{patched}");
    let web2 = id_of(&daemon.ok("POST", "/v1/apps/web/machines", "{}"));
    let b2 = id_of(&daemon.ok("POST", "/v1/boxes", "{}"));
    assert!(daemon.kernel_boxes().contains(&web2));
    assert!(daemon.kernel_boxes().contains(&b2));
    daemon.ok("POST", "/v1/apps/web/tokens", "");
    daemon.ok("POST", "/v1/apps", r#"{"app_name": "other"}"#);
    daemon.ok("DELETE", &format!("/v1/apps/web/machines/{web1}"), "");
    daemon.ok("DELETE", &format!("/v1/boxes/{b1}"), "");
    assert!(!daemon.kernel_boxes().contains(&web1));
    assert!(!daemon.kernel_boxes().contains(&b1));
    let kept = state(&daemon);
    assert_eq!(
        daemon.kernel_boxes().into_iter().collect::<Vec<_>>(),
        stored_ids(&daemon)
    );

    // Every acknowledged write survives a crash.
    daemon.kill();
    daemon.spawn();
    assert_eq!(state(&daemon), kept);
    daemon.ok("DELETE", "/v1/apps/web?force=true", "");
    let left = [b2];
    assert_eq!(daemon.kernel_boxes().into_iter().collect::<Vec<_>>(), left);
    assert_eq!(stored_ids(&daemon), left);
}
