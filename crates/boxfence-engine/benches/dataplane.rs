//! Data-plane benchmarks, in a sealed lab (DESIGN.md section 4): no packet
//! leaves the namespaces this program creates.
//!
//! ```sh
//! CARGO_TARGET_DIR=/work/target-d cargo bench -p boxfence-engine --bench dataplane [-- SECTION…]
//! ```
//!
//! Sections (all by default): `cps` (new TCP connections per second),
//! `bulk` (iperf3 throughput), `update` (policy update latency, one box),
//! `boxes` (create/delete, 1,000 boxes, app-wide update); `attrib` (only
//! when named: connection rate with the fail-closed routing rules and a
//! mark-only table, to split the cost), `names` (only when named: the
//! engine checks names, issue 19; connection rate and bulk throughput of
//! HTTP flows checked by name, the same flows authorised by a CIDR, and
//! no ruleset). Knobs: `BF_BENCH_RUNS` (3),
//! `BF_BENCH_SECS` (5), `BF_BENCH_BOXES` (1000), `BF_BENCH_UPDATES` (200),
//! `BF_BENCH_DELETES` (100 timed deletes), `BF_BENCH_NICE` (`0`: keep the
//! default priority), `BF_BENCH_PERF` (a directory: `perf record -a -g`
//! during each connection-rate cell), `BF_BENCH_TRAFFIC_CPU` (1: the CPU
//! the traffic sections are pinned to; `none`: not pinned), `BF_BENCH_AVOID`
//! (kernel features the engine avoids, comma-separated: `flowtable`
//! measures without the fast path where the kernel has one). Needs root;
//! exits 0 with a message otherwise. Results and their reading:
//! `BENCHMARKS.md`, "Data plane".
//!
//! The process enters the lab host's network namespace with its main
//! thread before it starts the engine, as the daemon does in production
//! (commands run without `nsenter`); every thread it starts later inherits
//! that namespace, and load generators enter the box or the internet
//! namespace explicitly.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use boxfence_dataplane::HostNetns;
use boxfence_dataplane::features::{FastPath, Feature, Presence};
use boxfence_dataplane::nft_watch::NftWatch;
use boxfence_dataplane::routing::FailClosedRouting;
use boxfence_dataplane::ruleset::{BoxLink, FLOWTABLE, Ruleset, TableConfig};
use boxfence_engine::{
    AddressPool, Engine, LinuxConfig, LinuxEngine, MachineAddresses, MachineSpec, SharedLinuxEngine,
};
use boxfence_lab::{Lab, SERVER_V4};
use boxfence_policy::{AlwaysBlocked, AppPolicy, BoxPolicy, EffectivePolicy, Machine};
use nix::sched::{CloneFlags, CpuSet, sched_getaffinity, sched_setaffinity, setns};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// Where the accept-and-close server listens (in the internet namespace).
const CPS_PORT: u16 = 7001;
/// Where `iperf3 -s` listens.
const IPERF_PORT: u16 = 5201;
const TABLE: &str = "boxfence";
const MARK: u32 = 0x0100_0000;
const RULE_PREF: u32 = 10_090;
/// Client threads of the connection-rate load generator.
const CPS_CLIENTS: usize = 4;
/// Accepting threads of its server.
const CPS_SERVERS: usize = 2;

#[path = "../tests/support/lab_config.rs"]
mod lab_config;
#[path = "dataplane_parts/logcost.rs"]
mod logcost;
#[path = "dataplane_parts/names.rs"]
mod names;
use lab_config::lab_config;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !nix::unistd::geteuid().is_root() {
        println!("dataplane bench: skipped, it needs root (network namespaces, nftables)");
        return;
    }
    let sections: Vec<&str> = args[1..]
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    let wants = |s: &str| sections.is_empty() || sections.contains(&s);
    let knobs = Knobs::from_env();
    machine_header(&knobs);
    // The machine is shared: raise this thread's priority before any other
    // thread exists, so every thread of the benchmark inherits it.
    if std::env::var("BF_BENCH_NICE").as_deref() != Ok("0") {
        let pid = std::process::id().to_string();
        let reniced = Command::new("renice")
            .args(["-n", "-10", "-p", &pid])
            .output()
            .is_ok_and(|o| o.status.success());
        println!("priority: nice -10 for the benchmark's threads: {reniced}\n");
    }

    // Names are checked only for the section that measures the check
    // (the others measure the kernel path of CIDR and learned flows).
    let rig = Rig::new(sections.contains(&"names"));
    if wants("cps") || wants("bulk") || sections.contains(&"attrib") {
        // Threads and programs started from here on inherit the CPU: the
        // load generators, the servers, and so the packets' softirq work.
        let all = sched_getaffinity(Pid::from_raw(0)).expect("affinity");
        if let Some(cpu) = knobs.traffic_cpu {
            let mut one = CpuSet::new();
            one.set(cpu)
                .expect("BF_BENCH_TRAFFIC_CPU: a CPU of this machine");
            sched_setaffinity(Pid::from_raw(0), &one).expect("pin to one CPU");
            println!("traffic sections pinned to CPU {cpu}\n");
        }
        traffic(
            &rig,
            &knobs,
            wants("cps"),
            wants("bulk"),
            sections.contains(&"attrib"),
        );
        sched_setaffinity(Pid::from_raw(0), &all).expect("unpin");
    }
    if wants("update") {
        single_box_updates(&rig, &knobs, "u1", "one box on the host");
    }
    if sections.contains(&"names") {
        names::name_check_cost(&rig, &knobs);
    }
    if wants("logcost") {
        logcost::logging_cost(&rig, &knobs);
    }
    if wants("boxes") {
        many_boxes(&rig, &knobs);
    }
    drop(rig);
    let left = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    println!(
        "\nnamespaces left after teardown: {:?}",
        String::from_utf8_lossy(&left.stdout).trim()
    );
}

#[derive(Debug, Clone, Copy)]
struct Knobs {
    runs: usize,
    secs: u64,
    boxes: usize,
    updates: usize,
    deletes: usize,
    /// The linear-rules table takes seconds to install: measured only in
    /// every `linear_every`th run.
    linear_every: usize,
    /// The CPU the traffic sections run on (`BF_BENCH_TRAFFIC_CPU`, `none`
    /// for both): pinned, a connection's cost is measured to ±0.5 point,
    /// unpinned the scheduler's split of two CPUs scatters it by ±8.
    traffic_cpu: Option<usize>,
}

