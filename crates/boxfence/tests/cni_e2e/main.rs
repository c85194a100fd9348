//! The CNI plugin and attach by namespace, end to end in a sealed lab:
//! the plugin binary driven as the CNI spec says (environment and stdin)
//! against `boxfence serve` over its unix socket, on network namespaces
//! the test makes as a runtime would; what the containers can reach is
//! checked from inside them.

mod container;
mod enforcement;
mod plugin;
mod podman;
mod restart;
mod spec;

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::support::Daemon;

#[path = "../support/mod.rs"]
mod support;

/// A daemon whose API is on a unix socket in its lab's work directory.
pub(crate) fn daemon() -> Daemon {
    Daemon::start_with_config_for(|lab| {
        format!(
            "[api]\nunix_socket = \"{}\"\n",
            lab.workdir().join("api.sock").display()
        )
    })
}

/// The daemon's unix socket.
pub(crate) fn socket(daemon: &Daemon) -> PathBuf {
    daemon.lab.workdir().join("api.sock")
}

/// A network configuration for app `app` of `version`.
pub(crate) fn conf(daemon: &Daemon, app: &str, version: &str) -> Value {
    json!({"cniVersion": version, "name": "boxnet", "type": "boxfence-cni", "app": app,
           "socket": socket(daemon)})
}

/// The plugin binary, built beside the daemon's.
fn plugin_binary() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_boxfence")).with_file_name("boxfence-cni");
    assert!(
        path.exists(),
        "{} is missing: build it (cargo build -p boxfence-cni)",
        path.display()
    );
    path
}

/// One invocation: `env` as `CNI_*` variables (nothing else of the
/// test's environment), `stdin` as the configuration. Returns the exit
/// status and what it printed (null for nothing).
pub(crate) fn invoke(env: &[(&str, &str)], stdin: &str) -> (i32, Value) {
    let out = plugin::run_plugin(&plugin_binary(), env, stdin);
    let text = String::from_utf8_lossy(&out.stdout);
    let printed = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    (out.status.code().unwrap_or(-1), printed)
}

/// `command` for `container` on interface `ifname`, at `netns`, with
/// `args` as `CNI_ARGS`.
pub(crate) fn cni(
    command: &str,
    container: &str,
    netns: Option<&str>,
    args: Option<&str>,
    conf: &Value,
) -> (i32, Value) {
    let mut env = vec![
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", container),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/usr/lib/cni"),
    ];
    if let Some(netns) = netns {
        env.push(("CNI_NETNS", netns));
    }
    if let Some(args) = args {
        env.push(("CNI_ARGS", args));
    }
    invoke(&env, &conf.to_string())
}

/// The app's machines with an attachment.
pub(crate) fn attached_machines(daemon: &Daemon, app: &str) -> Vec<Value> {
    let listed = daemon.ok("GET", &format!("/v1/apps/{app}/machines"), "");
    listed
        .as_array()
        .expect("a list")
        .iter()
        .filter(|machine| !machine["attached"].is_null())
        .cloned()
        .collect()
}
