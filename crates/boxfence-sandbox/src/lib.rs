//! Boxes as OCI containers. A box is a long-lived container made by a
//! standard OCI runtime (crun by default, runc, or runsc) from a bundle
//! boxfence writes: its own root filesystem (read-only), its own host uid
//! range in a user namespace, few capabilities and `no_new_privs`, a
//! seccomp filter, cgroup limits from its size, and the box's network
//! namespace, so the network policy judges everything it sends. Its init
//! (catatonit) runs for the box's lifetime; each exec is `runtime exec`.

#![forbid(unsafe_code)]

pub mod bundle;
pub mod exec;
pub mod image;
pub mod rootfs;
pub mod runtime;
pub mod seccomp;
pub mod spec;
pub mod uids;
pub mod userns;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use bundle::{BoxSpec, Limits};
pub use exec::{ExecResult, MAX_OUTPUT, TIMED_OUT};
pub use image::{Image, ImageError, ImageInfo, ImageStore};
pub use rootfs::GeneratedEtc;
pub use runtime::{Runtime, RuntimeError, RuntimeKind, Status};
pub use uids::{UidError, UidRange};
pub use userns::UsernsError;

/// Where the box init is looked for (Debian's `catatonit`, static).
pub const DEFAULT_INIT: &str = "/usr/bin/catatonit";

/// Why a box's container could not be made, used or removed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The runtime failed (or is missing).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The box init is not on this host.
    #[error("the box init {0} is not installed (Debian package catatonit)")]
    NoInit(PathBuf),
    /// The bundle could not be written or removed.
    #[error("bundle of {id}: {source}")]
    Bundle {
        /// The container.
        id: String,
        /// Why.
        source: std::io::Error,
    },
    /// The box's user namespace could not be made or removed.
    #[error("user namespace of {id}: {source}")]
    Userns {
        /// The container.
        id: String,
        /// Why.
        source: UsernsError,
    },
    /// The box's image could not be used or released.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// No program was given to exec.
    #[error("command must name a program")]
    EmptyCommand,
}

/// The boxes' containers on this host, through one runtime.
#[derive(Debug)]
pub struct Sandboxes {
    runtime: Runtime,
    /// Bundles live in `<dir>/bundles/<id>`.
    dir: PathBuf,
    init: PathBuf,
    /// Images for boxes' roots.
    images: ImageStore,
    /// Names each exec's process file apart.
    execs: AtomicU64,
}

impl Sandboxes {
    /// Containers made by `kind`, their bundles and the runtime's state
    /// under `dir`, with `init` as each box's first process and their
    /// images from the store in `images`.
    pub fn new(
        kind: RuntimeKind,
        dir: &Path,
        init: &Path,
        images: &Path,
    ) -> Result<Self, SandboxError> {
        let runtime = Runtime::find(kind, dir.join(kind.name()))?;
        if !init.is_file() {
            return Err(SandboxError::NoInit(init.to_owned()));
        }
        Ok(Self {
            runtime,
            dir: dir.to_owned(),
            init: init.to_owned(),
            images: ImageStore::open(images),
            execs: AtomicU64::new(0),
        })
    }

