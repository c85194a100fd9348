//! Running the system tools the data plane drives (`ip`, `nft`,
//! `conntrack`), optionally inside another network namespace.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A tool failed or could not be started.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The program could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The program exited unsuccessfully.
    #[error("{command} failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
}

fn enter_error(why: &str) -> CommandError {
    CommandError::Spawn {
        program: "setns".into(),
        source: std::io::Error::other(why.to_owned()),
    }
}

/// Where commands run: this process's network namespace, or another one
/// entered with `nsenter --net` (tests run a data plane in a scratch one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostNetns {
    path: Option<PathBuf>,
}

impl HostNetns {
    /// This process's own network namespace.
    pub fn current() -> Self {
        Self::default()
    }

    /// The network namespace bound at `path` (e.g. `/run/netns/lab`).
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self {
            path: Some(path.into()),
        }
    }

    /// Runs `program args`, feeding `stdin`; returns its stdout.
    pub fn run(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<String, CommandError> {
        let mut command = match &self.path {
            None => Command::new(program),
            Some(path) => {
                let mut command = Command::new("nsenter");
                command
                    .arg(format!("--net={}", path.display()))
                    .arg("--")
                    .arg(program);
                command
            }
        };
        command
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawn_error = |source| CommandError::Spawn {
            program: program.to_owned(),
            source,
        };
        let mut child = command.spawn().map_err(spawn_error)?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes()).map_err(spawn_error)?;
        }
        let output = child.wait_with_output().map_err(spawn_error)?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(CommandError::Failed {
                command: format!("{program} {}", args.join(" ")),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            })
        }
    }

    /// Runs `f` on a fresh thread inside this namespace (sockets it opens
    /// stay there) and returns its result.
    pub fn in_netns<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, CommandError> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    self.enter()?;
                    Ok(f())
                })
                .join()
                .unwrap_or_else(|_| Err(enter_error("the thread panicked")))
        })
    }

    /// Runs `f` on a fresh thread in a new, empty network namespace of its
    /// own (what `f` runs through the [`HostNetns`] it is given runs there
    /// too); the kernel frees the namespace when `f` and its children are
    /// done. For building a ruleset nowhere near the host's traffic.
    pub fn throwaway<T: Send>(f: impl FnOnce(&Self) -> T + Send) -> Result<T, CommandError> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(|e| enter_error(&format!("unshare(CLONE_NEWNET): {e}")))?;
                    Ok(f(&Self::current()))
                })
                .join()
                .unwrap_or_else(|_| Err(enter_error("the thread panicked")))
        })
    }

    /// Moves the calling thread into this namespace (no-op for the current
    /// one). Only for threads made for that purpose.
    pub fn enter(&self) -> Result<(), CommandError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let file = std::fs::File::open(path).map_err(|e| enter_error(&e.to_string()))?;
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| enter_error(&e.to_string()))
    }

    /// Writes a sysctl (`net/ipv4/ip_forward`) in this namespace, through
    /// `/proc/sys` from a thread inside it (the network sysctls there are
    /// those of the writing thread's namespace): no process is spawned.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<(), CommandError> {
        let path = format!("/proc/sys/{key}");
        self.in_netns(|| std::fs::write(&path, value))?
            .map_err(|source| CommandError::Spawn {
                program: format!("write {path}"),
                source,
            })
    }

    /// Applies an nft batch as one transaction.
    pub fn nft(&self, batch: &str) -> Result<(), CommandError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.run("nft", &["-f", "-"], Some(batch)).map(drop)
    }
}