impl Knobs {
    fn from_env() -> Self {
        let get = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        Self {
            runs: get("BF_BENCH_RUNS", 3),
            secs: get("BF_BENCH_SECS", 5) as u64,
            boxes: get("BF_BENCH_BOXES", 1000),
            updates: get("BF_BENCH_UPDATES", 200),
            deletes: get("BF_BENCH_DELETES", 100),
            linear_every: get("BF_BENCH_LINEAR_EVERY", 1).max(1),
            traffic_cpu: match std::env::var("BF_BENCH_TRAFFIC_CPU").as_deref() {
                Ok("none") => None,
                Ok(cpu) => Some(
                    cpu.parse()
                        .expect("BF_BENCH_TRAFFIC_CPU: a CPU number or none"),
                ),
                Err(_) => Some(1),
            },
        }
    }
}

fn machine_header(knobs: &Knobs) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let nft = Command::new("nft")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!("# boxfence data-plane benchmarks\n");
    println!(
        "machine: {cores} cores, {cpu}, kernel {}, {nft}",
        kernel.trim()
    );
    println!("knobs: {knobs:?}\n");
}

/// A lab whose host namespace this process has entered, and a Linux engine
/// running there.
struct Rig {
    engine: Arc<LinuxEngine>,
    runtime: tokio::runtime::Runtime,
    pool: AddressPool,
    blocked: Arc<AlwaysBlocked>,
    table_config: TableConfig,
    /// Explicitly the lab host, for commands run by this program.
    host: HostNetns,
    lab: Lab,
}

impl Rig {
    fn new(name_check: bool) -> Self {
        let started = Instant::now();
        let lab = Lab::new().expect("lab comes up");
        enter_checked(lab.host_netns_path());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let avoid = std::env::var("BF_BENCH_AVOID").unwrap_or_default();
        let config = LinuxConfig {
            table: TABLE.into(),
            rule_pref: RULE_PREF,
            mark: MARK,
            avoid: avoid
                .split(',')
                .filter(|name| !name.is_empty())
                .map(|name| Feature::from_name(name).expect("BF_BENCH_AVOID: feature names"))
                .collect(),
            name_check: name_check.then_some(19),
            ..lab_config(&lab, HostNetns::current())
        };
        let (pool, blocked) = (config.pool, Arc::clone(&config.always_blocked));
        let gateways = pool.gateways();
        let table_config = TableConfig {
            table: TABLE.into(),
            ifname_prefix: "bf-".into(),
            pool4: pool.ipv4,
            pool6: pool.ipv6,
            gateway4: gateways.ipv4,
            gateway6: gateways.ipv6,
            uplinks: vec![lab.uplink().into()],
            resolver_port: 53,
            mark: MARK,
            log_group: config.log_group,
            always_blocked: blocked.intervals(),
            flowtable_uplinks: None,
            name_check: None,
        };
        let engine = runtime
            .block_on(async { LinuxEngine::start(config) })
            .expect("engine starts");
        lab.route_to_host(&pool.ipv4.to_string())
            .expect("route to boxes");
        let host = HostNetns::at(lab.host_netns_path());
        eprintln!("lab and engine up in {:.1?}", started.elapsed());
        println!(
            "forwarding of established flows: {:?} (avoided: {:?})\n",
            engine.paths().forwarding,
            engine
                .kernel_features()
                .found
                .iter()
                .filter(|(_, p)| **p == Presence::Avoided)
                .map(|(f, _)| f.name())
                .collect::<Vec<_>>()
        );
        Self {
            engine,
            runtime,
            pool,
            blocked,
            table_config,
            host,
            lab,
        }
    }

    fn shared(&self) -> SharedLinuxEngine {
        SharedLinuxEngine(Arc::clone(&self.engine))
    }

    fn spec(&self, id: &str) -> MachineSpec {
        let used: HashSet<_> = self.engine.used_addresses();
        MachineSpec {
            id: id.into(),
            addresses: self.pool.allocate(&used).expect("free address"),
            guest: None,
            attachment: None,
            image: None,
        }
    }

    fn effective(
        &self,
        spec: &MachineSpec,
        box_policy: &Value,
        app_policies: &[AppPolicy],
    ) -> EffectivePolicy {
        let MachineAddresses { ipv4, ipv6 } = spec.addresses;
        let machine = Machine {
            id: spec.id.clone(),
            metadata: Default::default(),
            network_policy: BoxPolicy::from_json(box_policy).expect("box policy"),
            addresses: vec![ipv4.into(), ipv6.into()],
        };
        EffectivePolicy::from_policies(&machine, app_policies, Arc::clone(&self.blocked))
    }

    fn create(&self, spec: &MachineSpec, policy: &EffectivePolicy) -> Duration {
        let started = Instant::now();
        self.runtime
            .block_on(self.shared().create_machine(spec, policy))
            .expect("box created");
        started.elapsed()
    }

    fn apply(&self, policies: &[EffectivePolicy]) -> Duration {
        let started = Instant::now();
        self.runtime
            .block_on(self.shared().apply(policies))
            .expect("policy applied");
        started.elapsed()
    }

    fn delete(&self, id: &str) -> Duration {
        let started = Instant::now();
        self.runtime
            .block_on(self.shared().delete_machine(id))
            .expect("box deleted");
        started.elapsed()
    }

    fn link(&self, spec: &MachineSpec) -> BoxLink {
        let offset = u32::from(spec.addresses.ipv4) - u32::from(self.pool.ipv4.network());
        BoxLink {
            id: spec.id.clone(),
            ifname: format!("bf-{}", spec.id),
            ipv4: spec.addresses.ipv4,
            ipv6: spec.addresses.ipv6,
            zone: u16::try_from(offset).expect("zone"),
        }
    }

    fn routing(&self) -> FailClosedRouting {
        FailClosedRouting {
            pool4: self.pool.ipv4,
            pool6: self.pool.ipv6,
            mark: MARK,
            first_pref: RULE_PREF,
        }
    }

    fn nft(&self, batch: &str) {
        self.host.nft(batch).expect("nft batch in the lab host");
    }

