//! One box's policy update while another tenant floods the daemon
//! (issue 18): the latency of an admin's `PUT /v1/boxes/{id}/network-policy`
//! on a box of one app, quiet and while a second app floods execs,
//! creates, held API connections, denied flows, or resolver UDP or TCP, all
//! in one run. The daemon is the flood tests' rig: the real server, SQLite
//! store, Linux engine and resolver in a sealed lab, in this process.
//!
//! `cargo bench -p boxfence --bench floods` as root in a fresh network
//! namespace; prints why and exits 0 otherwise. Knob: `BF_BENCH_UPDATES`
//! (200), the updates per scenario. Results: BENCHMARKS.md.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::task::JoinSet;

// Shared with the flood tests; the bench uses only part of it.
#[allow(dead_code)]
#[path = "../tests/flood_e2e/daemon.rs"]
mod daemon;
#[path = "../../boxfence-engine/tests/support/lab_config.rs"]
mod lab_config;
#[path = "../tests/flood_e2e/slowloris.rs"]
mod slowloris;

use slowloris::{closed, hold};

use daemon::{ADMIN, Api, LabDaemon};

/// Concurrent clients of the exec and create floods: far past the caps
/// (16 execs and 8 creates per app), so most are refused and retry at once.
const FLOOD_CLIENTS: usize = 64;
/// Boxes the exec flood spreads over (4 execs each may run).
const EXEC_BOXES: usize = 5;
/// Connections the API flood holds from 127.0.0.2: 64 past its cap of 256.
const HELD_CONNECTIONS: usize = 256 + 64;
/// How long a flood runs before updates are timed.
const RAMP: Duration = Duration::from_secs(2);

/// New denied UDP flows (each a new source port) for `argv[1]` seconds.
const DENIALS: &str = "import socket,sys,time
n,end=0,time.time()+float(sys.argv[1])
while time.time()<end:
    s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.sendto(b'x',('198.51.100.10',9)); s.close(); n+=1
print(n, 'denied flows')
";

/// DNS queries to the resolver as fast as it goes for `argv[1]` seconds,
/// never reading an answer.
const DNS_UDP: &str = "import socket,sys,time
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.setblocking(False)
n,end=0,time.time()+float(sys.argv[1])
q=b'\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x05flood\\x07example\\x00\\x00\\x01\\x00\\x01'
while time.time()<end:
    try:
        s.sendto((n%65536).to_bytes(2,'big')+q,('198.51.100.53',53)); n+=1
    except BlockingIOError:
        time.sleep(0.001)
print(n, 'queries')
";

/// TCP connections to the resolver for `argv[1]` seconds, one every 2 ms,
/// each sending a query's length and never the query; held until closed.
const DNS_TCP: &str = "import resource,socket,sys,time
soft,hard=resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE,(hard,hard))
held,n,end=[],0,time.time()+float(sys.argv[1])
while time.time()<end:
    s=socket.socket(); s.settimeout(1)
    try:
        s.connect(('198.51.100.53',53)); s.send(b'\\x00\\x40'); held.append(s); n+=1
    except OSError:
        s.close()
    if len(held)>=256:
        for s in held: s.close()
        held=[]
    time.sleep(0.002)
print(n, 'connections')
";

/// Latencies of one scenario, sorted.
struct Sample {
    name: String,
    took: Vec<Duration>,
}

