//! Every write of the SQLite store, with its file on a filesystem that
//! fails: an error, nothing stored, and the same write succeeding once the
//! fault clears. Needs root (it mounts a small tmpfs).

use std::collections::BTreeMap;

use boxfence_lab::{SmallFs, require_root};
use boxfence_policy::{AppPolicy, BoxPolicy};
use boxfence_store::{
    App, NewToken, SqliteStore, Store, StoreError, StoredMachine, StoredPolicy, StoredToken,
};
mod support;
use support::{machine, open, policy};

/// A tmpfs this small fills in a moment, and holds the database easily.
const FS_BYTES: u64 = 2 * 1024 * 1024;

fn token(id: &str, app: &str) -> NewToken {
    NewToken {
        id: id.into(),
        app: Some(app.into()),
        secret_hash: "ab".into(),
    }
}

/// Everything the store holds (tokens by the ids the test uses).
#[derive(Debug, PartialEq)]
struct Snapshot {
    apps: Vec<App>,
    policies: Vec<StoredPolicy>,
    machines: Vec<StoredMachine>,
    tokens: Vec<Option<StoredToken>>,
}

async fn snapshot(store: &SqliteStore) -> Snapshot {
    let apps = store.apps().await.expect("apps");
    let mut policies = Vec::new();
    for app in &apps {
        policies.extend(store.policies(&app.name).await.expect("policies"));
    }
    let mut tokens = Vec::new();
    for id in ["t1", "t2"] {
        tokens.push(store.token(id).await.expect("token"));
    }
    Snapshot {
        apps,
        policies,
        machines: store.machines(None).await.expect("machines"),
        tokens,
    }
}

/// Runs `write` on a full filesystem: it must fail and leave the store as
/// it was. Then runs it again with space: it must succeed and change it.
async fn fails_then_converges<T: std::fmt::Debug>(
    fs: &SmallFs,
    store: &SqliteStore,
    what: &str,
    write: impl AsyncFn() -> Result<T, StoreError>,
) {
    let before = snapshot(store).await;
    fs.fill().expect("fill");
    // Twice: a failed commit must not leave its connection broken.
    for attempt in 0..2 {
        let result = write().await;
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{what} on a full disk (attempt {attempt}): {result:?}"
        );
        assert_eq!(snapshot(store).await, before, "{what} stored nothing");
    }
    fs.free().expect("free");
    let result = write().await;
    assert!(result.is_ok(), "{what} once space is back: {result:?}");
    assert_ne!(snapshot(store).await, before, "{what} changed the store");
}

#[tokio::test]
async fn every_write_fails_on_a_full_disk_and_converges_after() {
    if !require_root("every_write_fails_on_a_full_disk_and_converges_after") {
        return;
    }
    let fs = SmallFs::mount(FS_BYTES).expect("tmpfs");
    let store = open(fs.path()).await;
    let s = &store;
    fails_then_converges(&fs, s, "create_app", async || s.create_app("web").await).await;
    fails_then_converges(&fs, s, "create_app", async || s.create_app("gone").await).await;
    fails_then_converges(&fs, s, "put_policy (create)", async || {
        s.put_policy("web", &policy("p", 80), "pol1").await
    })
    .await;
    fails_then_converges(&fs, s, "put_policy (by name)", async || {
        s.put_policy("web", &policy("p", 443), "unused").await
    })
    .await;
    let by_id = AppPolicy {
        id: Some("pol1".into()),
        ..policy("q", 8080)
    };
    fails_then_converges(&fs, s, "put_policy (by id)", async || {
        s.put_policy("web", &by_id, "unused").await
    })
    .await;
    fails_then_converges(&fs, s, "insert_machine", async || {
        s.insert_machine(&machine("m1", "web", 2, BoxPolicy::AllowAll))
            .await
    })
    .await;
    fails_then_converges(&fs, s, "insert_machine", async || {
        s.insert_machine(&machine("m2", "gone", 3, BoxPolicy::AllowAll))
            .await
    })
    .await;
    let metadata = BTreeMap::from([("role".into(), "db".into())]);
    fails_then_converges(&fs, s, "set_metadata", async || {
        s.set_metadata("m1", 1, &metadata).await
    })
    .await;
    fails_then_converges(&fs, s, "set_network_policy", async || {
        s.set_network_policy("m1", &BoxPolicy::DenyAll).await
    })
    .await;
    fails_then_converges(&fs, s, "insert_token", async || {
        s.insert_token(&token("t1", "web")).await
    })
    .await;
    fails_then_converges(&fs, s, "insert_token", async || {
        s.insert_token(&token("t2", "gone")).await
    })
    .await;
    fails_then_converges(&fs, s, "delete_policy", async || {
        s.delete_policy("web", "pol1").await
    })
    .await;
    fails_then_converges(&fs, s, "delete_machine", async || {
        s.delete_machine("m1").await
    })
    .await;
    fails_then_converges(&fs, s, "delete_app (forced)", async || {
        s.delete_app("gone", true).await
    })
    .await;
    fails_then_converges(&fs, s, "delete_app", async || {
        s.delete_app("web", false).await
    })
    .await;

    // Every acknowledged write is durable, and no failed one came back.
    let last = snapshot(s).await;
    store.close().await;
    let store = open(fs.path()).await;
    assert_eq!(snapshot(&store).await, last);
    assert_eq!(
        last,
        Snapshot {
            apps: vec![],
            policies: vec![],
            machines: vec![],
            tokens: vec![None, None]
        }
    );
}
