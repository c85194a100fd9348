//! The cost of name checks (issue 19): new HTTP connections per second and
//! bulk throughput of flows that a domain authorised (their first payload
//! goes through the checker, which reads its `Host`), beside the same
//! flows authorised by a CIDR (never checked) and with no ruleset, in the
//! same run, and through a user-space proxy that reads the `Host` (nginx,
//! as E2B-style platforms check names). Each connection sends a request
//! naming `bench.example` and waits for the server's answer and close.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use boxfence_lab::SERVER_V4;
use serde_json::json;

use super::{
    CPS_CLIENTS, Cell, Config, CpsServer, Knobs, Rig, TrafficBox, enter, flush_conntrack,
    learn_batch, median, with_config,
};

/// Where the request-answering server listens (internet namespace).
const NAMES_PORT: u16 = 7003;
/// Where nginx listens in front of it, on the same address.
const PROXY_PORT: u16 = 7004;
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: bench.example\r\n\r\n";
/// An upload that goes on until the client stops.
const UPLOAD: &[u8] =
    b"POST / HTTP/1.1\r\nHost: bench.example\r\nTransfer-Encoding: chunked\r\n\r\n";
const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Runs the section and prints its tables.
pub(crate) fn name_check_cost(rig: &Rig, knobs: &Knobs) {
    let checked = traffic_box(
        rig,
        "nc",
        json!({"mode": "custom", "allowedDomains": ["bench.example"]}),
    );
    rig.nft(&learn_batch("nc", &checked.learned));
    let cidr = traffic_box(
        rig,
        "ncc",
        json!({"mode": "custom", "allowedCidrs": [format!("{SERVER_V4}/32")]}),
    );
    let cps_server = CpsServer::start(rig);
    let server = Server::start(rig);
    let proxy = Proxy::start(rig);
    let secs = Duration::from_secs(knobs.secs);
    for (what, netns, port) in [
        ("the checked box", &checked.netns, NAMES_PORT),
        ("the proxy", &cidr.netns, PROXY_PORT),
    ] {
        assert!(
            request_rate(netns, port, Duration::from_millis(300), false) > 0.0,
            "{what} gets answers"
        );
    }
    let columns = [
        "checked by name",
        "authorised by CIDR",
        "no ruleset",
        "CIDR, through nginx",
    ];
    for (title, unit, bulk) in [
        (
            "New HTTP connections per second (connect, request, answer, close)",
            "conn/s",
            false,
        ),
        (
            "Bulk throughput of one HTTP upload (Gbit/s)",
            "Gbit/s",
            true,
        ),
    ] {
        let mut cols: [Vec<Cell>; 4] = Default::default();
        for run in 0..knobs.runs {
            let count = cols.len();
            for column in (0..count).map(|i| (i + run) % count) {
                let measure = |netns: &Path, port| {
                    flush_conntrack(rig);
                    Cell::measure(|| request_rate(netns, port, secs, bulk))
                };
                let cell = match column {
                    0 => rig
                        .engine
                        .while_locked(|| measure(&checked.netns, NAMES_PORT)),
                    1 => rig.engine.while_locked(|| measure(&cidr.netns, NAMES_PORT)),
                    2 => with_config(rig, &cidr, Config::NoRuleset, || {
                        measure(&cidr.netns, NAMES_PORT)
                    }),
                    _ => rig.engine.while_locked(|| measure(&cidr.netns, PROXY_PORT)),
                };
                if column == 2 {
                    // A restored table lost the learned address.
                    rig.nft(&learn_batch("nc", &checked.learned));
                }
                eprintln!(
                    "names run {} {}: {:.2}",
                    run + 1,
                    columns[column],
                    cell.rate
                );
                cols[column].push(cell);
            }
        }
        println!("### {title}\n");
        println!(
            "| run | {} |\n|---|---:|---:|---:|---:|",
            columns.join(" | ")
        );
        for run in 0..knobs.runs {
            let cells: Vec<String> = cols
                .iter()
                .map(|c| {
                    format!(
                        "{:.2} ({:.1} µs CPU)",
                        c[run].rate,
                        c[run].cpu_per_unit * 1e6
                    )
                })
                .collect();
            println!("| {} | {} |", run + 1, cells.join(" | "));
        }
        let ratio = |i: usize, j: usize| {
            let mut ratios: Vec<f64> = cols[i]
                .iter()
                .zip(&cols[j])
                .map(|(a, b)| a.rate / b.rate)
                .collect();
            median(&mut ratios) * 100.0
        };
        let medians: Vec<String> = cols
            .iter()
            .map(|c| {
                let mut rates: Vec<f64> = c.iter().map(|c| c.rate).collect();
                format!("**{:.2}** {unit}", median(&mut rates))
            })
            .collect();
        println!("| **median** | {} |\n", medians.join(" | "));
        println!(
            "Median per-run ratios: checked / CIDR-authorised {:.1}%, checked / no ruleset {:.1}%, CIDR-authorised / no ruleset {:.1}%, through nginx / no ruleset {:.1}%, checked / through nginx {:.1}%.\n",
            ratio(0, 1),
            ratio(0, 2),
            ratio(1, 2),
            ratio(3, 2),
            ratio(0, 3)
        );
    }
    proxy.stop(rig);
    server.stop();
    cps_server.stop(rig);
    for id in ["nc", "ncc"] {
        rig.delete(id);
    }
}