impl Sample {
    fn quantile(&self, q: f64) -> Duration {
        let at = ((self.took.len() as f64 * q).ceil() as usize).clamp(1, self.took.len());
        self.took[at - 1]
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A flood in progress: stopped by its flag, its tasks and threads joined.
#[derive(Default)]
struct Flood {
    stop: Arc<AtomicBool>,
    tasks: JoinSet<()>,
    threads: Vec<JoinHandle<()>>,
    /// Calls the flooding clients made, by answer status.
    answered: Arc<std::sync::Mutex<BTreeMap<u16, usize>>>,
    /// Box execs that end by themselves (a duration given to the script).
    execs: Vec<tokio::task::JoinHandle<daemon::Answer>>,
}

impl Flood {
    fn end(mut self, daemon: &LabDaemon) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        daemon.block_on(async {
            while self.tasks.join_next().await.is_some() {}
            let answered = self.answered.lock().expect("counts").clone();
            if !answered.is_empty() {
                println!("  the flood's calls, by status: {answered:?}");
            }
            for exec in self.execs.drain(..) {
                match exec.await {
                    Ok(answer) if answer.status == 200 => {
                        let out = answer.body["stdout"].as_str().unwrap_or_default();
                        println!("  the box sent {}", out.trim());
                    }
                    other => println!("  the flood's exec failed: {other:?}"),
                }
            }
        });
    }
}

/// The bench: a daemon, the box whose policy is changed, the flooding app.
struct Bench {
    daemon: LabDaemon,
    target: String,
    flooder: String,
    updates: usize,
    /// How long a box's flood script runs: past the longest measurement.
    flood_secs: u64,
}

impl Bench {
    /// `updates` sequential policy changes of the target box, alternating
    /// between allow-all and a custom CIDR list; each one's latency.
    fn measure(&self, name: &str) -> Sample {
        let path = format!("/v1/boxes/{}/network-policy", self.target);
        let policies = [
            json!({"mode": "allow-all"}),
            json!({"mode": "custom", "allowedCidrs": ["203.0.113.0/24", "198.51.100.0/24"]}),
        ];
        let mut took = self.daemon.block_on(async {
            let mut took = Vec::with_capacity(self.updates);
            for n in 0..self.updates {
                let body = policies[n % 2].clone();
                let answer = self
                    .daemon
                    .api
                    .call(Method::PUT, &path, ADMIN, Some(body))
                    .await;
                assert_eq!(answer.status, 200, "{answer:?}");
                took.push(answer.took);
            }
            took
        });
        took.sort();
        Sample {
            name: name.into(),
            took,
        }
    }

    /// `clients` tasks of the flooding app, each doing `round` over and
    /// over until the flood is stopped.
    fn spawn_loops<F, Fut>(&self, flood: &mut Flood, clients: usize, round: F)
    where
        F: Fn(usize, Api, String) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = u16> + Send,
    {
        let runtime = self.daemon.runtime.as_ref().expect("runtime");
        for n in 0..clients {
            let (api, token, stop, round, answered) = (
                self.daemon.api.clone(),
                self.flooder.clone(),
                Arc::clone(&flood.stop),
                round.clone(),
                Arc::clone(&flood.answered),
            );
            flood.tasks.spawn_on(
                async move {
                    while !stop.load(Ordering::Relaxed) {
                        let status = round(n, api.clone(), token.clone()).await;
                        *answered.lock().expect("counts").entry(status).or_default() += 1;
                    }
                },
                runtime.handle(),
            );
        }
    }

    /// Execs of `sleep 1` in the flooder's boxes, 64 clients at a time:
    /// 16 run, the rest are refused and asked again at once.
    fn exec_flood(&self) -> Flood {
        let boxes: Arc<Vec<String>> =
            Arc::new((0..EXEC_BOXES).map(|_| self.create_box()).collect());
        let mut flood = Flood::default();
        self.spawn_loops(&mut flood, FLOOD_CLIENTS, move |n, api, token| {
            let path = format!("/v1/boxes/{}/exec", boxes[n % boxes.len()]);
            async move {
                let body = json!({"command": ["sleep", "1"], "timeout": 30});
                api.call(Method::POST, &path, &token, Some(body))
                    .await
                    .status
            }
        });
        flood
    }

    /// Creates by 64 clients at a time, each box deleted once made.
    fn create_flood(&self) -> Flood {
        let mut flood = Flood::default();
        self.spawn_loops(&mut flood, FLOOD_CLIENTS, |_, api, token| async move {
            let made = api
                .call(Method::POST, "/v1/boxes", &token, Some(json!({})))
                .await;
            if let Some(id) = made.body["id"].as_str() {
                let path = format!("/v1/boxes/{id}");
                api.call(Method::DELETE, &path, &token, None).await;
            }
            made.status
        });
        flood
    }

