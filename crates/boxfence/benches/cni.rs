//! ADD and DEL latency of the CNI plugin (issue 14), beside Debian's
//! reference `bridge` plugin (containernetworking-plugins, with
//! `host-local` addresses) in the same run: each plugin is run as a
//! runtime runs it (a process, the spec's environment, the configuration
//! on stdin) for a fresh network namespace, ADD then DEL, alternating
//! plugins so both see the same machine. boxfence's ADD is the plugin
//! asking `boxfence serve` (in a sealed lab, over its unix socket) to
//! attach the namespace: link, addresses, routes and the app's ruleset,
//! enforced before it answers. Both plugins run in the lab host's network
//! namespace; the namespaces are made and removed outside the timings.
//!
//! `cargo bench -p boxfence --bench cni` as root in a fresh network
//! namespace (prints why and exits 0 otherwise). Knob: `BF_BENCH_CNI`
//! (200), the ADD/DEL pairs per plugin. Results: BENCHMARKS.md.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

// Shared with the daemon's tests (it allows what the bench leaves unused).
#[path = "../tests/support/mod.rs"]
mod support;

#[path = "../tests/cni_e2e/plugin.rs"]
mod plugin;

use plugin::run_plugin;
use support::Daemon;

/// The reference plugins' directory (Debian).
const CNI_PLUGINS: &str = "/usr/lib/cni";

/// Runs `plugin` with `command` for `netns`; panics unless it succeeds.
fn run(plugin: &Path, command: &str, container: &str, netns: &str, conf: &Value) -> Duration {
    let env = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", container),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", CNI_PLUGINS),
    ];
    let started = Instant::now();
    let out = run_plugin(plugin, &env, &conf.to_string());
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{} {command}: {}",
        plugin.display(),
        String::from_utf8_lossy(&out.stdout)
    );
    took
}

/// `p`-th percentile of sorted `samples`, in ms.
fn percentile(samples: &[Duration], p: f64) -> f64 {
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index].as_secs_f64() * 1000.0
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        println!("cni bench: needs root (network namespaces); skipped");
        return;
    }
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let pairs: usize = std::env::var("BF_BENCH_CNI")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let ours = Path::new(env!("CARGO_BIN_EXE_boxfence")).with_file_name("boxfence-cni");
    assert!(
        ours.exists(),
        "build it first: cargo build --release -p boxfence-cni"
    );
    let bridge = Path::new(CNI_PLUGINS).join("bridge");
    assert!(
        bridge.exists(),
        "containernetworking-plugins is not installed"
    );
    let daemon = Daemon::start_with_config_for(|lab| {
        format!(
            "[api]\nunix_socket = \"{}\"\n",
            lab.workdir().join("api.sock").display()
        )
    });
    daemon.ok("POST", "/v1/apps", r#"{"app_name": "bench"}"#);
    // A policy, so each ADD compiles and enforces one.
    daemon.ok(
        "POST",
        "/v1/apps/bench/network_policies",
        r#"{"name": "egress", "selector": {"all": true}, "rules": [{"action": "allow",
            "direction": "egress", "ports": [{"protocol": "tcp", "port": 443}]}]}"#,
    );
    let ipam = daemon.lab.workdir().join("host-local");
    let confs = [
        (
            "boxfence-cni",
            ours,
            json!({"cniVersion": "1.0.0", "name": "boxnet", "type": "boxfence-cni",
                   "app": "bench", "socket": daemon.lab.workdir().join("api.sock")}),
        ),
        (
            "bridge + host-local",
            bridge,
            json!({"cniVersion": "1.0.0", "name": "br", "type": "bridge", "bridge": "cnibench0",
                   "isGateway": true, "ipMasq": false,
                   "ipam": {"type": "host-local", "subnet": "10.99.0.0/16", "dataDir": ipam}}),
        ),
    ];
    let mut adds = vec![Vec::new(); confs.len()];
    let mut dels = vec![Vec::new(); confs.len()];
    let prefix = format!("bfcnibench{}x", std::process::id());
    daemon
        .lab
        .in_host(|| {
            // Five pairs each to warm up, not counted.
            for round in 0..pairs + 5 {
                for (index, (_, plugin, conf)) in confs.iter().enumerate() {
                    let name = format!("{prefix}{round}x{index}");
                    let made = Command::new("ip").args(["netns", "add", &name]).output();
                    assert!(made.is_ok_and(|out| out.status.success()), "ip netns add");
                    let netns = format!("/run/netns/{name}");
                    let add = run(plugin, "ADD", &name, &netns, conf);
                    let del = run(plugin, "DEL", &name, &netns, conf);
                    let _ = Command::new("ip").args(["netns", "del", &name]).output();
                    if round >= 5 {
                        adds[index].push(add);
                        dels[index].push(del);
                    }
                }
            }
        })
        .expect("in the lab host");
    println!("{pairs} ADD/DEL pairs per plugin, fresh namespace each, alternating");
    println!("| plugin | ADD p50 (ms) | ADD p99 (ms) | DEL p50 (ms) | DEL p99 (ms) |");
    println!("|---|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for (index, (name, _, _)) in confs.iter().enumerate() {
        adds[index].sort();
        dels[index].sort();
        let row = [
            percentile(&adds[index], 0.5),
            percentile(&adds[index], 0.99),
            percentile(&dels[index], 0.5),
            percentile(&dels[index], 0.99),
        ];
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
            row[0], row[1], row[2], row[3]
        );
        rows.push(row);
    }
    let ratio: Vec<String> = (0..4)
        .map(|column| format!("{:.2}", rows[0][column] / rows[1][column]))
        .collect();
    println!("| ratio boxfence / bridge | {} |", ratio.join(" | "));
}
