//! Named network namespaces made in-process, the way `ip netns add` and
//! `ip netns del` make and remove them, without spawning `ip` (which
//! costs a process and a dump of every link): the namespace is
//! bind-mounted on the file `/run/netns/<name>`, and `/run/netns` is a
//! shared mount, so the bind reaches other mount namespaces and its
//! removal frees the namespace everywhere.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

/// Where named namespaces are bound, as `ip netns` has it.
pub(crate) const NETNS_DIR: &str = "/run/netns";

/// The calling thread's own network namespace (a process-wide
/// `/proc/self` would name the main thread's).
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

/// Why a named namespace could not be made or removed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// A system call failed (`op` says which, on what).
    #[error("{op}: {source}")]
    Call {
        /// The call and its object, e.g. `unshare(CLONE_NEWNET)`.
        op: String,
        /// The error it returned.
        source: std::io::Error,
    },
    /// The thread that made the namespace panicked.
    #[error("the thread making network namespace {0} panicked")]
    Panicked(String),
}

fn call(op: impl Into<String>) -> impl FnOnce(Errno) -> NetnsError {
    move |errno| NetnsError::Call {
        op: op.into(),
        source: errno.into(),
    }
}

fn io_call(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> NetnsError {
    move |source| NetnsError::Call {
        op: op.into(),
        source,
    }
}

/// Where the namespace `name` is bound.
pub(crate) fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Makes a network namespace, or takes `made` (a new, empty one the
/// caller made, e.g. owned by a box's user namespace), and binds it at
/// [`path`]`(name)`; runs `inside` in it, on the thread that entered it
/// (a socket it opens stays in the namespace). Returns the namespace,
/// open, and what `inside` returned. A namespace already at `path` is an
/// error and left alone; anything else that fails leaves nothing behind.
pub(crate) fn add<T: Send>(
    name: &str,
    made: Option<File>,
    inside: impl FnOnce() -> T + Send,
) -> Result<(File, T), NetnsError> {
    let path = &path(name);
    let shown = path.display();
    let dir = Path::new(NETNS_DIR);
    std::fs::create_dir_all(dir).map_err(io_call(format!("mkdir {NETNS_DIR}")))?;
    share(dir)?;
    // Like `ip`, with no permissions: the file only anchors the mount.
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o000)
        .open(path)
        .map_err(io_call(format!("create {shown}")))?;
    let made = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                match &made {
                    Some(netns) => setns(netns, CloneFlags::CLONE_NEWNET)
                        .map_err(call("setns(CLONE_NEWNET) into the given namespace"))?,
                    None => {
                        unshare(CloneFlags::CLONE_NEWNET).map_err(call("unshare(CLONE_NEWNET)"))?;
                    }
                }
                mount(
                    Some(THREAD_NETNS),
                    path,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(call(format!("bind {THREAD_NETNS} on {shown}")))?;
                let netns = File::open(THREAD_NETNS).map_err(io_call("open the new namespace"))?;
                Ok((netns, inside()))
            })
            .join()
            .unwrap_or_else(|_| Err(NetnsError::Panicked(shown.to_string())))
    });
    if made.is_err() {
        let _ = remove(name);
    }
    made
}

/// Unbinds and removes the namespace `name`; what is already gone is
/// fine. The kernel frees the namespace once nothing else holds it.
pub(crate) fn remove(name: &str) -> Result<(), NetnsError> {
    let path = &path(name);
    match umount2(path, MntFlags::MNT_DETACH) {
        // Not mounted (a half-made namespace), or no file at all.
        Ok(()) | Err(Errno::EINVAL | Errno::ENOENT) => {}
        Err(errno) => return Err(call(format!("umount {}", path.display()))(errno)),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io_call(format!("remove {}", path.display()))(error)),
    }
}

/// Makes `dir` a shared mount, bind-mounting it on itself first if it is
/// no mount point, as `ip netns add` does. An exclusive lock on `dir`
/// (the one `ip` takes) keeps concurrent callers, here or in `ip`, from
/// stacking bind mounts.
fn share(dir: &Path) -> Result<(), NetnsError> {
    let shown = dir.display();
    let file = File::open(dir).map_err(io_call(format!("open {shown}")))?;
    let _lock = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| call(format!("flock {shown}"))(errno))?;
    let mut bound = false;
    loop {
        let shared = mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        );
        match shared {
            Ok(()) => return Ok(()),
            // EINVAL: not a mount point.
            Err(Errno::EINVAL) if !bound => {
                mount(
                    Some(dir),
                    dir,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(call(format!("bind {shown} on itself")))?;
                bound = true;
            }
            Err(errno) => return Err(call(format!("make {shown} a shared mount"))(errno)),
        }
    }
}