    /// 320 connections from 127.0.0.2, each a request head that never
    /// ends; the ones the server closes are opened again.
    fn connection_flood(&self) -> Flood {
        let mut flood = Flood::default();
        let (api, stop) = (self.daemon.api.address(), Arc::clone(&flood.stop));
        flood.threads.push(std::thread::spawn(move || {
            let (mut held, mut opened) = (Vec::<TcpStream>::new(), 0);
            while !stop.load(Ordering::Relaxed) {
                held.retain(|stream| !closed(stream));
                while held.len() < HELD_CONNECTIONS {
                    match hold("127.0.0.2", api) {
                        Some(stream) => {
                            held.push(stream);
                            opened += 1;
                        }
                        None => break,
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            println!("  127.0.0.2 opened {opened} connections");
        }));
        flood
    }

    /// `script` run by python in a new box of the flooder with `policy`,
    /// for longer than any measurement lasts.
    fn box_flood(&self, policy: Value, script: &'static str) -> Flood {
        let id = self.create_box();
        let path = format!("/v1/boxes/{id}/network-policy");
        let set = self.daemon.block_on(self.daemon.api.call(
            Method::PUT,
            &path,
            &self.flooder,
            Some(policy),
        ));
        assert_eq!(set.status, 200, "{set:?}");
        let (api, token, secs) = (
            self.daemon.api.clone(),
            self.flooder.clone(),
            self.flood_secs.to_string(),
        );
        let runtime = self.daemon.runtime.as_ref().expect("runtime");
        let mut flood = Flood::default();
        flood.execs.push(runtime.spawn(async move {
            let body = json!({
                "command": ["python3", "-c", script, secs],
                "timeout": 600,
            });
            api.call(
                Method::POST,
                &format!("/v1/boxes/{id}/exec"),
                &token,
                Some(body),
            )
            .await
        }));
        flood
    }

    fn create_box(&self) -> String {
        self.daemon
            .block_on(self.daemon.api.create_box(&self.flooder))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("floods: bench");
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        println!("floods bench skipped: it needs root (network namespaces, nftables)");
        return;
    }
    let updates: usize = std::env::var("BF_BENCH_UPDATES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let daemon = LabDaemon::start();
    let (target, flooder) = daemon.block_on(async {
        let other = daemon.api.app_with_token("other").await;
        let target = daemon.api.create_box(&other).await;
        (target, daemon.api.app_with_token("flooder").await)
    });
    let mut bench = Bench {
        daemon,
        target,
        flooder,
        updates,
        flood_secs: 0,
    };
    // Warm up (connections, caches), then size the box floods on the
    // quiet time: four times it, and never under 20 s.
    bench.measure("warm-up");
    let started = Instant::now();
    let quiet = bench.measure("quiet");
    bench.flood_secs = (started.elapsed().as_secs() * 4 + RAMP.as_secs()).max(20);
    println!(
        "{updates} updates per scenario; box floods run {} s",
        bench.flood_secs
    );
    report_line(&quiet, &quiet);

    type Start = fn(&Bench) -> Flood;
    let scenarios: [(&str, Start); 6] = [
        ("exec flood", Bench::exec_flood),
        ("create flood", Bench::create_flood),
        ("API connection flood", Bench::connection_flood),
        ("denied-flow flood", |b| {
            b.box_flood(
                json!({"mode": "custom", "allowedCidrs": ["203.0.113.0/24"]}),
                DENIALS,
            )
        }),
        ("resolver UDP flood", |b| {
            b.box_flood(json!({"mode": "deny-all"}), DNS_UDP)
        }),
        ("resolver TCP flood", |b| {
            b.box_flood(json!({"mode": "deny-all"}), DNS_TCP)
        }),
    ];
    let mut samples = vec![quiet];
    for (name, start) in scenarios {
        let flood = start(&bench);
        std::thread::sleep(RAMP);
        let sample = bench.measure(name);
        report_line(&sample, &samples[0]);
        samples.push(sample);
        flood.end(&bench.daemon);
        let after = bench.measure(&format!("quiet after {name}"));
        report_line(&after, &samples[0]);
        samples.push(after);
    }
    println!();
    println!("| scenario | p50 (ms) | p99 (ms) | max (ms) | p99 / quiet p99 |");
    println!("|---|---:|---:|---:|---:|");
    for sample in &samples {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.2} |",
            sample.name,
            ms(sample.quantile(0.5)),
            ms(sample.quantile(0.99)),
            ms(sample.quantile(1.0)),
            ms(sample.quantile(0.99)) / ms(samples[0].quantile(0.99)),
        );
    }
}

fn report_line(sample: &Sample, quiet: &Sample) {
    println!(
        "{:<36} p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms  p99/quiet {:.2}",
        sample.name,
        ms(sample.quantile(0.5)),
        ms(sample.quantile(0.99)),
        ms(sample.quantile(1.0)),
        ms(sample.quantile(0.99)) / ms(quiet.quantile(0.99)),
    );
}
