//! Boxes from an image, timed beside the OCI runtime's own work on the
//! same bundle, in the same run (issue 13):
//!
//! - create: boxfence's create (user and network namespaces by the
//!   helper, bundle, overlay root, `runtime run --detach`) until the box
//!   is ready for exec, beside the runtime's own create + start
//!   (`run --detach`) of the very bundle boxfence wrote;
//! - exec: `Sandboxes::exec` of `true`, beside `runtime exec` of a
//!   process file written once;
//! - many boxes: `--boxes N` boxes at once (default 1,000): memory per
//!   box (charged to its cgroup; and the kernel's own, before and after)
//!   and create times of the last 100.
//!
//! As root: `cargo bench -p boxfence-sandbox --bench boxes [-- --boxes N
//! --runs R --runtime crun|runc]`. Each box joins a network namespace
//! with no link, so nothing is sent anywhere.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use boxfence_sandbox::image::testing;
use boxfence_sandbox::{
    BoxSpec, DEFAULT_INIT, GeneratedEtc, Limits, Runtime, RuntimeKind, Sandboxes, UidRange,
};

const IMAGE: &str = "busybox:bench";
const LIMITS: Limits = Limits {
    cpus: 1,
    memory_mb: 64,
    pids_max: 64,
    tmp_mb: 8,
};

struct Args {
    boxes: u16,
    runs: usize,
    runtime: RuntimeKind,
}

fn args() -> Args {
    let mut args = Args {
        boxes: 1000,
        runs: 50,
        runtime: RuntimeKind::Crun,
    };
    let given: Vec<String> = std::env::args().skip(1).collect();
    for pair in given.windows(2) {
        match pair[0].as_str() {
            "--boxes" => args.boxes = pair[1].parse().expect("--boxes N"),
            "--runs" => args.runs = pair[1].parse().expect("--runs N"),
            "--runtime" => {
                args.runtime = RuntimeKind::from_name(&pair[1]).expect("--runtime crun|runc")
            }
            _ => {}
        }
    }
    args
}

