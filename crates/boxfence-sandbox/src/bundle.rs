//! A box's OCI bundle: config.json built from what boxfence knows of the
//! box (its network namespace, uid range, size, root filesystem), and the
//! process of each `runtime exec`.

use std::path::{Path, PathBuf};

use crate::rootfs::{self, GeneratedEtc};
use crate::seccomp;
use crate::spec::{
    Capabilities, CpuLimit, Linux, MemoryLimit, Mount, Namespace, PidsLimit, Process, Resources,
    Root, Spec, User,
};
use crate::uids::UidRange;

/// Where the box's init (catatonit, static, so it runs in any image) is
/// mounted: inside /dev, a tmpfs of the box, so no image needs room for it.
pub const INIT_IN_BOX: &str = "/dev/.boxfence-init";

/// Capabilities of the box's root, valid only in its own user namespace
/// and its own files: owning, changing ids and modes, signalling its own
/// processes. None is a network capability, so the box's root can change
/// nothing of its network namespace (which its user namespace owns, see
/// [`crate::userns`]), and none reaches anything outside the box.
pub const CAPABILITIES: [&str; 8] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
];

/// The environment of every process in a box.
const ENV: [&str; 3] = [
    "PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
    "HOME=/tmp",
    "LANG=C.UTF-8",
];

/// A box's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// CPUs' worth of time per period.
    pub cpus: u32,
    /// Memory, in MiB (what its processes and its tmpfs files use).
    pub memory_mb: u32,
    /// Processes and threads at once.
    pub pids_max: u32,
    /// Size of /tmp, in MiB (and of /var/tmp and /dev/shm: each at most).
    pub tmp_mb: u32,
}

/// Everything a bundle is made of.
#[derive(Debug, Clone)]
pub struct BoxSpec {
    /// The container's id (also its cgroup's name).
    pub id: String,
    /// The box's network namespace, joined by the container.
    pub netns: PathBuf,
    /// Its host uid range.
    pub uids: UidRange,
    /// Its size.
    pub limits: Limits,
    /// Its generated /etc files.
    pub etc: GeneratedEtc,
    /// The image of its root; none: the default root (the host's system
    /// directories, read-only).
    pub image: Option<String>,
}

/// Writes the bundle of `spec` into `dir` (config.json, rootfs, files):
/// the container joins the user namespace pinned at `userns` and the
/// network namespace it owns, with the host's `init` binary mounted at
/// [`INIT_IN_BOX`]. Its root is an overlay of the image's `layers`
/// (bottom first) where it has an image.
pub fn write(
    dir: &Path,
    spec: &BoxSpec,
    userns: &Path,
    layers: Option<&[PathBuf]>,
    init: &Path,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let rootfs = dir.join("rootfs");
    let mut mounts = match layers {
        Some(layers) => {
            rootfs::prepare_image(&rootfs, &dir.join("top"), layers, &spec.etc)?;
            Vec::new()
        }
        None => rootfs::prepare(&rootfs, &dir.join("files"), &spec.etc)?,
    };
    mounts.extend(box_mounts(spec, init));
    let config = Spec {
        oci_version: crate::spec::OCI_VERSION,
        process: process(
            vec![INIT_IN_BOX.to_owned(), "-P".to_owned()],
            "/".to_owned(),
        ),
        root: Root {
            path: "rootfs".into(),
            readonly: true,
        },
        hostname: spec.etc.hostname.clone(),
        mounts,
        linux: linux(spec, userns),
    };
    let json = serde_json::to_vec_pretty(&config).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("config.json"), json)
}

/// A process of the box: its root, with the box's capabilities and
/// `no_new_privs`, the usual environment, in `cwd`.
pub fn process(args: Vec<String>, cwd: String) -> Process {
    Process {
        terminal: false,
        user: User { uid: 0, gid: 0 },
        args,
        env: ENV.map(str::to_owned).to_vec(),
        cwd,
        capabilities: Capabilities::all_of(&CAPABILITIES),
        no_new_privileges: true,
    }
}

fn linux(spec: &BoxSpec, userns: &Path) -> Linux {
    let new = |kind: &str| Namespace {
        kind: kind.to_owned(),
        path: None,
    };
    let joined = |kind: &str, path: &Path| Namespace {
        kind: kind.to_owned(),
        path: Some(path.to_string_lossy().into_owned()),
    };
    let limits = spec.limits;
    const PERIOD_US: u64 = 100_000;
    Linux {
        uid_mappings: vec![spec.uids.mapping()],
        gid_mappings: vec![spec.uids.mapping()],
        namespaces: vec![
            joined("user", userns),
            new("pid"),
            new("mount"),
            new("ipc"),
            new("uts"),
            new("cgroup"),
            joined("network", &spec.netns),
        ],
        cgroups_path: format!("/boxfence/{}", spec.id),
        resources: Resources {
            memory: MemoryLimit {
                limit: i64::from(limits.memory_mb) << 20,
            },
            pids: PidsLimit {
                limit: i64::from(limits.pids_max),
            },
            cpu: CpuLimit {
                quota: i64::from(limits.cpus) * PERIOD_US as i64,
                period: PERIOD_US,
            },
        },
        seccomp: seccomp::profile(),
        masked_paths: [
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/proc/scsi",
        ]
        .map(str::to_owned)
        .to_vec(),
        readonly_paths: [
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger",
        ]
        .map(str::to_owned)
        .to_vec(),
    }
}

/// The box's own kernel filesystems, its size-bounded scratch space and
/// its init. No /sys: sysfs cannot be mounted for a network namespace
/// the box's user namespace does not own, and the host's would show the
/// host's devices.
fn box_mounts(spec: &BoxSpec, init: &Path) -> Vec<Mount> {
    let mount = |destination: &str, kind: &str, options: &[&str]| Mount {
        destination: destination.to_owned(),
        kind: kind.to_owned(),
        source: kind.to_owned(),
        options: options.iter().map(|&o| o.to_owned()).collect(),
    };
    let tmp = format!("size={}m", spec.limits.tmp_mb);
    vec![
        mount("/proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            &["nosuid", "noexec", "nodev", "mode=1777", &tmp],
        ),
        mount("/dev/mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        mount("/tmp", "tmpfs", &["nosuid", "nodev", "mode=1777", &tmp]),
        mount("/var/tmp", "tmpfs", &["nosuid", "nodev", "mode=1777", &tmp]),
        mount("/run", "tmpfs", &["nosuid", "nodev", "mode=755", "size=1m"]),
        rootfs::read_only_bind(&init.to_string_lossy(), INIT_IN_BOX),
    ]
}
