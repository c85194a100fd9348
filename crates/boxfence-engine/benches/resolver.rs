//! Built-in resolver benchmark (issue 5), in a sealed lab: no packet
//! leaves the namespaces this program creates.
//!
//! ```sh
//! CARGO_TARGET_DIR=/work/target-f cargo bench -p boxfence-engine --bench resolver [-- SECTION…]
//! ```
//!
//! Sections (all by default):
//!
//! - `perf`: dnsperf inside a box against, in turn, the upstream directly,
//!   dnsmasq forwarding (cache off) in the resolver's place, our resolver
//!   as shipped with the default per-box rate cap, the same with the cap
//!   configured above the offered load (`BF_BENCH_CAP`: the resolver's
//!   capacity), and a bench-only instance of the same resolver code whose
//!   kernel set insertion is a no-op (to price the insertion).
//! - `breakdown`: in process, one query at a time: the upstream round
//!   trip, the netlink set insertion, and the resolver's whole `handle`.
//!
//! Knobs: `BF_BENCH_RUNS` (3), `BF_BENCH_SECS` (10), `BF_BENCH_NAMES`
//! (10000 distinct names, each with its own address), `BF_BENCH_LAT_QPS`
//! (150: the latency runs' fixed rate, under the default per-box cap),
//! `BF_BENCH_CAP` (1000000: the per-box cap of `nocap`),
//! `BF_BENCH_SAMPLES` (2000, breakdown), `BF_BENCH_SERVERS`
//! (`direct,dnsmasq,ours,nocap,nolearn`), `BF_BENCH_RT` (1: latency runs
//! under SCHED_FIFO), `BF_BENCH_NICE` (anything but 0: nice -10). Needs
//! root; prints why and exits 0 otherwise. Results: BENCHMARKS.md.
//!
//! This binary is also the engine's exec helper (boxes are started
//! through it), so `main` dispatches the helper subcommands first.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use boxfence_dataplane::HostNetns;
use boxfence_engine::{
    Engine, LinuxConfig, LinuxEngine, MachineAddresses, MachineSpec, QUERY_RATE_PER_BOX,
    ResolverHandle, SharedLinuxEngine,
};
use boxfence_lab::Lab;
use boxfence_policy::{AlwaysBlocked, BoxPolicy, EffectivePolicy, Machine};
use boxfence_resolver::answer::TtlLimits;
use boxfence_resolver::decision::LearnTarget;
use boxfence_resolver::directory::{BoxEntry, Directory};
use boxfence_resolver::upstream::Upstreams;
use boxfence_resolver::{Learner, Learning, Resolver, ResolverConfig, TcpLimits};
use serde_json::json;

/// The lab's upstream DNS address (in the internet namespace).
const UPSTREAM_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 53);
/// Not 53: a box's port-53 traffic is redirected to the resolver, and the
/// direct baseline must reach the upstream itself.
const UPSTREAM_PORT: u16 = 5300;
/// TTL of the upstream's answers (seconds).
const UPSTREAM_TTL: u32 = 60;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
const BOX_ID: &str = "dnsbench";

#[path = "../tests/support/lab_config.rs"]
mod lab_config;
use lab_config::lab_config;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !is_root() {
        println!("resolver bench skipped: it needs root (network namespaces, nftables)");
        return;
    }
    let sections: Vec<&str> = args[1..]
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |name: &str| sections.is_empty() || sections.contains(&name);
    let knobs = Knobs::from_env();
    println!("{knobs:?}");
    // The machine is shared: raise this process's priority before any
    // thread or child exists, so the resolver threads, dnsmasq and dnsperf
    // all inherit the same one (set BF_BENCH_NICE=0 to skip).
    if std::env::var("BF_BENCH_NICE").as_deref() != Ok("0") {
        let reniced = Command::new("renice")
            .args(["-n", "-10", "-p", &std::process::id().to_string()])
            .output()
            .is_ok_and(|o| o.status.success());
        println!("priority: nice -10 for the benchmark and its children: {reniced}");
    }
    let bench = Bench::new(&knobs);
    if wants("breakdown") {
        bench.breakdown(&knobs);
    }
    if wants("perf") {
        bench.perf(&knobs);
    }
    drop(bench);
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[derive(Debug)]
struct Knobs {
    runs: usize,
    secs: u32,
    names: u32,
    latency_qps: u32,
    /// The per-box cap of [`Server::OursNoCap`].
    cap: u32,
    samples: usize,
    /// Which servers `perf` measures (labels of [`Server::key`]).
    servers: String,
    /// Latency runs under SCHED_FIFO (every process and thread involved).
    realtime: bool,
}

