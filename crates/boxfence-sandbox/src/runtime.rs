//! The OCI runtime's command line (crun, runc or gVisor's runsc): run a
//! bundle detached, exec a process in it, read its state, delete it.
//! Every failure names the runtime, the operation and what the runtime
//! said.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::exec::{ExecResult, run_bounded};

/// The runtimes boxfence can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuntimeKind {
    /// crun (the default; Debian's `crun`).
    Crun,
    /// runc (Debian's `runc`).
    Runc,
    /// gVisor's runsc, where the operator installs it.
    Runsc,
}

impl RuntimeKind {
    /// Every kind, by name.
    pub const ALL: [Self; 3] = [Self::Crun, Self::Runc, Self::Runsc];

    /// Its binary's name (and its name in the config).
    pub fn name(self) -> &'static str {
        match self {
            Self::Crun => "crun",
            Self::Runc => "runc",
            Self::Runsc => "runsc",
        }
    }

    /// The kind called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// Why the runtime did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The runtime's binary is not on this host.
    #[error("the OCI runtime {runtime} is not installed (not found in {searched})")]
    Missing {
        /// Its name.
        runtime: &'static str,
        /// The directories searched.
        searched: String,
    },
    /// The runtime could not be started.
    #[error("cannot run {runtime} {operation}: {source}")]
    Spawn {
        /// Its name.
        runtime: &'static str,
        /// `run`, `exec`, ...
        operation: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The runtime refused or failed.
    #[error("{runtime} {operation} {id} failed ({status}): {stderr}")]
    Failed {
        /// Its name.
        runtime: &'static str,
        /// `run`, `exec`, ...
        operation: &'static str,
        /// The container.
        id: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it said.
        stderr: String,
    },
    /// Its state answer was not the JSON the spec describes.
    #[error("{runtime} state {id}: unreadable answer: {0}", runtime = .1, id = .2)]
    State(serde_json::Error, &'static str, String),
}

/// Where the runtime looks for binaries (the daemon may run with a
/// minimal PATH).
const SEARCH_PATH: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Where a hybrid host mounts cgroup v2 beside its v1 controllers.
const UNIFIED: &str = "/sys/fs/cgroup/unified";

/// Whether the host is hybrid with a controller on its v2 hierarchy.
fn hybrid_with_v2_controllers() -> bool {
    std::fs::read_to_string(format!("{UNIFIED}/cgroup.controllers"))
        .is_ok_and(|controllers| !controllers.trim().is_empty())
}

/// One runtime binary with the state directory boxfence gives it.
#[derive(Debug, Clone)]
pub struct Runtime {
    kind: RuntimeKind,
    program: PathBuf,
    root: PathBuf,
}

/// A container's status as `state` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Created, not started.
    Created,
    /// Its init runs.
    Running,
    /// Its init ended.
    Stopped,
    /// Anything else (paused, ...).
    Other,
}

impl Runtime {
    /// The runtime `kind` as installed on this host, keeping its state
    /// under `root`.
    pub fn find(kind: RuntimeKind, root: PathBuf) -> Result<Self, RuntimeError> {
        Self::locate(kind)
            .map(|program| Self {
                kind,
                program,
                root,
            })
            .ok_or(RuntimeError::Missing {
                runtime: kind.name(),
                searched: SEARCH_PATH.join(":"),
            })
    }

    /// Where `kind`'s binary is, if this host has it.
    pub fn locate(kind: RuntimeKind) -> Option<PathBuf> {
        SEARCH_PATH
            .iter()
            .map(|dir| Path::new(dir).join(kind.name()))
            .find(|path| path.is_file())
    }

    /// Which runtime this is.
    pub fn kind(&self) -> RuntimeKind {
        self.kind
    }

    fn command(&self) -> Command {
        let mut command = if self.kind == RuntimeKind::Crun && hybrid_with_v2_controllers() {
            // crun refuses a host whose cgroup v2 hierarchy (mounted beside
            // the v1 controllers) has a controller (hugetlb, say), though
            // it uses only v1's: it runs where that mount is out of its
            // sight, in a private mount namespace of its own.
            let mut command = Command::new("unshare");
            command.args([
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                &format!("umount -l {UNIFIED} && exec \"$0\" \"$@\""),
            ]);
            command.arg(&self.program);
            command
        } else {
            Command::new(&self.program)
        };
        command.arg("--root").arg(&self.root).env_clear();
        command
    }

