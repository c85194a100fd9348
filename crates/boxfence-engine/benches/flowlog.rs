//! The flow log's disk (issue 17): what keeping events on disk costs per
//! recorded event, against the log in memory alone in the same run, and
//! how long a restart takes to read the logs back.
//!
//! ```sh
//! cargo bench -p boxfence-engine --bench flowlog
//! ```
//!
//! Knobs: `BF_BENCH_RUNS` (5), `BF_BENCH_BOXES` (1000 boxes recording 40
//! events each, their burst), `BF_BENCH_FULL` (100 boxes with full logs,
//! 2,000 lines each, read back). Writes under the temp directory only.
//! Results: BENCHMARKS.md.

use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use boxfence_engine::flowlog::{FlowLog, HISTORY_PER_BOX};
use boxfence_policy::{FlowEvent, FlowEventKind};

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn event(machine: &str, n: u64) -> FlowEvent {
    FlowEvent::new(
        n,
        machine.to_owned(),
        FlowEventKind::DnsQuery,
        "deny",
        "box policy custom: example.com is not in allowedDomains".into(),
    )
}

/// Nanoseconds per event of `boxes` boxes recording 40 events each.
fn record(log: &FlowLog, boxes: usize) -> f64 {
    let ids: Vec<String> = (0..boxes).map(|n| format!("b{n:011}")).collect();
    let started = Instant::now();
    for n in 0..40 {
        for id in &ids {
            log.record(event(id, n), None);
        }
    }
    started.elapsed().as_nanos() as f64 / (boxes * 40) as f64
}

fn middle(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Writes `boxes` full logs (a full old segment and a full current one).
fn full_logs(dir: &Path, boxes: usize) {
    for b in 0..boxes {
        for suffix in [".old.jsonl", ".jsonl"] {
            let path = dir.join(format!("f{b:011}{suffix}"));
            let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("file"));
            for n in 0..HISTORY_PER_BOX {
                let line = serde_json::to_string(&event("x", n as u64)).expect("json");
                writeln!(file, "{line}").expect("write");
            }
        }
    }
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let runs = knob("BF_BENCH_RUNS", 5);
    let boxes = knob("BF_BENCH_BOXES", 1000);
    let full = knob("BF_BENCH_FULL", 100);
    let (mut memory, mut disk) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        memory.push(record(&FlowLog::default(), boxes));
        let dir = tempfile::tempdir().expect("tempdir");
        disk.push(record(&FlowLog::persistent(dir.path()), boxes));
    }
    let (memory, disk) = (middle(memory), middle(disk));
    println!("record, {boxes} boxes x 40 events, median of {runs}:\n");
    println!("| in memory (ns/event) | on disk too (ns/event) | ratio |");
    println!("|---:|---:|---:|");
    println!("| {memory:.0} | {disk:.0} | {:.1}x |\n", disk / memory);

    let dir = tempfile::tempdir().expect("tempdir");
    full_logs(dir.path(), full);
    let mut opens = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let log = FlowLog::persistent(dir.path());
        opens.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(log.len(), full * HISTORY_PER_BOX, "every box's last events");
    }
    let open = middle(opens);
    println!(
        "open, {full} boxes with full logs (2 x {HISTORY_PER_BOX} lines), median of {runs}:\n"
    );
    println!("| ms | ms per box |");
    println!("|---:|---:|");
    println!("| {open:.1} | {:.2} |", open / full as f64);
}
