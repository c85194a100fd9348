//! One daemon per state. A daemon's data plane owns its state directory and every
//! network namespace named with its prefix: at start it removes the
//! namespaces it does not know, so a second daemon on the same state or
//! prefix would delete the first one's boxes. Each is claimed with an
//! exclusive lock on a file that names the holder's pid; the kernel drops
//! the lock when the holder exits, however it exits, so a crash never
//! leaves a stale claim.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Where the claims on namespace prefixes live: namespaces are host-wide
/// (`/run/netns`), so their claims are too.
const PREFIX_CLAIMS: &str = "/run/boxfence";

/// Why a daemon could not claim its state.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClaimError {
    /// Another live process holds the claim.
    #[error(
        "{what} is in use by another boxfence daemon (pid {holder}); \
         stop it, or give this one its own state_dir and netns_prefix"
    )]
    Held {
        /// The state directory or namespace prefix.
        what: String,
        /// The holder's pid, as its lock file says.
        holder: String,
    },
    /// A lock file could not be made, locked or written.
    #[error("cannot claim {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// The held claims; dropping it releases them.
#[derive(Debug)]
pub(crate) struct Claim {
    _locks: [File; 2],
}

impl Claim {
    /// Claims `state_dir` and the namespace prefix `netns_prefix` for this
    /// process.
    pub(crate) fn take(state_dir: &Path, netns_prefix: &str) -> Result<Self, ClaimError> {
        let state = lock(
            &state_dir.join("daemon.lock"),
            format!("state_dir {}", state_dir.display()),
        )?;
        let prefix = lock(
            &Path::new(PREFIX_CLAIMS).join(format!("netns-{netns_prefix}.lock")),
            format!("netns_prefix {netns_prefix:?}"),
        )?;
        Ok(Self {
            _locks: [state, prefix],
        })
    }
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
}
