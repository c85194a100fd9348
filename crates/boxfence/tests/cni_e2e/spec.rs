//! The plugin as the CNI spec has runtimes drive it: error codes,
//! results by version, ADD twice, CHECK after ADD, idempotent DEL, GC and
//! STATUS.

use boxfence_lab::require_root;
use serde_json::json;

use crate::container::Container;
use crate::{attached_machines, cni, conf, daemon, invoke};

#[test]
fn the_plugin_answers_as_the_spec_says() {
    if !require_root("the_plugin_answers_as_the_spec_says") {
        return;
    }
    let daemon = daemon();
    daemon.ok("POST", "/v1/apps", r#"{"app_name": "web"}"#);
    let conf = conf(&daemon, "web", "1.0.0");
    let container = Container::bound();
    let (id, netns) = (container.id.as_str(), Some(container.netns.as_str()));

    // VERSION needs no configuration but its version.
    let (status, out) = invoke(&[("CNI_COMMAND", "VERSION")], r#"{"cniVersion": "0.4.0"}"#);
    assert_eq!(status, 0, "{out}");
    assert_eq!(out["cniVersion"], "0.4.0");
    for version in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        assert!(
            out["supportedVersions"]
                .as_array()
                .expect("list")
                .contains(&json!(version))
        );
    }

    // Errors, each with its code, on stdout, exit status non-zero.
    let code = |(status, out): (i32, serde_json::Value)| {
        assert_ne!(status, 0, "{out}");
        assert!(out["msg"].is_string(), "{out}");
        out["code"].as_u64().expect("a code")
    };
    let no_container = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/x"),
    ];
    assert_eq!(
        code(invoke(&no_container, &conf.to_string())),
        4,
        "CNI_CONTAINERID missing"
    );
    assert_eq!(
        code(cni("ADD", id, None, None, &conf)),
        4,
        "CNI_NETNS missing"
    );
    assert_eq!(code(cni("ADD", "bad/id", netns, None, &conf)), 4);
    let mut old = conf.clone();
    old["cniVersion"] = json!("0.2.0");
    assert_eq!(
        code(cni("ADD", id, netns, None, &old)),
        1,
        "incompatible version"
    );
    assert_eq!(
        code(invoke(
            &[
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", id),
                ("CNI_IFNAME", "eth0"),
                ("CNI_NETNS", &container.netns),
                ("CNI_PATH", "/x")
            ],
            "{not json"
        )),
        6
    );
    let mut no_app = conf.clone();
    no_app.as_object_mut().expect("object").remove("app");
    assert_eq!(code(cni("ADD", id, netns, None, &no_app)), 7);
    let mut other_app = conf.clone();
    other_app["app"] = json!("nowhere");
    assert_eq!(
        code(cni("ADD", id, netns, None, &other_app)),
        7,
        "an app that does not exist"
    );
    let (status, out) = cni(
        "ADD",
        id,
        netns,
        Some(r#"IgnoreUnknown=1;boxfence.policy={"mode": "custom", "allowedDomains": ["*"]}"#),
        &conf,
    );
    assert_eq!(code((status, out.clone())), 7, "a bad box policy: {out}");
    let message = out["msg"].as_str().expect("msg");
    assert!(
        message.contains("CNI_ARGS boxfence.policy: allowedDomains[0]"),
        "the message names the policy's source and path: {message}"
    );
    assert!(
        attached_machines(&daemon, "web").is_empty(),
        "a failed ADD attaches nothing"
    );
    assert_eq!(
        container
            .exec(&["ip", "link", "show", "eth0"])
            .status
            .code(),
        Some(1)
    );

    // ADD: the result names the interface, its addresses and the DNS.
    let (status, result) = cni("ADD", id, netns, None, &conf);
    assert_eq!(status, 0, "{result}");
    assert_eq!(result["cniVersion"], "1.0.0");
    assert_eq!(result["interfaces"][0]["name"], "eth0");
    assert_eq!(result["interfaces"][0]["sandbox"], container.netns.as_str());
    let mac = result["interfaces"][0]["mac"]
        .as_str()
        .expect("mac")
        .to_owned();
    let ipv4 = result["ips"][0]["address"]
        .as_str()
        .expect("ipv4")
        .to_owned();
    let ipv6 = result["ips"][1]["address"]
        .as_str()
        .expect("ipv6")
        .to_owned();
    let gateway = result["ips"][0]["gateway"].clone();
    assert_eq!(
        result["dns"]["nameservers"][0], gateway,
        "DNS is the built-in resolver"
    );
    let inside = container.addresses();
    let eth0 = inside
        .as_array()
        .expect("links")
        .iter()
        .find(|link| link["ifname"] == "eth0")
        .unwrap_or_else(|| panic!("eth0 inside: {inside}"));
    assert_eq!(eth0["address"], mac.as_str(), "{eth0}");
    let local = |info: &serde_json::Value| {
        format!(
            "{}/{}",
            info["local"].as_str().unwrap_or_default(),
            info["prefixlen"]
        )
    };
    let addresses: Vec<String> = eth0["addr_info"]
        .as_array()
        .expect("addresses")
        .iter()
        .map(local)
        .collect();
    assert!(
        addresses.contains(&ipv4) && addresses.contains(&ipv6),
        "{addresses:?}"
    );
    let machines = attached_machines(&daemon, "web");
    assert_eq!(machines.len(), 1);
    assert_eq!(machines[0]["attached"]["kind"], "cni");
    assert_eq!(machines[0]["attached"]["container_id"], id);
    assert_eq!(machines[0]["config"]["metadata"]["cni.network"], "boxnet");

    // ADD twice: the same attachment.
    let (status, again) = cni("ADD", id, netns, None, &conf);
    assert_eq!((status, &again), (0, &result));
    assert_eq!(attached_machines(&daemon, "web").len(), 1);

    // CHECK after ADD, with the ADD's result.
    let mut checked = conf.clone();
    checked["prevResult"] = result.clone();
    let (status, out) = cni("CHECK", id, netns, None, &checked);
    assert_eq!((status, out.clone()), (0, serde_json::Value::Null), "{out}");
    assert_eq!(
        code(cni("CHECK", id, netns, None, &conf)),
        7,
        "CHECK needs prevResult"
    );
    let tampered = container.exec(&["ip", "addr", "del", &ipv4, "dev", "eth0"]);
    assert!(tampered.status.success(), "{tampered:?}");
    let (status, out) = cni("CHECK", id, netns, None, &checked);
    assert_eq!(code((status, out.clone())), 100, "{out}");
    assert!(
        out["msg"]
            .as_str()
            .expect("msg")
            .contains("lacks the address"),
        "{out}"
    );

    // DEL, and DEL again: nothing there is no error.
    assert_eq!(
        cni("DEL", id, netns, None, &conf),
        (0, serde_json::Value::Null)
    );
    assert!(attached_machines(&daemon, "web").is_empty());
    assert_eq!(
        container
            .exec(&["ip", "link", "show", "eth0"])
            .status
            .code(),
        Some(1),
        "the link went"
    );
    assert_eq!(
        cni("DEL", id, netns, None, &conf),
        (0, serde_json::Value::Null)
    );
    assert_eq!(
        cni("DEL", id, None, None, &conf),
        (0, serde_json::Value::Null),
        "no CNI_NETNS"
    );
    assert_eq!(
        code(cni("CHECK", id, netns, None, &checked)),
        3,
        "unknown container"
    );

    // Older runtimes get 0.4.0's shape.
    let (status, legacy) = cni("ADD", id, netns, None, &conf_of(&conf, "0.4.0"));
    assert_eq!(status, 0, "{legacy}");
    assert_eq!(legacy["cniVersion"], "0.4.0");
    assert_eq!(legacy["ips"][0]["version"], "4");
    assert_eq!(
        cni("DEL", id, netns, None, &conf),
        (0, serde_json::Value::Null)
    );

    // 1.1: STATUS, and GC of what the runtime no longer knows.
    let current = conf_of(&conf, "1.1.0");
    let status_env = [("CNI_COMMAND", "STATUS"), ("CNI_PATH", "/x")];
    assert_eq!(
        invoke(&status_env, &current.to_string()),
        (0, serde_json::Value::Null)
    );
    assert_eq!(
        code(invoke(&status_env, &conf.to_string())),
        1,
        "STATUS needs 1.1.0"
    );
    let other = Container::bound();
    assert_eq!(cni("ADD", id, netns, None, &current).0, 0);
    assert_eq!(
        cni("ADD", &other.id, Some(&other.netns), None, &current).0,
        0
    );
    let mut gc = current.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": id, "ifname": "eth0"}]);
    assert_eq!(
        invoke(
            &[("CNI_COMMAND", "GC"), ("CNI_PATH", "/x")],
            &gc.to_string()
        ),
        (0, serde_json::Value::Null)
    );
    let left = attached_machines(&daemon, "web");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["attached"]["container_id"], id);

    // Without the daemon: ADD may be retried later, STATUS says so.
    daemon.kill();
    assert_eq!(
        code(cni("ADD", &other.id, Some(&other.netns), None, &conf)),
        11
    );
    assert_eq!(code(invoke(&status_env, &current.to_string())), 50);
}

/// `conf` with another `cniVersion`.
fn conf_of(conf: &serde_json::Value, version: &str) -> serde_json::Value {
    let mut conf = conf.clone();
    conf["cniVersion"] = json!(version);
    conf
}