    fn host_run(&self, program: &str, args: &[&str]) -> String {
        self.host
            .run(program, args, None)
            .unwrap_or_else(|e| format!("{e}"))
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Err(error) = self.engine.shutdown() {
            eprintln!("engine shutdown: {error}");
        }
    }
}

/// Moves the calling thread into the network namespace at `path`, and
/// checks that it got there (never run the engine in the root namespace).
fn enter_checked(path: &Path) {
    let file = File::open(path).expect("open namespace");
    setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
    let want = std::fs::metadata(path).expect("stat namespace").ino();
    let now = std::fs::metadata("/proc/thread-self/ns/net")
        .expect("stat own namespace")
        .ino();
    let root = std::fs::metadata("/proc/1/ns/net")
        .map(|m| m.ino())
        .unwrap_or(0);
    assert!(
        now == want && now != root,
        "not inside {}: refusing to continue",
        path.display()
    );
}

fn enter(path: &Path) {
    let file = File::open(path).expect("open namespace");
    setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
}

// ---------------------------------------------------------------- policies

fn app_policy(value: &Value) -> AppPolicy {
    AppPolicy::from_json(value).expect("app policy")
}

/// Egress allowed on the ports the lab and the load generators use.
fn bench_app_policy(extra_port: Option<u16>) -> AppPolicy {
    let mut ports = vec![
        json!({"protocol": "tcp", "port": 80}),
        json!({"protocol": "tcp", "port": 443}),
        json!({"protocol": "tcp", "port": CPS_PORT}),
        json!({"protocol": "tcp", "port": IPERF_PORT}),
    ];
    if let Some(port) = extra_port {
        ports.push(json!({"protocol": "tcp", "port": port}));
    }
    app_policy(&json!({"name": "bench-egress", "selector": {"all": true},
        "rules": [{"action": "allow", "direction": "egress", "ports": ports}]}))
}

/// Deterministic pseudo-random numbers (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A public unicast IPv4 address outside every special-purpose and lab
    /// range (first octets that hold any such range are skipped whole).
    fn public_v4(&mut self) -> Ipv4Addr {
        loop {
            let bits = (self.next() >> 16) as u32;
            let first = bits >> 24;
            let special =
                [0, 10, 100, 104, 127, 169, 172, 192, 198, 203].contains(&first) || first >= 224;
            if !special {
                return Ipv4Addr::from(bits);
            }
        }
    }
}

/// `count` distinct random public /24s, then the server's /24 last.
fn cidrs_10k(count: usize) -> Vec<String> {
    let mut rng = Rng(0x5eed_b0f0_0000_0001);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    while out.len() + 1 < count {
        let net = u32::from(rng.public_v4()) & 0xffff_ff00;
        if seen.insert(net) {
            out.push(format!("{}/24", Ipv4Addr::from(net)));
        }
    }
    out.push("198.51.100.0/24".into());
    out
}

fn learned_addresses(count: usize) -> Vec<Ipv4Addr> {
    let mut rng = Rng(0x1ea2_4ed0_0000_0002);
    let mut seen = HashSet::new();
    while seen.len() < count {
        seen.insert(rng.public_v4());
    }
    let mut out: Vec<_> = seen.into_iter().collect();
    out.sort();
    out
}

// ---------------------------------------------------------------- traffic

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Config {
    /// The box's effective policy as the engine applies it.
    Ours,
    /// No boxfence table and no fail-closed routing rules: forwarding and
    /// a one-rule masquerade table only.
    NoRuleset,
    /// The box's egress chain rewritten as one rule per CIDR.
    Linear,
    /// For attribution: no boxfence table, but the fail-closed routing
    /// rules stay, with a table that only marks box traffic (as ours does)
    /// and masquerades.
    MarkOnly,
}

struct TrafficBox {
    spec: MachineSpec,
    cidrs: Vec<String>,
    learned: Vec<Ipv4Addr>,
    netns: PathBuf,
}

fn learn_batch(id: &str, learned: &[Ipv4Addr]) -> String {
    let elements: Vec<String> = learned.iter().map(|a| format!("{a} timeout 1h")).collect();
    format!(
        "add element inet {TABLE} b_{id}_learn4 {{ {} }}\n",
        elements.join(", ")
    )
}

