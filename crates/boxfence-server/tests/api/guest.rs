//! A machine's size: `config.guest` (Machines API) and `guest` (Box
//! API), stored, shown and handed to the engine; defaults filled in;
//! out of range a 400 naming the field's path.

use boxfence_policy::Guest;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Daemon, assert_error};

#[tokio::test]
async fn a_machine_size_is_kept_shown_and_enforced_with_defaults_filled_in() {
    let daemon = Daemon::start().await;
    daemon.create_app("web").await;
    let (status, created) = daemon
        .call(
            Method::POST,
            "/v1/apps/web/machines",
            Some(json!({"config": {"guest": {"cpus": 2}}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["config"]["guest"],
        json!({"cpus": 2, "memory_mb": 512})
    );
    let id = created["id"].as_str().expect("id");
    let (_, shown) = daemon
        .call(Method::GET, &format!("/v1/apps/web/machines/{id}"), None)
        .await;
    assert_eq!(shown["config"]["guest"], created["config"]["guest"]);
    let enforced = daemon.engine.enforced(id).expect("created in the engine");
    assert_eq!(
        enforced.guest,
        Some(Guest {
            cpus: 2,
            memory_mb: 512
        })
    );
    let (status, plain) = daemon
        .call(Method::POST, "/v1/apps/web/machines", Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{plain}");
    assert_eq!(
        plain["config"]["guest"],
        json!({"cpus": 1, "memory_mb": 512})
    );
}

#[tokio::test]
async fn a_box_size_is_camel_case_and_shown() {
    let daemon = Daemon::start().await;
    let (status, created) = daemon
        .call(
            Method::POST,
            "/v1/boxes",
            Some(json!({"guest": {"cpus": 1, "memoryMb": 256}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["guest"], json!({"cpus": 1, "memoryMb": 256}));
    let id = created["id"].as_str().expect("id");
    let (_, shown) = daemon
        .call(Method::GET, &format!("/v1/boxes/{id}"), None)
        .await;
    assert_eq!(shown["guest"], created["guest"]);
}

#[tokio::test]
async fn a_size_out_of_range_is_a_400_naming_its_path() {
    let daemon = Daemon::start().await;
    daemon.create_app("web").await;
    for (body, path) in [
        (
            json!({"config": {"guest": {"cpus": 0}}}),
            "config.guest.cpus",
        ),
        (
            json!({"config": {"guest": {"memory_mb": 1_000_000}}}),
            "config.guest.memory_mb",
        ),
        (
            json!({"config": {"guest": {"gpus": 1}}}),
            "config.guest.gpus",
        ),
    ] {
        assert_error(
            &daemon
                .call(Method::POST, "/v1/apps/web/machines", Some(body))
                .await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some(path),
        );
    }
    assert_error(
        &daemon
            .call(
                Method::POST,
                "/v1/boxes",
                Some(json!({"guest": {"memoryMb": 8}})),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some("guest.memoryMb"),
    );
}
