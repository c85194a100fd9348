//! The seeds' examples on containers attached by the plugin: an app
//! egress policy on ports and selectors by the metadata the runtime
//! passed, a custom box policy with domains and CIDRs from `CNI_ARGS`, a
//! live change that cuts a container's open connection; exec refused.

use std::time::{Duration, Instant};

use boxfence_lab::require_root;

use crate::container::Container;
use crate::support::{Daemon, REFUSED, UNRESOLVED};
use crate::{cni, conf, daemon};

/// The seed's app egress policy: TCP 80 and 443 only.
const SEED_EGRESS: &str = r#"{"name": "specific-egress", "selector": {"all": true},
    "rules": [{"action": "allow", "direction": "egress",
               "ports": [{"protocol": "tcp", "port": 80}, {"protocol": "tcp", "port": 443}]}]}"#;

/// ADDs `container` to `app` with `args`; returns its machine id.
fn attach(daemon: &Daemon, app: &str, container: &Container, args: &str) -> String {
    let (status, result) = cni(
        "ADD",
        &container.id,
        Some(&container.netns),
        Some(args),
        &conf(daemon, app, "1.0.0"),
    );
    assert_eq!(status, 0, "{result}");
    container.write_resolv_conf(&result);
    let machines = daemon.ok("GET", &format!("/v1/apps/{app}/machines"), "");
    machines
        .as_array()
        .expect("list")
        .iter()
        .find(|machine| machine["attached"]["container_id"] == container.id.as_str())
        .and_then(|machine| machine["id"].as_str())
        .expect("the container's machine")
        .to_owned()
}

#[test]
fn seed_policies_are_enforced_on_containers() {
    if !require_root("seed_policies_are_enforced_on_containers") {
        return;
    }
    let daemon = daemon();
    daemon.ok("POST", "/v1/apps", r#"{"app_name": "web"}"#);
    let web = Container::bound();
    let id = attach(
        &daemon,
        "web",
        &web,
        "IgnoreUnknown=1;K8S_POD_NAME=api-0;label.role=web",
    );
    assert_eq!(
        web.curl("http://198.51.100.10:8080/"),
        "200",
        "no policy: open"
    );
    daemon.ok("POST", "/v1/apps/web/network_policies", SEED_EGRESS);
    assert_eq!(web.curl("http://198.51.100.10/"), "200");
    assert_eq!(
        web.curl("https://api.github.com/"),
        "200",
        "names resolve at the built-in resolver"
    );
    assert_eq!(web.curl("http://[2001:db8::10]/"), "200", "IPv6 parity");
    assert_eq!(
        web.curl("http://198.51.100.10:8080/"),
        REFUSED,
        "live: no restart"
    );
    assert_eq!(web.curl("http://169.254.169.254/"), REFUSED);

    // Selectors match the metadata the runtime passed.
    let by_role = r#"{"name": "web-8080", "selector": {"metadata": {"role": "web", "k8s.pod.name": "api-0"}},
        "rules": [{"action": "allow", "direction": "egress", "ports": [{"protocol": "tcp", "port": 8080}]}]}"#;
    daemon.ok("POST", "/v1/apps/web/network_policies", by_role);
    assert_eq!(
        web.curl("http://198.51.100.10:8080/"),
        "200",
        "selected by metadata"
    );

    // Evaluate and exec, as for every machine.
    let verdict = daemon.ok(
        "POST",
        &format!("/v1/apps/web/machines/{id}/network_policy/evaluate"),
        r#"{"direction": "egress", "protocol": "tcp", "port": 22, "ip": "198.51.100.10"}"#,
    );
    assert_eq!(verdict["verdict"], "deny", "{verdict}");
    let (status, refused) = daemon.api(
        "POST",
        &format!("/v1/apps/web/machines/{id}/exec"),
        Some(r#"{"command": ["true"]}"#),
    );
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused.to_string().contains("exec through the runtime"),
        "{refused}"
    );

    // A custom box policy with domains and CIDRs, from CNI_ARGS.
    daemon.ok("POST", "/v1/apps", r#"{"app_name": "agents"}"#);
    let agent = Container::bound();
    attach(
        &daemon,
        "agents",
        &agent,
        r#"boxfence.policy={"mode": "custom", "allowedDomains": ["api.github.com"], "allowedCidrs": ["104.16.0.0/12"]}"#,
    );
    assert_eq!(agent.curl("https://api.github.com/"), "200");
    assert_ne!(
        agent.curl("http://198.51.100.10/"),
        "200",
        "learned for api.github.com, but asked for by another Host (the SNI/Host check)"
    );
    assert_eq!(agent.curl("http://104.17.0.5/"), "200");
    assert_eq!(agent.curl("https://github.com/"), UNRESOLVED);
    assert_eq!(agent.curl("http://203.0.113.10/"), REFUSED);
}

#[test]
fn a_live_change_cuts_a_containers_open_connection() {
    if !require_root("a_live_change_cuts_a_containers_open_connection") {
        return;
    }
    let daemon = daemon();
    daemon.ok("POST", "/v1/apps", r#"{"app_name": "hold"}"#);
    let container = Container::bound();
    attach(&daemon, "hold", &container, "IgnoreUnknown=1");
    // Sends a line to the lab's echo server every 0.1 s for 20 s, or
    // until the connection fails.
    let script = "import socket,time\n\
                  s=socket.create_connection(('198.51.100.10',9000),timeout=5)\n\
                  end=time.time()+20\n\
                  try:\n\
                  \x20 while time.time()<end:\n\
                  \x20   s.sendall(b'one\\n')\n\
                  \x20   if not s.recv(100): print('cut closed', flush=True); break\n\
                  \x20   print('echo', flush=True); time.sleep(0.1)\n\
                  \x20 else: print('open')\n\
                  except Exception as e: print('cut', type(e).__name__)\n";
    std::thread::scope(|scope| {
        let held = scope.spawn(|| container.exec(&["python3", "-c", script]));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let flows = daemon
                .lab
                .host_exec(["conntrack", "-L", "-p", "tcp", "--dport", "9000"])
                .expect("conntrack");
            if String::from_utf8_lossy(&flows.stdout).contains("ESTABLISHED") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no connection to the echo server"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon.ok("POST", "/v1/apps/hold/network_policies", SEED_EGRESS);
        let out = held.join().expect("held connection");
        let stdout = String::from_utf8_lossy(&out.stdout);
        // Uncut, the program prints `open` after its 20 s.
        assert!(
            stdout.contains("cut"),
            "the open connection was cut: {stdout}"
        );
    });
}