    /// The image store of boxes' roots.
    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    /// The runtime in use.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    fn bundle(&self, id: &str) -> PathBuf {
        self.dir.join("bundles").join(id)
    }

    /// Where the user namespace of container `id` is pinned.
    fn userns(&self, id: &str) -> PathBuf {
        self.dir.join("userns").join(id)
    }

    /// Makes the user namespace of container `id`, mapping its root to
    /// `uids`, and returns a new network namespace it owns, for the data
    /// plane to wire before [`Sandboxes::create`] runs anything in it
    /// (see [`userns`] for why the box's user namespace must own it).
    pub fn namespaces(&self, id: &str, uids: UidRange) -> Result<File, SandboxError> {
        userns::make(&self.userns(id), uids).map_err(|source| SandboxError::Userns {
            id: id.to_owned(),
            source,
        })
    }

    fn bundle_error(id: &str) -> impl FnOnce(std::io::Error) -> SandboxError + '_ {
        move |source| SandboxError::Bundle {
            id: id.to_owned(),
            source,
        }
    }

    /// Whether container `id` has its user namespace.
    pub fn has_userns(&self, id: &str) -> bool {
        self.userns(id).exists()
    }

    /// Makes the box's container in the namespaces of
    /// [`Sandboxes::namespaces`] and starts its init; a container an
    /// earlier run left under the same id goes first. On failure no
    /// container is left (the namespaces are, until [`Sandboxes::delete`]).
    pub fn create(&self, spec: &BoxSpec) -> Result<(), SandboxError> {
        let id = spec.id.as_str();
        self.remove_container(id)?;
        let made = self.create_container(spec);
        if made.is_err() {
            let _ = self.remove_container(id);
        }
        made
    }

    fn create_container(&self, spec: &BoxSpec) -> Result<(), SandboxError> {
        let id = spec.id.as_str();
        let image = match &spec.image {
            Some(name) => Some(self.images.hold(name, id)?),
            None => None,
        };
        let layers = image.as_ref().map(|image| image.layers.as_slice());
        let bundle = self.bundle(id);
        bundle::write(&bundle, spec, &self.userns(id), layers, &self.init)
            .map_err(Self::bundle_error(id))?;
        self.runtime
            .run_detached(id, &bundle, &bundle.join("runtime.log"))?;
        Ok(())
    }

    /// Whether the box's container runs (after a daemon restart: found
    /// again, or to be made anew).
    pub fn is_running(&self, id: &str) -> bool {
        matches!(self.runtime.status(id), Ok(Some((Status::Running, _))))
    }

    /// Whether the box's container runs in the network namespace bound at
    /// `netns` (one made anew while the container lived leaves it in the
    /// old one, cut off: then it is to be made anew too).
    pub fn runs_in(&self, id: &str, netns: &Path) -> bool {
        use std::os::unix::fs::MetadataExt as _;
        let Ok(Some((Status::Running, pid @ 1..))) = self.runtime.status(id) else {
            return false;
        };
        let inode = |path: &Path| std::fs::metadata(path).map(|m| (m.dev(), m.ino())).ok();
        let theirs = inode(Path::new(&format!("/proc/{pid}/ns/net")));
        theirs.is_some() && theirs == inode(netns)
    }

    /// Ends every process of the box and removes its container, cgroup,
    /// bundle and user namespace. Nothing to remove is fine.
    pub fn delete(&self, id: &str) -> Result<(), SandboxError> {
        let removed = self.remove_container(id);
        let unpinned = userns::remove(&self.userns(id)).map_err(|source| SandboxError::Userns {
            id: id.to_owned(),
            source,
        });
        removed.and(unpinned)
    }

    fn remove_container(&self, id: &str) -> Result<(), SandboxError> {
        self.runtime.delete(id)?;
        rootfs::unmount(&self.bundle(id).join("rootfs")).map_err(Self::bundle_error(id))?;
        self.images.release(id)?;
        match std::fs::remove_dir_all(self.bundle(id)) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                Err(Self::bundle_error(id)(error))
            }
            _ => Ok(()),
        }
    }

    /// The containers the runtime knows, and those with a user namespace.
    pub fn ids(&self) -> Vec<String> {
        let mut ids = self.runtime.list();
        let pinned = std::fs::read_dir(self.dir.join("userns"))
            .into_iter()
            .flatten();
        ids.extend(
            pinned
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok()),
        );
        ids.sort();
        ids.dedup();
        ids
    }

    /// Runs `argv` in the box as its root, in /tmp, with `stdin` as input,
    /// for at most `timeout` (then it and what it started are killed).
    pub fn exec(
        &self,
        id: &str,
        argv: &[String],
        stdin: &[u8],
        timeout: Duration,
    ) -> Result<ExecResult, SandboxError> {
        if argv.first().is_none_or(String::is_empty) {
            return Err(SandboxError::EmptyCommand);
        }
        let process = bundle::process(argv.to_vec(), "/tmp".into());
        let n = self.execs.fetch_add(1, Ordering::Relaxed);
        let path = self.bundle(id).join(format!("exec-{n}.json"));
        let json = serde_json::to_vec(&process).map_err(std::io::Error::other);
        json.and_then(|json| std::fs::write(&path, json))
            .map_err(Self::bundle_error(id))?;
        let result = self.runtime.exec(id, &path, stdin, timeout);
        let _ = std::fs::remove_file(&path);
        Ok(result?)
    }
}