fn traffic(rig: &Rig, knobs: &Knobs, cps: bool, bulk: bool, attrib: bool) {
    let cidrs = cidrs_10k(10_000);
    let learned = learned_addresses(10_000);
    let spec = rig.spec("tb");
    // The domain keeps the learned-address lookup on the path (the table
    // leaves out lookups of sets nothing can fill).
    let box_policy =
        json!({"mode": "custom", "allowedCidrs": cidrs, "allowedDomains": ["bench.example"]});
    let policy = rig.effective(&spec, &box_policy, &[bench_app_policy(None)]);
    let took = rig.create(&spec, &policy);
    let started = Instant::now();
    rig.nft(&learn_batch(&spec.id, &learned));
    let learn_took = started.elapsed();
    let netns = rig.engine.netns_path(&spec.id);
    let count = |set: &str| {
        rig.host_run(
            "nft",
            &["list", "set", "inet", TABLE, &format!("b_tb_{set}")],
        )
        .matches(',')
        .count()
            + 1
    };
    println!(
        "traffic box: {} allowedCidrs (kernel interval set holds ~{} elements), {} learned addresses; \
         create with this policy {:.1?}, learned batch {:.1?}\n",
        cidrs.len(),
        count("allow4"),
        count("learn4"),
        took,
        learn_took
    );
    let started = Instant::now();
    let _ = rig.host_run("nft", &["-j", "-s", "list", "table", "inet", TABLE]);
    println!(
        "the watchdog's listing (`nft -j -s list table`, without the engine's lock) with this box: {:.1?}\n",
        started.elapsed()
    );
    let tb = TrafficBox {
        spec,
        cidrs,
        learned,
        netns,
    };
    // The box may reach the load generators and nothing else.
    let server = CpsServer::start(rig);
    assert!(
        try_connect(&tb.netns, CPS_PORT).is_ok(),
        "box reaches the bench server"
    );
    let refused = try_connect(&tb.netns, 8080);
    assert!(
        refused.is_err(),
        "port 8080 is not in the policy: the ruleset must refuse it"
    );
    println!(
        "sanity: box → {SERVER_V4}:{CPS_PORT} connects; → :8080 refused ({:?})\n",
        refused.err()
    );

    let orders = [
        [Config::NoRuleset, Config::Ours, Config::Linear],
        [Config::Ours, Config::Linear, Config::NoRuleset],
        [Config::Linear, Config::NoRuleset, Config::Ours],
    ];
    if cps {
        let mut rows = Vec::new();
        for run in 0..knobs.runs {
            let mut row = [None; 3];
            for config in orders[run % 3] {
                if config == Config::Linear && run % knobs.linear_every != 0 {
                    continue;
                }
                let cell = with_config(rig, &tb, config, || {
                    flush_conntrack(rig);
                    profiled(&format!("{config:?}-{}", run + 1), knobs.secs, || {
                        Cell::measure(|| {
                            connection_rate(&tb.netns, Duration::from_secs(knobs.secs))
                        })
                    })
                });
                row[config as usize] = Some(cell);
                eprintln!("cps run {} {config:?}: {:.0}", run + 1, cell.rate);
            }
            rows.push(row);
        }
        print_table(
            "New TCP connections per second (box → internet netns, connect + wait for server close + RST)",
            ("conn/s", "CPU µs per connection", 1e6),
            &rows,
        );
    }
    if attrib {
        println!("### Attribution of the connection-rate cost (conn/s; CPU µs per connection)\n");
        println!(
            "| run | no ruleset | fail-closed ip rules + mark-only table | boxfence |\n|---|---:|---:|---:|"
        );
        // For attribution by hand: an nft batch that changes the boxfence
        // table during its cells (a chain reduced to `accept`, say).
        let edit = std::env::var("BF_BENCH_OURS_EDIT")
            .ok()
            .map(|path| std::fs::read_to_string(path).expect("BF_BENCH_OURS_EDIT file"));
        if let Some(edit) = &edit {
            println!("(boxfence cells run with this edit of the table:)\n\n```\n{edit}```\n");
        }
        let mut cols: [Vec<Cell>; 3] = Default::default();
        for run in 0..knobs.runs {
            let mut row = Vec::new();
            for config in [Config::NoRuleset, Config::MarkOnly, Config::Ours] {
                let measure = || {
                    flush_conntrack(rig);
                    profiled(
                        &format!("attrib-{config:?}-{}", run + 1),
                        knobs.secs,
                        || {
                            Cell::measure(|| {
                                connection_rate(&tb.netns, Duration::from_secs(knobs.secs))
                            })
                        },
                    )
                };
                let cell = match (&edit, config) {
                    (Some(edit), Config::Ours) => with_edited_table(rig, &tb, edit, measure),
                    _ => with_config(rig, &tb, config, measure),
                };
                eprintln!("attrib run {} {config:?}: {:.0}", run + 1, cell.rate);
                row.push(cell);
            }
            let text: Vec<String> = row
                .iter()
                .map(|c| format!("{:.0} ({:.2} µs)", c.rate, c.cpu_per_unit * 1e6))
                .collect();
            println!("| {} | {} |", run + 1, text.join(" | "));
            for (col, cell) in cols.iter_mut().zip(row) {
                col.push(cell);
            }
        }
        let m: Vec<(f64, f64)> = cols
            .iter()
            .map(|c| {
                let mut rates: Vec<f64> = c.iter().map(|c| c.rate).collect();
                let mut cpu: Vec<f64> = c.iter().map(|c| c.cpu_per_unit * 1e6).collect();
                (median(&mut rates), median(&mut cpu))
            })
            .collect();
        let text: Vec<String> = m
            .iter()
            .map(|(rate, cpu)| {
                format!(
                    "**{rate:.0}** ({:.1}%; {cpu:.2} µs, {:.1}%)",
                    rate / m[0].0 * 100.0,
                    m[0].1 / cpu * 100.0
                )
            })
            .collect();
        println!("| **median** | {} |\n", text.join(" | "));
        let paired = |i: usize| {
            let mut ratios: Vec<f64> = cols[0]
                .iter()
                .zip(&cols[i])
                .map(|(base, cell)| cell.rate / base.rate)
                .collect();
            median(&mut ratios) * 100.0
        };
        println!(
            "Median of the per-run ratios to no ruleset: mark-only {:.1}%, boxfence {:.1}%.\n",
            paired(1),
            paired(2)
        );
    }
    if bulk {
        let mut iperf = rig
            .lab
            .internet_command([
                "iperf3",
                "-s",
                "-B",
                &SERVER_V4.to_string(),
                "-p",
                &IPERF_PORT.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("iperf3 -s");
        std::thread::sleep(Duration::from_millis(500));
        let mut rows = Vec::new();
        for run in 0..knobs.runs {
            let mut row = [None; 3];
            for config in orders[run % 3] {
                if config == Config::Linear && run % knobs.linear_every != 0 {
                    continue;
                }
                let cell = with_config(rig, &tb, config, || {
                    Cell::measure(|| iperf_gbits(&tb.netns, knobs.secs))
                });
                row[config as usize] = Some(cell);
                eprintln!("bulk run {} {config:?}: {:.2}", run + 1, cell.rate);
            }
            rows.push(row);
        }
        stop_child(&mut iperf);
        print_table(
            "Bulk TCP throughput (iperf3, one stream, box → internet netns)",
            ("Gbit/s", "CPU ms per Gbit", 1e3),
            &rows,
        );
    }
    server.stop(rig);
    let took = rig.delete(&tb.spec.id);
    flush_conntrack(rig);
    println!("traffic box deleted in {took:.1?}\n");
}

/// Runs `f`; with `BF_BENCH_PERF=DIR`, records a system-wide profile
/// meanwhile into `DIR/<name>.data`.
fn profiled<T>(name: &str, secs: u64, f: impl FnOnce() -> T) -> T {
    let Ok(dir) = std::env::var("BF_BENCH_PERF") else {
        return f();
    };
    let mut perf = Command::new("perf")
        .args([
            "record",
            "-a",
            "-g",
            "-q",
            "-o",
            &format!("{dir}/{name}.data"),
            "--",
            "sleep",
            &secs.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("perf record");
    let value = f();
    let _ = perf.wait();
    value
}

fn stop_child(child: &mut Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid")),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
}

fn flush_conntrack(rig: &Rig) {
    let _ = rig.host.run("conntrack", &["-F"], None);
}

/// Puts the lab host in `config`, runs `measure`, and restores the
/// engine's state. The engine's lock is held during every measurement, so
/// its watchdog neither "repairs" a baseline mid-run nor runs `nft` in one
/// configuration but not in the others (its cost is reported apart).
fn with_config<T>(rig: &Rig, tb: &TrafficBox, config: Config, measure: impl FnOnce() -> T) -> T {
    let id = &tb.spec.id;
    match config {
        Config::Ours => rig.engine.while_locked(|| {
            assert!(
                try_connect(&tb.netns, CPS_PORT).is_ok(),
                "ours: box reaches the server"
            );
            measure()
        }),
        Config::Linear => {
            let chain = format!("b_{id}_out");
            let mut batch = format!("flush chain inet {TABLE} {chain}\n");
            let mut rule =
                |r: String| batch.push_str(&format!("add rule inet {TABLE} {chain} {r}\n"));
            rule("ip daddr @blocked4 goto deny_blocked".into());
            rule("ip6 daddr @blocked6 goto deny_blocked".into());
            for cidr in &tb.cidrs {
                rule(format!("ip daddr {cidr} goto b_{id}_app_out"));
            }
            rule(format!("ip daddr @b_{id}_learn4 goto b_{id}_app_out"));
            rule("goto deny_box".into());
            with_edited_table(rig, tb, &batch, measure)
        }
        // The boxfence table goes dormant (its hooks are unregistered, its
        // content stays), so switching takes milliseconds and the cells of
        // a run follow each other closely.
        // A flowtable's hooks stay with a dormant table, so the fast path
        // goes first (and the engine restores it after).
        Config::NoRuleset | Config::MarkOnly => {
            let fast = rig.engine.paths().forwarding == FastPath::Flowtable;
            let value = rig.engine.while_locked(|| {
            let (pool4, uplink) = (rig.pool.ipv4, rig.lab.uplink());
            // Its own transaction: Linux 5.10 refuses the dormant flag in
            // one that changes the table otherwise (EINVAL).
            if fast {
                rig.nft(&format!(
                    "flush chain inet {TABLE} forward\n\
                     delete chain inet {TABLE} forward\n\
                     delete flowtable inet {TABLE} {FLOWTABLE}\n"
                ));
            }
            let mut batch = format!(
                "add table inet {TABLE} {{ flags dormant; }}\n\
                 add table inet bench_nat\n\
                 add chain inet bench_nat post {{ type nat hook postrouting priority srcnat; policy accept; }}\n\
                 add rule inet bench_nat post ip saddr {pool4} oifname \"{uplink}\" masquerade\n"
            );
            if config == Config::MarkOnly {
                batch.push_str(&format!(
                    "add chain inet bench_nat premark {{ type filter hook prerouting priority dstnat + 10; policy accept; }}\n\
                     add rule inet bench_nat premark iifname \"bf-*\" meta mark set meta mark | {MARK:#x}\n\
                     add rule inet bench_nat premark ip daddr {pool4} meta mark set meta mark | {MARK:#x}\n"
                ));
            } else {
                rig.routing().uninstall(&rig.host).expect("routing rules removed");
            }
            rig.nft(&batch);
            assert!(try_connect(&tb.netns, CPS_PORT).is_ok(), "{config:?}: box reaches the server");
            let value = measure();
            // Without flags, `add table` wakes the table up.
            rig.nft(&format!("delete table inet bench_nat\nadd table inet {TABLE}\n"));
            rig.routing().install(&rig.host).expect("routing rules back");
            value
            });
            if fast {
                rig.engine.repair().expect("fast path restored");
                rig.nft(&learn_batch(&tb.spec.id, &tb.learned));
            }
            value
        }
    }
}

/// Runs `measure` with the boxfence table changed by the nft `batch`,
/// then restores the table. Lines of `batch` that start with `!` are
/// commands run in the lab host first (`! ip link set bf-tb group 7`).
fn with_edited_table<T>(rig: &Rig, tb: &TrafficBox, batch: &str, measure: impl FnOnce() -> T) -> T {
    let value = rig.engine.while_locked(|| {
        let (commands, nft): (Vec<&str>, Vec<&str>) =
            batch.lines().partition(|line| line.starts_with('!'));
        for command in commands {
            let words: Vec<&str> = command[1..].split_whitespace().collect();
            rig.host_run(words[0], &words[1..]);
        }
        rig.nft(
            &nft.iter()
                .map(|line| format!("{line}\n"))
                .collect::<String>(),
        );
        assert!(
            try_connect(&tb.netns, CPS_PORT).is_ok(),
            "edited table: box reaches the server"
        );
        measure()
    });
    // Updates carry only what changed in the engine's model, so the table
    // is put back as the watchdog puts back a missing table.
    rig.nft(&format!("delete table inet {TABLE}\n"));
    rig.engine.repair().expect("ruleset restored");
    // A full restore drops learned elements: put them back.
    rig.nft(&learn_batch(&tb.spec.id, &tb.learned));
    value
}

fn try_connect(netns: &Path, port: u16) -> std::io::Result<()> {
    let netns = netns.to_owned();
    std::thread::spawn(move || {
        enter(&netns);
        TcpStream::connect_timeout(&SocketAddr::from((SERVER_V4, port)), Duration::from_secs(2))
            .map(drop)
    })
    .join()
    .expect("connect thread")
}

/// Accept-and-close server on the internet side.
struct CpsServer {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl CpsServer {
    fn start(rig: &Rig) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let internet = rig.lab.internet_netns_path().to_owned();
        let listener = {
            let internet = internet.clone();
            std::thread::spawn(move || {
                enter(&internet);
                TcpListener::bind((SERVER_V4, CPS_PORT)).expect("bind bench server")
            })
            .join()
            .expect("bind thread")
        };
        let listener = Arc::new(listener);
        let threads = (0..CPS_SERVERS)
            .map(|_| {
                let (listener, stop) = (Arc::clone(&listener), Arc::clone(&stop));
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        // Accept and close at once (a FIN).
                        let _ = listener.accept();
                    }
                })
            })
            .collect();
        Self { stop, threads }
    }

    fn stop(self, rig: &Rig) {
        self.stop.store(true, Ordering::Relaxed);
        let wake = self.threads.len();
        rig.lab
            .in_internet(|| {
                for _ in 0..wake {
                    let _ = TcpStream::connect((SERVER_V4, CPS_PORT));
                }
            })
            .expect("wake server");
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// Connections per second from `CPS_CLIENTS` threads in the box: connect,
/// wait for the server's close, abort (RST, so no TIME_WAIT).
fn connection_rate(netns: &Path, duration: Duration) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..CPS_CLIENTS)
        .map(|_| {
            let (stop, done, failed, netns) = (
                Arc::clone(&stop),
                Arc::clone(&done),
                Arc::clone(&failed),
                netns.to_owned(),
            );
            std::thread::spawn(move || {
                enter(&netns);
                let target = SocketAddr::from((SERVER_V4, CPS_PORT));
                let (mut ok, mut bad) = (0, 0);
                while !stop.load(Ordering::Relaxed) {
                    match TcpStream::connect_timeout(&target, Duration::from_secs(1)) {
                        Ok(mut stream) => {
                            let _ = stream.read(&mut [0u8; 1]);
                            let linger = nix::libc::linger {
                                l_onoff: 1,
                                l_linger: 0,
                            };
                            let _ = nix::sys::socket::setsockopt(
                                &stream,
                                nix::sys::socket::sockopt::Linger,
                                &linger,
                            );
                            ok += 1;
                        }
                        Err(_) => bad += 1,
                    }
                }
                done.fetch_add(ok, Ordering::Relaxed);
                failed.fetch_add(bad, Ordering::Relaxed);
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().expect("client");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        eprintln!("  {failed} connection attempts failed");
    }
    done.load(Ordering::Relaxed) as f64 / elapsed
}

fn iperf_gbits(netns: &Path, secs: u64) -> f64 {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args([
            "iperf3",
            "-c",
            &SERVER_V4.to_string(),
            "-p",
            &IPERF_PORT.to_string(),
            "-t",
            &secs.to_string(),
            "-J",
        ])
        .output()
        .expect("iperf3 -c");
    let report: Value = serde_json::from_slice(&out.stdout).expect("iperf3 JSON");
    let bps = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("iperf3 failed: {report}"));
    bps / 1e9
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// One measurement: a rate, and the busy CPU time of the whole machine
/// per unit of that rate's work (all processes and the kernel: the load
/// generators, the servers and the packet path). Throughput on this shared
/// VM drifts between cells; the CPU cost of the same work does much less.
#[derive(Debug, Clone, Copy)]
struct Cell {
    rate: f64,
    cpu_per_unit: f64,
}

impl Cell {
    /// Runs `measure`, which returns a rate per second over its run.
    fn measure(measure: impl FnOnce() -> f64) -> Self {
        let busy = busy_cpu_seconds();
        let started = Instant::now();
        let rate = measure();
        let elapsed = started.elapsed().as_secs_f64();
        let busy = busy_cpu_seconds() - busy;
        Self {
            rate,
            cpu_per_unit: busy / (rate * elapsed),
        }
    }
}

/// Busy time of all CPUs since boot (user, nice, system, irq, softirq; not
/// idle, iowait or time stolen by the hypervisor).
fn busy_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let fields: Vec<f64> = stat
        .lines()
        .next()
        .expect("cpu line")
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().expect("jiffies"))
        .collect();
    let busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6];
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100);
    busy / ticks as f64
}

