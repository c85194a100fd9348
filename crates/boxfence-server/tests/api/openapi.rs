//! `/openapi.json` documents every route and the error shape.

use reqwest::{Method, StatusCode};

use crate::support::Daemon;

#[tokio::test]
async fn the_openapi_document_covers_every_route() {
    let daemon = Daemon::start().await;
    let (status, doc) = daemon.call(Method::GET, "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    let expected: &[(&str, &[&str])] = &[
        ("/healthz", &["get"]),
        ("/openapi.json", &["get"]),
        ("/v1/apps", &["get", "post"]),
        ("/v1/apps/{app}", &["get", "delete"]),
        ("/v1/apps/{app}/tokens", &["post"]),
        ("/v1/apps/{app}/network_policies", &["get", "post"]),
        ("/v1/apps/{app}/network_policies/", &["get"]),
        ("/v1/apps/{app}/network_policies/{id}", &["get", "delete"]),
        ("/v1/apps/{app}/machines", &["get", "post"]),
        ("/v1/apps/{app}/machines/{id}", &["get", "delete"]),
        ("/v1/apps/{app}/machines/{id}/metadata", &["patch"]),
        ("/v1/apps/{app}/machines/{id}/exec", &["post"]),
        (
            "/v1/apps/{app}/machines/{id}/network_policy/evaluate",
            &["post"],
        ),
        ("/v1/boxes", &["post"]),
        ("/v1/boxes/{id}", &["get", "delete"]),
        ("/v1/boxes/{id}/network-policy", &["put"]),
        ("/v1/boxes/{id}/exec", &["post"]),
        ("/v1/host", &["get"]),
    ];
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in expected {
        for method in *methods {
            assert!(
                paths.get(*path).and_then(|p| p.get(*method)).is_some(),
                "{method} {path} is not documented"
            );
        }
    }
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for name in [
        "ErrorBody",
        "AppPolicy",
        "NetworkPolicy",
        "Flow",
        "Verdict",
        "HostReport",
        "FeatureReport",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    // And every documented operation is routed: neither the fallback's
    // "no such route" nor 405.
    for (path, operations) in paths {
        let concrete = path
            .replace("{app}", "nosuchapp")
            .replace("{id}", "aaaaaaaaaaaa");
        for method in operations.as_object().expect("operations").keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let (status, body) = daemon.call(method.clone(), &concrete, None).await;
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_ne!(body["error"]["message"], "no such route", "{method} {path}");
        }
    }
}

/// The committed `openapi.json`, from which the SDKs are built, is the
/// document the types generate. `BOXFENCE_WRITE_OPENAPI=1` rewrites it.
#[test]
fn the_committed_openapi_json_is_the_generated_one() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi.json");
    let generated = boxfence_server::openapi_text();
    if std::env::var_os("BOXFENCE_WRITE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("write openapi.json");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi.json at the repository's root is not the generated document; regenerate it \
         with `cargo run -p boxfence -- openapi > openapi.json` (or \
         `BOXFENCE_WRITE_OPENAPI=1 cargo test -p boxfence-server --test api openapi`) and \
         commit it"
    );
}
