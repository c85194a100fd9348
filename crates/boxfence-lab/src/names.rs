//! Unique names for labs, and sweeping up after labs whose process died.
//!
//! A lab's id is `bfl<pid>-<n>`: the pid makes it unique among live test
//! processes, the counter among labs of one process. Everything a lab pins
//! or creates is named `<id>-…`, with the dash so that lab `bfl7-1` never
//! claims lab `bfl7-10`'s names.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::netns;
use crate::{LabError, processes};

/// What every lab name starts with, so stale ones can be told apart.
const LAB_PREFIX: &str = "bfl";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The names one lab uses.
#[derive(Debug)]
pub(crate) struct LabNames {
    /// `bfl<pid>-<n>`.
    pub(crate) id: String,
    /// The lab host's namespace name.
    pub(crate) host: String,
    /// The internet namespace's name.
    pub(crate) internet: String,
    /// The prefix for the namespaces the daemon under test creates.
    pub(crate) boxes: String,
}

impl LabNames {
    pub(crate) fn fresh() -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let id = format!("{LAB_PREFIX}{}-{n}", std::process::id());
        Self {
            host: format!("{id}-host"),
            internet: format!("{id}-net"),
            boxes: format!("{id}-box-"),
            id,
        }
    }

    /// The prefix of every `/run/netns` entry this lab owns.
    pub(crate) fn owned_prefix(&self) -> String {
        format!("{}-", self.id)
    }
}

/// The owner pid of a lab name, if it is one (`bfl<pid>-…`).
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(LAB_PREFIX)?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok()
}

fn owner_is_dead(name: &str) -> bool {
    owner_pid(name).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
}

/// Removes what labs of dead processes left behind (a test process killed
/// by SIGKILL cannot run its destructors): their namespaces, the processes
/// still inside them, and their work directories and small filesystems.
/// Labs of live processes are never touched. Also removes anything named
/// like `fresh`, which can only be left from an earlier process that had
/// this pid.
pub(crate) fn sweep_stale(fresh: &LabNames) -> Vec<LabError> {
    let mine = fresh.owned_prefix();
    let is_stale = |name: &str| name.starts_with(&mine) || owner_is_dead(name);
    let mut errors = Vec::new();
    let pins: Vec<PathBuf> = match netns::pinned_with_prefix(LAB_PREFIX) {
        Ok(pins) => pins
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| is_stale(&n.to_string_lossy()))
            })
            .collect(),
        Err(e) => {
            errors.push(e);
            Vec::new()
        }
    };
    if !pins.is_empty() {
        eprintln!("boxfence-lab: removing stale lab namespaces {pins:?} (their process died)");
        errors.extend(processes::kill_all_in(&pins));
        errors.extend(pins.iter().filter_map(|p| netns::remove(p).err()));
    }
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if owner_pid(&name).is_some() && is_stale(&name) {
                // A small filesystem (`SmallFs`) of a dead test is still
                // mounted there; EINVAL: not a mount point.
                let _ = nix::mount::umount2(&entry.path(), nix::mount::MntFlags::MNT_DETACH);
                netns::unmount_under(&entry.path());
                if let Err(source) = std::fs::remove_dir_all(entry.path()) {
                    errors.push(LabError::Io {
                        context: "cannot remove stale lab directory",
                        path: entry.path(),
                        source,
                    });
                }
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_reads_only_lab_names() {
        assert_eq!(owner_pid("bfl123-4-host"), Some(123));
        assert_eq!(owner_pid("bfl123-4-box-abc"), Some(123));
        assert_eq!(owner_pid("bflx-4-host"), None);
        assert_eq!(owner_pid("other"), None);
        assert_eq!(owner_pid("bfl123"), None);
    }

    #[test]
    fn fresh_names_are_distinct_and_prefixed() {
        let a = LabNames::fresh();
        let b = LabNames::fresh();
        assert_ne!(a.id, b.id);
        for name in [&a.host, &a.internet, &a.boxes] {
            assert!(name.starts_with(&a.owned_prefix()), "{name}");
            assert!(!name.starts_with(&b.owned_prefix()), "{name}");
        }
    }
}