/// Rows are runs, columns `Config as usize` (`None`: not measured in that
/// run). Ratios are taken within each run (the configurations of one run
/// follow each other within seconds), then their median; the CPU ratio is
/// no-ruleset cost / configuration cost, so both read "percent of no
/// ruleset", higher is better.
fn print_table(
    title: &str,
    (unit, cpu_unit, scale): (&str, &str, f64),
    rows: &[[Option<Cell>; 3]],
) {
    println!("### {title}\n");
    println!(
        "| run | no ruleset ({unit}) | boxfence | ratio | linear rules | ratio | {cpu_unit}: no ruleset | boxfence | ratio | linear | ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut cols: [Vec<f64>; 10] = Default::default();
    for (i, row) in rows.iter().enumerate() {
        let [Some(ours), Some(base), linear] =
            [Config::Ours, Config::NoRuleset, Config::Linear].map(|config| row[config as usize])
        else {
            continue;
        };
        let rate = |c: Option<Cell>| c.map(|c| c.rate);
        let cpu = |c: Option<Cell>| c.map(|c| c.cpu_per_unit);
        let values = [
            Some(base.rate),
            Some(ours.rate),
            Some(ours.rate / base.rate),
            rate(linear),
            rate(linear).map(|r| r / base.rate),
            Some(base.cpu_per_unit * scale),
            Some(ours.cpu_per_unit * scale),
            Some(base.cpu_per_unit / ours.cpu_per_unit),
            cpu(linear).map(|c| c * scale),
            cpu(linear).map(|c| base.cpu_per_unit / c),
        ];
        println!("| {} | {} |", i + 1, row_text(&values, false));
        for (col, value) in cols.iter_mut().zip(values) {
            col.extend(value);
        }
    }
    let m: Vec<Option<f64>> = cols
        .iter_mut()
        .map(|c| (!c.is_empty()).then(|| median(c)))
        .collect();
    println!("| **median** | {} |\n", row_text(&m, true));
}

/// In each group of five values, the third and fifth are ratios.
fn row_text(values: &[Option<f64>], bold: bool) -> String {
    let cells: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let Some(v) = v else { return "–".to_owned() };
            let text = if i % 5 == 2 || i % 5 == 4 {
                format!("{:.1}%", v * 100.0)
            } else {
                format!("{v:.2}")
            };
            if bold { format!("**{text}**") } else { text }
        })
        .collect();
    cells.join(" | ")
}

