//! End to end, in a sealed lab: boxes made by the Linux engine, policies
//! enforced by the lab host's kernel, seen from inside the box.
//!
//! This test binary is also the engine's exec helper (as the `boxfence`
//! binary is in production), so it has its own `main`: the helper
//! subcommands must run before any thread exists.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use boxfence_dataplane::HostNetns;
use boxfence_dataplane::exec::{HELPER_SUBCOMMAND, INIT_SUBCOMMAND, helper_main, init_main};
use boxfence_engine::{
    AddressPool, Engine, ExecOutput, ExecRequest, LinuxConfig, LinuxEngine, MachineAddresses,
    MachineSpec, ResolverHandle, SharedLinuxEngine,
};
use boxfence_lab::{
    CDN_INSIDE_DENIED_V4, CDN_OUTSIDE_DENIED_V4, LAB_HOST_V4, Lab, LabDns, SERVER_V4, SERVER_V6,
    require_root,
};
use boxfence_policy::{
    AlwaysBlocked, AppPolicy, BoxPolicy, EffectivePolicy, FlowEvent, FlowEventKind, Layer, Machine,
};
use boxfence_resolver::answer::TtlLimits;
use serde_json::{Value, json};

#[path = "support/lab_config.rs"]
mod lab_config;
use lab_config::lab_config;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some(HELPER_SUBCOMMAND) => std::process::exit(helper_main(&args[2..])),
        Some(INIT_SUBCOMMAND) => std::process::exit(init_main(&args[2..])),
        _ => {}
    }
    let filters: Vec<&String> = args[1..].iter().filter(|a| !a.starts_with('-')).collect();
    let tests: &[(&str, Test)] = &[
        (
            "seed_egress_policy_allows_http_and_https_only",
            seed_egress_policy_allows_http_and_https_only,
        ),
        (
            "box_cidrs_with_denied_precedence",
            box_cidrs_with_denied_precedence,
        ),
        ("deny_all_and_allow_all", deny_all_and_allow_all),
        (
            "private_ranges_refused_even_when_allowed",
            private_ranges_refused_even_when_allowed,
        ),
        (
            "live_update_cuts_an_open_connection",
            live_update_cuts_an_open_connection,
        ),
        (
            "a_later_update_cuts_a_flow_an_earlier_one_kept",
            a_later_update_cuts_a_flow_an_earlier_one_kept,
        ),
        (
            "deleting_a_box_flushes_its_flows",
            deleting_a_box_flushes_its_flows,
        ),
        (
            "a_box_whose_elements_were_removed_is_still_deleted_whole",
            a_box_whose_elements_were_removed_is_still_deleted_whole,
        ),
        ("spoofed_source_is_dropped", spoofed_source_is_dropped),
        (
            "flushed_ruleset_fails_closed_until_repaired",
            flushed_ruleset_fails_closed_until_repaired,
        ),
        ("box_processes_cannot_escape", box_processes_cannot_escape),
        (
            "ingress_rules_and_deny_all_inbound",
            ingress_rules_and_deny_all_inbound,
        ),
        (
            "resolver_seed_domains_and_no_leak",
            resolver_seed_domains_and_no_leak,
        ),
        (
            "resolver_wildcards_cidrs_and_no_direct_ip",
            resolver_wildcards_cidrs_and_no_direct_ip,
        ),
        (
            "resolver_rebinding_and_hardcoded_servers",
            resolver_rebinding_and_hardcoded_servers,
        ),
        (
            "resolver_expiry_keeps_open_connections",
            resolver_expiry_keeps_open_connections,
        ),
        (
            "app_rule_domains_allow_that_name_and_port_only",
            app_rule_domains_allow_that_name_and_port_only,
        ),
        ("deny_all_refuses_every_query", deny_all_refuses_every_query),
        (
            "restart_adopts_boxes_and_removes_stale_ones",
            restart_adopts_boxes_and_removes_stale_ones,
        ),
        ("altered_rules_are_repaired", altered_rules_are_repaired),
        (
            "an_alteration_right_after_a_change_is_repaired",
            an_alteration_right_after_a_change_is_repaired,
        ),
        (
            "every_denial_has_an_event_with_its_reason",
            every_denial_has_an_event_with_its_reason,
        ),
        (
            "a_flood_of_denials_stays_bounded",
            a_flood_of_denials_stays_bounded,
        ),
        ("metrics_count_what_happens", metrics_count_what_happens),
        (
            "allowed_connections_are_logged_when_asked",
            allowed_connections_are_logged_when_asked,
        ),
        (
            "removing_a_domain_cuts_its_flows",
            removing_a_domain_cuts_its_flows,
        ),
        (
            "upstream_failover_and_malformed_queries",
            upstream_failover_and_malformed_queries,
        ),
    ];
    if !require_root("linux_e2e") {
        return;
    }
    let mut failed = Vec::new();
    for &(name, test) in tests {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(|| {
            let rig = Rig::new();
            test(&rig);
        });
        let verdict = if outcome.is_ok() { "ok" } else { "FAILED" };
        println!("test {name} ... {verdict} ({:.1?})", started.elapsed());
        if outcome.is_err() {
            failed.push(name);
        }
    }
    if !failed.is_empty() {
        println!("failed: {failed:?}");
        std::process::exit(1);
    }
}

/// One end-to-end test.
type Test = fn(&Rig);

/// A lab with a Linux engine and its resolver running in its host
/// namespace, and the lab's DNS server upstream. Field order is drop order.
struct Rig {
    _resolver: ResolverHandle,
    dns: LabDns,
    engine: Arc<LinuxEngine>,
    runtime: tokio::runtime::Runtime,
    lab: Lab,
    pool: AddressPool,
    blocked: Arc<AlwaysBlocked>,
}

impl Rig {
    fn new() -> Self {
        let lab = Lab::new().expect("lab comes up");
        let config = Self::config(&lab);
        let (pool, blocked) = (config.pool, Arc::clone(&config.always_blocked));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let engine = runtime
            .block_on(async { LinuxEngine::start(config) })
            .expect("engine starts");
        lab.route_to_host(&pool.ipv4.to_string())
            .expect("route to boxes");
        lab.route_to_host(&pool.ipv6.to_string())
            .expect("route to boxes");
        let dns = LabDns::start(&lab, 1).expect("lab DNS answers");
        let upstreams = vec![
            "198.51.100.53:53".parse().expect("addr"),
            "[2001:db8::53]:53".parse().expect("addr"),
        ];
        let ttl = TtlLimits {
            ceiling: Duration::from_secs(300),
            floor: Duration::from_secs(3),
            grace: Duration::from_secs(2),
        };
        let resolver = engine
            .spawn_resolver(
                upstreams,
                Duration::from_secs(2),
                ttl,
                boxfence_engine::QUERY_RATE_PER_BOX,
            )
            .expect("resolver starts");
        Self {
            _resolver: resolver,
            dns,
            engine,
            runtime,
            lab,
            pool,
            blocked,
        }
    }

