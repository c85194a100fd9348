//! `/healthz` says what of the data plane does not work.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::Daemon;

#[tokio::test]
async fn healthz_is_503_naming_each_part_that_is_down() {
    let daemon = Daemon::start().await;
    let (status, _, health) = daemon.raw(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health, json!({"status": "ok"}));

    let down = "resolver: not serving (accept on 10.200.0.1:53: Invalid argument (os error 22)); binding again in 1s";
    *daemon.engine.problems.lock().expect("lock") = vec![down.to_owned()];
    let (status, _, health) = daemon.raw(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health, json!({"status": "unhealthy", "problems": [down]}));

    daemon.engine.problems.lock().expect("lock").clear();
    let (status, _, _) = daemon.raw(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK, "healthy again once it serves");
}
