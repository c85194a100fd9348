//! Every kind of bad request, wherever the fault is (path, query string,
//! body, JSON syntax, content type), answers the API's JSON error shape
//! with its code, a 4xx, and the path of the fault.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{ADMIN, Daemon, assert_error};

/// Sends `body` as `content_type` and reads the answer as JSON.
async fn send(
    daemon: &Daemon,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", daemon.url))
        .bearer_auth(ADMIN)
        .body(body.to_owned());
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json")),
        "{status} is not JSON: {:?}",
        response.headers()
    );
    (status, response.json().await.expect("JSON body"))
}

async fn machine(daemon: &Daemon) -> String {
    daemon.create_app("web").await;
    daemon.create_machine("web", json!({})).await
}

#[tokio::test]
async fn a_query_parameter_that_does_not_parse_names_the_parameter() {
    let daemon = Daemon::start().await;
    let id = machine(&daemon).await;
    for (query, parameter) in [
        ("since=yesterday", "since"),
        ("limit=-1", "limit"),
        ("follow=perhaps", "follow"),
    ] {
        let path = format!("/v1/apps/web/machines/{id}/flows?{query}");
        let answer = send(&daemon, Method::GET, &path, None, "").await;
        assert_error(
            &answer,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some(parameter),
        );
    }
    // Parsed, but outside the rule.
    let path = format!("/v1/boxes/{id}/flows?limit=1001");
    let answer = send(&daemon, Method::GET, &path, None, "").await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some("limit"),
    );
    let answer = send(
        &daemon,
        Method::DELETE,
        "/v1/apps/web?force=maybe",
        None,
        "",
    )
    .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some("force"),
    );
}

#[tokio::test]
async fn a_path_parameter_that_does_not_decode_names_the_parameter() {
    let daemon = Daemon::start().await;
    let answer = send(&daemon, Method::GET, "/v1/boxes/%FF%FE", None, "").await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some("id"),
    );
    let answer = send(&daemon, Method::GET, "/v1/apps/Not_An_App", None, "").await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some("app_name"),
    );
}

#[tokio::test]
async fn json_syntax_errors_and_other_content_types_answer_json() {
    let daemon = Daemon::start().await;
    let json_type = Some("application/json");
    let answer = send(
        &daemon,
        Method::POST,
        "/v1/apps",
        json_type,
        "{\"app_name\": ",
    )
    .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "malformed_json", None);
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let body = r#"{"app_name": "web"}"#;
        let answer = send(&daemon, Method::POST, "/v1/apps", Some(content_type), body).await;
        assert_error(
            &answer,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            None,
        );
    }
    // JSON under its own name, a +json type, or no type at all is read.
    for content_type in [json_type, Some("application/merge-patch+json"), None] {
        let name = format!("app{}", content_type.map_or(0, str::len));
        let body = json!({ "app_name": name }).to_string();
        let (status, body) = send(&daemon, Method::POST, "/v1/apps", content_type, &body).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}

#[tokio::test]
async fn the_bodies_the_issue_named_are_refused_with_paths_as_the_document_says() {
    let daemon = Daemon::start().await;
    let id = machine(&daemon).await;
    let json_type = Some("application/json");
    let cases = [
        (
            Method::POST,
            format!("/v1/apps/web/machines/{id}/exec"),
            json!({"command": []}),
            "command",
        ),
        (
            Method::POST,
            format!("/v1/boxes/{id}/exec"),
            json!({"command": [""]}),
            "command[0]",
        ),
        (
            Method::POST,
            "/v1/apps/web/network_policies".to_owned(),
            json!({"name": "p", "selector": {}, "rules": []}),
            "selector",
        ),
        (
            Method::PUT,
            format!("/v1/boxes/{id}/network-policy"),
            json!({"mode": "custom", "allowedDomains": [], "deniedCidrs": []}),
            "mode",
        ),
    ];
    for (method, path, body, fault) in cases {
        let answer = send(&daemon, method, &path, json_type, &body.to_string()).await;
        assert_error(
            &answer,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some(fault),
        );
    }
    // `rules: []` is a policy that allows nothing more, as the document says.
    let body = json!({"name": "p", "selector": {"all": true}, "rules": []}).to_string();
    let path = "/v1/apps/web/network_policies";
    let (status, body) = send(&daemon, Method::POST, path, json_type, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}
