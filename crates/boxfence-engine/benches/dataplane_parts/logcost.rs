//! The cost of the flow log (issue 6): denied new connections per second
//! with the deny chains logging to NFLOG and with the log rule removed, and
//! the CPU the daemon's packet-log reader spends while a box floods
//! denied packets.

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use boxfence_lab::SERVER_V4;
use serde_json::json;

use super::{CPS_CLIENTS, CPS_PORT, Knobs, Rig, enter, median};

/// Runs the section and prints its tables.
pub(crate) fn logging_cost(rig: &Rig, knobs: &Knobs) {
    let spec = rig.spec("lc1");
    let policy = rig.effective(&spec, &json!({"mode": "deny-all"}), &[]);
    rig.create(&spec, &policy);
    let netns = rig.engine.netns_path(&spec.id);
    let duration = Duration::from_secs(knobs.secs);
    let (mut logged, mut silent) = (Vec::new(), Vec::new());
    for _ in 0..knobs.runs {
        logged.push(denied_rate(&netns, duration));
        // The same chain without its log rule; held under the engine's
        // lock so the watchdog does not restore it meanwhile.
        silent.push(rig.engine.while_locked(|| {
            rig.nft(
                "flush chain inet boxfence deny_box\n\
                 add rule inet boxfence deny_box counter\n\
                 add rule inet boxfence deny_box goto reject_flow\n",
            );
            let rate = denied_rate(&netns, duration);
            // Back to what `ruleset/base.rs` writes.
            rig.nft(
                "flush chain inet boxfence deny_box\n\
                 add rule inet boxfence deny_box counter\n\
                 add rule inet boxfence deny_box limit rate 50/second burst 100 packets \
                 log prefix \"boxfence box_policy \" group 7\n\
                 add rule inet boxfence deny_box goto reject_flow\n",
            );
            rate
        }));
    }
    let (logged, silent) = (median(&mut logged), median(&mut silent));
    println!(
        "\n### Cost of logging denials (box deny-all, {} runs x {} s, medians)\n",
        knobs.runs, knobs.secs
    );
    println!(
        "| denied connections/s, no log rule | with NFLOG logging | ratio |\n|---:|---:|---:|"
    );
    println!(
        "| {silent:.0} | {logged:.0} | {:.1}% |",
        100.0 * logged / silent
    );

    let before = reader_cpu();
    let started = Instant::now();
    let packets = flood(&netns, 100_000);
    let sent_in = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let cpu = reader_cpu().saturating_sub(before);
    let kept = rig.engine.flow_log().len();
    println!(
        "\nflood: {packets} denied UDP packets in {:.2} s; the packet-log reader used {:.3} s of CPU \
         (the kernel logs at most 50 packets/s, the rest is counted only); flow log holds {kept} events\n",
        sent_in.as_secs_f64(),
        cpu.as_secs_f64()
    );
}

/// Refused connection attempts per second from `CPS_CLIENTS` threads.
fn denied_rate(netns: &Path, duration: Duration) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..CPS_CLIENTS)
        .map(|_| {
            let (stop, refused, netns) =
                (Arc::clone(&stop), Arc::clone(&refused), netns.to_owned());
            std::thread::spawn(move || {
                enter(&netns);
                let target = SocketAddr::from((SERVER_V4, CPS_PORT));
                let mut count = 0;
                while !stop.load(Ordering::Relaxed) {
                    if TcpStream::connect_timeout(&target, Duration::from_secs(1)).is_err() {
                        count += 1;
                    }
                }
                refused.fetch_add(count, Ordering::Relaxed);
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().expect("client");
    }
    refused.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Sends `count` UDP packets to a denied destination from the box.
fn flood(netns: &Path, count: u32) -> u32 {
    let netns = netns.to_owned();
    std::thread::spawn(move || {
        enter(&netns);
        let socket = UdpSocket::bind("0.0.0.0:0").expect("socket");
        let mut sent = 0;
        for i in 0..count {
            let port = 1000 + u16::try_from(i % 50_000).unwrap_or(0);
            if socket.send_to(b"x", (SERVER_V4, port)).is_ok() {
                sent += 1;
            }
        }
        sent
    })
    .join()
    .expect("flood thread")
}

/// CPU time of the engine's packet-log reader thread.
fn reader_cpu() -> Duration {
    let ticks_per_second = 100.0;
    std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|c| c.trim() == "boxfence-nflog")
        })
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .filter_map(|stat| {
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let ticks: f64 =
                fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
            Some(Duration::from_secs_f64(ticks / ticks_per_second))
        })
        .sum()
}
