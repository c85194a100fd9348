//! Machines and apps through the Machines API shape.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Daemon, Options, assert_error};

#[tokio::test]
async fn apps_are_created_shown_listed_and_deleted() {
    let daemon = Daemon::start().await;
    daemon.create_app("my-app-name").await;
    let (status, app) = daemon.call(Method::GET, "/v1/apps/my-app-name", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app["app_name"], "my-app-name");
    assert_error(
        &daemon
            .call(
                Method::POST,
                "/v1/apps",
                Some(json!({"app_name": "my-app-name"})),
            )
            .await,
        StatusCode::CONFLICT,
        "conflict",
        None,
    );
    let (_, apps) = daemon.call(Method::GET, "/v1/apps", None).await;
    assert_eq!(apps.as_array().expect("apps").len(), 1);
    let (status, _) = daemon
        .call(Method::DELETE, "/v1/apps/my-app-name", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_error(
        &daemon.call(Method::GET, "/v1/apps/my-app-name", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
}

#[tokio::test]
async fn machines_get_addresses_and_show_their_policy() {
    let daemon = Daemon::start().await;
    daemon.create_app("web").await;
    let (status, created) = daemon
        .call(
            Method::POST,
            "/v1/apps/web/machines",
            Some(
                json!({"name": "api-1", "config": {"metadata": {"role": "web"}},
                        "network_policy": {"mode": "custom",
                                           "allowedDomains": ["api.github.com"]}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(id.len(), 12);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );
    assert_eq!(created["name"], "api-1");
    assert_eq!(created["addresses"]["ipv4"], "10.200.0.2");
    assert_eq!(created["addresses"]["ipv6"], "fd00:b0f::2");
    assert_eq!(
        created["network_policy"]["allowedDomains"],
        json!(["api.github.com"])
    );
    assert_eq!(
        daemon.engine.enforced(&id).expect("created").box_mode,
        "custom"
    );

    let second = daemon.create_machine("web", json!({})).await;
    let (_, shown) = daemon
        .call(
            Method::GET,
            &format!("/v1/apps/web/machines/{second}"),
            None,
        )
        .await;
    assert_eq!(
        shown["addresses"]["ipv4"], "10.200.0.3",
        "lowest free address"
    );
    assert_eq!(shown["network_policy"], json!({"mode": "allow-all"}));
    assert_eq!(shown["name"], second.as_str());

    assert_error(
        &daemon
            .call(
                Method::POST,
                "/v1/apps/web/machines",
                Some(json!({"name": "api-1"})),
            )
            .await,
        StatusCode::CONFLICT,
        "conflict",
        None,
    );
    let (_, list) = daemon
        .call(Method::GET, "/v1/apps/web/machines", None)
        .await;
    assert_eq!(list.as_array().expect("list").len(), 2);

    let (status, _) = daemon
        .call(Method::DELETE, &format!("/v1/apps/web/machines/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        daemon.engine.enforced(&id).is_none(),
        "deleted from the data plane"
    );
    assert_error(
        &daemon
            .call(Method::GET, &format!("/v1/apps/web/machines/{id}"), None)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    // Its address is free again.
    let third = daemon.create_machine("web", json!({})).await;
    let (_, shown) = daemon
        .call(Method::GET, &format!("/v1/apps/web/machines/{third}"), None)
        .await;
    assert_eq!(shown["addresses"]["ipv4"], "10.200.0.2");
}

#[tokio::test]
async fn exec_and_evaluate_run_against_the_machine() {
    let daemon = Daemon::start().await;
    daemon.create_app("web").await;
    let id = daemon
        .create_machine("web", json!({"network_policy": {"mode": "deny-all"}}))
        .await;
    let (status, output) = daemon
        .call(
            Method::POST,
            &format!("/v1/apps/web/machines/{id}/exec"),
            Some(json!({"command": ["echo", "hi"], "timeout": 5})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{output}");
    assert_eq!(
        output,
        json!({"exit_code": 0, "stdout": "hi\n", "stderr": ""})
    );

    let (status, verdict) = daemon
        .call(
            Method::POST,
            &format!("/v1/apps/web/machines/{id}/network_policy/evaluate"),
            Some(
                json!({"direction": "egress", "protocol": "tcp", "port": 443,
                        "ip": "104.16.1.1"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{verdict}");
    assert_eq!(verdict["verdict"], "deny");
    assert_eq!(verdict["layer"], "box_policy");
    assert!(
        verdict["reason"]
            .as_str()
            .is_some_and(|r| r.contains("deny-all"))
    );
}

#[tokio::test]
async fn without_a_data_plane_machine_work_answers_501() {
    let daemon = Daemon::start_with(Options {
        no_data_plane: true,
        ..Options::default()
    })
    .await;
    daemon.create_app("web").await;
    let answer = daemon
        .call(Method::POST, "/v1/apps/web/machines", Some(json!({})))
        .await;
    assert_error(&answer, StatusCode::NOT_IMPLEMENTED, "no_data_plane", None);
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("without a data plane")),
        "{}",
        answer.1
    );
    let (_, list) = daemon
        .call(Method::GET, "/v1/apps/web/machines", None)
        .await;
    assert_eq!(list, json!([]), "the failed machine was not kept");
    assert_error(
        &daemon
            .call(Method::POST, "/v1/boxes", Some(json!({})))
            .await,
        StatusCode::NOT_IMPLEMENTED,
        "no_data_plane",
        None,
    );
    let (status, _) = daemon.call(Method::GET, "/v1/apps/default", None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the refused box left no app `default` behind"
    );
    // Policies need no data plane while no machine exists.
    let (status, _) = daemon
        .call(
            Method::POST,
            "/v1/apps/web/network_policies",
            Some(json!({"name": "p", "selector": {"all": true}, "rules": []})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn deleting_an_app_with_machines_needs_force() {
    let daemon = Daemon::start().await;
    daemon.create_app("web").await;
    let id = daemon.create_machine("web", json!({})).await;
    assert_error(
        &daemon.call(Method::DELETE, "/v1/apps/web", None).await,
        StatusCode::CONFLICT,
        "conflict",
        None,
    );
    let (status, _) = daemon
        .call(Method::DELETE, "/v1/apps/web?force=true", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(daemon.engine.enforced(&id).is_none());
    assert_error(
        &daemon.call(Method::GET, "/v1/apps/web", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
}
