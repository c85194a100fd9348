//! The Rust SDK over the Machines API shape, and concurrent machine
//! creates (addresses are never shared).

use std::collections::{BTreeMap, HashSet};

use boxfence_client::{
    Client, ExecRequest, MachineConfig, NewMachine, boxfence_api::MetadataPatch,
};
use boxfence_policy::{AppPolicy, BoxPolicy, Flow};
use serde_json::json;

use crate::support::{ADMIN, Daemon};

#[tokio::test]
async fn the_sdk_covers_the_machines_api() {
    let daemon = Daemon::start().await;
    let client = Client::new(&daemon.url, ADMIN);
    client.create_app("web").await.expect("app");
    assert_eq!(client.app("web").await.expect("show").app_name, "web");
    let policy = AppPolicy::from_json(&json!({
        "name": "https-only", "selector": {"metadata": {"role": "web"}},
        "rules": [{"action": "allow", "direction": "egress",
                   "ports": [{"protocol": "tcp", "port": 443}]}]
    }))
    .expect("policy");
    let applied = client.apply_policy("web", &policy).await.expect("apply");
    let id = applied.value.id.clone();
    assert_eq!(applied.value.rules, policy.rules);
    assert_eq!(client.policies("web").await.expect("list").len(), 1);
    assert_eq!(
        client.policy("web", &id).await.expect("show").name,
        "https-only"
    );

    let machine = client
        .create_machine(
            "web",
            &NewMachine {
                name: Some("api".into()),
                config: MachineConfig {
                    metadata: BTreeMap::from([("role".into(), "web".into())]),
                    ..MachineConfig::default()
                },
                network_policy: Some(BoxPolicy::AllowAll),
                attach: None,
            },
        )
        .await
        .expect("machine")
        .value;
    let flow = |port: u16| -> Flow {
        serde_json::from_value(json!({"direction": "egress", "protocol": "tcp",
                                      "port": port, "ip": "104.16.1.1"}))
        .expect("flow")
    };
    assert!(
        client
            .evaluate("web", &machine.id, &flow(443))
            .await
            .expect("eval")
            .allowed()
    );
    let denied = client
        .evaluate("web", &machine.id, &flow(80))
        .await
        .expect("eval");
    assert_eq!(denied.layer, Some(boxfence_policy::Layer::AppPolicy));

    // Metadata moves the machine out of the selector.
    let patched = client
        .patch_metadata(
            "web",
            &machine.id,
            &MetadataPatch(BTreeMap::from([("role".into(), None)])),
        )
        .await
        .expect("patch");
    assert!(patched.config.metadata.is_empty());
    assert!(
        client
            .evaluate("web", &machine.id, &flow(80))
            .await
            .expect("eval")
            .allowed()
    );

    let output = client
        .exec(
            "web",
            &machine.id,
            &ExecRequest {
                command: vec!["echo".into(), "sdk".into()],
                ..ExecRequest::default()
            },
        )
        .await
        .expect("exec");
    assert_eq!(output.stdout, "sdk\n");
    assert_eq!(client.machines("web").await.expect("list").len(), 1);
    client
        .delete_policy("web", &id)
        .await
        .expect("delete policy");
    client
        .delete_machine("web", &machine.id)
        .await
        .expect("delete machine");
    let token = client.mint_token("web").await.expect("token");
    let scoped = Client::new(&daemon.url, &token.token);
    assert_eq!(scoped.apps().await.expect("apps").len(), 1);
    let error = scoped.create_app("other").await.expect_err("forbidden");
    assert_eq!(error.status(), Some(403));
    client.delete_app("web", false).await.expect("delete app");
}

#[tokio::test]
async fn concurrent_creates_get_distinct_addresses() {
    let daemon = std::sync::Arc::new(Daemon::start().await);
    daemon.create_app("a").await;
    daemon.create_app("b").await;
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let daemon = std::sync::Arc::clone(&daemon);
            tokio::spawn(async move {
                let app = if n % 2 == 0 { "a" } else { "b" };
                daemon
                    .call(
                        reqwest::Method::POST,
                        &format!("/v1/apps/{app}/machines"),
                        Some(json!({})),
                    )
                    .await
            })
        })
        .collect();
    let mut addresses = HashSet::new();
    for task in tasks {
        let (status, body) = task.await.expect("task");
        assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
        assert!(
            addresses.insert(body["addresses"]["ipv4"].to_string()),
            "{body}"
        );
        assert!(
            addresses.insert(body["addresses"]["ipv6"].to_string()),
            "{body}"
        );
    }
    assert_eq!(addresses.len(), 32);
}