    /// The engine configuration for `lab`.
    fn config(lab: &Lab) -> LinuxConfig {
        lab_config(lab, HostNetns::at(lab.host_netns_path()))
    }

    /// Creates box `id` with a box policy and app policies.
    fn create(&self, id: &str, box_policy: Value, app_policies: &[Value]) -> MachineSpec {
        let used: HashSet<_> = self.engine.used_addresses();
        let addresses = self.pool.allocate(&used).expect("free address");
        let spec = MachineSpec {
            id: id.into(),
            addresses,
        };
        let policy = self.effective(&spec, box_policy, app_policies);
        self.runtime
            .block_on(SharedLinuxEngine(Arc::clone(&self.engine)).create_machine(&spec, &policy))
            .expect("box created");
        spec
    }

    fn effective(
        &self,
        spec: &MachineSpec,
        box_policy: Value,
        app_policies: &[Value],
    ) -> EffectivePolicy {
        let MachineAddresses { ipv4, ipv6 } = spec.addresses;
        let machine = Machine {
            id: spec.id.clone(),
            metadata: Default::default(),
            network_policy: BoxPolicy::from_json(&box_policy).expect("box policy"),
            addresses: vec![ipv4.into(), ipv6.into()],
        };
        let policies: Vec<AppPolicy> = app_policies
            .iter()
            .map(|p| AppPolicy::from_json(p).expect("policy"))
            .collect();
        EffectivePolicy::from_policies(&machine, &policies, Arc::clone(&self.blocked))
    }

    fn update(&self, spec: &MachineSpec, box_policy: Value, app_policies: &[Value]) {
        let policy = self.effective(spec, box_policy, app_policies);
        self.runtime
            .block_on(SharedLinuxEngine(Arc::clone(&self.engine)).apply(&[policy]))
            .expect("policy applied");
    }

    fn exec(&self, spec: &MachineSpec, argv: &[&str]) -> ExecOutput {
        let request = ExecRequest {
            command: argv.iter().map(|s| (*s).to_owned()).collect(),
            stdin: None,
            timeout: Some(Duration::from_secs(20)),
        };
        self.runtime
            .block_on(SharedLinuxEngine(Arc::clone(&self.engine)).exec(&spec.id, &request))
            .expect("exec runs")
    }

    /// What curl in the box gets from `url`: the HTTP status, or
    /// `err<curl exit code>`.
    fn curl(&self, spec: &MachineSpec, url: &str) -> String {
        let out = self.exec(
            spec,
            &[
                "curl",
                "-sk",
                "-m",
                "5",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                url,
            ],
        );
        if out.exit_code == 126 || out.exit_code == 127 {
            eprintln!("exec failed: {}", out.stderr);
        }
        if out.exit_code == 0 {
            out.stdout
        } else {
            format!("err{}", out.exit_code)
        }
    }

    fn host(&self, argv: &[&str]) -> Output {
        self.lab.host_exec(argv).expect("runs in lab host")
    }

    fn box_netns(&self, spec: &MachineSpec) -> PathBuf {
        self.engine.netns_path(&spec.id)
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Err(error) = self.engine.shutdown() {
            eprintln!("engine shutdown: {error}");
        }
    }
}

/// curl exit codes meaning the connection was refused or unreachable at
/// once (7), not that it timed out (28).
const REFUSED: &str = "err7";

/// Sends one datagram to the lab's UDP echo server from the box: `echo`
/// when it came back, `no echo` when not.
fn udp_echo(rig: &Rig, spec: &MachineSpec) -> String {
    let script = format!(
        "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(2)\n\
         s.sendto(b'ping',('{SERVER_V4}',5353))\n\
         try: print('echo' if s.recv(100)==b'ping' else 'other')\n\
         except Exception: print('no echo')\n"
    );
    rig.exec(spec, &["python3", "-c", &script])
        .stdout
        .trim()
        .to_owned()
}

fn seed_egress_policy() -> Value {
    json!({"name": "specific-egress", "selector": {"all": true}, "rules": [
        {"action": "allow", "direction": "egress",
         "ports": [{"protocol": "tcp", "port": 80}, {"protocol": "tcp", "port": 443}]}]})
}

fn seed_egress_policy_allows_http_and_https_only(rig: &Rig) {
    let b = rig.create(
        "seed1",
        json!({"mode": "allow-all"}),
        &[seed_egress_policy()],
    );
    assert_eq!(rig.curl(&b, &format!("http://{SERVER_V4}/")), "200");
    assert_eq!(rig.curl(&b, &format!("https://{SERVER_V4}/")), "200");
    assert_eq!(
        rig.curl(&b, &format!("http://[{SERVER_V6}]/")),
        "200",
        "IPv6 parity"
    );
    assert_eq!(rig.curl(&b, &format!("http://{SERVER_V4}:8080/")), REFUSED);
    assert_eq!(
        rig.curl(&b, &format!("http://[{SERVER_V6}]:8080/")),
        REFUSED
    );
    assert_eq!(udp_echo(rig, &b), "no echo", "UDP 5353 is not allowed");
}

fn box_cidrs_with_denied_precedence(rig: &Rig) {
    let policy = json!({"mode": "custom", "allowedCidrs": ["104.16.0.0/12"], "deniedCidrs": ["104.16.120.0/24"]});
    let b = rig.create("cidr1", policy, &[]);
    assert_eq!(
        rig.curl(&b, &format!("http://{CDN_OUTSIDE_DENIED_V4}/")),
        "200"
    );
    assert_eq!(
        rig.curl(&b, &format!("http://{CDN_INSIDE_DENIED_V4}/")),
        REFUSED
    );
    assert_eq!(rig.curl(&b, &format!("http://{SERVER_V4}/")), REFUSED);
}

