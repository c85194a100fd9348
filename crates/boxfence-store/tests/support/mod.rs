//! Fixtures the store's test files share.

use std::collections::BTreeMap;
use std::path::Path;

use boxfence_policy::{AppPolicy, BoxPolicy};
use boxfence_store::{NewMachine, SqliteStore};
use serde_json::json;

/// The store in `dir`'s `test.db`, created if missing.
pub(crate) async fn open(dir: &Path) -> SqliteStore {
    let url = format!("sqlite://{}", dir.join("test.db").display());
    SqliteStore::open(&url).await.expect("store opens")
}

/// An app policy allowing TCP `port` out of every machine.
pub(crate) fn policy(name: &str, port: u16) -> AppPolicy {
    AppPolicy::from_json(&json!({
        "name": name,
        "selector": {"all": true},
        "rules": [{"action": "allow", "direction": "egress",
                   "ports": [{"protocol": "tcp", "port": port}]}]
    }))
    .expect("valid policy")
}

/// A machine of `app` at the pool addresses ending in `last_octet`.
pub(crate) fn machine(
    id: &str,
    app: &str,
    last_octet: u8,
    network_policy: BoxPolicy,
) -> NewMachine {
    NewMachine {
        id: id.into(),
        app: app.into(),
        name: id.into(),
        runtime: None,
        metadata: BTreeMap::from([("role".into(), "web".into())]),
        network_policy,
        ipv4: std::net::Ipv4Addr::new(10, 200, 0, last_octet),
        ipv6: format!("fd00:b0f::{last_octet}").parse().expect("ipv6"),
        guest: None,
        image: None,
    }
}
