//! The daemon end to end, in a sealed lab: `boxfence serve` runs in the lab
//! host, the seeds' JSON goes verbatim through its HTTP API, and what a box
//! can reach is checked from inside the box.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use boxfence_lab::require_root;
use serde_json::json;
use support::{Daemon, REFUSED, TOKEN, UNRESOLVED};

/// The seed's curl body, byte for byte.
const SEED_EGRESS: &str = r#"{
    "name": "specific-egress",
    "selector": {
      "all": true
    },
    "rules": [
      {
        "action": "allow",
        "direction": "egress",
        "ports": [
          { "protocol": "tcp", "port": 80 },
          { "protocol": "tcp", "port": 443 }
        ]
      }
    ]
  }"#;

#[test]
fn machines_seed_egress_policy_through_the_api() {
    if !require_root("machines_seed_egress_policy_through_the_api") {
        return;
    }
    let daemon = Daemon::start();
    daemon.ok("POST", "/v1/apps", r#"{"app_name": "my-app-name"}"#);
    let machine = daemon.ok(
        "POST",
        "/v1/apps/my-app-name/machines",
        r#"{"config": {"metadata": {"role": "web"}}}"#,
    );
    let id = machine["id"].as_str().expect("machine id").to_owned();
    let exec = format!("/v1/apps/my-app-name/machines/{id}/exec");
    assert_eq!(
        daemon.curl(&exec, "http://198.51.100.10:8080/"),
        "200",
        "no policy: open"
    );
    daemon.ok("POST", "/v1/apps/my-app-name/network_policies", SEED_EGRESS);
    assert_eq!(daemon.curl(&exec, "http://198.51.100.10/"), "200");
    assert_eq!(daemon.curl(&exec, "https://198.51.100.10/"), "200");
    assert_eq!(
        daemon.curl(&exec, "http://[2001:db8::10]/"),
        "200",
        "IPv6 parity"
    );
    assert_eq!(
        daemon.curl(&exec, "http://198.51.100.10:8080/"),
        REFUSED,
        "live: no restart needed"
    );
    assert_eq!(daemon.curl(&exec, "http://[2001:db8::10]:8080/"), REFUSED);
    assert_eq!(daemon.curl(&exec, "http://169.254.169.254/"), REFUSED);

    // Selectors: by metadata, and by id, follow PATCH of the metadata.
    let only_db = r#"{"name": "db-only", "selector": {"metadata": {"role": "db"}}, "rules": [
        {"action": "allow", "direction": "egress", "ports": [{"protocol": "tcp", "port": 8080}]}]}"#;
    daemon.ok("POST", "/v1/apps/my-app-name/network_policies", only_db);
    assert_eq!(
        daemon.curl(&exec, "http://198.51.100.10:8080/"),
        REFUSED,
        "metadata does not match"
    );
    daemon.ok(
        "PATCH",
        &format!("/v1/apps/my-app-name/machines/{id}/metadata"),
        r#"{"role": "db"}"#,
    );
    assert_eq!(
        daemon.curl(&exec, "http://198.51.100.10:8080/"),
        "200",
        "now selected: union of allows"
    );
    let by_id = json!({"name": "by-id", "selector": {"machines": [{"id": id}]}, "rules": [
        {"action": "allow", "direction": "egress", "ports": [{"protocol": "udp", "port": 5353}]}]});
    daemon.ok(
        "POST",
        "/v1/apps/my-app-name/network_policies",
        &by_id.to_string(),
    );
    let explain = daemon.ok(
        "POST",
        &format!("/v1/apps/my-app-name/machines/{id}/network_policy/evaluate"),
        r#"{"direction": "egress", "protocol": "tcp", "port": 22, "ip": "198.51.100.10"}"#,
    );
    assert_eq!(explain["verdict"], "deny", "{explain}");
    assert_eq!(explain["layer"], "app_policy", "{explain}");
}