fn deny_all_and_allow_all(rig: &Rig) {
    let b = rig.create("deny1", json!({"mode": "deny-all"}), &[]);
    assert_eq!(rig.curl(&b, &format!("http://{SERVER_V4}/")), REFUSED);
    assert_eq!(rig.curl(&b, &format!("http://[{SERVER_V6}]/")), REFUSED);
    assert_eq!(udp_echo(rig, &b), "no echo");
    rig.update(&b, json!({"mode": "allow-all"}), &[]);
    assert_eq!(rig.curl(&b, &format!("http://{SERVER_V4}:8080/")), "200");
    assert_eq!(udp_echo(rig, &b), "echo", "UDP works when allowed");
}

fn private_ranges_refused_even_when_allowed(rig: &Rig) {
    let everything = json!({"mode": "custom", "allowedCidrs": ["0.0.0.0/0", "::/0"]});
    let b = rig.create("priv1", everything, &[]);
    for url in [
        "http://169.254.169.254/",
        "http://10.0.0.1/",
        "http://[::ffff:10.0.0.1]/",
        "http://[fd00::1]/",
        "http://192.0.2.254/",
    ] {
        assert_eq!(rig.curl(&b, url), REFUSED, "{url}");
    }
    assert_eq!(
        rig.curl(&b, &format!("http://{SERVER_V4}/")),
        "200",
        "exempted documentation range"
    );
    let other = rig.create("priv2", json!({"mode": "allow-all"}), &[]);
    let other_ip = other.addresses.ipv4;
    assert_eq!(
        rig.curl(&b, &format!("http://{other_ip}/")),
        REFUSED,
        "a box never reaches another"
    );
    let gateway = rig.pool.gateways().ipv4;
    assert_eq!(
        rig.curl(&b, &format!("http://{gateway}:22/")),
        REFUSED,
        "nor the host"
    );
}

fn live_update_cuts_an_open_connection(rig: &Rig) {
    let deny = json!({"mode": "custom", "deniedCidrs": ["198.51.100.0/24"]});
    held_connection_is_cut(rig, "live1", &[deny]);
}

/// The first update finds the open connection in conntrack and keeps it
/// (still allowed); no new flow starts, so the second update checks the
/// flow the first one found instead of walking conntrack, and must cut it.
fn a_later_update_cuts_a_flow_an_earlier_one_kept(rig: &Rig) {
    let still_allowed = json!({"mode": "custom", "deniedCidrs": ["203.0.113.0/24"]});
    let deny = json!({"mode": "custom", "deniedCidrs": ["198.51.100.0/24"]});
    held_connection_is_cut(rig, "live2", &[still_allowed, deny]);
}

/// Opens a connection from a new allow-all box to the hold server, proves
/// it works, applies `updates` in turn while it is open, then checks that
/// the connection was cut and new ones are refused.
fn held_connection_is_cut(rig: &Rig, id: &str, updates: &[serde_json::Value]) {
    let b = rig.create(id, json!({"mode": "allow-all"}), &[]);
    let script = format!(
        "import socket,time\n\
         s=socket.create_connection(('{SERVER_V4}',9000),timeout=5)\n\
         s.sendall(b'one\\n'); print(s.recv(100).decode().strip(), flush=True)\n\
         time.sleep(3)\n\
         try:\n  s.sendall(b'two\\n'); r=s.recv(100); print('after', r.decode().strip() or 'closed')\n\
         except Exception as e: print('after cut', type(e).__name__)\n"
    );
    std::thread::scope(|scope| {
        let held = scope.spawn(|| rig.exec(&b, &["python3", "-c", &script]));
        std::thread::sleep(Duration::from_millis(1500));
        for update in updates {
            rig.update(&b, update.clone(), &[]);
        }
        let out = held.join().expect("exec thread");
        assert!(
            out.stdout.starts_with("one"),
            "connection worked before: {out:?}"
        );
        assert!(
            !out.stdout.contains("after two"),
            "connection must be cut: {out:?}"
        );
    });
    assert_eq!(rig.curl(&b, &format!("http://{SERVER_V4}/")), REFUSED);
}

