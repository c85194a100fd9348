//! boxfence's CNI plugin (CNI spec 1.1; results in 1.0.0's shape, or
//! 0.4.0's for older runtimes). For a container's network namespace it
//! asks the local daemon, over its unix socket, to attach that namespace
//! as a machine of the configured app: the daemon adds the veth named
//! `CNI_IFNAME`, addresses from its pools, routes, and enforces the app's
//! policies and the box policy there; the result's `dns` points at the
//! built-in resolver.
//!
//! ```json
//! {"cniVersion": "1.0.0", "name": "boxnet", "type": "boxfence-cni",
//!  "app": "my-app", "socket": "/run/boxfence/api.sock"}
//! ```

#![forbid(unsafe_code)]

pub mod client;
pub mod commands;
pub mod error;
pub mod identity;
pub mod result;
pub mod spec;

use serde_json::Value;

pub use error::CniError;
use spec::{Command, Env, NetConf, SUPPORTED_VERSIONS, version_answer};

/// What one invocation prints on stdout, and its exit status.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The result, version answer or error (none on a quiet success).
    pub stdout: Option<Value>,
    /// 0 on success, 1 on error.
    pub status: i32,
}

/// Runs one invocation: the environment through `var`, the
/// configuration from `stdin`.
pub fn invoke(var: impl Fn(&str) -> Option<String>, stdin: &[u8]) -> Outcome {
    // Errors before the configuration is read are in the newest shape.
    let mut version = SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.len() - 1].to_owned();
    let result = Env::read(var).and_then(|env| {
        if env.command == Command::Version {
            // VERSION's stdin holds only `cniVersion`, if anything.
            let asked = serde_json::from_slice::<Value>(stdin)
                .ok()
                .and_then(|conf| conf["cniVersion"].as_str().map(str::to_owned))
                .unwrap_or_else(|| version.clone());
            return Ok(Some(version_answer(&asked)));
        }
        let conf = NetConf::parse(stdin)?;
        version.clone_from(&conf.cni_version);
        if matches!(env.command, Command::Gc | Command::Status) && !conf.at_least(1, 1) {
            return Err(CniError::IncompatibleVersion(format!(
                "{}: GC and STATUS need 1.1.0",
                conf.cni_version
            )));
        }
        commands::run(&env, &conf)
    });
    match result {
        Ok(stdout) => Outcome { stdout, status: 0 },
        Err(error) => Outcome {
            stdout: Some(error.to_json(&version)),
            status: 1,
        },
    }
}
