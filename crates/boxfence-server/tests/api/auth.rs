//! Bearer tokens: admin, app-scoped, missing and wrong.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{ADMIN, Daemon, Options};

#[tokio::test]
async fn the_auth_matrix() {
    let daemon = Daemon::start().await;
    daemon.create_app("alpha").await;
    daemon.create_app("beta").await;

    let (status, _, health) = daemon.raw(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health, json!({"status": "ok"}));

    for token in [None, Some("wrong"), Some("bf_nosuchtoken_secret"), Some("")] {
        let (status, headers, body) = daemon.raw(Method::GET, "/v1/apps/alpha", token, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(headers["www-authenticate"], "Bearer");
        assert_eq!(body["error"]["code"], "unauthorized");
    }

    let (status, minted) = daemon
        .call(Method::POST, "/v1/apps/alpha/tokens", None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{minted}");
    let alpha = minted["token"].as_str().expect("token").to_owned();

    let (status, _, _) = daemon
        .raw(Method::GET, "/v1/apps/alpha", Some(&alpha), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    // Another app answers exactly as a missing one: names do not leak.
    let (status, _, other) = daemon
        .raw(Method::GET, "/v1/apps/beta", Some(&alpha), None)
        .await;
    let (_, _, missing) = daemon
        .raw(Method::GET, "/v1/apps/nosuchapp", Some(&alpha), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(other["error"]["code"], missing["error"]["code"]);
    for path in ["/v1/apps/beta/network_policies", "/v1/apps/beta/machines"] {
        let (status, _, _) = daemon.raw(Method::GET, path, Some(&alpha), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (_, _, apps) = daemon
        .raw(Method::GET, "/v1/apps", Some(&alpha), None)
        .await;
    assert_eq!(apps.as_array().expect("apps").len(), 1);

    // A box of beta is invisible to alpha's token.
    let (_, beta_box) = daemon
        .call(Method::POST, "/v1/boxes", Some(json!({"app": "beta"})))
        .await;
    let beta_box = beta_box["id"].as_str().expect("id");
    let (status, _, _) = daemon
        .raw(
            Method::GET,
            &format!("/v1/boxes/{beta_box}"),
            Some(&alpha),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // An app token's boxes go to its own app.
    let (status, _, own_box) = daemon
        .raw(Method::POST, "/v1/boxes", Some(&alpha), Some("{}"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{own_box}");
    assert_eq!(own_box["app"], "alpha");

    // Only the admin creates apps and mints tokens.
    let (status, _, _) = daemon
        .raw(
            Method::POST,
            "/v1/apps",
            Some(&alpha),
            Some(r#"{"app_name": "gamma"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = daemon
        .raw(Method::POST, "/v1/apps/alpha/tokens", Some(&alpha), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // /openapi.json needs a token too.
    let (status, _, _) = daemon.raw(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_admin_token_is_generated_once_and_stored_hashed() {
    let daemon = Daemon::start_with(Options {
        admin_token: None,
        ..Options::default()
    })
    .await;
    let token = daemon
        .generated_admin
        .clone()
        .expect("generated on first start");
    let (status, _, _) = daemon
        .raw(
            Method::POST,
            "/v1/apps",
            Some(&token),
            Some(r#"{"app_name": "a"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, _) = daemon.raw(Method::GET, "/v1/apps", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no configured token now");

    let dir = daemon.stop().await;
    let bytes = std::fs::read(dir.path().join("boxfence.db")).expect("db");
    let secret = token.rsplit('_').next().expect("secret");
    assert!(
        !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the secret is not stored in clear"
    );
    let daemon = Daemon::start_in(
        dir,
        Options {
            admin_token: None,
            ..Options::default()
        },
    )
    .await;
    assert!(daemon.generated_admin.is_none(), "printed only once");
    let (status, _, _) = daemon
        .raw(Method::GET, "/v1/apps", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = daemon
        .raw(Method::GET, "/v1/apps", Some("bf_x_y"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