/// Someone removed one of the box's elements, so the kernel refuses the
/// delete batch (`ENOENT`): the engine rebuilds the table without the box
/// rather than leave its chains behind.
fn a_box_whose_elements_were_removed_is_still_deleted_whole(rig: &Rig) {
    let b = rig.create("gone1", json!({"mode": "allow-all"}), &[]);
    let element = format!("{{ {} }}", b.addresses.ipv4);
    let removed = rig.host(&[
        "nft", "delete", "element", "inet", "boxfence", "in4", &element,
    ]);
    assert!(removed.status.success(), "{removed:?}");
    rig.runtime
        .block_on(SharedLinuxEngine(Arc::clone(&rig.engine)).delete_machine(&b.id))
        .expect("delete");
    let out = rig.host(&["nft", "list", "table", "inet", "boxfence"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("chain prerouting_filter"),
        "the table is there: {table}"
    );
    assert!(
        !table.contains("b_gone1"),
        "nothing of the box is left: {table}"
    );
}

fn deleting_a_box_flushes_its_flows(rig: &Rig) {
    let b = rig.create("ctflush1", json!({"mode": "allow-all"}), &[]);
    assert_eq!(rig.curl(&b, &format!("http://{SERVER_V4}/")), "200");
    let ip = b.addresses.ipv4.to_string();
    // A finished TCP connection stays tracked (TIME_WAIT) for two minutes.
    let tracked = || {
        let out = rig.host(&["conntrack", "-L", "-s", &ip]);
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    assert!(tracked() >= 1, "the box's connection is tracked");
    // In the box's own conntrack zone (set on its device, before conntrack).
    let listed = rig.host(&["conntrack", "-L", "-s", &ip]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed
            .lines()
            .all(|flow| flow.contains("zone-orig=") && !flow.contains("zone-orig=0 ")),
        "{listed}"
    );
    rig.runtime
        .block_on(SharedLinuxEngine(Arc::clone(&rig.engine)).delete_machine(&b.id))
        .expect("delete");
    assert_eq!(tracked(), 0, "no flow of a deleted box outlives it");
}

fn spoofed_source_is_dropped(rig: &Rig) {
    let b = rig.create("spoof1", json!({"mode": "allow-all"}), &[]);
    let netns = format!("--net={}", rig.box_netns(&b).display());
    let in_box = |argv: &[&str]| {
        std::process::Command::new("nsenter")
            .arg(&netns)
            .args(argv)
            .output()
            .expect("nsenter")
    };
    let send_from = |source: &str| {
        let url = format!("http://{SERVER_V4}/");
        in_box(&["curl", "-s", "-m", "2", "--interface", source, &url])
    };
    // Dropped before conntrack, or never confirmed: no flow state.
    let tracked = |source: &str| {
        let listed = rig.host(&["conntrack", "-L", "-s", source]);
        String::from_utf8_lossy(&listed.stdout).lines().count()
    };
    // As root from outside (a box process has no capability to do this),
    // give the box a second address and send from it: one in the pool
    // (another box's, as far as the box knows) and one outside it, which
    // the fail-closed routing rules alone would let through.
    for spoofed in ["10.200.9.9", "192.0.2.9"] {
        let added = in_box(&["ip", "addr", "add", &format!("{spoofed}/32"), "dev", "eth0"]);
        assert!(added.status.success(), "{added:?}");
        let sent = send_from(spoofed);
        assert!(
            !sent.status.success(),
            "a spoofed source must not get through: {sent:?}"
        );
        let source: std::net::IpAddr = spoofed.parse().expect("ip");
        let events = events_until(rig, &b, |e| e.src == Some(source));
        let event = events
            .iter()
            .find(|e| e.src == Some(source))
            .unwrap_or_else(|| panic!("an event for {spoofed}: {events:#?}"));
        assert_eq!(event.layer, Some(Layer::AntiSpoof), "{event:#?}");
        assert_eq!(
            event.reason,
            format!("source {spoofed} is not the box's address")
        );
        assert_eq!(tracked(spoofed), 0, "{spoofed} left flow state");
    }
    // Should the box's device chain be gone (until the watchdog puts it
    // back), what the box sends is refused, not judged with any source.
    rig.engine.while_locked(|| {
        let deleted = rig.host(&[
            "nft",
            "delete",
            "chain",
            "inet",
            "boxfence",
            "b_spoof1_link",
        ]);
        assert!(deleted.status.success(), "{deleted:?}");
        assert!(!send_from("192.0.2.9").status.success());
        assert_eq!(tracked("192.0.2.9"), 0, "an unproved source was judged");
    });
    rig.engine.repair().expect("the table is restored");
    assert_eq!(
        rig.curl(&b, &format!("http://{SERVER_V4}/")),
        "200",
        "its own address still works"
    );
}

fn flushed_ruleset_fails_closed_until_repaired(rig: &Rig) {
    let b = rig.create("flush1", json!({"mode": "allow-all"}), &[]);
    assert_eq!(rig.curl(&b, &format!("http://{SERVER_V4}/")), "200");
    // The watchdog repairs within a second or two; hold the engine's lock
    // so it cannot while the flushed state is checked.
    rig.engine.while_locked(|| {
        let flushed = rig.host(&["nft", "flush", "ruleset"]);
        assert!(flushed.status.success());
        let out = rig
            .lab
            .host_exec([
                "nsenter",
                &format!("--net={}", rig.box_netns(&b).display()),
                "curl",
                "-s",
                "-m",
                "3",
                "-o",
                "/dev/null",
                &format!("http://{SERVER_V4}/"),
            ])
            .expect("curl");
        assert!(
            !out.status.success(),
            "with no ruleset, box traffic must be denied: {out:?}"
        );
        let inbound = rig
            .lab
            .internet_exec([
                "curl",
                "-s",
                "-m",
                "3",
                &format!("http://{}/", b.addresses.ipv4),
            ])
            .expect("curl");
        assert!(
            !inbound.status.success(),
            "nor may anything reach the box: {inbound:?}"
        );
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    while rig.curl(&b, &format!("http://{SERVER_V4}/")) != "200" {
        assert!(
            Instant::now() < deadline,
            "the watchdog did not restore the ruleset"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn box_processes_cannot_escape(rig: &Rig) {
    let b = rig.create("esc1", json!({"mode": "allow-all"}), &[]);
    let id = rig.exec(&b, &["id", "-u"]);
    assert_eq!(
        id.stdout.trim(),
        format!("{}", 200_000 + u32::from(b.addresses.ipv4.octets()[3]))
    );
    let caps = rig.exec(
        &b,
        &["grep", "-E", "^Cap(Prm|Eff|Bnd|Amb)", "/proc/self/status"],
    );
    assert!(
        caps.stdout.lines().all(|l| l.ends_with("0000000000000000")),
        "{caps:?}"
    );
    let escape = rig.exec(&b, &["nsenter", "-t", "1", "-n", "true"]);
    assert_ne!(escape.exit_code, 0, "nsenter must fail: {escape:?}");
    let nft = rig.exec(&b, &["nft", "list", "ruleset"]);
    assert_ne!(nft.exit_code, 0, "no access to rules: {nft:?}");
    let pid1 = rig.exec(&b, &["sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'"]);
    assert_eq!(
        pid1.stdout.lines().next(),
        Some("1"),
        "own pid namespace: {pid1:?}"
    );
    let resolv = rig.exec(&b, &["cat", "/etc/resolv.conf"]);
    assert!(
        resolv
            .stdout
            .contains(&format!("nameserver {}", rig.pool.gateways().ipv4)),
        "{resolv:?}"
    );

    // A unix socket a host process listens on is out of reach.
    let socket = rig.lab.workdir().join("host.sock");
    let _ = std::fs::remove_file("/tmp/boxfence-e2e-host.sock");
    let listener =
        std::os::unix::net::UnixListener::bind("/tmp/boxfence-e2e-host.sock").expect("bind");
    let reach = rig.exec(&b, &["python3", "-c", "import socket; s=socket.socket(socket.AF_UNIX); s.connect('/tmp/boxfence-e2e-host.sock'); print('connected')"]);
    assert!(!reach.stdout.contains("connected"), "{reach:?}");
    drop(listener);
    let _ = std::fs::remove_file("/tmp/boxfence-e2e-host.sock");
    let _ = socket;

    let timed = rig
        .runtime
        .block_on(SharedLinuxEngine(Arc::clone(&rig.engine)).exec(
            &b.id,
            &ExecRequest {
                command: vec!["sh".into(), "-c".into(), "sleep 30 & sleep 30".into()],
                stdin: None,
                timeout: Some(Duration::from_millis(500)),
            },
        ))
        .expect("exec");
    assert_eq!(timed.exit_code, boxfence_dataplane::exec::TIMED_OUT);
}

fn ingress_rules_and_deny_all_inbound(rig: &Rig) {
    let inbound = json!({"name": "web-in", "selector": {"all": true}, "rules": [
        {"action": "allow", "direction": "ingress", "ports": [{"protocol": "tcp", "port": 8080}]}]});
    let b = rig.create(
        "in1",
        json!({"mode": "allow-all"}),
        std::slice::from_ref(&inbound),
    );
    let ip = b.addresses.ipv4;
    let from_internet = |port: u16| {
        let out = rig
            .lab
            .internet_exec([
                "curl",
                "-s",
                "-m",
                "3",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &format!("http://{ip}:{port}/"),
            ])
            .expect("curl");
        if out.status.success() {
            String::from_utf8_lossy(&out.stdout).into_owned()
        } else {
            format!("err{}", out.status.code().unwrap_or(-1))
        }
    };
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let request = ExecRequest {
                command: ["sh", "-c", "python3 -m http.server 8080 -b 0.0.0.0 & python3 -m http.server 8081 -b 0.0.0.0"]
                    .map(String::from)
                    .to_vec(),
                stdin: None,
                timeout: Some(Duration::from_secs(6)),
            };
            rig.runtime.block_on(SharedLinuxEngine(Arc::clone(&rig.engine)).exec(&b.id, &request))
        });
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(from_internet(8080), "200", "the ingress rule allows 8080");
        assert_eq!(from_internet(8081), REFUSED, "no rule allows 8081");
        rig.update(
            &b,
            json!({"mode": "deny-all"}),
            std::slice::from_ref(&inbound),
        );
        assert_eq!(
            from_internet(8080),
            REFUSED,
            "deny-all refuses inbound connections too"
        );
    });
}

/// curl's exit code when the name did not resolve.
const UNRESOLVED: &str = "err6";

fn dig(rig: &Rig, spec: &MachineSpec, args: &[&str]) -> String {
    let mut argv = vec!["dig", "+time=2", "+tries=1"];
    argv.extend_from_slice(args);
    rig.exec(spec, &argv).stdout
}

fn resolver_seed_domains_and_no_leak(rig: &Rig) {
    let policy =
        json!({"mode": "custom", "allowedDomains": ["api.github.com", "registry.npmjs.org"]});
    let b = rig.create("dns1", policy, &[]);
    assert_eq!(rig.curl(&b, "https://api.github.com/"), "200");
    assert_eq!(rig.curl(&b, "http://registry.npmjs.org/"), "200");
    assert_eq!(rig.curl(&b, "https://github.com/"), UNRESOLVED);
    let refused = dig(rig, &b, &["github.com"]);
    assert!(refused.contains("status: REFUSED"), "{refused}");
    assert!(refused.contains("EDE: 18 (Prohibited)"), "{refused}");
    assert!(
        rig.dns.was_asked("api.github.com"),
        "allowed names go upstream"
    );
    assert!(
        !rig.dns.was_asked("github.com"),
        "a denied name never reaches upstream: {}",
        rig.dns.queries()
    );
}

fn resolver_wildcards_cidrs_and_no_direct_ip(rig: &Rig) {
    let policy = json!({"mode": "custom", "allowedDomains": ["api.github.com", "*.githubusercontent.com"], "allowedCidrs": ["104.16.0.0/12"]});
    let b = rig.create("dns2", policy, &[]);
    assert_eq!(
        rig.curl(&b, &format!("http://{SERVER_V4}/")),
        REFUSED,
        "an allowed name's address before resolving it"
    );
    assert_eq!(rig.curl(&b, "http://raw.githubusercontent.com/"), "200");
    assert_eq!(
        rig.curl(&b, "http://githubusercontent.com/"),
        UNRESOLVED,
        "never the apex"
    );
    assert_eq!(
        rig.curl(&b, &format!("http://{CDN_OUTSIDE_DENIED_V4}/")),
        "200",
        "allowedCidrs"
    );
    assert_eq!(rig.curl(&b, "https://api.github.com/"), "200");
}

fn resolver_rebinding_and_hardcoded_servers(rig: &Rig) {
    let policy = json!({"mode": "custom", "allowedDomains": ["metadata.example", "private.example", "api.github.com"]});
    let b = rig.create("dns3", policy, &[]);
    assert_eq!(
        dig(rig, &b, &["+short", "metadata.example"]).trim(),
        "",
        "169.254.169.254 is removed"
    );
    assert_eq!(
        dig(rig, &b, &["+short", "private.example"]).trim(),
        "",
        "10.0.0.1 is removed"
    );
    let direct = dig(rig, &b, &["@8.8.8.8", "+short", "api.github.com"]);
    assert_eq!(
        direct.trim(),
        "198.51.100.10",
        "a hard-coded server is answered by the resolver"
    );
    let denied = dig(rig, &b, &["@1.1.1.1", "evil.example"]);
    assert!(denied.contains("status: REFUSED"), "{denied}");
    assert!(!rig.dns.was_asked("evil.example"));
    let tcp = dig(rig, &b, &["+tcp", "+short", "api.github.com", "AAAA"]);
    assert_eq!(tcp.trim(), "2001:db8::10", "TCP and AAAA");
}

fn resolver_expiry_keeps_open_connections(rig: &Rig) {
    let b = rig.create(
        "dns4",
        json!({"mode": "custom", "allowedDomains": ["api.github.com"]}),
        &[],
    );
    // The lab answers with TTL 1: the kernel keeps the address for
    // max(1, floor 3) + grace 2 = 5 s.
    let script = "import socket,time\n\
        ip=socket.getaddrinfo('api.github.com',9000,socket.AF_INET)[0][4][0]\n\
        s=socket.create_connection((ip,9000),timeout=5); s.sendall(b'one\\n'); print(s.recv(100).decode().strip())\n\
        time.sleep(7)\n\
        s.sendall(b'two\\n'); print(s.recv(100).decode().strip())\n\
        try:\n  socket.create_connection((ip,9000),timeout=3); print('new connected')\n\
        except Exception as e: print('new refused', type(e).__name__)\n";
    let out = rig.exec(&b, &["python3", "-c", script]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first().copied(), Some("one"), "{out:?}");
    assert_eq!(
        lines.get(1).copied(),
        Some("two"),
        "the open connection outlives the expiry: {out:?}"
    );
    assert!(
        lines.get(2).is_some_and(|l| l.starts_with("new refused")),
        "a new one is refused: {out:?}"
    );
}

fn app_rule_domains_allow_that_name_and_port_only(rig: &Rig) {
    let policy = json!({"name": "gh", "selector": {"all": true}, "rules": [
        {"action": "allow", "direction": "egress", "ports": [{"protocol": "tcp", "port": 443}], "domains": ["api.github.com"]}]});
    let repairs = || {
        metric(
            &rig.engine.metrics_text(),
            "boxfence_reconcile_repairs_total",
        )
    };
    let repairs_before = repairs();
    let b = rig.create("dns5", json!({"mode": "allow-all"}), &[policy]);
    assert_eq!(rig.curl(&b, "https://api.github.com/"), "200");
    assert_eq!(
        rig.curl(&b, "http://api.github.com/"),
        REFUSED,
        "port 80 is not in the rule"
    );
    assert_eq!(
        rig.curl(&b, "https://github.com/"),
        UNRESOLVED,
        "no rule names github.com"
    );
    assert_eq!(
        rig.curl(&b, &format!("https://{OTHER}/")),
        REFUSED,
        "no rule allows other destinations"
    );
    // The table, with the resolver's learned elements in it, is what the
    // model says: the watchdog finds nothing to repair.
    assert!(
        !rig.engine.repair().expect("check"),
        "the engine's own changes and learned addresses are not tampering"
    );
    assert_eq!(repairs(), repairs_before, "nor did the watchdog repair");
}

const OTHER: &str = "203.0.113.10";

fn deny_all_refuses_every_query(rig: &Rig) {
    let b = rig.create("dns6", json!({"mode": "deny-all"}), &[]);
    let out = dig(rig, &b, &["api.github.com"]);
    assert!(out.contains("status: REFUSED"), "{out}");
    assert!(!rig.dns.was_asked("api.github.com"));
}

fn restart_adopts_boxes_and_removes_stale_ones(rig: &Rig) {
    let policy = json!({"mode": "custom", "allowedCidrs": ["104.16.0.0/12"]});
    let kept = rig.create("keep1", policy.clone(), &[]);
    let stale = rig.create("stale1", json!({"mode": "allow-all"}), &[]);
    // A second engine starts as a restarted daemon would: the table left
    // behind keeps enforcing until reconcile replaces it.
    let restarted = LinuxEngine::start(Rig::config(&rig.lab)).expect("second engine");
    assert_eq!(
        rig.curl(&kept, &format!("http://{SERVER_V4}/")),
        REFUSED,
        "still enforced after restart"
    );
    let effective = rig.effective(&kept, policy, &[]);
    rig.runtime
        .block_on(SharedLinuxEngine(Arc::clone(&restarted)).reconcile(&[(kept.clone(), effective)]))
        .expect("reconciles");
    assert!(
        !rig.box_netns(&stale).exists(),
        "a box the store no longer has is removed"
    );
    assert!(rig.box_netns(&kept).exists(), "a stored box is adopted");
    assert_eq!(
        rig.curl(&kept, &format!("http://{CDN_OUTSIDE_DENIED_V4}/")),
        "200"
    );
    assert_eq!(rig.curl(&kept, &format!("http://{SERVER_V4}/")), REFUSED);
}

fn altered_rules_are_repaired(rig: &Rig) {
    let b = rig.create("tamper1", json!({"mode": "deny-all"}), &[]);
    let chain = || {
        let out = rig.host(&["nft", "list", "chain", "inet", "boxfence", "b_tamper1_out"]);
        String::from_utf8_lossy(&out.stdout).contains("goto deny_box")
    };
    assert!(chain());
    assert!(
        !rig.engine.repair().expect("check"),
        "nothing to repair at first"
    );
    let flushed = rig.host(&["nft", "flush", "chain", "inet", "boxfence", "b_tamper1_out"]);
    assert!(flushed.status.success());
    // Repaired by this call or by the watchdog, whichever runs first.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !chain() {
        assert!(
            Instant::now() < deadline,
            "an emptied chain must be restored"
        );
        rig.engine.repair().expect("repair");
    }
    assert_eq!(rig.curl(&b, &format!("http://{SERVER_V4}/")), REFUSED);
    let learned = rig.host(&[
        "nft",
        "add",
        "element",
        "inet",
        "boxfence",
        "b_tamper1_learn4",
        "{ 192.0.2.99 timeout 1m }",
    ]);
    assert!(learned.status.success());
    assert!(
        !rig.engine.repair().expect("check"),
        "learned addresses are not tampering"
    );
}

/// Someone alters the table right after the engine changed it (before the
/// watchdog listed it again): the alteration is not taken for the change.
fn an_alteration_right_after_a_change_is_repaired(rig: &Rig) {
    let b = rig.create("tamper2", json!({"mode": "deny-all"}), &[]);
    assert!(
        !rig.engine.repair().expect("check"),
        "nothing to repair at first"
    );
    rig.update(
        &b,
        json!({"mode": "custom", "allowedCidrs": ["203.0.113.0/24"]}),
        &[],
    );
    let opened = rig.host(&[
        "nft",
        "insert",
        "rule",
        "inet",
        "boxfence",
        "b_tamper2_out",
        "accept",
    ]);
    assert!(opened.status.success(), "{opened:?}");
    let opened_up = || {
        let out = rig.host(&["nft", "list", "chain", "inet", "boxfence", "b_tamper2_out"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|line| line.trim() == "accept")
    };
    // Repaired by this call or by the watchdog, whichever runs first.
    let deadline = Instant::now() + Duration::from_secs(5);
    while opened_up() {
        assert!(
            Instant::now() < deadline,
            "the inserted accept must be removed"
        );
        rig.engine.repair().expect("repair");
    }
    assert_eq!(rig.curl(&b, &format!("http://{SERVER_V4}/")), REFUSED);
    assert!(
        !rig.engine.repair().expect("check"),
        "the restored table is the engine's"
    );
}

/// Waits up to 3 s for an event of the box matching `wanted`; returns the
/// box's events then.
fn events_until(
    rig: &Rig,
    spec: &MachineSpec,
    wanted: impl Fn(&FlowEvent) -> bool,
) -> Vec<FlowEvent> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let events = rig
            .engine
            .flow_log()
            .history(&spec.id, None, None, usize::MAX);
        if events.iter().any(&wanted) || Instant::now() > deadline {
            return events;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn every_denial_has_an_event_with_its_reason(rig: &Rig) {
    let web = json!({"name": "web", "selector": {"machines": [{"id": "ev1"}]}, "rules": [
        {"action": "allow", "direction": "egress", "ports": [{"protocol": "tcp", "port": 80}]},
        {"action": "allow", "direction": "ingress", "ports": [{"protocol": "tcp", "port": 8080}]}]});
    let policy = json!({"mode": "custom", "allowedCidrs": ["198.51.100.0/24"], "allowedDomains": ["api.github.com"], "deniedCidrs": ["198.51.100.64/26"]});
    let b = rig.create("ev1", policy, std::slice::from_ref(&web));
    let cases: [(&str, Layer, &str); 4] = [
        (
            "http://10.0.0.1/",
            Layer::AlwaysBlocked,
            "always blocked: 10.0.0.0/8 private use (RFC 1918)",
        ),
        (
            "http://198.51.100.66/",
            Layer::BoxPolicy,
            "box policy custom: in deniedCidrs 198.51.100.64/26",
        ),
        (
            "http://203.0.113.10/",
            Layer::BoxPolicy,
            "box policy custom: not in allowedDomains/allowedCidrs",
        ),
        (
            "http://198.51.100.10:8080/",
            Layer::AppPolicy,
            "app policy: none of 1 egress rules matches (default deny)",
        ),
    ];
    for (url, layer, reason) in cases {
        assert_eq!(rig.curl(&b, url), REFUSED, "{url}");
        let events = events_until(rig, &b, |e| e.reason == reason);
        let matching: Vec<_> = events.iter().filter(|e| e.reason == reason).collect();
        assert_eq!(matching.len(), 1, "one event for {url}: {events:#?}");
        assert_eq!(matching[0].layer, Some(layer));
        assert_eq!(matching[0].kind, FlowEventKind::Connection);
    }
    // The host: at its box-side gateway (any port but the resolver's), and
    // at another address of its own that the box's policy allows (so only
    // the host rule can refuse it; a server listens there).
    let host_reason = "boxes may reach the host only at the built-in resolver";
    let gateway = rig.pool.gateways().ipv4;
    let own = "198.51.100.200";
    let added = rig.host(&["ip", "addr", "add", &format!("{own}/32"), "dev", "lo"]);
    assert!(added.status.success(), "{added:?}");
    let listener = rig
        .lab
        .in_host(|| std::net::TcpListener::bind((own, 80)))
        .expect("in lab host")
        .expect("a server on the host's own address");
    for (n, url) in [format!("http://{gateway}:22/"), format!("http://{own}/")]
        .iter()
        .enumerate()
    {
        assert_eq!(rig.curl(&b, url), REFUSED, "{url}");
        let events = events_until(rig, &b, |e| {
            e.reason == host_reason && e.dst == url_host(url)
        });
        let matching = events.iter().filter(|e| e.reason == host_reason).count();
        assert_eq!(matching, n + 1, "one event for {url}: {events:#?}");
    }
    drop(listener);
    rig.host(&["ip", "addr", "del", &format!("{own}/32"), "dev", "lo"]);
    // The uplink's address is refused by the first layer that denies it,
    // as the policy core explains it.
    let uplink = format!("http://{LAB_HOST_V4}:22/");
    assert_eq!(rig.curl(&b, &uplink), REFUSED);
    let reason = "always blocked: 192.0.2.0/24 documentation (TEST-NET-1) (RFC 5737)";
    let events = events_until(rig, &b, |e| e.reason == reason);
    assert!(events.iter().any(|e| e.reason == reason), "{events:#?}");
    assert_eq!(rig.curl(&b, "https://github.com/"), UNRESOLVED);
    let events = events_until(rig, &b, |e| e.kind == FlowEventKind::DnsQuery);
    let refusal = events
        .iter()
        .find(|e| e.kind == FlowEventKind::DnsQuery)
        .expect("a refused query event");
    assert_eq!(refusal.domain.as_deref(), Some("github.com"));
    let inbound = rig
        .lab
        .internet_exec([
            "curl",
            "-s",
            "-m",
            "3",
            &format!("http://{}:8081/", b.addresses.ipv4),
        ])
        .expect("curl");
    assert!(!inbound.status.success());
    let events = events_until(rig, &b, |e| {
        e.direction == Some(boxfence_policy::Direction::Ingress)
    });
    let ingress = events
        .iter()
        .find(|e| e.direction == Some(boxfence_policy::Direction::Ingress))
        .expect("an ingress event");
    assert_eq!(ingress.layer, Some(Layer::AppPolicy));
    assert_eq!(ingress.dport, Some(8081));
    let total = rig
        .engine
        .flow_log()
        .history(&b.id, None, Some("deny"), usize::MAX);
    let connections = total
        .iter()
        .filter(|e| e.kind == FlowEventKind::Connection)
        .count();
    assert_eq!(
        connections, 8,
        "no connection event beyond the denials made: {total:#?}"
    );
    assert!(
        total
            .iter()
            .filter(|e| e.kind == FlowEventKind::DnsQuery)
            .all(|e| e.domain.as_deref() == Some("github.com")),
        "each refused query (A, AAAA, retries) of github.com only: {total:#?}"
    );
}

/// The address a `http://a.b.c.d:port/` URL names.
fn url_host(url: &str) -> Option<std::net::IpAddr> {
    let host = url.strip_prefix("http://")?.split(':').next()?;
    host.parse().ok()
}

fn a_flood_of_denials_stays_bounded(rig: &Rig) {
    let b = rig.create("flood1", json!({"mode": "deny-all"}), &[]);
    let script = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
        for i in range(100000):\n  try: s.sendto(b'x',('198.51.100.10',1000+i%50000))\n  except OSError: pass\n";
    let started = Instant::now();
    let out = rig.exec(&b, &["python3", "-c", script]);
    assert_eq!(out.exit_code, 0, "{out:?}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        rig.exec(&b, &["true"]).exit_code,
        0,
        "the engine still serves after the flood"
    );
    let events = rig.engine.flow_log().history(&b.id, None, None, usize::MAX);
    assert!(
        events.len() <= boxfence_engine::flowlog::HISTORY_PER_BOX,
        "history bounded: {}",
        events.len()
    );
    assert!(!events.is_empty());
    // The next denial carries the count of what the limit dropped.
    assert_eq!(rig.curl(&b, "http://198.51.100.10:7/"), REFUSED);
    let events = events_until(rig, &b, |e| e.kind == FlowEventKind::Suppressed);
    assert!(
        events.iter().any(|e| e.kind == FlowEventKind::Suppressed),
        "the flood is reported as suppressed"
    );
    eprintln!(
        "flood of 100000 packets took {:?} in the box",
        started.elapsed()
    );
}

/// The value of the metric line starting with `series`.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

fn metrics_count_what_happens(rig: &Rig) {
    let b = rig.create(
        "met1",
        json!({"mode": "custom", "allowedCidrs": ["198.51.100.0/24"]}),
        &[],
    );
    let denied = format!("boxfence_box_denied_packets_total{{machine=\"{}\"}}", b.id);
    let allowed = format!("boxfence_box_allowed_packets_total{{machine=\"{}\"}}", b.id);
    let before = rig.engine.metrics_text();
    assert_eq!(metric(&before, &denied), Some(0.0), "{before}");
    assert_eq!(rig.curl(&b, "http://203.0.113.10/"), REFUSED);
    assert_eq!(rig.curl(&b, &format!("http://{SERVER_V4}/")), "200");
    let _ = dig(rig, &b, &["+short", "api.github.com"]);
    let after = rig.engine.metrics_text();
    assert!(metric(&after, &denied).is_some_and(|v| v >= 1.0), "{after}");
    assert!(
        metric(&after, &allowed).is_some_and(|v| v >= 1.0),
        "{after}"
    );
    assert!(
        metric(&after, "boxfence_resolver_queries_total").is_some_and(|v| v >= 1.0),
        "{after}"
    );
    assert!(
        metric(&after, "boxfence_machines").is_some_and(|v| v >= 1.0),
        "{after}"
    );
    assert!(
        after.contains("boxfence_policy_apply_seconds_count"),
        "{after}"
    );
}

fn removing_a_domain_cuts_its_flows(rig: &Rig) {
    let b = rig.create(
        "dns7",
        json!({"mode": "custom", "allowedDomains": ["api.github.com", "registry.npmjs.org"]}),
        &[],
    );
    let script = "import socket,time\n\
        ip=socket.getaddrinfo('api.github.com',9000,socket.AF_INET)[0][4][0]\n\
        s=socket.create_connection((ip,9000),timeout=5); s.sendall(b'one\\n'); print(s.recv(100).decode().strip(), flush=True)\n\
        time.sleep(2)\n\
        try:\n  s.sendall(b'two\\n'); r=s.recv(100); print('after', r.decode().strip() or 'closed')\n\
        except Exception as e: print('after cut', type(e).__name__)\n";
    std::thread::scope(|scope| {
        let held = scope.spawn(|| rig.exec(&b, &["python3", "-c", script]));
        std::thread::sleep(Duration::from_millis(1000));
        rig.update(
            &b,
            json!({"mode": "custom", "allowedDomains": ["registry.npmjs.org"]}),
            &[],
        );
        let out = held.join().expect("exec thread");
        assert!(out.stdout.starts_with("one"), "worked before: {out:?}");
        assert!(
            !out.stdout.contains("after two"),
            "the flow to the removed name is cut: {out:?}"
        );
    });
    assert_eq!(
        rig.curl(&b, &format!("http://{SERVER_V4}/")),
        REFUSED,
        "its learned address is gone"
    );
    assert_eq!(
        rig.curl(&b, "http://registry.npmjs.org/"),
        "200",
        "the kept name still works"
    );
}

fn upstream_failover_and_malformed_queries(rig: &Rig) {
    use boxfence_resolver::upstream::Upstreams;
    // A query for api.github.com, type A, id 0x4242.
    let mut query = vec![0x42, 0x42, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["api", "github", "com"] {
        query.push(u8::try_from(label.len()).expect("short"));
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    let (failover, dead) = rig
        .lab
        .in_host(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            // 192.0.2.77 is on the lab link but nobody answers there.
            let dead: std::net::SocketAddr = "192.0.2.77:53".parse().expect("addr");
            let live: std::net::SocketAddr = "198.51.100.53:53".parse().expect("addr");
            let both = Upstreams::new(vec![dead, live], Duration::from_millis(300));
            let only_dead = Upstreams::new(vec![dead], Duration::from_millis(300));
            runtime.block_on(async {
                (
                    both.ask(&query, false).await,
                    only_dead.ask(&query, false).await,
                )
            })
        })
        .expect("in lab host");
    let answer = failover.expect("the second upstream answers");
    assert_eq!(&answer[..2], &[0x42, 0x42], "the query's id is kept");
    assert!(
        dead.is_err(),
        "no upstream: an error the resolver turns into SERVFAIL"
    );

    let b = rig.create(
        "dns8",
        json!({"mode": "custom", "allowedDomains": ["api.github.com"]}),
        &[],
    );
    let garbage = rig.exec(&b, &["python3", "-c", "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor n in range(200): s.sendto(bytes(range(n%256))*3,('10.200.0.1',53))\n"]);
    assert_eq!(garbage.exit_code, 0);
    assert_eq!(
        dig(rig, &b, &["+short", "api.github.com"]).trim(),
        "198.51.100.10",
        "the resolver survives malformed packets"
    );
}

fn allowed_connections_are_logged_when_asked(rig: &Rig) {
    let quiet = rig.create("allow0", json!({"mode": "allow-all"}), &[]);
    let logged = rig.create(
        "allow1",
        json!({"mode": "custom", "allowedCidrs": ["198.51.100.0/24"]}),
        &[],
    );
    rig.engine
        .set_log_allowed(&logged.id, true)
        .expect("turned on");
    assert!(rig.engine.set_log_allowed("nosuchbox", true).is_err());
    assert_eq!(rig.curl(&logged, &format!("http://{SERVER_V4}/")), "200");
    assert_eq!(rig.curl(&quiet, &format!("http://{SERVER_V4}/")), "200");
    let events = events_until(rig, &logged, |e| e.verdict == "allow");
    let allowed = events
        .iter()
        .find(|e| e.verdict == "allow")
        .expect("an allow event");
    assert_eq!(allowed.dport, Some(80));
    assert_eq!(
        allowed.reason, "no app policy has egress rules",
        "{allowed:?}"
    );
    assert!(!events.iter().any(|e| e.reason.is_empty()), "{events:?}");
    std::thread::sleep(Duration::from_millis(300));
    let quiet_events = rig
        .engine
        .flow_log()
        .history(&quiet.id, None, Some("allow"), usize::MAX);
    assert!(quiet_events.is_empty(), "off by default: {quiet_events:?}");
    rig.engine
        .set_log_allowed(&logged.id, false)
        .expect("turned off");
}
