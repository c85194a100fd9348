//! One daemon per state, and daemons that share a host apart. A daemon's
//! data plane owns its state directory, every network namespace named
//! with its prefix (at start it removes those it does not know), its
//! nftables table, routing-rule preferences, mark bits, queue, log group,
//! interface prefix and pools. The state directory is claimed with an
//! exclusive lock on a file that names the holder's pid; the rest is
//! registered in a host-wide registry, one locked file per live daemon
//! holding its [`Footprint`], and a daemon whose footprint collides with a
//! live one's refuses to start, naming the other's pid and each setting.
//! The kernel drops a lock when its holder exits, however it exits, so a
//! crash never leaves a stale claim.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

pub(crate) use footprint::Footprint;

mod footprint;

/// Where live daemons register: namespaces and uids are host-wide, so
/// the registry is too.
const REGISTRY: &str = "/run/boxfence/daemons";

/// Why a daemon could not claim its state.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClaimError {
    /// Another live process holds the state directory.
    #[error(
        "{what} is in use by another boxfence daemon (pid {holder}); \
         stop it, or give this one its own state_dir and netns_prefix"
    )]
    Held {
        /// The state directory.
        what: String,
        /// The holder's pid, as its lock file says.
        holder: String,
    },
    /// Live daemons hold settings this one is configured with.
    #[error(
        "other boxfence daemons use what this one is configured with: {}; \
         give each daemon on a host its own (README: Several daemons on one host)",
        .0.join("; ")
    )]
    Collides(
        /// Per daemon, its pid and each shared setting with both values.
        Vec<String>,
    ),
    /// A lock or registry file could not be made, locked, read or written.
    #[error("cannot claim {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// The held claims; dropping it releases them.
#[derive(Debug)]
pub(crate) struct Claim {
    _locks: [File; 2],
    entry: PathBuf,
}

impl Drop for Claim {
    fn drop(&mut self) {
        // A left entry (a crash) is stale, unlocked, and removed by the
        // next daemon's start.
        let _ = std::fs::remove_file(&self.entry);
    }
}

impl Claim {
    /// Claims `footprint` (its state directory first) for this process.
    pub(crate) fn take(footprint: &Footprint) -> Result<Self, ClaimError> {
        Self::take_in(Path::new(REGISTRY), footprint)
    }

    fn take_in(registry: &Path, footprint: &Footprint) -> Result<Self, ClaimError> {
        let state_dir = &footprint.state_dir;
        let state = lock(
            &state_dir.join("daemon.lock"),
            format!("state_dir {}", state_dir.display()),
        )?;
        std::fs::create_dir_all(registry).map_err(io(registry))?;
        // Checking and registering are one step: two daemons starting
        // together see each other.
        let guard_path = registry.join(".lock");
        let guard = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&guard_path)
            .map_err(io(&guard_path))?;
        guard.lock().map_err(io(&guard_path))?;
        let mut collisions = Vec::new();
        for entry in std::fs::read_dir(registry).map_err(io(registry))? {
            let path = entry.map_err(io(registry))?.path();
            if path.extension().is_some_and(|e| e == "json") {
                collisions.extend(check(&path, footprint)?);
            }
        }
        if !collisions.is_empty() {
            collisions.sort();
            return Err(ClaimError::Collides(collisions));
        }
        // Unique per claim, so that tests can hold several in one process.
        static SEQUENCE: AtomicU32 = AtomicU32::new(0);
        let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let entry = registry.join(format!("{}-{sequence}.json", std::process::id()));
        let text = serde_json::to_string(footprint).map_err(|e| io(&entry)(e.into()))?;
        let mut file = File::create(&entry).map_err(io(&entry))?;
        file.lock().map_err(io(&entry))?;
        file.write_all(text.as_bytes()).map_err(io(&entry))?;
        Ok(Self {
            _locks: [state, file],
            entry,
        })
    }
}

/// The error of an I/O step on `path`.
fn io(path: &Path) -> impl Fn(std::io::Error) -> ClaimError {
    let path = path.to_owned();
    move |source| ClaimError::Io {
        path: path.clone(),
        source,
    }
}

