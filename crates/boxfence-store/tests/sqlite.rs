//! The SQLite store against a real database file.

use std::collections::BTreeMap;
use std::sync::Arc;

use boxfence_policy::{AppPolicy, BoxPolicy, Guest};
use boxfence_store::{NewToken, Store, StoreError};
mod support;
use support::{machine, open, policy};

#[tokio::test]
async fn apps_policies_and_machines_survive_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path()).await;
    store.create_app("web").await.expect("create app");
    assert!(matches!(
        store.create_app("web").await,
        Err(StoreError::Conflict(_))
    ));
    let stored = store
        .put_policy("web", &policy("p", 443), "pol1")
        .await
        .expect("put");
    assert_eq!(stored.id(), "pol1");
    store
        .insert_machine(&machine("m1", "web", 2, BoxPolicy::DenyAll))
        .await
        .expect("insert");
    store
        .insert_token(&NewToken {
            id: "tok1".into(),
            app: Some("web".into()),
            secret_hash: "ab".into(),
        })
        .await
        .expect("token");
    store.close().await;

    let store = open(dir.path()).await;
    assert_eq!(store.apps().await.expect("apps").len(), 1);
    let policies = store.policies("web").await.expect("policies");
    assert_eq!(policies.len(), 1);
    assert_eq!(policies[0].policy.id.as_deref(), Some("pol1"));
    assert_eq!(policies[0].policy.rules, policy("p", 443).rules);
    let m1 = store.machine("m1").await.expect("read").expect("exists");
    assert_eq!(m1.machine, machine("m1", "web", 2, BoxPolicy::DenyAll));
    let token = store.token("tok1").await.expect("read").expect("exists");
    assert_eq!(token.token.app.as_deref(), Some("web"));
    assert!(!store.has_admin_token().await.expect("admin"));
}

#[tokio::test]
async fn apply_by_name_updates_and_apply_by_id_renames() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path()).await;
    store.create_app("web").await.expect("app");
    store
        .put_policy("web", &policy("p", 80), "id1")
        .await
        .expect("create");
    let updated = store
        .put_policy("web", &policy("p", 443), "id2")
        .await
        .expect("upsert");
    assert_eq!(updated.id(), "id1", "same name keeps the first id");
    let renamed = AppPolicy {
        id: Some("id1".into()),
        ..policy("q", 443)
    };
    assert_eq!(
        store
            .put_policy("web", &renamed, "x")
            .await
            .expect("rename")
            .policy
            .name,
        "q"
    );
    let missing = AppPolicy {
        id: Some("nope".into()),
        ..policy("q", 443)
    };
    assert!(matches!(
        store.put_policy("web", &missing, "x").await,
        Err(StoreError::NotFound(_))
    ));
    store
        .put_policy("web", &policy("r", 1), "id3")
        .await
        .expect("second");
    let clash = AppPolicy {
        id: Some("id3".into()),
        ..policy("q", 1)
    };
    assert!(matches!(
        store.put_policy("web", &clash, "x").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.delete_policy("web", "id1").await.expect("delete"));
    assert!(!store.delete_policy("web", "id1").await.expect("delete"));
}

#[tokio::test]
async fn concurrent_applies_of_one_name_end_with_one_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open(dir.path()).await);
    store.create_app("web").await.expect("app");
    let tasks: Vec<_> = (0..32u16)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .put_policy("web", &policy("same", 1000 + n), &format!("id{n}"))
                    .await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(
            task.await
                .expect("joined")
                .expect("applied")
                .id()
                .to_owned(),
        );
    }
    ids.dedup();
    assert_eq!(
        ids.len(),
        1,
        "every apply answered the same policy: {ids:?}"
    );
    assert_eq!(store.policies("web").await.expect("list").len(), 1);
}

#[tokio::test]
async fn addresses_are_never_shared_and_app_delete_needs_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path()).await;
    store.create_app("web").await.expect("app");
    store
        .insert_machine(&machine("m1", "web", 2, BoxPolicy::DenyAll))
        .await
        .expect("m1");
    assert!(matches!(
        store
            .insert_machine(&machine("m2", "web", 2, BoxPolicy::DenyAll))
            .await,
        Err(StoreError::AddressInUse)
    ));
    assert!(matches!(
        store
            .insert_machine(&machine("m3", "nope", 3, BoxPolicy::DenyAll))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.used_addresses().await.expect("used").len(), 2);
    assert!(matches!(
        store.delete_app("web", false).await,
        Err(StoreError::AppHasMachines { machines: 1, .. })
    ));
    store.delete_app("web", true).await.expect("forced");
    assert!(store.machine("m1").await.expect("read").is_none());
    assert!(matches!(
        store.delete_app("web", false).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn metadata_updates_are_optimistic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path()).await;
    store.create_app("web").await.expect("app");
    let stored = store
        .insert_machine(&machine("m1", "web", 2, BoxPolicy::DenyAll))
        .await
        .expect("m1");
    let new = BTreeMap::from([("role".into(), "db".into())]);
    assert!(
        store
            .set_metadata("m1", stored.version, &new)
            .await
            .expect("set")
    );
    assert!(
        !store
            .set_metadata("m1", stored.version, &new)
            .await
            .expect("stale"),
        "a stale version must not overwrite"
    );
    let after = store
        .set_network_policy("m1", &BoxPolicy::AllowAll)
        .await
        .expect("set")
        .expect("exists");
    assert_eq!(after.machine.metadata, new);
    assert_eq!(after.machine.network_policy, BoxPolicy::AllowAll);
    assert_eq!(after.version, stored.version + 2);
}

#[tokio::test]
async fn a_machine_keeps_its_size_and_image() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path()).await;
    store.create_app("web").await.expect("create app");
    let guest = Guest {
        cpus: 2,
        memory_mb: 768,
    };
    let sized = boxfence_store::NewMachine {
        guest: Some(guest),
        image: Some("busybox:1.36".into()),
        ..machine("m1", "web", 2, BoxPolicy::AllowAll)
    };
    store.insert_machine(&sized).await.expect("insert");
    store
        .insert_machine(&machine("m2", "web", 3, BoxPolicy::AllowAll))
        .await
        .expect("insert");
    store.close().await;
    let store = open(dir.path()).await;
    let m1 = store.machine("m1").await.expect("read").expect("exists");
    assert_eq!(m1.machine.guest, Some(guest));
    assert_eq!(m1.machine.image.as_deref(), Some("busybox:1.36"));
    let m2 = store.machine("m2").await.expect("read").expect("exists");
    assert_eq!(m2.machine.guest, None, "no size asked, none kept");
    assert_eq!(m2.machine.image, None);
}
