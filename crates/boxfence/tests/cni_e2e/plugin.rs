//! Runs a CNI plugin as a runtime does: a process with only the spec's
//! environment, the configuration on its stdin. Shared with the CNI
//! benchmark.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `plugin` with `env` (and nothing else of this process's
/// environment) and `stdin`, to its end.
pub(crate) fn run_plugin(plugin: &Path, env: &[(&str, &str)], stdin: &str) -> Output {
    let mut child = Command::new(plugin)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("plugin runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("configuration written");
    child.wait_with_output().expect("plugin ends")
}
