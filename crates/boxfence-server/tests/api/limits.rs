//! What one tenant may hold at once: execs per box, per app and on the
//! host, creates per app, and the exec timeout's bound. Past a cap the
//! answer is 429 with `Retry-After`, at once.

use std::sync::Arc;
use std::time::Duration;

use boxfence_server::{ExecLimits, Limits};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::support::{ADMIN, Daemon, Options, assert_error};

type Answer = (StatusCode, HeaderMap, Value);

fn limits() -> Limits {
    Limits {
        exec: ExecLimits {
            max_concurrent: 3,
            per_app: 2,
            per_box: 1,
            max_timeout: Duration::from_secs(5),
        },
        creates_per_app: 2,
    }
}

async fn started() -> Arc<Daemon> {
    Arc::new(
        Daemon::start_with(Options {
            limits: Some(limits()),
            ..Options::default()
        })
        .await,
    )
}

/// Sends an exec of `echo` to machine `id` of `app`, as the admin.
fn exec(daemon: &Arc<Daemon>, app: &str, id: &str) -> JoinHandle<Answer> {
    let daemon = Arc::clone(daemon);
    let path = format!("/v1/apps/{app}/machines/{id}/exec");
    tokio::spawn(async move {
        let body = json!({"command": ["echo", "hi"]}).to_string();
        daemon
            .raw(Method::POST, &path, Some(ADMIN), Some(&body))
            .await
    })
}

/// Sends a create of a machine in `app`, as the admin.
fn create(daemon: &Arc<Daemon>, app: &str) -> JoinHandle<Answer> {
    let daemon = Arc::clone(daemon);
    let path = format!("/v1/apps/{app}/machines");
    tokio::spawn(async move {
        daemon
            .raw(Method::POST, &path, Some(ADMIN), Some("{}"))
            .await
    })
}

async fn answer(task: JoinHandle<Answer>) -> Answer {
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("answered")
        .expect("request task")
}

/// A 429 that says when to retry and names the cap (`setting`).
fn assert_refused((status, headers, body): &Answer, setting: &str) {
    assert_error(
        &(*status, body.clone()),
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        None,
    );
    let retry_after: u64 = headers
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .expect("Retry-After in seconds");
    assert!(retry_after >= 1, "{retry_after}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(setting), "{message}");
}

#[tokio::test]
async fn execs_past_each_cap_answer_429_at_once_naming_it() {
    let daemon = started().await;
    for app in ["a", "b", "c"] {
        daemon.create_app(app).await;
    }
    let mut a = Vec::new();
    for _ in 0..3 {
        a.push(daemon.create_machine("a", json!({})).await);
    }
    let b = daemon.create_machine("b", json!({})).await;
    let c = daemon.create_machine("c", json!({})).await;
    let engine = Arc::clone(&daemon.engine);
    let held = engine.execs.close().await;

    let first = exec(&daemon, "a", &a[0]);
    engine.execs.arrived(1).await;
    // Answered while the admitted execs still run: nothing waits.
    assert_refused(&answer(exec(&daemon, "a", &a[0])).await, "[exec] per_box");
    let second = exec(&daemon, "a", &a[1]);
    engine.execs.arrived(2).await;
    assert_refused(&answer(exec(&daemon, "a", &a[2])).await, "[exec] per_app");
    let third = exec(&daemon, "b", &b);
    engine.execs.arrived(3).await;
    assert_refused(
        &answer(exec(&daemon, "c", &c)).await,
        "[exec] max_concurrent",
    );

    drop(held);
    for task in [first, second, third] {
        let (status, _, body) = answer(task).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Their places are free again.
    let (status, _, body) = answer(exec(&daemon, "c", &c)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn an_exec_whose_client_hung_up_counts_until_it_ends() {
    let daemon = started().await;
    daemon.create_app("a").await;
    let id = daemon.create_machine("a", json!({})).await;
    let engine = Arc::clone(&daemon.engine);
    let held = engine.execs.close().await;
    let gone = exec(&daemon, "a", &id);
    engine.execs.arrived(1).await;
    gone.abort();
    let _ = gone.await;
    // The command still runs in the box, so it still takes the box's place.
    assert_refused(&answer(exec(&daemon, "a", &id)).await, "[exec] per_box");
    drop(held);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, body) = answer(exec(&daemon, "a", &id)).await;
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert!(
            std::time::Instant::now() < deadline,
            "the place never freed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn creates_past_the_app_cap_answer_429_and_other_apps_go_on() {
    let daemon = started().await;
    daemon.create_app("a").await;
    daemon.create_app("b").await;
    let engine = Arc::clone(&daemon.engine);
    let held = engine.creates.close().await;
    let first = create(&daemon, "a");
    engine.creates.arrived(1).await;
    // The cap is two in progress: of two more, one waits its turn behind
    // the first and one is refused at once.
    let (mut second, mut third) = (create(&daemon, "a"), create(&daemon, "a"));
    let (refused, waiting) = tokio::select! {
        answer = &mut second => (answer.expect("task"), third),
        answer = &mut third => (answer.expect("task"), second),
    };
    assert_refused(&refused, "[create] per_app");
    // Another app's create is not held up by app a's: it reaches the
    // engine while a's first is still there.
    let other = create(&daemon, "b");
    engine.creates.arrived(2).await;
    drop(held);
    for task in [first, waiting, other] {
        let (status, _, body) = answer(task).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}

#[tokio::test]
async fn exec_timeout_is_bounded_by_the_configured_maximum() {
    let daemon = started().await;
    daemon.create_app("a").await;
    let id = daemon.create_machine("a", json!({})).await;
    let path = format!("/v1/apps/a/machines/{id}/exec");
    let answer = daemon
        .call(
            Method::POST,
            &path,
            Some(json!({"command": ["echo"], "timeout": 5.5})),
        )
        .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some("timeout"),
    );
    let message = answer.1["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("at most 5") && message.contains("max_timeout"),
        "{message}"
    );
    let (status, body) = daemon
        .call(
            Method::POST,
            &path,
            Some(json!({"command": ["echo"], "timeout": 5})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