// ---------------------------------------------------------------- control plane

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "{} | {:.2} | {:.2} | {:.2} | {:.2}",
        samples.len(),
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99)),
        ms(*samples.last().unwrap_or(&Duration::ZERO)),
        ms(samples.iter().sum::<Duration>()) / samples.len().max(1) as f64
    )
}

fn realistic_box_policies() -> [Value; 2] {
    [
        json!({"mode": "custom", "allowedCidrs": ["104.16.0.0/12", "198.51.100.0/24", "140.82.112.0/20"],
               "deniedCidrs": ["104.16.120.0/24"]}),
        json!({"mode": "custom", "allowedCidrs": ["104.16.0.0/12", "198.51.100.0/24", "151.101.0.0/16", "185.199.108.0/22"],
               "deniedCidrs": ["104.16.121.0/24"]}),
    ]
}

/// p50/p99 of `knobs.updates` box-policy updates of one box (created here
/// when missing), alternating two realistic policies: first while the box
/// has no flow, then while it holds `OPEN_FLOWS` connections that both
/// policies allow (each update must check them; none is cut).
fn single_box_updates(rig: &Rig, knobs: &Knobs, id: &str, context: &str) {
    // Its own app policy (other rules than the many boxes' one), so the
    // app-wide change below releases that one's objects.
    let app = [bench_app_policy(Some(9443))];
    let existing = rig.engine.used_addresses().len();
    let spec = rig.spec(id);
    let [a, b] = realistic_box_policies();
    let policies = [
        rig.effective(&spec, &a, &app),
        rig.effective(&spec, &b, &app),
    ];
    let create = rig.create(&spec, &policies[0]);
    let updates = |first: usize| -> Vec<Duration> {
        (0..knobs.updates)
            .map(|i| rig.apply(std::slice::from_ref(&policies[(first + i + 1) % 2])))
            .collect()
    };
    let idle = updates(0);
    let netns = rig.engine.netns_path(id);
    let open: Vec<TcpStream> = std::thread::spawn(move || {
        enter(&netns);
        (0..OPEN_FLOWS)
            .map(|_| TcpStream::connect((SERVER_V4, 80)).expect("connect to :80"))
            .collect()
    })
    .join()
    .expect("connect thread");
    let busy = updates(knobs.updates);
    let alive = open
        .iter()
        .filter(|stream| {
            let mut probe = *stream;
            probe.write_all(b"GET / HTTP/1.0\r\n\r\n").is_ok()
                && probe.read(&mut [0u8; 16]).is_ok_and(|n| n > 0)
        })
        .count();
    println!(
        "### Policy update latency, one box ({context}; {} boxes existed before)\n",
        existing / 2
    );
    println!(
        "Engine `apply` of one box's new effective policy, timed until it returns (rules committed, and open flows the new policy denies cut). Alternating two custom box policies (3–4 allowedCidrs, one deniedCidrs) under an app egress policy.\n"
    );
    println!(
        "| the box | updates | p50 (ms) | p99 (ms) | max (ms) | mean (ms) |\n|---|---:|---:|---:|---:|---:|"
    );
    println!("| no open flow | {} |", summary(idle));
    println!(
        "| {OPEN_FLOWS} open connections, allowed by both ({alive} still answer after the updates) | {} |\n",
        summary(busy)
    );
    println!("create of this box took {create:.1?}\n");
}

