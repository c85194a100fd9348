//! Running a command inside a box.
//!
//! The daemon is a multi-threaded tokio process, where setting up
//! namespaces between fork and exec is unsafe. So it re-executes a small
//! single-threaded helper (a hidden subcommand of its own binary) that
//! enters the box's network namespace, makes new mount and pid
//! namespaces, switches to the box's own root (`root`: the host's programs
//! read-only, fresh scratch space, none of the host's state or unix
//! sockets), then starts the init stage: pid 1 of the new pid namespace, which
//! mounts a fresh /proc, drops to the box's own unprivileged uid with no
//! capabilities and no_new_privs, and execs the command. When the command
//! (pid 1) dies, the kernel kills everything else in its pid namespace, so
//! a timeout kills the whole process tree.

use std::fs::File;
use std::io::{Read, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::signal::Signal;
use nix::unistd::{Gid, Uid, setgid, setgroups, setuid};

mod root;

/// The helper's subcommand (namespaces and mounts).
pub const HELPER_SUBCOMMAND: &str = "__exec-helper";
/// The init stage's subcommand (pid 1: /proc, privileges, exec).
pub const INIT_SUBCOMMAND: &str = "__exec-init";
/// Most bytes of stdout and of stderr kept; the rest is read and dropped.
pub const MAX_OUTPUT: usize = 1 << 20;
/// Exit code when the timeout killed the command (as timeout(1) does).
pub const TIMED_OUT: i32 = 124;

/// What to run and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSpec {
    /// The box's network namespace.
    pub netns: PathBuf,
    /// The box's own unprivileged uid (and gid).
    pub uid: u32,
    /// The file shown to the command as /etc/resolv.conf.
    pub resolv_conf: PathBuf,
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Bytes for its standard input.
    pub stdin: Vec<u8>,
    /// How long it may run.
    pub timeout: Duration,
}

/// What the command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecResult {
    /// Exit code; 128 + signal when killed; [`TIMED_OUT`] on timeout.
    pub exit_code: i32,
    /// Standard output, at most [`MAX_OUTPUT`] bytes.
    pub stdout: Vec<u8>,
    /// Standard error, at most [`MAX_OUTPUT`] bytes.
    pub stderr: Vec<u8>,
}

/// Why a command could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// No program was given.
    #[error("command must name a program")]
    EmptyCommand,
    /// The helper could not be started or talked to.
    #[error("cannot run the exec helper {0}: {1}")]
    Helper(PathBuf, std::io::Error),
}

