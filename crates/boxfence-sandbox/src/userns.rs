//! Each box's user namespace, made together with the box's network
//! namespace, which it owns. A runtime's `exec` joins the container's
//! user namespace before its network namespace (runc 1.1 always does);
//! from inside a user namespace only a network namespace that it owns
//! can be entered, so a box's network namespace must belong to the box's
//! user namespace, not to the host's. The box's root still holds no
//! network capability there (see `bundle::CAPABILITIES`), so it can
//! change nothing of its network.
//!
//! A multi-threaded daemon cannot enter a new user namespace itself, so a
//! short-lived helper (`unshare --user --net`, util-linux) makes both;
//! the daemon writes its uid and gid maps, pins the user namespace with
//! a bind mount (it outlives a daemon restart, as the network namespace
//! does) and hands the network namespace, open, to the data plane, which
//! wires and binds it before anything runs in the box.
//!
//! The helper also sets `net.ipv4.ping_group_range` of the new network
//! namespace to the box's own gids, so its processes can ping (as the
//! policy allows) without `CAP_NET_RAW`. Written from inside the box's
//! user namespace, the range is the box's gids `0 65535`; written from
//! the host it would be host gids, which the kernel refuses above 2^31,
//! so zones past that would get no ping.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::uids::UidRange;

/// How long the helper may take to make its namespaces (milliseconds
/// natively).
const HELPER_DEADLINE: Duration = Duration::from_secs(10);

/// Why a box's namespaces could not be made or removed.
#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    /// The helper could not be run, or ended before making them.
    #[error("user namespace helper (unshare --user --net): {0}")]
    Helper(std::io::Error),
    /// It did not make them in time.
    #[error("user namespace helper made no namespace within {0:?}")]
    Late(Duration),
    /// A step on the helper's namespaces failed.
    #[error("{op} {path}: {source}")]
    Step {
        /// What was done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
}

fn step<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> UsernsError + 'a {
    move |source| UsernsError::Step {
        op,
        path: path.to_owned(),
        source,
    }
}

/// The helper, killed and reaped however this ends.
struct Helper(Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Makes a user namespace mapping root to `uids` and pins it at `pin`
/// (whatever was pinned there goes first); returns a new, empty network
/// namespace owned by it.
pub fn make(pin: &Path, uids: UidRange) -> Result<File, UsernsError> {
    remove(pin)?;
    // The helper waits on its input while the daemon maps its user
    // namespace; then, as that namespace's owner, sets the ping range.
    let set_ping = format!(
        "read _ && echo '0 {}' > /proc/sys/net/ipv4/ping_group_range",
        crate::uids::RANGE_SIZE - 1
    );
    let child = Command::new("unshare")
        .args(["--user", "--net", "--", "sh", "-c", &set_ping])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(UsernsError::Helper)?;
    let helper = Helper(child);
    let proc = PathBuf::from(format!("/proc/{}", helper.0.id()));
    wait_for_own_userns(&proc)?;
    let map = format!("0 {} {}\n", uids.first, crate::uids::RANGE_SIZE);
    for file in ["uid_map", "gid_map"] {
        let path = proc.join(file);
        File::options()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(map.as_bytes()))
            .map_err(step("write", &path))?;
    }
    let netns = proc.join("ns/net");
    let opened = File::open(&netns).map_err(step("open", &netns))?;
    if let Some(dir) = pin.parent() {
        std::fs::create_dir_all(dir).map_err(step("mkdir", dir))?;
    }
    File::create(pin).map_err(step("create", pin))?;
    let userns = proc.join("ns/user");
    let bound = mount(
        Some(&userns),
        pin,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    );
    if let Err(errno) = bound {
        let _ = std::fs::remove_file(pin);
        return Err(step("bind", pin)(errno.into()));
    }
    if let Err(error) = ping_range(helper) {
        let _ = remove(pin);
        return Err(error);
    }
    Ok(opened)
}

/// Lets the helper set the ping range, and waits for it to have done so.
fn ping_range(mut helper: Helper) -> Result<(), UsernsError> {
    let mut input = helper
        .0
        .stdin
        .take()
        .ok_or_else(|| UsernsError::Helper(std::io::Error::other("the helper has no input")))?;
    input.write_all(b"go\n").map_err(UsernsError::Helper)?;
    drop(input);
    let deadline = Instant::now() + HELPER_DEADLINE;
    loop {
        match helper.0.try_wait().map_err(UsernsError::Helper)? {
            Some(status) if status.success() => return Ok(()),
            Some(status) => {
                return Err(UsernsError::Helper(std::io::Error::other(format!(
                    "setting net.ipv4.ping_group_range failed ({status})"
                ))));
            }
            None if Instant::now() >= deadline => {
                return Err(UsernsError::Late(HELPER_DEADLINE));
            }
            None => std::thread::sleep(Duration::from_micros(200)),
        }
    }
}

/// Waits until the helper at `proc` is in a user namespace of its own.
fn wait_for_own_userns(proc: &Path) -> Result<(), UsernsError> {
    let ours = std::fs::read_link("/proc/self/ns/user").map_err(UsernsError::Helper)?;
    let deadline = Instant::now() + HELPER_DEADLINE;
    let mut pause = Duration::from_micros(100);
    loop {
        match std::fs::read_link(proc.join("ns/user")) {
            Ok(theirs) if theirs != ours => return Ok(()),
            Ok(_) => {}
            Err(error) => return Err(UsernsError::Helper(error)),
        }
        if Instant::now() >= deadline {
            return Err(UsernsError::Late(HELPER_DEADLINE));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(2));
    }
}

/// Unpins the user namespace at `pin` (the kernel frees it once no
/// process and no network namespace holds it); nothing there is fine.
pub fn remove(pin: &Path) -> Result<(), UsernsError> {
    match umount2(pin, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL | Errno::ENOENT) => {}
        Err(errno) => return Err(step("unmount", pin)(errno.into())),
    }
    match std::fs::remove_file(pin) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(step("remove", pin)(error))
        }
        _ => Ok(()),
    }
}
