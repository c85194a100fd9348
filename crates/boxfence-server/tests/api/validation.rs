//! Bad input: clear 4xx naming field and rule, nothing stored.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{ADMIN, Daemon, Options, assert_error};

#[tokio::test]
async fn bad_bodies_name_the_field_and_the_rule() {
    let daemon = Daemon::start().await;
    daemon.create_app("web").await;
    let path = "/v1/apps/web/network_policies";

    let (status, _, body) = daemon
        .raw(Method::POST, path, Some(ADMIN), Some("{\"name\": "))
        .await;
    assert_error(
        &(status, body),
        StatusCode::BAD_REQUEST,
        "malformed_json",
        None,
    );
    let (status, _, body) = daemon.raw(Method::POST, path, Some(ADMIN), None).await;
    assert_error(
        &(status, body),
        StatusCode::BAD_REQUEST,
        "malformed_json",
        None,
    );

    let cases = [
        (
            json!({"name": "p", "selector": {"all": true},
                   "rules": [{"action": "deny", "direction": "egress"}]}),
            "rules[0].action",
        ),
        (
            json!({"name": 5, "selector": {"all": true}, "rules": []}),
            "name",
        ),
        (
            json!({"name": "p", "selector": {"all": true}, "rules": [], "colour": "red"}),
            "colour",
        ),
        (
            json!({"name": "p", "selector": {}, "rules": []}),
            "selector",
        ),
        (
            json!({"name": "p", "selector": {"all": true},
                   "rules": [{"action": "allow", "direction": "egress",
                              "ports": [{"protocol": "tcp", "port": 70000}]}]}),
            "rules[0].ports[0].port",
        ),
        (
            json!({"name": "p", "selector": {"all": true},
                   "rules": [{"action": "allow", "direction": "egress", "ports": []}]}),
            "rules[0].ports",
        ),
    ];
    for (body, field) in cases {
        let answer = daemon.call(Method::POST, path, Some(body)).await;
        assert_error(
            &answer,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some(field),
        );
    }
    let (_, list) = daemon.call(Method::GET, path, None).await;
    assert_eq!(list, json!([]), "nothing was stored");

    let machine_cases = [
        (
            json!({"config": {"metadata": {"role": 1}}}),
            "config.metadata.role",
        ),
        (json!({"config": {"image": "Not An Image"}}), "config.image"),
        (json!({"name": "has space"}), "name"),
        (
            json!({"network_policy": {"mode": "custom"}}),
            "network_policy.mode",
        ),
        (
            json!({"network_policy": {"mode": "deny-all", "allowedCidrs": ["1.1.1.1"]}}),
            "network_policy.allowedCidrs",
        ),
        (json!({"attach": {"netns": "relative"}}), "attach.netns"),
        (json!({"attach": {"ifname": "eth0"}}), "attach.netns"),
        (
            json!({"attach": {"netns": "/x", "ifname": "a/b"}}),
            "attach.ifname",
        ),
        (
            json!({"attach": {"netns": "/x", "ifname": "much-too-long-name"}}),
            "attach.ifname",
        ),
        (
            json!({"attach": {"netns": "/x", "kind": "podman"}}),
            "attach.kind",
        ),
        (
            json!({"attach": {"netns": "/x", "kind": "cni"}}),
            "attach.container_id",
        ),
        (
            json!({"attach": {"netns": "/x", "container_id": "c1"}}),
            "attach.container_id",
        ),
        (
            json!({"attach": {"netns": "/x", "colour": "red"}}),
            "attach.colour",
        ),
    ];
    // Well formed, but the host has no such namespace, or it is the
    // daemon's own.
    for (netns, status, code) in [
        ("/nonexistent/ns", StatusCode::NOT_FOUND, "not_found"),
        ("/etc/hostname", StatusCode::NOT_FOUND, "not_found"),
        ("/proc/self/ns/net", StatusCode::CONFLICT, "conflict"),
    ] {
        let body = json!({"attach": {"netns": netns}});
        let answer = daemon
            .call(Method::POST, "/v1/apps/web/machines", Some(body))
            .await;
        let path = (status == StatusCode::NOT_FOUND).then_some("attach.netns");
        assert_error(&answer, status, code, path);
    }
    for (body, field) in machine_cases {
        let answer = daemon
            .call(Method::POST, "/v1/apps/web/machines", Some(body))
            .await;
        assert_error(
            &answer,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some(field),
        );
    }
    let box_cases = [
        (
            json!({"networkPolicy": {"mode": "custom", "allowedDomains": ["*"]}}),
            "networkPolicy.allowedDomains[0]",
        ),
        (
            json!({"networkPolicy": {"mode": "open"}}),
            "networkPolicy.mode",
        ),
        (json!({"runtime": 3}), "runtime"),
        (json!({"app": "Not An App"}), "app"),
        (json!({"networkpolicy": {}}), "networkpolicy"),
    ];
    for (body, field) in box_cases {
        let answer = daemon.call(Method::POST, "/v1/boxes", Some(body)).await;
        assert_error(
            &answer,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some(field),
        );
    }
    let (_, machines) = daemon
        .call(Method::GET, "/v1/apps/web/machines", None)
        .await;
    assert_eq!(machines, json!([]));

    let id = daemon.create_machine("web", json!({})).await;
    let exec = format!("/v1/apps/web/machines/{id}/exec");
    for (body, field) in [
        (json!({"command": []}), "command"),
        (json!({"command": "ls"}), "command"),
        (json!({"command": ["ls", 1]}), "command[1]"),
        (json!({"command": ["ls"], "timeout": -1}), "timeout"),
    ] {
        let answer = daemon.call(Method::POST, &exec, Some(body)).await;
        assert_error(
            &answer,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some(field),
        );
    }
    let evaluate = format!("/v1/apps/web/machines/{id}/network_policy/evaluate");
    for (body, field) in [
        (
            json!({"direction": "up", "protocol": "tcp", "port": 1, "ip": "1.1.1.1"}),
            "direction",
        ),
        (
            json!({"direction": "egress", "protocol": "tcp", "ip": "1.1.1.1"}),
            "port",
        ),
        (
            json!({"direction": "egress", "protocol": "tcp", "port": 1, "ip": "nope"}),
            "ip",
        ),
    ] {
        let answer = daemon.call(Method::POST, &evaluate, Some(body)).await;
        assert_error(
            &answer,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some(field),
        );
    }
    let answer = daemon
        .call(
            Method::PATCH,
            &format!("/v1/apps/web/machines/{id}/metadata"),
            Some(json!({"role": 5})),
        )
        .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some("role"),
    );
}

