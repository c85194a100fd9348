//! Named network namespaces under `/run/netns`: create, enter, remove.

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::{MntFlags, umount2};
use nix::sched::{CloneFlags, setns};

use crate::LabError;
use crate::exec;

/// Where iproute2 (and the daemon) pin named network namespaces. It is in
/// the root mount namespace, which every lab process shares.
pub(crate) const NETNS_DIR: &str = "/run/netns";

/// One named network namespace, pinned by a bind mount in [`NETNS_DIR`].
#[derive(Debug)]
pub(crate) struct NetNs {
    name: String,
    path: PathBuf,
}

impl NetNs {
    /// The namespace `name`, not yet created: the lab names its namespaces
    /// before making them so teardown covers a half-built lab.
    pub(crate) fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            path: Path::new(NETNS_DIR).join(name),
        }
    }

    /// Creates the namespace with `ip netns add`, which also makes
    /// `/run/netns` a shared mount the first time, as the daemon expects.
    pub(crate) fn create(&self) -> Result<(), LabError> {
        exec::run(Command::new("ip").args(["netns", "add", &self.name]), None).map(drop)
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A command that runs `argv` inside this namespace.
    pub(crate) fn command<I, S>(&self, argv: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        exec::nsenter(&self.path, argv)
    }

    /// Runs `f` on a fresh thread that has entered this namespace, and
    /// returns its result. Sockets `f` creates stay in this namespace for
    /// their whole life, wherever they are used later. A panic in `f`
    /// continues on the calling thread.
    pub(crate) fn run_in<T, F>(&self, f: F) -> Result<T, LabError>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        // A fresh thread, because setns changes only the calling thread and
        // a pooled thread would carry the namespace into unrelated work.
        std::thread::scope(|scope| {
            let thread = std::thread::Builder::new()
                .name(format!("in-{}", self.name))
                .spawn_scoped(scope, || {
                    enter(&self.path)?;
                    Ok(f())
                })
                .map_err(|source| LabError::Spawn {
                    what: format!("thread for {}", self.name),
                    source,
                })?;
            match thread.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }
}

/// Moves the calling thread into the network namespace at `path`.
fn enter(path: &Path) -> Result<(), LabError> {
    let file = File::open(path).map_err(|source| LabError::Io {
        context: "cannot open namespace",
        path: path.to_owned(),
        source,
    })?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|source| LabError::Sys {
        context: "cannot enter namespace",
        target: path.display().to_string(),
        source,
    })
}

/// Unpins the namespace at `path` as `ip netns del` does: detach the bind
/// mount, then remove the mount point. The namespace itself dies with its
/// last process.
pub(crate) fn remove(path: &Path) -> Result<(), LabError> {
    match umount2(path, MntFlags::MNT_DETACH) {
        // EINVAL: not a mount point (a half-made entry); just remove it.
        Ok(()) | Err(nix::Error::EINVAL) => {}
        Err(nix::Error::ENOENT) => return Ok(()),
        Err(source) => {
            return Err(LabError::Sys {
                context: "cannot unmount namespace",
                target: path.display().to_string(),
                source,
            });
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(LabError::Io {
            context: "cannot remove namespace pin",
            path: path.to_owned(),
            source,
        }),
    }
}

/// Every entry of [`NETNS_DIR`] whose name starts with `prefix`.
pub(crate) fn pinned_with_prefix(prefix: &str) -> Result<Vec<PathBuf>, LabError> {
    let dir = Path::new(NETNS_DIR);
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(LabError::Io {
                context: "cannot list",
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| LabError::Io {
            context: "cannot list",
            path: dir.to_owned(),
            source,
        })?;
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// Unmounts whatever is mounted below `dir`, deepest first: a daemon in
/// the lab pins its boxes' user namespaces and mounts image roots in its
/// state directory, and a daemon killed by the test leaves them there.
pub(crate) fn unmount_under(dir: &Path) {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut below: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        // Mount points escape spaces and the like as octal; lab paths have none.
        .map(PathBuf::from)
        .filter(|point| point.starts_with(dir) && point != dir)
        .collect();
    below.sort_by_key(|point| std::cmp::Reverse(point.components().count()));
    for point in below {
        let _ = umount2(&point, MntFlags::MNT_DETACH);
    }
}
