//! A small filesystem that a test can fill up, for fault injection: a
//! database on it sees `ENOSPC` exactly when the test says so.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::LabError;

/// What every small filesystem's directory starts with (after `bfl<pid>-`,
/// so that a dead test's mounts are swept like its labs).
const NAME: &str = "fs";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A tmpfs of a fixed size on a fresh directory, unmounted on drop.
///
/// It is mounted in the root mount namespace, which every lab process
/// shares (labs enter namespaces with `nsenter --net`), so a daemon in a
/// lab sees it too. Needs root.
#[derive(Debug)]
pub struct SmallFs {
    dir: PathBuf,
}

impl SmallFs {
    /// Mounts a tmpfs of `bytes` (rounded up to pages) on a new directory.
    ///
    /// # Errors
    ///
    /// When the directory cannot be made or the mount fails (not root).
    pub fn mount(bytes: u64) -> Result<Self, LabError> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("bfl{}-{NAME}{n}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|source| LabError::Io {
            context: "cannot create small filesystem directory",
            path: dir.clone(),
            source,
        })?;
        let options = format!("size={bytes},mode=0755");
        mount(
            Some("tmpfs"),
            &dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(options.as_str()),
        )
        .map_err(|source| LabError::Sys {
            context: "cannot mount a tmpfs on",
            target: dir.display().to_string(),
            source,
        })?;
        Ok(Self { dir })
    }

    /// Where it is mounted.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn filler(&self) -> PathBuf {
        self.dir.join("filler")
    }

    /// Takes every free byte, so the next write that needs a new block
    /// fails with `ENOSPC`; files already written can still be read and
    /// overwritten in place.
    ///
    /// # Errors
    ///
    /// When the filler cannot be written for any reason but a full disk.
    pub fn fill(&self) -> Result<(), LabError> {
        let path = self.filler();
        let io = |source| LabError::Io {
            context: "cannot fill",
            path: path.clone(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        // Large writes first, then single bytes for the last partial page.
        for chunk in [64 * 1024, 1] {
            let bytes = vec![0u8; chunk];
            loop {
                match file.write(&bytes) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                    Err(e) => return Err(io(e)),
                }
            }
        }
        Ok(())
    }

    /// Gives back what [`SmallFs::fill`] took.
    ///
    /// # Errors
    ///
    /// When the filler exists but cannot be removed.
    pub fn free(&self) -> Result<(), LabError> {
        match std::fs::remove_file(self.filler()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(LabError::Io {
                context: "cannot free",
                path: self.filler(),
                source,
            }),
        }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        // Detached: a daemon may still hold the database open.
        if let Err(e) = umount2(&self.dir, MntFlags::MNT_DETACH) {
            eprintln!("boxfence-lab: cannot unmount {}: {e}", self.dir.display());
            return;
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}