fn traffic_box(rig: &Rig, id: &str, box_policy: serde_json::Value) -> TrafficBox {
    let spec = rig.spec(id);
    let policy = rig.effective(&spec, &box_policy, &[]);
    rig.create(&spec, &policy);
    TrafficBox {
        netns: rig.engine.netns_path(&spec.id),
        spec,
        cidrs: Vec::new(),
        learned: vec![SERVER_V4],
    }
}

/// Answers each connection's request and closes it; an upload (a POST
/// whose body never ends) is read until the client goes.
struct Server {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(rig: &Rig) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let internet = rig.lab.internet_netns_path().to_owned();
        let listener = std::thread::spawn(move || {
            enter(&internet);
            TcpListener::bind((SERVER_V4, NAMES_PORT)).expect("bind names server")
        })
        .join()
        .expect("bind thread");
        listener.set_nonblocking(true).expect("nonblocking");
        let listener = Arc::new(listener);
        let threads = (0..CPS_CLIENTS)
            .map(|_| {
                let (listener, stop) = (Arc::clone(&listener), Arc::clone(&stop));
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match listener.accept() {
                            Ok((stream, _)) => serve(stream),
                            Err(_) => std::thread::sleep(Duration::from_micros(200)),
                        }
                    }
                })
            })
            .collect();
        Self { stop, threads }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

fn serve(mut stream: TcpStream) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buffer = [0u8; 64 * 1024];
    let mut seen = Vec::new();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buffer[..n]),
        }
    }
    let _ = stream.write_all(ANSWER);
    // An upload goes on until the client closes; a request ends here.
    if seen.starts_with(b"POST") {
        while matches!(stream.read(&mut buffer), Ok(n) if n > 0) {}
    }
}

/// nginx in the internet namespace, proxying `PROXY_PORT` to the server
/// by the request's `Host`: the user-space baseline. It closes each client
/// connection after the answer and streams uploads, as the direct server
/// does.
struct Proxy {
    child: std::process::Child,
    config: std::path::PathBuf,
}

impl Proxy {
    fn start(rig: &Rig) -> Self {
        let dir = rig.lab.workdir().join("nginx");
        std::fs::create_dir_all(&dir).expect("nginx directory");
        let config = dir.join("nginx.conf");
        let dir = dir.display();
        // Workers run as root to use the lab's work directory.
        std::fs::write(
            &config,
            format!(
                "daemon off;\nuser root;\nworker_processes auto;\npid {dir}/nginx.pid;\n\
                 error_log {dir}/error.log;\nevents {{ worker_connections 4096; }}\n\
                 http {{\n  access_log off;\n  keepalive_timeout 0;\n\
                 client_body_temp_path {dir};\n  proxy_temp_path {dir};\n\
                 upstream names {{ server {SERVER_V4}:{NAMES_PORT}; }}\n\
                 server {{\n    listen {SERVER_V4}:{PROXY_PORT};\n\
                 server_name bench.example;\n    client_max_body_size 0;\n\
                 location / {{ proxy_pass http://names; proxy_http_version 1.1;\n\
                 proxy_request_buffering off; }}\n  }}\n\
                 server {{ listen {SERVER_V4}:{PROXY_PORT} default_server; return 421; }}\n}}\n"
            ),
        )
        .expect("nginx config");
        let child = rig
            .lab
            .internet_command(["nginx", "-e", "stderr", "-c"])
            .arg(&config)
            .spawn()
            .expect("nginx starts (apt-get install nginx-light)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while rig
            .lab
            .in_internet(|| TcpStream::connect((SERVER_V4, PROXY_PORT)))
            .expect("internet namespace")
            .is_err()
        {
            assert!(Instant::now() < deadline, "nginx listens");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, config }
    }

    fn stop(mut self, rig: &Rig) {
        let _ = rig
            .lab
            .internet_command(["nginx", "-s", "stop", "-c"])
            .arg(&self.config)
            .status();
        let _ = self.child.wait();
    }
}

/// Requests per second from the box to the server's `port` (`bulk`: one
/// upload's Gbit/s).
fn request_rate(netns: &Path, port: u16, duration: Duration, bulk: bool) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let clients = if bulk { 1 } else { CPS_CLIENTS };
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (stop, done, netns) = (Arc::clone(&stop), Arc::clone(&done), netns.to_owned());
            std::thread::spawn(move || {
                enter(&netns);
                let target = SocketAddr::from((SERVER_V4, port));
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut stream) =
                        TcpStream::connect_timeout(&target, Duration::from_secs(1))
                    else {
                        continue;
                    };
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    let request = if bulk { UPLOAD } else { REQUEST };
                    if stream.write_all(request).is_err() {
                        continue;
                    }
                    if bulk {
                        let chunk = vec![b'x'; 256 * 1024];
                        while !stop.load(Ordering::Relaxed) && stream.write_all(&chunk).is_ok() {
                            done.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                        }
                        return;
                    }
                    let mut answer = [0u8; 256];
                    while matches!(stream.read(&mut answer), Ok(n) if n > 0) {}
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        let _ = thread.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let done = done.load(Ordering::Relaxed) as f64;
    if bulk {
        done * 8.0 / 1e9 / elapsed
    } else {
        done / elapsed
    }
}