#[test]
fn box_seed_examples_through_the_api() {
    if !require_root("box_seed_examples_through_the_api") {
        return;
    }
    let daemon = Daemon::start();
    let created = daemon.ok(
        "POST",
        "/v1/boxes",
        r#"{"runtime": "node", "networkPolicy": {"mode": "custom", "allowedDomains": ["api.github.com", "registry.npmjs.org"]}}"#,
    );
    let id = created["id"].as_str().expect("box id").to_owned();
    let exec = format!("/v1/boxes/{id}/exec");
    let policy = format!("/v1/boxes/{id}/network-policy");
    assert_eq!(daemon.curl(&exec, "https://api.github.com/"), "200");
    assert_eq!(daemon.curl(&exec, "http://registry.npmjs.org/"), "200");
    assert_eq!(daemon.curl(&exec, "https://github.com/"), UNRESOLVED);
    // Learned from api.github.com, but claimed without that name: names
    // are checked (issue 19), and the request is reset.
    let direct = daemon.curl(&exec, "http://198.51.100.10/");
    assert!(["err52", "err56"].contains(&direct.as_str()), "{direct}");

    let shown = daemon.ok("GET", &format!("/v1/boxes/{id}"), "");
    assert_eq!(shown["networkPolicy"]["mode"], "custom");

    daemon.ok("PUT", &policy, r#"{"mode": "custom", "allowedDomains": ["api.github.com", "*.githubusercontent.com"], "allowedCidrs": ["104.16.0.0/12"]}"#);
    assert_eq!(
        daemon.curl(&exec, "http://raw.githubusercontent.com/"),
        "200"
    );
    assert_eq!(
        daemon.curl(&exec, "http://githubusercontent.com/"),
        UNRESOLVED
    );
    assert_eq!(daemon.curl(&exec, "http://104.17.0.5/"), "200");

    daemon.ok("PUT", &policy, r#"{"mode": "deny-all"}"#);
    assert_eq!(daemon.curl(&exec, "http://104.17.0.5/"), REFUSED);
    assert_eq!(
        daemon.curl(&exec, "https://api.github.com/"),
        UNRESOLVED,
        "deny-all refuses DNS too"
    );

    daemon.ok("PUT", &policy, r#"{"mode": "allow-all"}"#);
    assert_eq!(daemon.curl(&exec, "http://203.0.113.10:8080/"), "200");

    daemon.ok("PUT", &policy, r#"{"mode": "custom", "allowedDomains": ["github.com", "*.github.com", "registry.npmjs.org"]}"#);
    assert_eq!(daemon.curl(&exec, "http://github.com/"), "200");
    assert_eq!(daemon.curl(&exec, "https://api.github.com/"), "200");
    assert_eq!(daemon.curl(&exec, "http://evil.example/"), UNRESOLVED);

    daemon.ok(
        "PUT",
        &policy,
        r#"{"mode": "custom", "allowedCidrs": ["104.16.0.0/12"]}"#,
    );
    assert_eq!(daemon.curl(&exec, "http://104.16.120.5/"), "200");
    assert_eq!(daemon.curl(&exec, "http://198.51.100.10/"), REFUSED);

    daemon.ok(
        "PUT",
        &policy,
        r#"{"mode": "custom", "deniedCidrs": ["104.16.120.0/24"]}"#,
    );
    assert_eq!(daemon.curl(&exec, "http://104.16.120.5/"), REFUSED);
    assert_eq!(daemon.curl(&exec, "http://104.17.0.5/"), "200");

    let (status, answer) = daemon.api(
        "PUT",
        &policy,
        Some(r#"{"mode": "custom", "allowedCidrs": ["10.0.0.0/8"]}"#),
    );
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.to_string().contains("always-blocked"),
        "a warning names the entry: {answer}"
    );
    assert_eq!(daemon.curl(&exec, "http://10.0.0.1/"), REFUSED);
}

#[test]
fn sigkill_keeps_enforcing_and_restart_reconciles() {
    if !require_root("sigkill_keeps_enforcing_and_restart_reconciles") {
        return;
    }
    let daemon = Daemon::start();
    let id = daemon.create_box(r#"{"mode": "custom", "allowedCidrs": ["104.16.0.0/12"]}"#);
    let exec = format!("/v1/boxes/{id}/exec");
    assert_eq!(daemon.curl(&exec, "http://104.17.0.5/"), "200");
    // A second daemon on the same state refuses to start, naming the
    // first, and leaves the first one's box alone.
    let config = support::config_path(&daemon.lab).display().to_string();
    let second = daemon
        .lab
        .host_exec([env!("CARGO_BIN_EXE_boxfence"), "serve", "--config", &config])
        .expect("second daemon runs");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{stderr}");
    let holder = format!("in use by another boxfence daemon (pid {})", daemon.pid());
    assert!(stderr.contains(&holder), "{stderr}");
    assert_eq!(daemon.curl(&exec, "http://104.17.0.5/"), "200");
    daemon.kill();
    // Without the daemon, reach into the box as root to see the kernel
    // still enforce the last-applied rules.
    let netns = format!("--net=/run/netns/{}{id}", daemon.lab.namespace_prefix());
    let curl = |url: &str| {
        let out = std::process::Command::new("nsenter")
            .args([
                netns.as_str(),
                "curl",
                "-s",
                "-m",
                "3",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                url,
            ])
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(curl("http://104.17.0.5/"), "200");
    assert_ne!(
        curl("http://198.51.100.10/"),
        "200",
        "still denied while the daemon is down"
    );
    daemon.spawn();
    assert_eq!(
        daemon.curl(&exec, "http://104.17.0.5/"),
        "200",
        "adopted after restart"
    );
    assert_eq!(daemon.curl(&exec, "http://198.51.100.10/"), REFUSED);
}

#[test]
fn ingress_rules_and_run_without_a_daemon() {
    if !require_root("ingress_rules_and_run_without_a_daemon") {
        return;
    }
    let daemon = Daemon::start();
    daemon.ok("POST", "/v1/apps", r#"{"app_name": "web"}"#);
    let machine = daemon.ok(
        "POST",
        "/v1/apps/web/machines",
        r#"{"config": {"metadata": {}}}"#,
    );
    let id = machine["id"].as_str().expect("id").to_owned();
    let answer = machine.to_string();
    let address = answer
        .split('"')
        .find(|part| part.starts_with("10.200."))
        .expect("machine address in the answer")
        .to_owned();
    daemon.ok("POST", "/v1/apps/web/network_policies", r#"{"name": "in", "selector": {"all": true}, "rules": [
        {"action": "allow", "direction": "ingress", "ports": [{"protocol": "tcp", "port": 8080}]}]}"#);
    // The servers run in the background of the box (its processes outlive
    // the exec that started them); the checks start once both listen
    // (natively within 0.2 s; under emulation, in the kernel matrix's VMs,
    // the box's Python took more than the 2 s this test once slept).
    let exec = format!("/v1/apps/web/machines/{id}/exec");
    let servers =
        "for port in 8080 8081; do python3 -m http.server $port -b 0.0.0.0 >/dev/null 2>&1 & done";
    daemon.ok(
        "POST",
        &exec,
        &json!({"command": ["sh", "-c", servers]}).to_string(),
    );
    let listening = || {
        let out = daemon.ok(
            "POST",
            &exec,
            &json!({"command": ["ss", "-Htln"]}).to_string(),
        );
        let listed = out["stdout"].as_str().unwrap_or_default().to_owned();
        [":8080 ", ":8081 "]
            .iter()
            .all(|port| listed.contains(port))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !listening() {
        assert!(
            Instant::now() < deadline,
            "the box's servers listen within 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let from_internet = |port: u16| {
        daemon
            .lab
            .internet_curl(&format!("http://{address}:{port}/"))
            .expect("curl")
    };
    assert_eq!(from_internet(8080), "200");
    assert_ne!(from_internet(8081), "200");

    let run = daemon
        .lab
        .host_exec([
            env!("CARGO_BIN_EXE_boxfence"), "run", "--exempt-cidr", "198.51.100.0/24", "--exempt-cidr", "2001:db8::/32",
            "--upstream-dns", "198.51.100.53", "--allow-domain", "api.github.com", "--",
            "sh", "-c", "curl -s -o /dev/null -w '%{http_code}' https://api.github.com/ -k -m 5; echo; curl -s -m 3 http://203.0.113.10/ || echo refused",
        ])
        .expect("boxfence run");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.starts_with("200"),
        "run allows the allowed name: {stdout} {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("refused"), "and nothing else: {stdout}");
    let leftovers = daemon
        .lab
        .host_exec(["nft", "list", "tables"])
        .expect("nft");
    assert!(
        !String::from_utf8_lossy(&leftovers.stdout).contains("boxfence_run"),
        "run cleans up its table"
    );
}

#[test]
fn flow_log_api_stream_metrics_and_cli() {
    if !require_root("flow_log_api_stream_metrics_and_cli") {
        return;
    }
    let daemon = Daemon::start();
    let (soft, hard) = daemon.open_file_limits();
    assert_eq!(
        soft, hard,
        "started at 1024, the daemon raised its own limit"
    );
    let id = daemon.create_box(r#"{"mode": "custom", "allowedCidrs": ["104.16.0.0/12"]}"#);
    let exec = format!("/v1/boxes/{id}/exec");
    assert_eq!(daemon.curl(&exec, "http://198.51.100.10/"), REFUSED);
    let events = daemon.flows(&id, "deny", 1);
    let event = events.first().expect("a denial logged");
    assert_eq!(event["layer"], "box_policy", "{events:?}");
    assert_eq!(
        event["reason"], "box policy custom: not in allowedDomains/allowedCidrs",
        "{events:?}"
    );
    assert_eq!(event["dst"], "198.51.100.10");
    assert_eq!(event["app"], "default");
    let (status, bad) = daemon.api("GET", &format!("/v1/boxes/{id}/flows?verdict=maybe"), None);
    assert_eq!(status, 400, "{bad}");

    // Allowed connections are logged only when asked.
    let flow_log = format!("/v1/boxes/{id}/flow-log");
    let (status, bad) = daemon.api("PUT", &flow_log, Some(r#"{"logAllowed": "yes"}"#));
    assert_eq!(status, 400, "{bad}");
    assert_eq!(bad["error"]["details"][0]["path"], "logAllowed", "{bad}");
    assert_eq!(daemon.curl(&exec, "http://104.17.0.5/"), "200");
    daemon.ok("PUT", &flow_log, r#"{"logAllowed": true}"#);
    assert_eq!(daemon.curl(&exec, "http://104.17.0.5:8080/"), "200");
    let allowed = daemon.flows(&id, "allow", 1);
    assert_eq!(
        allowed.len(),
        1,
        "only the connection made after turning it on: {allowed:?}"
    );
    assert_eq!(allowed[0]["dport"], 8080);
    assert_eq!(allowed[0]["reason"], "no app policy has egress rules");

    // The live stream: history first, then a new denial within a second.
    let mut stream = daemon
        .lab
        .host_command([
            "curl",
            "-sN",
            "-m",
            "15",
            "-H",
            &format!("Authorization: Bearer {TOKEN}"),
            &format!("http://127.0.0.1:4280/v1/boxes/{id}/flows?follow=true"),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("sse client");
    let stdout = stream.stdout.take().expect("stdout");
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send((Instant::now(), line)).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(daemon.curl(&exec, "http://203.0.113.10/"), REFUSED);
    let denied_at = Instant::now();
    let arrived = loop {
        let (at, line) = received
            .recv_timeout(Duration::from_secs(3))
            .expect("the stream delivers the new event");
        if line.contains("203.0.113.10") {
            break at;
        }
    };
    assert!(
        arrived.saturating_duration_since(denied_at) < Duration::from_secs(1),
        "within 1 s"
    );
    let _ = stream.kill();
    let _ = stream.wait();

    let metrics = daemon
        .lab
        .host_exec([
            "curl",
            "-s",
            "-H",
            &format!("Authorization: Bearer {TOKEN}"),
            "http://127.0.0.1:4280/metrics",
        ])
        .expect("metrics");
    let text = String::from_utf8_lossy(&metrics.stdout).into_owned();
    let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("Prometheus text");
    let denied = parsed
        .samples
        .iter()
        .find(|s| {
            s.metric == "boxfence_box_denied_packets_total"
                && s.labels.get("machine") == Some(id.as_str())
        })
        .expect("a denied counter for the box");
    assert!(
        matches!(denied.value, prometheus_parse::Value::Counter(v) if v >= 2.0),
        "{text}"
    );

    let logs = daemon
        .lab
        .host_command([env!("CARGO_BIN_EXE_boxfence"), "logs", &id])
        .env("BOXFENCE_URL", "http://127.0.0.1:4280")
        .env("BOXFENCE_TOKEN", TOKEN)
        .output()
        .expect("boxfence logs");
    let printed = String::from_utf8_lossy(&logs.stdout);
    assert!(
        printed.contains("denied: egress tcp 198.51.100.10:80 — box policy custom: not in allowedDomains/allowedCidrs"),
        "{printed} {}",
        String::from_utf8_lossy(&logs.stderr)
    );
}
