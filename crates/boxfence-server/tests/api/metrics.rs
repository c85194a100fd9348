//! `/metrics` names every app's machines: the admin's only.

use reqwest::{Method, StatusCode};

use crate::support::{ADMIN, Daemon, assert_error};

#[tokio::test]
async fn metrics_are_for_the_admin_only() {
    let daemon = Daemon::start().await;
    daemon.create_app("a").await;
    let (status, minted) = daemon.call(Method::POST, "/v1/apps/a/tokens", None).await;
    assert_eq!(status, StatusCode::CREATED, "{minted}");
    let app_token = minted["token"].as_str().expect("token");

    let (status, _, body) = daemon
        .raw(Method::GET, "/metrics", Some(app_token), None)
        .await;
    assert_error(
        &(status, body.clone()),
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("admin") && message.contains("/metrics"),
        "{message}"
    );
    let (status, headers, _) = daemon.raw(Method::GET, "/metrics", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[reqwest::header::CONTENT_TYPE]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/plain")),
        "{headers:?}"
    );
}