    fn checked(
        &self,
        operation: &'static str,
        id: &str,
        command: &mut Command,
    ) -> Result<Vec<u8>, RuntimeError> {
        let output =
            command
                .stdin(Stdio::null())
                .output()
                .map_err(|source| RuntimeError::Spawn {
                    runtime: self.kind.name(),
                    operation,
                    source,
                })?;
        if output.status.success() {
            Ok(output.stdout)
        } else {
            Err(RuntimeError::Failed {
                runtime: self.kind.name(),
                operation,
                id: id.to_owned(),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            })
        }
    }

    /// Creates and starts container `id` from `bundle`, detached: it
    /// returns once the container's init runs. The runtime's output (and
    /// the init's, which keeps it open) goes to `log`, read back on
    /// failure: a pipe would stay open as long as the container lives.
    pub fn run_detached(&self, id: &str, bundle: &Path, log: &Path) -> Result<(), RuntimeError> {
        let spawn = |source| RuntimeError::Spawn {
            runtime: self.kind.name(),
            operation: "run",
            source,
        };
        let file = std::fs::File::create(log).map_err(spawn)?;
        let status = self
            .command()
            .arg("run")
            .arg("--detach")
            .arg("--bundle")
            .arg(bundle)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(file.try_clone().map_err(spawn)?)
            .stderr(file)
            .status()
            .map_err(spawn)?;
        if status.success() {
            return Ok(());
        }
        Err(RuntimeError::Failed {
            runtime: self.kind.name(),
            operation: "run",
            id: id.to_owned(),
            status,
            stderr: std::fs::read_to_string(log)
                .unwrap_or_default()
                .trim()
                .to_owned(),
        })
    }

    /// The container's status and its init's host pid (0 when it has
    /// none); `None` when the runtime does not know it.
    pub fn status(&self, id: &str) -> Result<Option<(Status, u32)>, RuntimeError> {
        if !self.root.join(id).exists() {
            return Ok(None);
        }
        let answer = self.checked("state", id, self.command().arg("state").arg(id))?;
        let state: serde_json::Value = serde_json::from_slice(&answer)
            .map_err(|e| RuntimeError::State(e, self.kind.name(), id.to_owned()))?;
        let status = match state["status"].as_str() {
            Some("created") => Status::Created,
            Some("running") => Status::Running,
            Some("stopped") => Status::Stopped,
            _ => Status::Other,
        };
        let pid = state["pid"].as_u64().and_then(|p| u32::try_from(p).ok());
        Ok(Some((status, pid.unwrap_or(0))))
    }

    /// Kills every process of the container and removes it (its cgroup
    /// included). A container the runtime does not know is fine.
    pub fn delete(&self, id: &str) -> Result<(), RuntimeError> {
        if !self.root.join(id).exists() {
            return Ok(());
        }
        self.checked(
            "delete",
            id,
            self.command().arg("delete").arg("--force").arg(id),
        )
        .map(drop)
    }

    /// The containers in this runtime's state directory.
    pub fn list(&self) -> Vec<String> {
        std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| entry.path().is_dir())
            .filter_map(|entry| entry.file_name().into_string().ok())
            .collect()
    }

    /// Runs the process described in `process_json` in container `id`
    /// with `stdin` as its input, for at most `timeout`.
    pub fn exec(
        &self,
        id: &str,
        process_json: &Path,
        stdin: &[u8],
        timeout: Duration,
    ) -> Result<ExecResult, RuntimeError> {
        let mut command = self.command();
        command
            .arg("exec")
            .arg("--process")
            .arg(process_json)
            .arg(id);
        run_bounded(&mut command, stdin, timeout).map_err(|source| RuntimeError::Spawn {
            runtime: self.kind.name(),
            operation: "exec",
            source,
        })
    }
}