/// A box's network namespace, bound at a path for its config.
fn bind(netns: &std::fs::File, path: &Path) {
    use std::os::fd::AsRawFd as _;
    std::fs::File::create(path).expect("mount point");
    let fd = format!("/proc/self/fd/{}", netns.as_raw_fd());
    nix::mount::mount(
        Some(fd.as_str()),
        path,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .expect("bind netns");
}

fn unbind(path: &Path) {
    let _ = nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(path);
}

struct Bench {
    sandboxes: Sandboxes,
    dir: PathBuf,
}

impl Bench {
    fn spec(&self, zone: u16) -> BoxSpec {
        BoxSpec {
            id: format!("bench-{zone}"),
            netns: self.dir.join(format!("netns-{zone}")),
            uids: UidRange::for_zone(1_000_000, zone).expect("range"),
            limits: LIMITS,
            etc: GeneratedEtc {
                resolv_conf: b"nameserver 192.0.2.53\n".to_vec(),
                hostname: "bench".into(),
            },
            image: Some(IMAGE.into()),
        }
    }

    /// boxfence's create of box `zone`, as the engine does it (less the
    /// network wiring): namespaces, then the container.
    fn create(&self, zone: u16) -> Duration {
        let spec = self.spec(zone);
        let started = Instant::now();
        let netns = self
            .sandboxes
            .namespaces(&spec.id, spec.uids)
            .expect("namespaces");
        bind(&netns, &spec.netns);
        self.sandboxes.create(&spec).expect("created");
        started.elapsed()
    }

    fn delete(&self, zone: u16) {
        let spec = self.spec(zone);
        self.sandboxes.delete(&spec.id).expect("deleted");
        unbind(&spec.netns);
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let rank = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[rank]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Bytes the memory cgroup of container `id` holds (v1 or v2).
fn cgroup_memory(id: &str) -> u64 {
    [
        format!("/sys/fs/cgroup/memory/boxfence/{id}/memory.usage_in_bytes"),
        format!("/sys/fs/cgroup/boxfence/{id}/memory.current"),
    ]
    .iter()
    .find_map(|path| std::fs::read_to_string(path).ok()?.trim().parse().ok())
    .unwrap_or(0)
}

/// KiB the kernel holds for its own objects (slab, kernel stacks, page
/// tables): where a box's namespaces, mounts and cgroups live.
fn kernel_kib() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").expect("meminfo");
    ["Slab:", "KernelStack:", "PageTables:"]
        .iter()
        .map(|key| {
            meminfo
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches(" kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .expect("meminfo field")
        })
        .sum()
}

fn main() {
    assert!(nix::unistd::Uid::effective().is_root(), "run as root");
    let args = args();
    let dir = tempfile::tempdir().expect("tempdir");
    let images = dir.path().join("images");
    let sandboxes = Sandboxes::new(args.runtime, dir.path(), Path::new(DEFAULT_INIT), &images)
        .expect("runtime and catatonit installed");
    let layout = dir.path().join("layout");
    testing::oci_layout(&layout, IMAGE);
    sandboxes
        .images()
        .import(&layout, |n| n.map(str::to_owned))
        .expect("imported");
    let bench = Bench {
        sandboxes,
        dir: dir.path().to_owned(),
    };
    println!("runtime {}, {} runs each", args.runtime.name(), args.runs);

    // Create: boxfence's, then the runtime's own run of the same bundle
    // (the bundle, overlay and namespaces kept from boxfence's create).
    let runtime = Runtime::find(args.runtime, dir.path().join("baseline")).expect("runtime");
    let bundles = dir.path().join("bundles");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for run in 0..args.runs {
        let zone = 1;
        ours.push(bench.create(zone));
        let id = bench.spec(zone).id;
        // The runtime's own create + start of the same bundle, as a
        // second container in the same namespaces and cgroup once the
        // first is gone.
        bench
            .sandboxes
            .runtime()
            .delete(&id)
            .expect("runtime delete");
        let log = dir.path().join(format!("baseline-{run}.log"));
        let started = Instant::now();
        runtime
            .run_detached(&id, &bundles.join(&id), &log)
            .expect("runtime run");
        theirs.push(started.elapsed());
        runtime.delete(&id).expect("baseline delete");
        bench.delete(zone);
    }
    let row = |name: &str, samples: &mut Vec<Duration>| {
        let (p50, p99) = (percentile(samples, 0.5), percentile(samples, 0.99));
        println!("{name:<44} p50 {:>10}  p99 {:>10}", ms(p50), ms(p99));
        p50
    };
    println!("\n== create until ready for exec");
    let a = row("boxfence create (namespaces+bundle+overlay+run)", &mut ours);
    let b = row(
        &format!("{} run --detach of the same bundle", args.runtime.name()),
        &mut theirs,
    );
    println!("ratio p50: {:.2}x", a.as_secs_f64() / b.as_secs_f64());

    // Exec round trip.
    bench.create(1);
    let id = bench.spec(1).id;
    let process = dir.path().join("process.json");
    let json = serde_json::to_vec(&boxfence_sandbox::bundle::process(
        vec!["true".into()],
        "/".into(),
    ))
    .expect("json");
    std::fs::write(&process, json).expect("process");
    let argv = vec!["true".to_owned()];
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..args.runs {
        let started = Instant::now();
        let done = bench
            .sandboxes
            .exec(&id, &argv, b"", Duration::from_secs(10))
            .expect("exec");
        ours.push(started.elapsed());
        assert_eq!(done.exit_code, 0, "{done:?}");
        let started = Instant::now();
        let done = bench
            .sandboxes
            .runtime()
            .exec(&id, &process, b"", Duration::from_secs(10))
            .expect("runtime exec");
        theirs.push(started.elapsed());
        assert_eq!(done.exit_code, 0, "{done:?}");
    }
    println!("\n== exec round trip (true)");
    let a = row("Sandboxes::exec", &mut ours);
    let b = row(
        &format!("{} exec --process (written once)", args.runtime.name()),
        &mut theirs,
    );
    println!("added p50: {}", ms(a.saturating_sub(b)));
    bench.delete(1);

    // Many boxes at once.
    let before = kernel_kib();
    let mut times = Vec::new();
    for zone in 1..=args.boxes {
        times.push(bench.create(zone));
    }
    let after = kernel_kib();
    let charged: u64 = (1..=args.boxes)
        .map(|zone| cgroup_memory(&bench.spec(zone).id))
        .sum();
    let last = times.len().saturating_sub(100);
    let mut last_100 = times[last..].to_vec();
    println!("\n== {} boxes from one image", args.boxes);
    println!(
        "memory per box, charged to its cgroup: {:.0} KiB",
        charged as f64 / 1024.0 / f64::from(args.boxes)
    );
    println!(
        "kernel memory per box (slab, stacks, page tables; other work on the host moves it): {:.0} KiB",
        after.saturating_sub(before) as f64 / f64::from(args.boxes)
    );
    row("create of the last 100", &mut last_100);
    for zone in 1..=args.boxes {
        bench.delete(zone);
    }
}