/// Connections the box holds open during the second half of the one-box
/// updates.
const OPEN_FLOWS: usize = 20;

/// Runs `f` while `strace` (seccomp-filtered to `execve` and `exit_group`)
/// follows this process, and prints how long each child program ran: where
/// the time of an engine call goes. Tracing slows children a little.
fn trace_children(label: &str, f: impl FnOnce()) {
    let out = std::env::temp_dir().join(format!("bf-bench-strace-{}.txt", std::process::id()));
    let Ok(mut strace) = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "--seccomp-bpf",
            "-ttt",
            "-e",
            "trace=execve,exit_group",
            "-o",
        ])
        .arg(&out)
        .args(["-p", &std::process::id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        eprintln!("no strace: no breakdown of {label}");
        return f();
    };
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    f();
    let total = started.elapsed();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(strace.id()).expect("pid")),
        nix::sys::signal::Signal::SIGINT,
    );
    let _ = strace.wait();
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    // pid -> (program + args, start)
    let mut running: std::collections::HashMap<String, (String, f64)> = Default::default();
    let mut rows: Vec<(String, f64)> = Vec::new();
    for line in text.lines() {
        let mut words = line.splitn(3, ' ');
        let (Some(pid), Some(time), Some(rest)) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        let Ok(time) = time.parse::<f64>() else {
            continue;
        };
        if rest.starts_with("execve(") && rest.ends_with("= 0") {
            let argv = rest
                .split_once('[')
                .and_then(|(_, a)| a.split_once(']'))
                .map_or("", |(a, _)| a);
            let argv: Vec<&str> = argv
                .split(", ")
                .map(|w| w.trim_matches('"'))
                .take(6)
                .collect();
            let entry = running
                .entry(pid.to_owned())
                .or_insert((String::new(), time));
            // nsenter/sh re-exec: keep the first start, the last program.
            entry.0 = argv.join(" ");
        } else if rest.starts_with("exit_group(")
            && let Some((program, start)) = running.remove(pid)
        {
            rows.push((program, (time - start) * 1e3));
        }
    }
    println!(
        "Where the time of {label} goes (child programs, traced by strace; {total:.1?} in all, tracing included):\n"
    );
    println!("| program | ms |\n|---|---:|");
    for (program, ms) in &rows {
        println!("| `{program}` | {ms:.1} |");
    }
    println!(
        "| sum of programs | {:.1} |\n",
        rows.iter().map(|(_, ms)| ms).sum::<f64>()
    );
}

fn as_refs(v: &[(BoxLink, EffectivePolicy)]) -> Vec<(BoxLink, &EffectivePolicy)> {
    v.iter().map(|(l, p)| (l.clone(), p)).collect()
}

fn meminfo() -> [i64; 3] {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| -> i64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    [field("MemAvailable:"), field("Slab:"), field("Percpu:")]
}

