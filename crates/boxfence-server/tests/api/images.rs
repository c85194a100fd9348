//! A machine's image: `config.image` (Machines API) and `image` (Box
//! API), normalised (`:latest` where no tag is given), checked against
//! the host's image store, stored, shown and handed to the engine; a
//! malformed one is a 400 naming the field, an unknown one a 404 naming it.

use boxfence_client::{Box, BoxGuest, BoxOptions, Client, MachineConfig, MachineGuest, NewMachine};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{ADMIN, Daemon, assert_error};

#[tokio::test]
async fn the_sdk_sends_size_and_image_in_both_shapes() {
    let daemon = Daemon::start().await;
    let client = Client::new(&daemon.url, ADMIN);
    client.create_app("web").await.expect("app");
    let guest = MachineGuest {
        cpus: Some(2),
        memory_mb: None,
    };
    let config = MachineConfig {
        guest: Some(guest),
        image: Some("busybox:1.36".into()),
        ..MachineConfig::default()
    };
    let request = NewMachine {
        config,
        ..NewMachine::default()
    };
    let machine = client
        .create_machine("web", &request)
        .await
        .expect("machine");
    let shown = machine.value.config;
    assert_eq!(
        (shown.guest, shown.image.as_deref()),
        (
            Some(MachineGuest {
                cpus: Some(2),
                memory_mb: Some(512)
            }),
            Some("busybox:1.36"),
        )
    );
    let options = BoxOptions {
        guest: Some(BoxGuest {
            cpus: None,
            memory_mb: Some(256),
        }),
        image: Some("busybox:latest".into()),
        ..BoxOptions::default()
    };
    let sandbox = Box::create(&client, options).await.expect("box");
    let info = sandbox.info();
    assert_eq!(
        info.guest,
        Some(BoxGuest {
            cpus: Some(1),
            memory_mb: Some(256)
        })
    );
    assert_eq!(info.image.as_deref(), Some("busybox:latest"));
    let enforced = daemon.engine.enforced(&info.id).expect("created");
    assert_eq!(enforced.image.as_deref(), Some("busybox:latest"));
}

#[tokio::test]
async fn an_image_is_normalised_kept_shown_and_enforced() {
    let daemon = Daemon::start().await;
    daemon.create_app("web").await;
    let id = &daemon
        .create_machine("web", json!({"config": {"image": "busybox"}}))
        .await;
    let (_, shown) = daemon
        .call(Method::GET, &format!("/v1/apps/web/machines/{id}"), None)
        .await;
    assert_eq!(shown["config"]["image"], "busybox:latest");
    let enforced = daemon.engine.enforced(id).expect("created in the engine");
    assert_eq!(enforced.image.as_deref(), Some("busybox:latest"));
    let (status, boxed) = daemon
        .call(
            Method::POST,
            "/v1/boxes",
            Some(json!({"image": "busybox:1.36"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{boxed}");
    assert_eq!(boxed["image"], "busybox:1.36");
    let (_, plain) = daemon
        .call(Method::POST, "/v1/boxes", Some(json!({})))
        .await;
    assert!(plain.get("image").is_none(), "the default root: {plain}");
}

#[tokio::test]
async fn an_unknown_image_is_a_404_and_a_malformed_one_a_400_naming_it() {
    let daemon = Daemon::start().await;
    daemon.create_app("web").await;
    let unknown = daemon
        .call(
            Method::POST,
            "/v1/apps/web/machines",
            Some(json!({"config": {"image": "nope:1"}})),
        )
        .await;
    // Well formed, as the document allows, but not in the host's store.
    assert_error(
        &unknown,
        StatusCode::NOT_FOUND,
        "not_found",
        Some("config.image"),
    );
    assert!(
        unknown.1.to_string().contains("no image `nope:1`"),
        "{}",
        unknown.1
    );
    for image in [json!("Bad Name"), json!(7)] {
        let bad = daemon
            .call(Method::POST, "/v1/boxes", Some(json!({"image": image})))
            .await;
        assert_error(
            &bad,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some("image"),
        );
        assert!(bad.1.to_string().contains("image reference"), "{}", bad.1);
    }
    let (_, listed) = daemon
        .call(Method::GET, "/v1/apps/web/machines", None)
        .await;
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(0),
        "nothing made: {listed}"
    );
}
