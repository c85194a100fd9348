//! The lab's one error type.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// What can go wrong building, using or tearing down a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A program could not be started at all (missing binary, fork failure).
    #[error("cannot start `{what}`: {source}")]
    Spawn {
        /// The command line, for the reader.
        what: String,
        /// Why the start failed.
        source: std::io::Error,
    },
    /// A setup command ran but exited unsuccessfully.
    #[error("`{what}` failed ({status}): {stderr}")]
    Command {
        /// The command line, for the reader.
        what: String,
        /// How it exited.
        status: ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A file or directory operation failed.
    #[error("{context} {}: {source}", path.display())]
    Io {
        /// What the lab was doing.
        context: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A system call on a namespace failed (setns, umount, kill).
    #[error("{context} {target}: {source}")]
    Sys {
        /// What the lab was doing.
        context: &'static str,
        /// The namespace path or process concerned.
        target: String,
        /// The underlying errno.
        source: nix::Error,
    },
    /// A child process of the lab could not be killed or reaped.
    #[error("cannot stop {what} (pid {pid}): {source}")]
    Child {
        /// Which child.
        what: &'static str,
        /// Its pid.
        pid: u32,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A command's JSON output (e.g. `ip -j`) was not what the lab expected.
    #[error("unexpected output from `{what}`: {detail}")]
    Parse {
        /// The command line, for the reader.
        what: String,
        /// What was wrong with it.
        detail: String,
    },
    /// The test servers did not all accept connections in time.
    #[error(
        "test servers not ready after {waited:?}; still failing: {pending:?}; server log:\n{log}"
    )]
    ServersNotReady {
        /// How long the lab waited.
        waited: Duration,
        /// The probes that never succeeded, e.g. `tcp 198.51.100.10:443`.
        pending: Vec<String>,
        /// The servers' stderr so far.
        log: String,
    },
    /// The test server process exited during start-up.
    #[error("test servers exited during start-up ({status}); server log:\n{log}")]
    ServersExited {
        /// How it exited.
        status: ExitStatus,
        /// The servers' stderr.
        log: String,
    },
    /// The lab is not sealed: it has a link or a route out of the lab.
    #[error("lab is not sealed: {0}")]
    NotSealed(String),
    /// Namespaces of the lab were still pinned after teardown removed them.
    #[error("namespaces left after teardown: {0:?}")]
    Leftover(Vec<PathBuf>),
    /// Tearing the lab down left something behind; every failure is listed.
    #[error("lab teardown failed:{}", list(.0))]
    Teardown(Vec<LabError>),
}

fn list(errors: &[LabError]) -> String {
    errors.iter().map(|e| format!("\n  - {e}")).collect()
}