fn many_boxes(rig: &Rig, knobs: &Knobs) {
    let n = knobs.boxes;
    let v1 = [bench_app_policy(None)];
    let v2 = [bench_app_policy(Some(8443))];
    let box_policy = &realistic_box_policies()[0];
    let before = meminfo();
    let started = Instant::now();
    let mut specs = Vec::new();
    let mut creates = Vec::new();
    for i in 0..n {
        let spec = rig.spec(&format!("m{i:04}"));
        let policy = rig.effective(&spec, box_policy, &v1);
        creates.push(rig.create(&spec, &policy));
        specs.push(spec);
        if (i + 1) % 250 == 0 {
            eprintln!("{} boxes, last create {:.1?}", i + 1, creates[i]);
        }
    }
    let total = started.elapsed();
    let after = meminfo();
    // Every box works: a sample connects to the lab's HTTP server; a port
    // outside the policy is refused.
    let sample: Vec<&MachineSpec> = specs.iter().step_by((n / 10).max(1)).collect();
    for spec in &sample {
        let netns = rig.engine.netns_path(&spec.id);
        assert!(try_connect(&netns, 80).is_ok(), "{} reaches :80", spec.id);
        assert!(
            try_connect(&netns, 8080).is_err(),
            "{} refused on :8080",
            spec.id
        );
    }
    let ruleset = rig.host_run("nft", &["list", "ruleset"]);
    // The watchdog's reading of the table: dumps over netlink, decoded.
    let mut watch = NftWatch::open().expect("an nf_tables socket");
    let list_started = Instant::now();
    let listed = watch.list_table(TABLE).expect("a dump");
    let watchdog_check = list_started.elapsed();
    assert!(listed.is_some(), "the table is there");

    println!("### Box create and delete, {n} boxes on one host\n");
    println!(
        "Engine `create_machine` (netns, veth, addresses, routes, nft batch with the box's chains and sets) with a custom box policy and an app egress policy selecting every box.\n"
    );
    println!(
        "| operation | count | p50 (ms) | p99 (ms) | max (ms) | mean (ms) |\n|---|---:|---:|---:|---:|---:|"
    );
    let chunk = (n / 10).max(1);
    println!("| create, all | {} |", summary(creates.clone()));
    println!(
        "| create, first {chunk} | {} |",
        summary(creates[..chunk.min(n)].to_vec())
    );
    println!(
        "| create, last {chunk} | {} |",
        summary(creates[n.saturating_sub(chunk)..].to_vec())
    );

    println!();
    println!(
        "{n} boxes created in {:.1} s; kernel memory: MemAvailable −{} MiB, Slab +{} MiB, Percpu +{} MiB \
         (≈{:.0} KiB per box); ruleset text {} KiB; the table read back over netlink (the watchdog's reading, without the engine's lock) {:.0} ms; \
         {} sampled boxes reach {SERVER_V4}:80 and are refused on :8080.\n",
        total.as_secs_f64(),
        (before[0] - after[0]) / 1024,
        (after[1] - before[1]) / 1024,
        (after[2] - before[2]) / 1024,
        (before[0] - after[0]) as f64 / n as f64,
        ruleset.len() / 1024,
        watchdog_check.as_secs_f64() * 1e3,
        sample.len()
    );

    // After the engine's own changes the watchdog lowers the model to the
    // listing it expects, reads the table back and compares.
    let started = Instant::now();
    let repaired = rig.engine.repair().expect("watchdog comparison");
    println!(
        "the watchdog's comparison after the creates (the model's listing, the table read back over \
         netlink, compared): {:.1?}{}\n",
        started.elapsed(),
        if repaired {
            "; it REPAIRED the table"
        } else {
            "; nothing to repair"
        }
    );

    single_box_updates(rig, knobs, "u2", &format!("{n} other boxes on the host"));

    // App-wide: the app policy every box selects changes; one apply call.
    let effective = |app: &[AppPolicy]| -> Vec<EffectivePolicy> {
        specs
            .iter()
            .map(|s| rig.effective(s, box_policy, app))
            .collect()
    };
    let (p1, p2) = (effective(&v1), effective(&v2));
    let mut shadow = Ruleset::new(rig.table_config.clone());
    let links: Vec<BoxLink> = specs.iter().map(|s| rig.link(s)).collect();
    let pairs = |ps: &[EffectivePolicy]| -> Vec<(BoxLink, EffectivePolicy)> {
        links.iter().cloned().zip(ps.iter().cloned()).collect()
    };
    let (pairs1, pairs2) = (pairs(&p1), pairs(&p2));
    let _ = shadow.upsert_boxes(&as_refs(&pairs1));
    let batch = shadow.upsert_boxes(&as_refs(&pairs2)).to_text();
    let check_started = Instant::now();
    HostNetns::current()
        .run("nft", &["-c", "-f", "-"], Some(&batch))
        .expect("nft -c app-wide");
    let check = check_started.elapsed();
    let mut app_wide = Vec::new();
    for i in 0..knobs.runs.max(3) {
        let target = if i % 2 == 0 { &p2 } else { &p1 };
        let took = rig.apply(target);
        eprintln!("app-wide apply {}: {took:.1?}", i + 1);
        app_wide.push(took);
    }
    println!("### App-wide policy change over {n} boxes (one `apply` call)\n");
    println!(
        "The app egress policy selecting all {n} boxes gains a port (and back): one `apply` with {n} effective policies.\n"
    );
    println!(
        "| applies | p50 (ms) | p99 (ms) | max (ms) | mean (ms) |\n|---:|---:|---:|---:|---:|"
    );
    println!("| {} |\n", summary(app_wide));
    println!(
        "Its batch: {} lines, {} KiB; `nft -c -f` of it alone (no commit): {:.0} ms.\n",
        batch.lines().count(),
        batch.len() / 1024,
        check.as_secs_f64() * 1e3
    );

    trace_children(&format!("one create with {n} boxes on the host"), || {
        let spec = rig.spec("traced");
        let policy = rig.effective(&spec, box_policy, &v2);
        rig.create(&spec, &policy);
    });
    trace_children(&format!("one delete with {n} boxes on the host"), || {
        rig.delete("traced");
    });
    // Deletes are timed on a sample, newest first (the table is fullest);
    // the engine's shutdown removes the rest.
    let sample = knobs.deletes.min(n);
    let mut deletes = Vec::new();
    for spec in specs.iter().rev().take(sample) {
        deletes.push(rig.delete(&spec.id));
    }
    println!(
        "| operation | count | p50 (ms) | p99 (ms) | max (ms) | mean (ms) |\n|---|---:|---:|---:|---:|---:|"
    );
    println!(
        "| delete, newest {sample} of {n} boxes | {} |\n",
        summary(deletes)
    );
    let started = Instant::now();
    rig.engine.shutdown().expect("engine shutdown");
    println!(
        "engine shutdown (every remaining link and namespace, then the table) took {:.1} s\n",
        started.elapsed().as_secs_f64()
    );
    let end = meminfo();
    println!(
        "after deleting every box: MemAvailable {:+} MiB, Slab {:+} MiB vs before the first create (other processes share the machine)\n",
        (end[0] - before[0]) / 1024,
        (end[1] - before[1]) / 1024
    );
}