impl Knobs {
    fn from_env() -> Self {
        fn knob<T: std::str::FromStr>(name: &str, default: T) -> T {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        }
        Self {
            runs: knob("BF_BENCH_RUNS", 3),
            secs: knob("BF_BENCH_SECS", 10),
            names: knob("BF_BENCH_NAMES", 10_000),
            latency_qps: knob("BF_BENCH_LAT_QPS", 150),
            cap: knob("BF_BENCH_CAP", 1_000_000),
            samples: knob("BF_BENCH_SAMPLES", 2000),
            realtime: knob("BF_BENCH_RT", 1) != 0,
            servers: knob(
                "BF_BENCH_SERVERS",
                "direct,dnsmasq,ours,nocap,nolearn".to_owned(),
            ),
        }
    }
}

/// The address the upstream gives name `i`: distinct per name, public
/// (not always-blocked), never contacted.
fn address_of(i: u32) -> Ipv4Addr {
    Ipv4Addr::from_bits((44 << 24) + i + 1)
}

fn name_of(i: u32) -> String {
    format!("n{i}.bench.lab")
}

/// Kills a child process on drop.
#[derive(Debug)]
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What answers the box at 10.200.0.1:53 (or the upstream, for `Direct`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Direct,
    Dnsmasq,
    Ours,
    OursNoCap,
    OursNoLearn,
}

impl Server {
    const ALL: [Self; 5] = [
        Self::Direct,
        Self::Dnsmasq,
        Self::Ours,
        Self::OursNoCap,
        Self::OursNoLearn,
    ];

    /// Its name in `BF_BENCH_SERVERS`.
    fn key(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Dnsmasq => "dnsmasq",
            Self::Ours => "ours",
            Self::OursNoCap => "nocap",
            Self::OursNoLearn => "nolearn",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Direct => "direct to upstream",
            Self::Dnsmasq => "dnsmasq forwarder (cache 0)",
            Self::Ours => "our resolver (default per-box cap)",
            Self::OursNoCap => "our resolver (per-box cap above the load)",
            Self::OursNoLearn => "our resolver, cap above the load, no-op set insertion",
        }
    }
}

