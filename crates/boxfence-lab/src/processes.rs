//! Finding and ending the processes that live in a lab's namespaces.
//!
//! Teardown ends every process whose network namespace is one of the lab's
//! (servers, the daemon under test, whatever it ran in its boxes), and no
//! other: processes are matched by namespace identity, never by name.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::LabError;

/// How long teardown waits for killed processes to be gone.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// A network namespace's identity: the device and inode of its nsfs file.
type NsId = (u64, u64);

/// Sends SIGKILL to every process (other than this one) whose network
/// namespace is one of `netns`, until none is left or [`KILL_WAIT`] passes.
pub(crate) fn kill_all_in(netns: &[PathBuf]) -> Vec<LabError> {
    let ids: HashSet<NsId> = netns
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let deadline = Instant::now() + KILL_WAIT;
    let mut errors = Vec::new();
    loop {
        let pids = processes_in(&ids);
        if pids.is_empty() {
            return errors;
        }
        if Instant::now() > deadline {
            errors.push(LabError::Sys {
                context: "processes survived SIGKILL in the lab's namespaces",
                target: format!("{pids:?}"),
                source: nix::Error::EBUSY,
            });
            return errors;
        }
        for pid in pids {
            match kill(Pid::from_raw(pid), Signal::SIGKILL) {
                // ESRCH: it exited on its own meanwhile.
                Ok(()) | Err(nix::Error::ESRCH) => {}
                Err(source) => errors.push(LabError::Sys {
                    context: "cannot kill lab process",
                    target: pid.to_string(),
                    source,
                }),
            }
        }
        // A killed process keeps its namespace link until it is really
        // gone; a killed child of ours becomes a zombie, which has none.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until process `pid` has entered the network namespace pinned at
/// `netns` (or has exited). A program started through `nsenter` enters it
/// a moment after it was spawned; a teardown in that moment would not see
/// it there and leave it running.
pub(crate) fn wait_until_in(pid: u32, netns: &Path) -> Result<(), LabError> {
    let id = |path: &Path| std::fs::metadata(path).map(|m| (m.dev(), m.ino()));
    let target = id(netns).map_err(|source| LabError::Io {
        context: "cannot stat namespace",
        path: netns.to_owned(),
        source,
    })?;
    let deadline = Instant::now() + KILL_WAIT;
    let link = PathBuf::from(format!("/proc/{pid}/ns/net"));
    loop {
        match id(&link) {
            Ok(current) if current == target => return Ok(()),
            Err(_) => return Ok(()),
            Ok(_) if Instant::now() > deadline => {
                return Err(LabError::Sys {
                    context: "process did not enter the lab's namespace",
                    target: pid.to_string(),
                    source: nix::Error::ETIMEDOUT,
                });
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// Pids of processes whose network namespace is in `ids`.
fn processes_in(ids: &HashSet<NsId>) -> Vec<i32> {
    let me = std::process::id();
    let Ok(proc_dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    proc_dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            // A process that exits while we look has no namespace link: skip.
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| ids.contains(&(m.dev(), m.ino())))
        })
        .filter_map(|pid| i32::try_from(pid).ok())
        .collect()
}
