//! The Box API shape, with the box seed's bodies.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Daemon, assert_error};

#[tokio::test]
async fn the_box_seed_bodies_create_read_and_update() {
    let daemon = Daemon::start().await;
    let (status, created) = daemon
        .call(
            Method::POST,
            "/v1/boxes",
            Some(json!({
              "runtime": "node",
              "networkPolicy": {
                "mode": "custom",
                "allowedDomains": ["api.github.com", "*.githubusercontent.com"],
                "allowedCidrs": ["104.16.0.0/12"],
              },
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["app"], "default");
    assert_eq!(created["runtime"], "node");
    assert_eq!(created["warnings"], json!([]));
    let id = created["id"].as_str().expect("id").to_owned();

    let (status, shown) = daemon
        .call(Method::GET, &format!("/v1/boxes/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        shown["networkPolicy"],
        json!({"mode": "custom",
               "allowedDomains": ["api.github.com", "*.githubusercontent.com"],
               "allowedCidrs": ["104.16.0.0/12"]})
    );

    for policy in [
        json!({ "mode": "deny-all" }),
        json!({ "mode": "allow-all" }),
        json!({"mode": "custom",
               "allowedDomains": ["github.com", "*.github.com", "registry.npmjs.org"]}),
        json!({"mode": "custom", "allowedCidrs": ["104.16.0.0/12"]}),
        json!({"mode": "custom", "deniedCidrs": ["104.16.120.0/24"]}),
    ] {
        let (status, answer) = daemon
            .call(
                Method::PUT,
                &format!("/v1/boxes/{id}/network-policy"),
                Some(policy.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["networkPolicy"], policy);
        let mode = policy["mode"].as_str().expect("mode");
        assert_eq!(
            daemon.engine.enforced(&id).expect("enforced").box_mode,
            mode
        );
    }

    // The same object through the Machines API.
    let (status, machine) = daemon
        .call(
            Method::GET,
            &format!("/v1/apps/default/machines/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        machine["network_policy"],
        json!({"mode": "custom", "deniedCidrs": ["104.16.120.0/24"]})
    );

    let (status, output) = daemon
        .call(
            Method::POST,
            &format!("/v1/boxes/{id}/exec"),
            Some(json!({"command": ["echo", "box"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{output}");
    assert_eq!(output["exitCode"], 0);
    assert_eq!(output["stdout"], "box\n");

    let (status, _) = daemon
        .call(Method::DELETE, &format!("/v1/boxes/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_error(
        &daemon
            .call(Method::GET, &format!("/v1/boxes/{id}"), None)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
}

#[tokio::test]
async fn a_box_in_a_missing_app_is_404() {
    let daemon = Daemon::start().await;
    assert_error(
        &daemon
            .call(Method::POST, "/v1/boxes", Some(json!({"app": "nosuchapp"})))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
}

#[tokio::test]
async fn private_ranges_are_accepted_with_a_warning() {
    let daemon = Daemon::start().await;
    let (status, created) = daemon
        .call(
            Method::POST,
            "/v1/boxes",
            Some(json!({"networkPolicy": {"mode": "custom",
                                          "allowedCidrs": ["10.0.0.0/8"]}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["warnings"][0]["path"],
        "networkPolicy.allowedCidrs[0]"
    );
    let id = created["id"].as_str().expect("id");
    let (_, answer) = daemon
        .call(
            Method::PUT,
            &format!("/v1/boxes/{id}/network-policy"),
            Some(json!({"mode": "custom", "allowedCidrs": ["169.254.169.254/32"]})),
        )
        .await;
    assert_eq!(answer["warnings"][0]["path"], "allowedCidrs[0]");
    assert!(
        answer["warnings"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("always-blocked"))
    );
}

#[tokio::test]
async fn the_sdk_mirrors_the_seed() {
    use boxfence_client::{Box, BoxOptions, Client};
    use boxfence_policy::BoxPolicy;

    let daemon = Daemon::start().await;
    let client = Client::new(&daemon.url, crate::support::ADMIN);
    let policy: BoxPolicy = serde_json::from_value(json!({
        "mode": "custom", "allowedDomains": ["api.github.com", "registry.npmjs.org"]
    }))
    .expect("policy");
    let mut sandbox = Box::create(
        &client,
        BoxOptions {
            runtime: Some("node".into()),
            network_policy: Some(policy.clone()),
            ..BoxOptions::default()
        },
    )
    .await
    .expect("create");
    assert_eq!(sandbox.network_policy(), &policy);
    sandbox
        .update_network_policy(BoxPolicy::DenyAll)
        .await
        .expect("update");
    assert_eq!(sandbox.network_policy(), &BoxPolicy::DenyAll);
    let fetched = Box::get(&client, sandbox.id()).await.expect("get");
    assert_eq!(fetched.network_policy(), &BoxPolicy::DenyAll);
    let machine = client
        .machine("default", sandbox.id())
        .await
        .expect("machine view");
    assert_eq!(machine.network_policy, BoxPolicy::DenyAll);
    let error = Box::get(&client, "nosuchbox000").await.expect_err("404");
    assert_eq!(error.status(), Some(404));
    sandbox.delete().await.expect("delete");
}