/// A resolver serving on its own thread in the lab host.
#[derive(Debug)]
struct OwnResolver {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for OwnResolver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One of the servers, running; stops on drop.
#[derive(Debug)]
#[allow(dead_code)] // The fields are held only to be dropped.
enum Running {
    Nothing,
    Child(Killed),
    Shipped(ResolverHandle),
    Own(OwnResolver),
}

/// A learner that authorises nothing (prices the set insertion).
#[derive(Debug)]
struct NoopLearner;

impl Learner for NoopLearner {
    fn learn(&self, _: &BoxEntry, _: &[LearnTarget], _: &[(IpAddr, Duration)]) -> Learning {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// The lab, the engine, one box and the upstream. Field order is drop
/// order.
struct Bench {
    upstream: Killed,
    engine: Arc<LinuxEngine>,
    _runtime: tokio::runtime::Runtime,
    lab: Lab,
    blocked: Arc<AlwaysBlocked>,
    gateway: Ipv4Addr,
    box_ip: Ipv4Addr,
    box_netns: PathBuf,
    queries: PathBuf,
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Err(error) = self.engine.shutdown() {
            eprintln!("engine shutdown: {error}");
        }
    }
}

impl Bench {
    fn new(knobs: &Knobs) -> Self {
        let lab = Lab::new().expect("lab comes up");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let config = LinuxConfig {
            ..lab_config(&lab, HostNetns::at(lab.host_netns_path()))
        };
        let (pool, blocked) = (config.pool, Arc::clone(&config.always_blocked));
        let engine = runtime
            .block_on(async { LinuxEngine::start(config) })
            .expect("engine starts");
        lab.route_to_host(&pool.ipv4.to_string())
            .expect("route to boxes");

        // The upstream: dnsmasq answering every bench name from a hosts
        // file, without logging (logging would make it the bottleneck).
        let hosts = lab.workdir().join("bench-hosts");
        let mut text = String::new();
        for i in 0..knobs.names {
            let _ = writeln!(text, "{} {}", address_of(i), name_of(i));
        }
        std::fs::write(&hosts, text).expect("hosts file");
        let queries = lab.workdir().join("bench-queries");
        let mut text = String::new();
        for i in 0..knobs.names {
            let _ = writeln!(text, "{} A", name_of(i));
        }
        std::fs::write(&queries, text).expect("query file");
        let child = lab
            .internet_command([
                "dnsmasq".to_owned(),
                "--keep-in-foreground".to_owned(),
                "--no-resolv".to_owned(),
                "--no-hosts".to_owned(),
                "--no-poll".to_owned(),
                "--user=root".to_owned(),
                "--pid-file=".to_owned(),
                "--bind-interfaces".to_owned(),
                format!("--listen-address={UPSTREAM_V4}"),
                format!("--port={UPSTREAM_PORT}"),
                "--except-interface=inet0".to_owned(),
                format!("--local-ttl={UPSTREAM_TTL}"),
                format!("--addn-hosts={}", hosts.display()),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq (Debian package dnsmasq-base)");
        let upstream = Killed(child);

        // The box: the bench names by domain, and the upstream's address
        // so the direct baseline may reach it.
        let used: HashSet<_> = engine.used_addresses();
        let addresses = pool.allocate(&used).expect("free address");
        let spec = MachineSpec {
            id: BOX_ID.into(),
            addresses,
            guest: None,
            image: None,
        };
        let policy = json!({"mode": "custom", "allowedDomains": ["*.bench.lab"],
            "allowedCidrs": [format!("{UPSTREAM_V4}/32")]});
        let MachineAddresses { ipv4, ipv6 } = spec.addresses;
        let machine = Machine {
            id: spec.id.clone(),
            metadata: Default::default(),
            network_policy: BoxPolicy::from_json(&policy).expect("box policy"),
            addresses: vec![ipv4.into(), ipv6.into()],
        };
        let effective = EffectivePolicy::from_policies(&machine, &[], Arc::clone(&blocked));
        runtime
            .block_on(SharedLinuxEngine(Arc::clone(&engine)).create_machine(&spec, &effective))
            .expect("box created");
        let bench = Self {
            upstream,
            box_netns: engine.netns_path(BOX_ID),
            engine,
            _runtime: runtime,
            lab,
            blocked,
            gateway: pool.gateways().ipv4,
            box_ip: ipv4,
            queries,
        };
        bench.wait_answers(Server::Direct);
        bench
    }

    fn target(&self, server: Server) -> (Ipv4Addr, u16) {
        if server == Server::Direct {
            (UPSTREAM_V4, UPSTREAM_PORT)
        } else {
            (self.gateway, 53)
        }
    }

    /// Waits until `server` answers a bench name inside the box.
    fn wait_answers(&self, server: Server) {
        let (address, port) = self.target(server);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = Command::new("nsenter")
                .arg(format!("--net={}", self.box_netns.display()))
                .args(["dig", "+short", "+time=1", "+tries=1", "-p"])
                .arg(port.to_string())
                .arg(format!("@{address}"))
                .arg(name_of(0))
                .output()
                .expect("dig");
            if String::from_utf8_lossy(&out.stdout).contains(&address_of(0).to_string()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} does not answer in the box: {out:?}",
                server.label()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A resolver like the shipped one (same code, same kind of runtime
    /// and thread) whose directory holds the bench box, with the per-box
    /// cap `cap`, learning through `learner`.
    fn own_resolver(&self, learner: Arc<dyn Learner>, cap: u32) -> Arc<Resolver> {
        let shipped = self
            .engine
            .directory()
            .lookup(IpAddr::V4(self.box_ip))
            .expect("the box is in the engine's directory");
        let directory = Arc::new(Directory::default());
        let entry = BoxEntry::new(
            shipped.id.clone(),
            shipped.ifname.clone(),
            shipped.policy.clone(),
        );
        directory.insert(&[IpAddr::V4(self.box_ip)], entry, |_| true);
        let config = ResolverConfig {
            query_rate_per_box: cap,
            ..self.resolver_config()
        };
        Arc::new(Resolver::new(&config, directory, learner))
    }

    fn resolver_config(&self) -> ResolverConfig {
        ResolverConfig {
            listen: vec![SocketAddr::new(self.gateway.into(), 53)],
            upstreams: vec![SocketAddr::new(UPSTREAM_V4.into(), UPSTREAM_PORT)],
            upstream_timeout: UPSTREAM_TIMEOUT,
            always_blocked: Arc::clone(&self.blocked),
            ttl: TtlLimits::default(),
            query_rate_per_box: QUERY_RATE_PER_BOX,
            tcp: TcpLimits::default(),
        }
    }

    fn serve_own(&self, resolver: Arc<Resolver>) -> OwnResolver {
        let host = HostNetns::at(self.lab.host_netns_path());
        let listen = self.resolver_config().listen;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            host.enter().expect("enter the lab host");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let sockets = Resolver::bind(&listen).expect("resolver listens");
                let _ = ready_tx.send(());
                tokio::select! {
                    result = resolver.serve(sockets) => {
                        if let Err(error) = result {
                            eprintln!("bench resolver stopped: {error}");
                        }
                    }
                    _ = stopped => {}
                }
            });
        });
        ready_rx.recv().expect("bench resolver thread started");
        OwnResolver {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Puts this process's threads (the resolvers), the upstream and the
    /// forwarder under SCHED_FIFO, or back to normal.
    fn realtime(&self, running: &Running, on: bool) {
        let mut pids = vec![std::process::id(), self.upstream.0.id()];
        if let Running::Child(child) = running {
            pids.push(child.0.id());
        }
        for pid in pids {
            let policy: &[&str] = if on {
                &["-f", "-p", "10"]
            } else {
                &["-o", "-p", "0"]
            };
            let done = Command::new("chrt")
                .arg("-a")
                .args(policy)
                .arg(pid.to_string())
                .output()
                .is_ok_and(|o| o.status.success());
            if !done {
                eprintln!("chrt {policy:?} {pid} failed");
            }
        }
    }

    fn start(&self, server: Server, knobs: &Knobs) -> Running {
        let running = match server {
            Server::Direct => Running::Nothing,
            Server::Dnsmasq => {
                let child = self
                    .lab
                    .host_command([
                        "dnsmasq".to_owned(),
                        "--keep-in-foreground".to_owned(),
                        "--no-resolv".to_owned(),
                        "--no-hosts".to_owned(),
                        "--no-poll".to_owned(),
                        "--user=root".to_owned(),
                        "--pid-file=".to_owned(),
                        "--bind-interfaces".to_owned(),
                        format!("--listen-address={}", self.gateway),
                        "--port=53".to_owned(),
                        "--cache-size=0".to_owned(),
                        format!("--server={UPSTREAM_V4}#{UPSTREAM_PORT}"),
                    ])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("dnsmasq forwarder");
                Running::Child(Killed(child))
            }
            Server::Ours | Server::OursNoCap => {
                let cap = if server == Server::Ours {
                    QUERY_RATE_PER_BOX
                } else {
                    knobs.cap
                };
                Running::Shipped(
                    self.engine
                        .spawn_resolver(
                            vec![SocketAddr::new(UPSTREAM_V4.into(), UPSTREAM_PORT)],
                            UPSTREAM_TIMEOUT,
                            TtlLimits::default(),
                            cap,
                            TcpLimits::default(),
                        )
                        .expect("resolver starts"),
                )
            }
            Server::OursNoLearn => {
                Running::Own(self.serve_own(self.own_resolver(Arc::new(NoopLearner), knobs.cap)))
            }
        };
        self.wait_answers(server);
        // Let the shipped resolver's token bucket refill after the probe.
        std::thread::sleep(Duration::from_millis(500));
        running
    }

    /// dnsperf in the box against `server`, for `secs`, at most `qps`
    /// queries per second (unlimited: as fast as 100 outstanding queries
    /// go).
    fn dnsperf(&self, server: Server, secs: u32, qps: Option<u32>, realtime: bool) -> Perf {
        let (address, port) = self.target(server);
        let mut cmd = Command::new(if realtime { "chrt" } else { "nsenter" });
        if realtime {
            cmd.args(["-f", "10", "nsenter"]);
        }
        cmd.arg(format!("--net={}", self.box_netns.display()))
            .args(["dnsperf", "-s"])
            .arg(address.to_string())
            .arg("-p")
            .arg(port.to_string())
            .arg("-d")
            .arg(&self.queries)
            .arg("-l")
            .arg(secs.to_string());
        if let Some(qps) = qps {
            cmd.arg("-Q").arg(qps.to_string()).arg("-v");
        }
        let out = cmd.output().expect("dnsperf (Debian package dnsperf)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        Perf::parse(&text).unwrap_or_else(|| {
            panic!(
                "dnsperf output: {text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    fn perf(&self, knobs: &Knobs) {
        let wanted: Vec<&str> = knobs.servers.split(',').map(str::trim).collect();
        let mut results: Vec<Series> = Server::ALL
            .iter()
            .filter(|s| wanted.contains(&s.key()))
            .map(|s| (*s, Vec::new(), Vec::new()))
            .collect();
        for run in 0..knobs.runs {
            for (server, latency, throughput) in &mut results {
                let running = self.start(*server, knobs);
                // The machine is shared with builds and other benchmarks:
                // at a fixed low rate the latency runs use little CPU, so
                // they run under SCHED_FIFO to keep other tenants' time
                // slices out of the tail.
                self.realtime(&running, knobs.realtime);
                let slow =
                    self.dnsperf(*server, knobs.secs, Some(knobs.latency_qps), knobs.realtime);
                self.realtime(&running, false);
                println!(
                    "run {run} {} @{} q/s: {slow}",
                    server.label(),
                    knobs.latency_qps
                );
                if let Running::Shipped(handle) = &running {
                    // The resolver's own view (arrival to answer sent,
                    // insertion included): tells its tail from the path's.
                    println!("  resolver-side: {}", buckets(&handle.resolver.stats));
                }
                latency.push(slow);
                let fast = self.dnsperf(*server, knobs.secs, None, false);
                println!("run {run} {} max: {fast}", server.label());
                if let Running::Shipped(handle) = &running {
                    let stats = &handle.resolver.stats;
                    println!(
                        "  resolver: {} queries, {} refused, {} upstream failures",
                        stats.queries.load(Ordering::Relaxed),
                        stats.refused.load(Ordering::Relaxed),
                        stats.upstream_errors.load(Ordering::Relaxed)
                    );
                }
                throughput.push(fast);
                drop(running);
            }
        }
        let of = |server: Server| results.iter().find(|r| r.0 == server);
        let direct_p99 =
            of(Server::Direct).map_or(f64::NAN, |r| median(r.1.iter().map(|p| p.p99_ms).collect()));
        let direct_avg =
            of(Server::Direct).map_or(f64::NAN, |r| median(r.1.iter().map(|p| p.avg_ms).collect()));
        let dnsmasq_qps = of(Server::Dnsmasq).map_or(f64::NAN, |r| {
            median(r.2.iter().map(|p| p.answered_qps).collect())
        });
        println!();
        println!(
            "| server | max q/s (all answers) | max q/s (NOERROR) | × dnsmasq (NOERROR) | avg ms @max | \
             avg ms @{0} q/s | p50 ms @{0} | p99 ms @{0} | added avg / p99 over direct (ms) |",
            knobs.latency_qps
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        for (server, latency, throughput) in &results {
            let qps = median(throughput.iter().map(|p| p.qps).collect());
            let answered = median(throughput.iter().map(|p| p.answered_qps).collect());
            let avg_max = median(throughput.iter().map(|p| p.avg_ms).collect());
            let avg = median(latency.iter().map(|p| p.avg_ms).collect());
            let p50 = median(latency.iter().map(|p| p.p50_ms).collect());
            let p99 = median(latency.iter().map(|p| p.p99_ms).collect());
            println!(
                "| {} | {qps:.0} | {answered:.0} | {:.2} | {avg_max:.3} | {avg:.3} | {p50:.3} | {p99:.3} | {:+.3} / {:+.3} |",
                server.label(),
                answered / dnsmasq_qps,
                avg - direct_avg,
                p99 - direct_p99,
            );
        }
        println!(
            "per-box cap: default {QUERY_RATE_PER_BOX} q/s (bursts of twice that); \
             `nocap` rows: {} q/s",
            knobs.cap
        );
        println!("every run (NOERROR q/s at max; p99 ms at the fixed rate):");
        for (server, latency, throughput) in &results {
            let qps: Vec<String> = throughput
                .iter()
                .map(|p| format!("{:.0}", p.answered_qps))
                .collect();
            let p99: Vec<String> = latency.iter().map(|p| format!("{:.3}", p.p99_ms)).collect();
            println!(
                "  {}: q/s [{}], p99 [{}]",
                server.label(),
                qps.join(", "),
                p99.join(", ")
            );
        }
    }

    /// In process, one query at a time, from the lab host: upstream round
    /// trip, set insertion, and the resolver's whole `handle`.
    fn breakdown(&self, knobs: &Knobs) {
        let learner: Arc<dyn Learner> = Arc::<LinuxEngine>::clone(&self.engine);
        let resolver = self.own_resolver(learner, knobs.cap);
        let entry = self
            .engine
            .directory()
            .lookup(IpAddr::V4(self.box_ip))
            .expect("box entry");
        let upstreams = Upstreams::new(
            vec![SocketAddr::new(UPSTREAM_V4.into(), UPSTREAM_PORT)],
            UPSTREAM_TIMEOUT,
        );
        let samples = knobs.samples;
        let names = knobs.names;
        let box_ip = IpAddr::V4(self.box_ip);
        let engine = Arc::clone(&self.engine);
        let shipped = Arc::clone(&entry);
        let rows = self
            .lab
            .in_host(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async move {
                    let index = |k: usize| u32::try_from(k).unwrap_or(0) % names;
                    let mut ask = Vec::with_capacity(samples);
                    for k in 0..samples {
                        let query = query_bytes(k, &name_of(index(k)));
                        let started = Instant::now();
                        upstreams
                            .ask(&query, false)
                            .await
                            .expect("upstream answers");
                        ask.push(nanos(started));
                    }
                    let mut insert = Vec::with_capacity(samples);
                    for k in 0..samples {
                        // Addresses no name answers: a fresh element each.
                        let ip = Ipv4Addr::from_bits((45 << 24) + u32::try_from(k).unwrap_or(0));
                        let started = Instant::now();
                        engine
                            .learn(
                                &entry,
                                &[LearnTarget::Box],
                                &[(IpAddr::V4(ip), Duration::from_secs(90))],
                            )
                            .await
                            .expect("set insertion");
                        insert.push(nanos(started));
                    }
                    let mut handle = Vec::with_capacity(samples);
                    for k in 0..samples {
                        let query = query_bytes(k, &name_of(index(k + samples)));
                        let started = Instant::now();
                        let answer = resolver.handle(box_ip, &query, false).await;
                        handle.push(nanos(started));
                        let answer = answer.expect("an answer");
                        assert_eq!(answer.get(3).map(|b| b & 0x0f), Some(0), "NOERROR");
                    }
                    // BoxEntry::remember with as many live entries as the
                    // perf section's names.
                    let fresh = BoxEntry::new(
                        shipped.id.clone(),
                        shipped.ifname.clone(),
                        shipped.policy.clone(),
                    );
                    let keep = Duration::from_secs(90);
                    for i in 0..names {
                        fresh.remember(&name_of(i), &[(IpAddr::V4(address_of(i)), keep)]);
                    }
                    let mut remember = Vec::with_capacity(samples);
                    for k in 0..samples {
                        let i = index(k);
                        let started = Instant::now();
                        fresh.remember(&name_of(i), &[(IpAddr::V4(address_of(i)), keep)]);
                        remember.push(nanos(started));
                    }
                    vec![
                        ("upstream round trip (Upstreams::ask, pooled sockets)", ask),
                        (
                            "set insertion over netlink (engine.learn, 1 address, writer thread)",
                            insert,
                        ),
                        (
                            "resolver handle (parse, policy, upstream, screen, learn, encode)",
                            handle,
                        ),
                        (
                            "BoxEntry::remember, learned map of BF_BENCH_NAMES entries",
                            remember,
                        ),
                    ]
                })
            })
            .expect("runs in the lab host");
        println!();
        println!("breakdown, one query at a time in the lab host ({samples} samples, µs):");
        println!("| step | avg | p50 | p99 | max |");
        println!("|---|---|---|---|---|");
        for (what, samples) in rows {
            println!("| {what} | {} |", Stats::of(samples).row());
        }
    }
}

/// Cumulative counts of the resolver's latency histogram at a few bounds.
fn buckets(stats: &boxfence_resolver::Stats) -> String {
    let mut text = String::new();
    stats.latency.render("h", "", &mut text);
    let wanted = ["0.00025", "0.0005", "0.001", "0.005", "+Inf"];
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("h_bucket{le=\"")?;
            let (bound, count) = rest.split_once("\"} ")?;
            wanted
                .contains(&bound)
                .then(|| format!("≤{bound}s: {count}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn nanos(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A DNS query for `name` A IN, id from `k`, recursion desired.
fn query_bytes(k: usize, name: &str) -> Vec<u8> {
    let id = u16::try_from(k % 65_536).unwrap_or(0).to_be_bytes();
    let mut out = vec![id[0], id[1], 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        out.push(u8::try_from(label.len()).expect("short label"));
        out.extend_from_slice(label.as_bytes());
    }
    out.extend_from_slice(&[0, 0, 1, 0, 1]);
    out
}

/// Latency statistics of nanosecond samples.
#[derive(Debug)]
struct Stats {
    avg: f64,
    p50: f64,
    p99: f64,
    max: f64,
}

impl Stats {
    #[allow(clippy::cast_precision_loss)]
    fn of(mut samples: Vec<u64>) -> Self {
        if samples.is_empty() {
            return Self {
                avg: f64::NAN,
                p50: f64::NAN,
                p99: f64::NAN,
                max: f64::NAN,
            };
        }
        samples.sort_unstable();
        let us = |n: u64| n as f64 / 1000.0;
        let sum: u64 = samples.iter().sum();
        Self {
            avg: us(sum) / samples.len() as f64,
            p50: us(percentile(&samples, 0.50)),
            p99: us(percentile(&samples, 0.99)),
            max: us(samples[samples.len() - 1]),
        }
    }

    fn row(&self) -> String {
        format!(
            "{:.1} | {:.1} | {:.1} | {:.1}",
            self.avg, self.p50, self.p99, self.max
        )
    }
}

fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.retain(|v| !v.is_nan());
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A server's latency runs and throughput runs.
type Series = (Server, Vec<Perf>, Vec<Perf>);

/// One dnsperf run.
#[derive(Debug, Clone)]
struct Perf {
    qps: f64,
    /// Queries per second answered NOERROR.
    answered_qps: f64,
    lost: u64,
    codes: String,
    avg_ms: f64,
    /// From per-query output (`-v`), NOERROR answers only; NaN without.
    p50_ms: f64,
    p99_ms: f64,
}

impl Perf {
    fn parse(text: &str) -> Option<Self> {
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .map(str::trim)
        };
        let number = |s: &str| s.split_whitespace().next()?.parse::<f64>().ok();
        let qps = number(field("Queries per second:")?)?;
        let completed = number(field("Queries completed:")?)?;
        let lost = field("Queries lost:")
            .and_then(number)
            .map_or(0, |v| v as u64);
        let codes = field("Response codes:").unwrap_or("").to_owned();
        let noerror = codes
            .split(',')
            .find_map(|c| c.trim().strip_prefix("NOERROR "))
            .and_then(number)
            .unwrap_or(0.0);
        let answered_qps = if completed > 0.0 {
            qps * noerror / completed
        } else {
            0.0
        };
        let avg_ms = number(field("Average Latency (s):")?)? * 1000.0;
        let mut per_query: Vec<u64> = text
            .lines()
            .filter_map(|l| {
                let mut parts = l.strip_prefix("> NOERROR ")?.split_whitespace();
                let seconds: f64 = parts.nth(2)?.parse().ok()?;
                Some((seconds * 1e9) as u64)
            })
            .collect();
        per_query.sort_unstable();
        #[allow(clippy::cast_precision_loss)]
        let ms = |n: u64| n as f64 / 1e6;
        let (p50_ms, p99_ms) = if per_query.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            (
                ms(percentile(&per_query, 0.50)),
                ms(percentile(&per_query, 0.99)),
            )
        };
        Some(Self {
            qps,
            answered_qps,
            lost,
            codes,
            avg_ms,
            p50_ms,
            p99_ms,
        })
    }
}

impl std::fmt::Display for Perf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.0} q/s ({:.0} NOERROR), lost {}, avg {:.3} ms, p50 {:.3} ms, p99 {:.3} ms [{}]",
            self.qps,
            self.answered_qps,
            self.lost,
            self.avg_ms,
            self.p50_ms,
            self.p99_ms,
            self.codes
        )
    }
}
