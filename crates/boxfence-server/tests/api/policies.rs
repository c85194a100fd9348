//! App policies through the Machines API shape.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Daemon, assert_error};

/// The Machines seed's curl example, body verbatim.
const SEED_BODY: &str = r#"{
    "name": "specific-egress",
    "selector": {
      "all": true
    },
    "rules": [
      {
        "action": "allow",
        "direction": "egress",
        "ports": [
          { "protocol": "tcp", "port": 80 },
          { "protocol": "tcp", "port": 443 }
        ]
      }
    ]
  }"#;

#[tokio::test]
async fn the_seed_curl_example_creates_then_updates_by_name() {
    let daemon = Daemon::start().await;
    daemon.create_app("my-app-name").await;
    let path = "/v1/apps/my-app-name/network_policies";
    let (status, _, created) = daemon
        .raw(
            Method::POST,
            path,
            Some(crate::support::ADMIN),
            Some(SEED_BODY),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(created["name"], "specific-egress");
    assert_eq!(created["selector"], json!({"all": true}));
    assert_eq!(created["rules"][0]["ports"][1]["port"], 443);
    assert_eq!(created["warnings"], json!([]));

    let (status, _, again) = daemon
        .raw(
            Method::POST,
            path,
            Some(crate::support::ADMIN),
            Some(SEED_BODY),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "same name updates: {again}");
    assert_eq!(again["id"], id.as_str());

    for list_path in [path.to_owned(), format!("{path}/")] {
        let (status, list) = daemon.call(Method::GET, &list_path, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list.as_array().expect("array").len(), 1, "{list_path}");
        assert_eq!(list[0]["id"], id.as_str());
    }
    let (status, shown) = daemon
        .call(Method::GET, &format!("{path}/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["name"], "specific-egress");

    // With `id`, the policy is updated, here renamed.
    let mut renamed: serde_json::Value = serde_json::from_str(SEED_BODY).expect("json");
    renamed["id"] = json!(id);
    renamed["name"] = json!("renamed");
    let (status, updated) = daemon.call(Method::POST, path, Some(renamed)).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "renamed");

    let (status, _) = daemon
        .call(Method::DELETE, &format!("{path}/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_error(
        &daemon
            .call(Method::GET, &format!("{path}/{id}"), None)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    assert_error(
        &daemon
            .call(Method::DELETE, &format!("{path}/{id}"), None)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
}

#[tokio::test]
async fn an_unknown_id_is_404_and_a_taken_name_is_409() {
    let daemon = Daemon::start().await;
    daemon.create_app("web").await;
    let path = "/v1/apps/web/network_policies";
    let policy = |name: &str| json!({"name": name, "selector": {"all": true}, "rules": []});
    daemon.call(Method::POST, path, Some(policy("a"))).await;
    let (_, b) = daemon.call(Method::POST, path, Some(policy("b"))).await;
    let mut clash = policy("a");
    clash["id"] = b["id"].clone();
    assert_error(
        &daemon.call(Method::POST, path, Some(clash)).await,
        StatusCode::CONFLICT,
        "conflict",
        None,
    );
    let mut unknown = policy("c");
    unknown["id"] = json!("nosuchpolicy");
    assert_error(
        &daemon.call(Method::POST, path, Some(unknown)).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
}

#[tokio::test]
async fn a_policy_change_is_enforced_before_the_answer() {
    let daemon = Daemon::start().await;
    daemon.create_app("web").await;
    let web = daemon
        .create_machine("web", json!({"config": {"metadata": {"role": "web"}}}))
        .await;
    let db = daemon
        .create_machine("web", json!({"config": {"metadata": {"role": "db"}}}))
        .await;
    let path = "/v1/apps/web/network_policies";
    let (status, created) = daemon
        .call(
            Method::POST,
            path,
            Some(
                json!({"name": "web-only", "selector": {"metadata": {"role": "web"}},
                        "rules": [{"action": "allow", "direction": "ingress",
                                   "ports": [{"protocol": "tcp", "port": 443}]}]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        daemon.engine.enforced(&web).expect("web").policies,
        ["web-only"]
    );
    assert!(daemon.engine.enforced(&db).expect("db").policies.is_empty());

    // Metadata moves the db machine under the selector.
    let (status, patched) = daemon
        .call(
            Method::PATCH,
            &format!("/v1/apps/web/machines/{db}/metadata"),
            Some(json!({"role": "web", "tier": "1"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(
        patched["config"]["metadata"],
        json!({"role": "web", "tier": "1"})
    );
    assert_eq!(
        daemon.engine.enforced(&db).expect("db").policies,
        ["web-only"]
    );
    let (_, patched) = daemon
        .call(
            Method::PATCH,
            &format!("/v1/apps/web/machines/{db}/metadata"),
            Some(json!({"tier": null})),
        )
        .await;
    assert_eq!(patched["config"]["metadata"], json!({"role": "web"}));

    let id = created["id"].as_str().expect("id");
    daemon
        .call(Method::DELETE, &format!("{path}/{id}"), None)
        .await;
    assert!(
        daemon
            .engine
            .enforced(&web)
            .expect("web")
            .policies
            .is_empty()
    );
}

#[tokio::test]
async fn a_failed_kernel_apply_answers_5xx_and_keeps_the_commit() {
    let daemon = Daemon::start().await;
    daemon.create_app("web").await;
    daemon.create_machine("web", json!({})).await;
    *daemon.engine.fail_apply.lock().expect("lock") = true;
    let answer = daemon
        .call(
            Method::POST,
            "/v1/apps/web/network_policies",
            Some(json!({"name": "p", "selector": {"all": true}, "rules": []})),
        )
        .await;
    assert_error(
        &answer,
        StatusCode::INTERNAL_SERVER_ERROR,
        "data_plane_failed",
        None,
    );
    let (_, list) = daemon
        .call(Method::GET, "/v1/apps/web/network_policies", None)
        .await;
    assert_eq!(list.as_array().expect("list").len(), 1);
}

#[tokio::test]
async fn concurrent_applies_of_one_name_end_with_one_policy() {
    let daemon = std::sync::Arc::new(Daemon::start().await);
    daemon.create_app("web").await;
    let tasks: Vec<_> = (0..24u16)
        .map(|n| {
            let daemon = std::sync::Arc::clone(&daemon);
            tokio::spawn(async move {
                daemon
                    .call(
                        Method::POST,
                        "/v1/apps/web/network_policies",
                        Some(json!({"name": "same", "selector": {"all": true},
                                    "rules": [{"action": "allow", "direction": "egress",
                                               "ports": [{"protocol": "tcp", "port": 1000 + n}]}]})),
                    )
                    .await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        let (status, body) = task.await.expect("task");
        assert!(status.is_success(), "{body}");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let (_, list) = daemon
        .call(Method::GET, "/v1/apps/web/network_policies", None)
        .await;
    assert_eq!(list.as_array().expect("list").len(), 1);
}

#[tokio::test]
async fn always_blocked_entries_are_accepted_with_a_warning() {
    let daemon = Daemon::start().await;
    daemon.create_app("web").await;
    let (status, body) = daemon
        .call(
            Method::POST,
            "/v1/apps/web/network_policies",
            Some(json!({"name": "p", "selector": {"all": true},
                        "rules": [{"action": "allow", "direction": "egress",
                                   "cidrs": ["10.0.0.0/8", "104.16.0.0/12"]}]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let warnings = body["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{body}");
    assert_eq!(warnings[0]["path"], "rules[0].cidrs[0]");
}