/// Compares `footprint` with the registry entry at `path`: what collides
/// with a live daemon's (`pid N: setting (theirs: ...), ...`), none when
/// nothing does; shared uids are a warning; an entry no live daemon holds
/// is removed.
fn check(path: &Path, footprint: &Footprint) -> Result<Option<String>, ClaimError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io(path)(error)),
    };
    match file.try_lock_shared() {
        Ok(()) => return std::fs::remove_file(path).map(|()| None).map_err(io(path)),
        Err(TryLockError::WouldBlock) => {}
        Err(TryLockError::Error(error)) => return Err(io(path)(error)),
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(io(path))?;
    let theirs: Footprint = serde_json::from_str(&text).map_err(|e| io(path)(e.into()))?;
    let holder = path
        .file_stem()
        .and_then(|stem| stem.to_str()?.split('-').next())
        .unwrap_or("unknown")
        .to_owned();
    let meeting = footprint.meet(&theirs);
    if !meeting.collisions.is_empty() {
        return Ok(Some(format!(
            "pid {holder}: {}",
            meeting.collisions.join(", ")
        )));
    }
    if meeting.shared_uids {
        tracing::warn!(
            other_daemon = %holder,
            "boxes of this daemon and of the other may get the same host uids: \
             give each its own [runtime] uid_base and pools small enough that \
             their ranges (uid_base + zone x 65536) stay apart"
        );
    }
    Ok(None)
}

/// Locks `path` (made if missing) and writes this process's pid into it.
fn lock(path: &Path, what: String) -> Result<File, ClaimError> {
    let io = |source| ClaimError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    // Not truncated on open: a holder's pid stays readable to the loser.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            file.read_to_string(&mut holder).map_err(io)?;
            let holder = holder.trim();
            let holder = if holder.is_empty() { "unknown" } else { holder };
            return Err(ClaimError::Held {
                what,
                holder: holder.to_owned(),
            });
        }
        Err(TryLockError::Error(error)) => return Err(io(error)),
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_on_a_held_file_names_the_holder_until_it_is_released() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("daemon.lock");
        let first = lock(&path, "state_dir x".into()).expect("first claim");
        let error = lock(&path, "state_dir x".into()).expect_err("held");
        let pid = std::process::id().to_string();
        assert!(
            matches!(&error, ClaimError::Held { what, holder } if what == "state_dir x" && *holder == pid),
            "{error}"
        );
        assert!(error.to_string().contains(&format!("pid {pid}")), "{error}");
        drop(first);
        lock(&path, "state_dir x".into()).expect("released with its holder");
    }

    /// A registry in `dir`, a daemon with the defaults and one apart,
    /// their state directories in `dir`.
    fn registry_and_two(dir: &Path) -> (PathBuf, Footprint, Footprint) {
        let mut first = footprint::tests::default_daemon();
        first.state_dir = dir.join("a");
        let mut second = footprint::tests::apart();
        second.state_dir = dir.join("b");
        (dir.join("daemons"), first, second)
    }

    #[test]
    fn a_colliding_daemon_is_refused_naming_the_holder_and_each_setting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (registry, first, mut second) = registry_and_two(dir.path());
        let held = Claim::take_in(&registry, &first).expect("first");
        second.table = first.table.clone();
        second.log_group = first.log_group;
        let error = Claim::take_in(&registry, &second).expect_err("collides");
        let text = error.to_string();
        let pid = std::process::id().to_string();
        for part in [
            format!("pid {pid}: "),
            "network.table \"boxfence\"".into(),
            "network.log_group 7".into(),
        ] {
            assert!(text.contains(&part), "{part:?} in {text}");
        }
        // Released with its holder (its entry goes; a crashed holder's
        // stays, unlocked, and counts for nothing).
        drop(held);
        let stale = registry.join("999999-0.json");
        std::fs::write(&stale, serde_json::to_string(&first).expect("json")).expect("stale");
        let _second = Claim::take_in(&registry, &second).expect("after release");
        assert!(!stale.exists(), "a stale entry is removed");
    }

    #[test]
    fn daemons_apart_register_side_by_side() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (registry, first, second) = registry_and_two(dir.path());
        let _a = Claim::take_in(&registry, &first).expect("first");
        let _b = Claim::take_in(&registry, &second).expect("second");
        let entries = std::fs::read_dir(&registry).expect("registry").count();
        assert_eq!(entries, 3, "the guard and one entry per daemon");
    }
}
