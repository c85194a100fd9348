//! The filesystem a box command sees: a fresh root holding the host's
//! programs, libraries and configuration read-only, empty scratch space, a
//! few device nodes and the box's resolv.conf, and nothing else of the
//! host. Its state (`/var`, `/home`, `/root`, `/srv`, `/opt`, `/mnt`) and
//! its unix sockets (a database's, `/dev/log`, `/run`'s, any in `/etc`)
//! are out of sight, so a box can reach none of them whatever their mode.

use std::fs::File;
use std::os::unix::fs::symlink;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::unistd::pivot_root;

/// Host directories the box sees, read-only: programs, libraries, and the
/// system configuration they read (a symlink, as in a merged /usr, stays
/// a symlink).
const FROM_HOST: [&str; 8] = [
    "/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

/// Writable scratch directories, each a fresh tmpfs (/dev/shm is made
/// with /dev).
const SCRATCH: [(&str, &str); 3] = [
    ("/tmp", "mode=1777,size=256m"),
    ("/var/tmp", "mode=1777,size=256m"),
    ("/run", "mode=755,size=1m"),
];

/// Device nodes a command may need; the rest of /dev (and its sockets)
/// stays on the host.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Where the new root is assembled: `/run` of the private mount namespace
/// gets a tmpfs first, so nothing is written to the host's.
const STAGING: &str = "/run/boxfence-root";

/// Switches the calling process (alone in a new, private mount namespace)
/// to the box's root, with `resolv_conf` as /etc/resolv.conf.
pub(super) fn enter(resolv_conf: &[u8]) -> Result<(), String> {
    tmpfs("/run", "mode=755")?;
    std::fs::create_dir_all(STAGING).map_err(|e| format!("create {STAGING}: {e}"))?;
    tmpfs(STAGING, "mode=755")?;
    let root = Path::new(STAGING);
    for dir in FROM_HOST {
        show_read_only(dir, root)?;
    }
    // A socket in the host's configuration would still answer through a
    // read-only mount (the walk takes under a millisecond). /usr, which
    // holds no sockets by the FHS and has tens of thousands of files, is
    // not walked.
    hide_sockets(&within(root, "/etc"))?;
    for (dir, options) in SCRATCH {
        let inside = within(root, dir);
        mkdir(&inside)?;
        tmpfs(&inside, options)?;
    }
    devices(root)?;
    let proc = within(root, "/proc");
    mkdir(&proc)?;
    // The init stage mounts the box's own /proc over it; until then the
    // helper starts that stage through /proc/self/exe.
    bind("/proc", &proc, MsFlags::MS_REC)?;
    resolv(root, resolv_conf)?;
    let old = within(root, "/.old-root");
    mkdir(&old)?;
    pivot_root(root, &old).map_err(|e| format!("pivot_root: {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;
    umount2("/.old-root", MntFlags::MNT_DETACH).map_err(|e| format!("detach old root: {e}"))?;
    std::fs::remove_dir("/.old-root").map_err(|e| format!("remove old root: {e}"))
}

/// Shows the host's `dir` read-only at the same path under `root`.
fn show_read_only(dir: &str, root: &Path) -> Result<(), String> {
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return Ok(());
    };
    let inside = within(root, dir);
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(dir).map_err(|e| format!("read link {dir}: {e}"))?;
        return symlink(&target, &inside).map_err(|e| format!("link {}: {e}", inside.display()));
    }
    mkdir(&inside)?;
    bind(dir, &inside, MsFlags::MS_REC)?;
    // A bind mount takes read-only only on a remount of its own.
    mount(
        None::<&str>,
        &inside,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID,
        None::<&str>,
    )
    .map_err(|e| format!("read-only {}: {e}", inside.display()))
}

/// Covers every unix socket under `dir` with /dev/null, so connecting to
/// it is refused.
fn hide_sockets(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt as _;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_socket() {
            bind("/dev/null", &entry.path(), MsFlags::empty())?;
        } else if kind.is_dir() {
            hide_sockets(&entry.path())?;
        }
    }
    Ok(())
}

fn devices(root: &Path) -> Result<(), String> {
    let dev = within(root, "/dev");
    mkdir(&dev)?;
    tmpfs(&dev, "mode=755,size=64k")?;
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        if !host.exists() {
            continue;
        }
        let node = dev.join(name);
        File::create(&node).map_err(|e| format!("create {}: {e}", node.display()))?;
        bind(&host, &node, MsFlags::empty())?;
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(target, dev.join(link)).map_err(|e| format!("link /dev/{link}: {e}"))?;
    }
    let shm = dev.join("shm");
    mkdir(&shm)?;
    tmpfs(&shm, "mode=1777,size=64m")
}

/// The box's resolv.conf where its /etc/resolv.conf points (a symlink into
/// /run, say, lands in the box's own /run).
fn resolv(root: &Path, text: &[u8]) -> Result<(), String> {
    let target =
        std::fs::canonicalize("/etc/resolv.conf").unwrap_or_else(|_| "/etc/resolv.conf".into());
    let copy = within(root, "/run/boxfence-resolv.conf");
    std::fs::write(&copy, text).map_err(|e| format!("write {}: {e}", copy.display()))?;
    let inside = within(root, &target.to_string_lossy());
    if let Some(parent) = inside.parent() {
        // Only possible inside a tmpfs of the box (/etc is read-only).
        let _ = std::fs::create_dir_all(parent);
    }
    if !inside.exists() {
        File::create(&inside).map_err(|e| format!("create {}: {e}", inside.display()))?;
    }
    bind(&copy, &inside, MsFlags::empty())
}

fn within(root: &Path, path: &str) -> std::path::PathBuf {
    root.join(path.trim_start_matches('/'))
}

fn mkdir(path: &Path) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| format!("create {}: {e}", path.display()))
}

fn tmpfs(path: impl AsRef<Path>, options: &str) -> Result<(), String> {
    let path = path.as_ref();
    mount(
        Some("tmpfs"),
        path,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(options),
    )
    .map_err(|e| format!("tmpfs on {}: {e}", path.display()))
}

fn bind(from: impl AsRef<Path>, to: &Path, extra: MsFlags) -> Result<(), String> {
    let from = from.as_ref();
    mount(
        Some(from),
        to,
        None::<&str>,
        MsFlags::MS_BIND | extra,
        None::<&str>,
    )
    .map_err(|e| format!("bind {} on {}: {e}", from.display(), to.display()))
}
