//! Running programs, in the root namespace or inside a lab namespace.
//!
//! Programs enter a lab namespace with `nsenter --net=…`, never with
//! `ip netns exec`: the latter also gives the process a private mount
//! namespace, so namespaces the daemon pins by bind mount would vanish when
//! it exits (DESIGN.md section 4).

use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use crate::LabError;

/// A command that runs `argv` in the network namespace at `netns` (and in
/// every other namespace of the caller).
pub(crate) fn nsenter<I, S>(netns: &Path, argv: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut net = std::ffi::OsString::from("--net=");
    net.push(netns);
    let mut cmd = Command::new("nsenter");
    cmd.arg(net).arg("--").args(argv);
    cmd
}

/// How a command reads in an error message.
pub(crate) fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` to completion and captures its output, whatever its exit.
pub(crate) fn output(cmd: &mut Command) -> Result<Output, LabError> {
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn {
            what: describe(cmd),
            source,
        })
}

/// Starts `cmd` in the background with no stdin and its output dropped
/// (a server the lab talks to over the network).
pub(crate) fn spawn_silent(cmd: &mut Command) -> Result<Child, LabError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| LabError::Spawn {
            what: describe(cmd),
            source,
        })
}

/// Runs `cmd` with `input` on stdin and fails unless it exits 0.
pub(crate) fn run(cmd: &mut Command, input: Option<&str>) -> Result<Output, LabError> {
    let what = describe(cmd);
    let out = match input {
        None => output(cmd)?,
        Some(text) => {
            let mut child = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|source| LabError::Spawn {
                    what: what.clone(),
                    source,
                })?;
            // A failing command may close stdin early; its exit status and
            // stderr then say why, so a write error here adds nothing.
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(text.as_bytes());
            }
            child.wait_with_output().map_err(|source| LabError::Spawn {
                what: what.clone(),
                source,
            })?
        }
    };
    if out.status.success() {
        Ok(out)
    } else {
        Err(LabError::Command {
            what,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Runs `cmd` (which must succeed) and parses its stdout as JSON.
pub(crate) fn json(cmd: &mut Command) -> Result<serde_json::Value, LabError> {
    let out = run(cmd, None)?;
    serde_json::from_slice(&out.stdout).map_err(|e| LabError::Parse {
        what: describe(cmd),
        detail: e.to_string(),
    })
}