#[tokio::test]
async fn bad_ids_and_names_in_paths() {
    let daemon = Daemon::start().await;
    daemon.create_app("web").await;
    assert_error(
        &daemon
            .call(Method::GET, "/v1/apps/web/machines/NOT-AN-ID", None)
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some("id"),
    );
    assert_error(
        &daemon
            .call(Method::GET, "/v1/apps/web/machines/aaaaaaaaaaaa", None)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    assert_error(
        &daemon.call(Method::GET, "/v1/boxes/..", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    assert_error(
        &daemon.call(Method::GET, "/v1/apps/Bad_Name", None).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some("app_name"),
    );
    assert_error(
        &daemon
            .call(Method::POST, "/v1/apps", Some(json!({"app_name": "-x"})))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some("app_name"),
    );
    assert_error(
        &daemon.call(Method::POST, "/v1/apps", Some(json!({}))).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some("app_name"),
    );
    assert_error(
        &daemon.call(Method::GET, "/v1/nothing", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    assert_error(
        &daemon.call(Method::PUT, "/v1/apps/web", None).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        None,
    );
    assert_error(
        &daemon
            .call(Method::DELETE, "/v1/apps/web?force=maybe", None)
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some("force"),
    );
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let daemon = Daemon::start_with(Options {
        body_limit: Some(4096),
        ..Options::default()
    })
    .await;
    daemon.create_app("web").await;
    let huge = json!({"name": "p", "selector": {"all": true}, "rules": [],
                      "pad": "x".repeat(8192)});
    let answer = daemon
        .call(Method::POST, "/v1/apps/web/network_policies", Some(huge))
        .await;
    assert_error(
        &answer,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        None,
    );
}
