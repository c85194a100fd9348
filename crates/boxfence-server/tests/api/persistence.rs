//! A restart keeps everything, and the data plane is reconciled with it.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Daemon, Options};

#[tokio::test]
async fn a_restart_keeps_apps_policies_machines_and_tokens() {
    let daemon = Daemon::start().await;
    daemon.create_app("web").await;
    let (_, policy) = daemon
        .call(
            Method::POST,
            "/v1/apps/web/network_policies",
            Some(
                json!({"name": "p", "selector": {"metadata": {"role": "web"}},
                        "rules": [{"action": "allow", "direction": "egress",
                                   "ports": [{"protocol": "tcp", "port": 443}]}]}),
            ),
        )
        .await;
    let id = daemon
        .create_machine(
            "web",
            json!({"config": {"metadata": {"role": "web"}},
                   "network_policy": {"mode": "custom", "deniedCidrs": ["104.16.120.0/24"]}}),
        )
        .await;
    let (_, token) = daemon.call(Method::POST, "/v1/apps/web/tokens", None).await;
    let token = token["token"].as_str().expect("token").to_owned();
    let (_, before) = daemon
        .call(Method::GET, &format!("/v1/apps/web/machines/{id}"), None)
        .await;

    let dir = daemon.stop().await;
    let daemon = Daemon::start_in(dir, Options::default()).await;
    let (status, after) = daemon
        .call(Method::GET, &format!("/v1/apps/web/machines/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(before, after);
    let (_, policies) = daemon
        .call(Method::GET, "/v1/apps/web/network_policies", None)
        .await;
    assert_eq!(policies[0]["id"], policy["id"]);
    let (status, _, _) = daemon
        .raw(Method::GET, "/v1/apps/web", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "app token survives");
    let enforced = daemon.engine.enforced(&id).expect("reconciled on start");
    assert_eq!(enforced.policies, ["p"]);
    assert_eq!(enforced.box_mode, "custom");
}