/// Runs `spec` through the helper executable `helper` (the daemon's own
/// binary) and collects its output. Blocks until the command ends.
pub fn run(helper: &Path, spec: &ExecSpec) -> Result<ExecResult, ExecError> {
    if spec.argv.first().is_none_or(String::is_empty) {
        return Err(ExecError::EmptyCommand);
    }
    let failed = |error| ExecError::Helper(helper.to_owned(), error);
    let mut child = Command::new(helper)
        .arg(HELPER_SUBCOMMAND)
        .arg(&spec.netns)
        .arg(spec.uid.to_string())
        .arg(&spec.resolv_conf)
        .arg(spec.timeout.as_millis().to_string())
        .arg("--")
        .args(&spec.argv)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(failed)?;
    let stdout = child
        .stdout
        .take()
        .map(|pipe| thread::spawn(move || read_bounded(pipe)));
    let stderr = child
        .stderr
        .take()
        .map(|pipe| thread::spawn(move || read_bounded(pipe)));
    if let Some(mut pipe) = child.stdin.take() {
        // A command that does not read its input closes the pipe early.
        let _ = pipe.write_all(&spec.stdin);
    }
    // The helper enforces the timeout; this is the backstop if it hangs.
    let status = wait_until(&mut child, spec.timeout + Duration::from_secs(5)).map_err(failed)?;
    let collect = |reader: Option<thread::JoinHandle<Vec<u8>>>| {
        reader.and_then(|r| r.join().ok()).unwrap_or_default()
    };
    Ok(ExecResult {
        exit_code: status.map_or(TIMED_OUT, exit_code),
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

/// Entry point of the helper subcommand; `args` follow the subcommand.
/// Must run before the process starts any thread.
pub fn helper_main(args: &[String]) -> i32 {
    match helper(args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("boxfence exec: {message}");
            126
        }
    }
}

/// Entry point of the init stage; `args` follow the subcommand.
pub fn init_main(args: &[String]) -> i32 {
    let message = match init(args) {
        Ok(never) => match never {},
        Err(message) => message,
    };
    eprintln!("boxfence exec: {message}");
    127
}

fn helper(args: &[String]) -> Result<i32, String> {
    let [netns, uid, resolv, timeout_ms, dashes, argv @ ..] = args else {
        return Err("usage: NETNS UID RESOLV_CONF TIMEOUT_MS -- COMMAND...".into());
    };
    if dashes != "--" || argv.is_empty() {
        return Err("usage: NETNS UID RESOLV_CONF TIMEOUT_MS -- COMMAND...".into());
    }
    let timeout = Duration::from_millis(timeout_ms.parse().map_err(|_| "bad timeout")?);
    let netns_file = File::open(netns).map_err(|e| format!("open {netns}: {e}"))?;
    setns(&netns_file, CloneFlags::CLONE_NEWNET).map_err(|e| format!("enter {netns}: {e}"))?;
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID)
        .map_err(|e| format!("unshare: {e}"))?;
    remount_private()?;
    // Read now: the file may live under a directory about to be hidden.
    let resolv_text = std::fs::read(resolv).map_err(|e| format!("read {resolv}: {e}"))?;
    root::enter(&resolv_text)?;

    // The first child after unsharing the pid namespace is its pid 1.
    // Through /proc/self/exe: the binary's own path may lie under a
    // directory the tmpfs mounts above just hid (a build in /tmp).
    let mut init = Command::new("/proc/self/exe")
        .arg(INIT_SUBCOMMAND)
        .arg(uid)
        .arg("--")
        .args(argv)
        .spawn()
        .map_err(|e| format!("start init: {e}"))?;
    match wait_until(&mut init, timeout).map_err(|e| format!("wait: {e}"))? {
        Some(status) => Ok(exit_code(status)),
        None => {
            eprintln!("boxfence exec: timed out after {timeout:?}; killed");
            Ok(TIMED_OUT)
        }
    }
}

fn init(args: &[String]) -> Result<std::convert::Infallible, String> {
    let [uid, dashes, argv @ ..] = args else {
        return Err("usage: UID -- COMMAND...".into());
    };
    let (Some(program), "--") = (argv.first(), dashes.as_str()) else {
        return Err("usage: UID -- COMMAND...".into());
    };
    let uid: u32 = uid.parse().map_err(|_| "bad uid")?;
    if uid == 0 {
        return Err("refusing to run a box command as root".into());
    }
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| format!("pdeathsig: {e}"))?;
    let hidden = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("proc"), "/proc", Some("proc"), hidden, None::<&str>)
        .map_err(|e| format!("mount /proc: {e}"))?;
    drop_privileges(uid)?;
    let error = Command::new(program)
        .args(&argv[1..])
        .env_clear()
        .env(
            "PATH",
            "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
        )
        .env("HOME", "/tmp")
        .env("LANG", "C.UTF-8")
        .current_dir("/tmp")
        .exec();
    Err(format!("exec {program}: {error}"))
}

/// The box's own uid, no supplementary groups, no capabilities in any
/// set, and no way to regain any (no_new_privs).
fn drop_privileges(uid: u32) -> Result<(), String> {
    for set in [
        caps::CapSet::Bounding,
        caps::CapSet::Ambient,
        caps::CapSet::Inheritable,
    ] {
        caps::clear(None, set).map_err(|e| format!("drop capabilities: {e}"))?;
    }
    let gid = Gid::from_raw(uid);
    setgroups(&[gid]).map_err(|e| format!("setgroups: {e}"))?;
    setgid(gid).map_err(|e| format!("setgid: {e}"))?;
    setuid(Uid::from_raw(uid)).map_err(|e| format!("setuid: {e}"))?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("no_new_privs: {e}"))?;
    let left =
        caps::read(None, caps::CapSet::Permitted).map_err(|e| format!("read capabilities: {e}"))?;
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!("capabilities left: {left:?}"))
    }
}

/// Mount events inside the box must not reach the host, nor the host's
/// the box.
fn remount_private() -> Result<(), String> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("make mounts private: {e}"))
}

/// Waits for `child` at most `timeout`; kills it when the time is up.
/// `None` when it was killed for the timeout.
fn wait_until(
    child: &mut std::process::Child,
    timeout: Duration,
) -> std::io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            child.kill()?;
            child.wait()?;
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(5));
    }
}

fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(TIMED_OUT)
}

/// Reads all of `pipe`, keeping the first [`MAX_OUTPUT`] bytes.
fn read_bounded(mut pipe: impl Read) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    while let Ok(n @ 1..) = pipe.read(&mut buffer) {
        let room = MAX_OUTPUT.saturating_sub(kept.len());
        kept.extend_from_slice(&buffer[..n.min(room)]);
    }
    kept
}
