//! `GET /v1/host` describes the host: the admin's only. The recording
//! engine drives no kernel, so its report says the kernel was not probed;
//! the daemon's end-to-end tests check a probed one.

use boxfence_client::Client;
use reqwest::{Method, StatusCode};

use crate::support::{ADMIN, Daemon};

#[tokio::test]
async fn the_host_report_is_for_the_admin_only() {
    let daemon = Daemon::start().await;
    let app_token = daemon.app_with_token("a").await;

    let (status, _, body) = daemon.raw(Method::GET, "/v1/host", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let message = daemon.forbidden_get("/v1/host", &app_token).await;
    assert!(message.contains("/v1/host"), "{message}");

    let report = Client::new(&daemon.url, ADMIN)
        .host()
        .await
        .expect("the admin reads the report");
    assert!(!report.ok);
    assert!(report.features.is_empty(), "{report:?}");
    assert!(
        report.problems[0].contains("not probed: this engine drives no kernel"),
        "{report:?}"
    );
    assert!(!report.kernel.is_empty());
    assert!(
        report
            .binaries
            .iter()
            .any(|b| b.name == "nft" && !b.required)
    );
    assert!(Client::new(&daemon.url, &app_token).host().await.is_err());
}
