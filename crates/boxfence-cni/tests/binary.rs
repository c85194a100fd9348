//! The plugin binary without a daemon: what a runtime sees when it asks
//! for versions, forgets a variable, or finds no daemon. (With a daemon:
//! `crates/boxfence/tests/cni_e2e`, which runs this binary, built with
//! this test.)

use std::path::Path;

use serde_json::Value;

// The daemon's CNI tests run the plugin the same way.
#[path = "../../boxfence/tests/cni_e2e/plugin.rs"]
mod plugin;

fn invoke(env: &[(&str, &str)], stdin: &str) -> (i32, Value) {
    let plugin = Path::new(env!("CARGO_BIN_EXE_boxfence-cni"));
    let out = plugin::run_plugin(plugin, env, stdin);
    let printed = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), printed)
}

#[test]
fn version_errors_and_a_missing_daemon() {
    let (status, out) = invoke(&[("CNI_COMMAND", "VERSION")], "");
    assert_eq!(status, 0, "{out}");
    assert_eq!(out["cniVersion"], "1.1.0", "no configuration: the newest");
    let (status, out) = invoke(&[], "{}");
    assert_eq!((status, &out["code"]), (1, &Value::from(4)), "{out}");
    let conf = r#"{"cniVersion": "1.0.0", "name": "n", "type": "boxfence-cni", "app": "a",
                   "socket": "/nonexistent/boxfence.sock"}"#;
    let add = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/run/netns/c1"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/usr/lib/cni"),
    ];
    let (status, out) = invoke(&add, conf);
    assert_eq!((status, &out["code"]), (1, &Value::from(11)), "{out}");
    assert_eq!(
        out["cniVersion"], "1.0.0",
        "errors in the configuration's version"
    );
    assert!(
        out["msg"]
            .as_str()
            .is_some_and(|msg| msg.contains("/nonexistent/boxfence.sock"))
    );
}
