//! `/metrics` names every app's machines: the admin's only.

use reqwest::{Method, StatusCode};

use crate::support::{ADMIN, Daemon};

#[tokio::test]
async fn metrics_are_for_the_admin_only() {
    let daemon = Daemon::start().await;
    let app_token = daemon.app_with_token("a").await;

    let message = daemon.forbidden_get("/metrics", &app_token).await;
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
