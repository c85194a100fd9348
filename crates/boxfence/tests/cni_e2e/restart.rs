//! Attach by path through the API, and restarts: a `kill -9` of the
//! daemon leaves attached namespaces enforced; a restart keeps those that
//! still exist and removes those whose owner is gone, links and
//! bindings included.

use boxfence_lab::require_root;
use serde_json::json;

use crate::container::Container;
use crate::support::Daemon;
use crate::{attached_machines, cni, conf, daemon};

/// What the daemon holds of machine `id` in the kernel: its nftables
/// chain, its namespace binding.
fn held(daemon: &Daemon, id: &str) -> (bool, bool) {
    (
        daemon.kernel_boxes().contains(id),
        daemon.netns_boxes().contains(id),
    )
}

#[test]
fn attach_by_path_and_bad_requests() {
    if !require_root("attach_by_path_and_bad_requests") {
        return;
    }
    let daemon = daemon();
    daemon.ok("POST", "/v1/apps", r#"{"app_name": "jail"}"#);
    let jailer = Container::held();
    let body = json!({"attach": {"netns": jailer.netns, "ifname": "tap-net"},
                      "network_policy": {"mode": "custom", "allowedCidrs": ["104.16.0.0/12"]}});
    let machine = daemon.ok("POST", "/v1/apps/jail/machines", &body.to_string());
    assert_eq!(machine["attached"]["kind"], "netns", "{machine}");
    assert_eq!(machine["attached"]["ifname"], "tap-net");
    assert_eq!(jailer.curl("http://104.17.0.5/"), "200");
    assert_ne!(jailer.curl("http://198.51.100.10/"), "200");
    let id = machine["id"].as_str().expect("id");
    let check_path = format!("/v1/apps/jail/machines/{id}/check");
    let check = daemon.ok("GET", &check_path, "");
    assert_eq!(check["enforced"], true);

    // Its link deleted behind the daemon's back: CHECK says so, and a
    // restart makes the link anew in the namespace it still holds.
    let deleted = daemon
        .lab
        .host_exec(["ip", "link", "del", &format!("bf-{id}")])
        .expect("ip link del");
    assert!(deleted.status.success(), "{deleted:?}");
    let (status, diverged) = daemon.api("GET", &check_path, None);
    assert_eq!(status, 409, "{diverged}");
    assert!(diverged.to_string().contains("is missing"), "{diverged}");
    assert_ne!(
        jailer.curl("http://104.17.0.5/"),
        "200",
        "no link, no way out"
    );
    daemon.kill();
    daemon.spawn();
    assert_eq!(daemon.ok("GET", &check_path, "")["enforced"], true);
    assert_eq!(jailer.curl("http://104.17.0.5/"), "200", "repaired");
    assert_ne!(jailer.curl("http://198.51.100.10/"), "200");

    let refused = |attach: serde_json::Value, status: u16, says: &str| {
        let body = json!({"attach": attach});
        let (got, answer) = daemon.api("POST", "/v1/apps/jail/machines", Some(&body.to_string()));
        assert_eq!(got, status, "{attach}: {answer}");
        assert!(answer.to_string().contains(says), "{attach}: {answer}");
    };
    refused(json!({"netns": "relative/path"}), 400, "attach.netns");
    refused(json!({"netns": "/nonexistent/ns"}), 404, "attach.netns");
    refused(
        json!({"netns": "/etc/hostname"}),
        404,
        "not a network namespace",
    );
    refused(json!({"netns": "/proc/self/ns/net"}), 409, "daemon's own");
    refused(
        json!({"netns": jailer.netns, "ifname": "a/b"}),
        400,
        "attach.ifname",
    );
    refused(
        json!({"netns": jailer.netns, "kind": "cni"}),
        400,
        "attach.container_id",
    );
    refused(
        json!({"netns": jailer.netns, "ifname": "eth1"}),
        409,
        "attached already",
    );

    daemon.ok("DELETE", &format!("/v1/apps/jail/machines/{id}"), "");
    assert_eq!(held(&daemon, id), (false, false), "nothing left");
    let links = jailer.exec(&["ip", "-o", "link"]);
    assert!(
        !String::from_utf8_lossy(&links.stdout).contains("tap-net"),
        "the link inside went too"
    );
}

#[test]
fn a_killed_daemon_leaves_containers_enforced_and_its_restart_reconciles() {
    if !require_root("a_killed_daemon_leaves_containers_enforced_and_its_restart_reconciles") {
        return;
    }
    let daemon = daemon();
    daemon.ok("POST", "/v1/apps", r#"{"app_name": "web"}"#);
    let conf = conf(&daemon, "web", "1.0.0");
    let policy = r#"boxfence.policy={"mode": "custom", "allowedCidrs": ["104.16.0.0/12"]}"#;
    let mut kept = Container::bound();
    let mut removed = Container::bound();
    let mut jailer = Container::held();
    for container in [&kept, &removed] {
        let (status, result) = cni(
            "ADD",
            &container.id,
            Some(&container.netns),
            Some(policy),
            &conf,
        );
        assert_eq!(status, 0, "{result}");
    }
    let body = json!({"attach": {"netns": jailer.netns},
                      "network_policy": {"mode": "custom", "allowedCidrs": ["104.16.0.0/12"]}});
    daemon.ok("POST", "/v1/apps/web/machines", &body.to_string());
    let ids: Vec<(String, String)> = attached_machines(&daemon, "web")
        .iter()
        .map(|machine| {
            let container = machine["attached"]["container_id"]
                .as_str()
                .unwrap_or("jailer");
            (
                container.to_owned(),
                machine["id"].as_str().expect("id").to_owned(),
            )
        })
        .collect();
    let id_of = |container: &str| {
        ids.iter()
            .find(|(c, _)| c == container)
            .map(|(_, id)| id.clone())
            .expect("attached")
    };
    let (kept_id, removed_id, jailer_id) = (id_of(&kept.id), id_of(&removed.id), id_of("jailer"));

    // kill -9 between ADD and DEL: the kernel keeps enforcing.
    daemon.kill();
    for container in [&kept, &removed, &jailer] {
        assert_eq!(container.curl("http://104.17.0.5/"), "200");
        assert_ne!(
            container.curl("http://198.51.100.10/"),
            "200",
            "still denied"
        );
    }
    // The runtime removes two while the daemon is down: DEL cannot reach
    // it (the runtime goes on, as podman does), the namespaces go.
    assert_eq!(
        cni("DEL", &removed.id, Some(&removed.netns), None, &conf).1["code"],
        11
    );
    removed.remove();
    jailer.remove();

    daemon.spawn();
    let left: Vec<String> = attached_machines(&daemon, "web")
        .iter()
        .map(|machine| machine["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(left, vec![kept_id.clone()], "the gone ones are removed");
    assert_eq!(held(&daemon, &kept_id), (true, true));
    assert_eq!(held(&daemon, &removed_id), (false, false));
    assert_eq!(held(&daemon, &jailer_id), (false, false));
    assert_eq!(
        kept.curl("http://104.17.0.5/"),
        "200",
        "kept after the restart"
    );
    assert_ne!(kept.curl("http://198.51.100.10/"), "200");
    let check = daemon.ok("GET", &format!("/v1/apps/web/machines/{kept_id}/check"), "");
    assert_eq!(check["enforced"], true);

    // DEL now, as the runtime's retry would; then nothing is left.
    assert_eq!(cni("DEL", &kept.id, Some(&kept.netns), None, &conf).0, 0);
    assert_eq!(held(&daemon, &kept_id), (false, false));
    kept.remove();
}
