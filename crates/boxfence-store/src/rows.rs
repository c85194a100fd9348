//! Decoding rows into records. Stored JSON goes back through the policy
//! core's validators, so a value read from the store is as valid as one
//! read from a request.

use boxfence_policy::{AppPolicy, BoxPolicy, Guest};
use serde_json::Value;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::error::StoreError;
use crate::model::{App, NewMachine, StoredMachine, StoredPolicy};

pub(crate) fn app(row: &SqliteRow) -> Result<App, StoreError> {
    Ok(App {
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

fn document(what: &'static str, text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::corrupt(what, e))
}

pub(crate) fn policy(row: &SqliteRow) -> Result<StoredPolicy, StoreError> {
    let body: String = row.try_get("body")?;
    let policy = AppPolicy::from_json(&document("policy", &body)?)
        .map_err(|e| StoreError::corrupt("policy", e))?;
    Ok(StoredPolicy {
        app: row.try_get("app")?,
        policy: AppPolicy {
            id: Some(row.try_get("id")?),
            ..policy
        },
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The stored size, if the machine has one (both columns or neither).
fn guest(row: &SqliteRow) -> Result<Option<Guest>, StoreError> {
    let cpus: Option<i64> = row.try_get("guest_cpus")?;
    let memory_mb: Option<i64> = row.try_get("guest_memory_mb")?;
    let number = |what, n: i64| u32::try_from(n).map_err(|e| StoreError::corrupt(what, e));
    Ok(match (cpus, memory_mb) {
        (Some(cpus), Some(memory_mb)) => Some(Guest {
            cpus: number("guest_cpus", cpus)?,
            memory_mb: number("guest_memory_mb", memory_mb)?,
        }),
        _ => None,
    })
}

pub(crate) fn machine(row: &SqliteRow) -> Result<StoredMachine, StoreError> {
    let metadata: String = row.try_get("metadata")?;
    let network_policy: String = row.try_get("network_policy")?;
    let ipv4: String = row.try_get("ipv4")?;
    let ipv6: String = row.try_get("ipv6")?;
    Ok(StoredMachine {
        machine: NewMachine {
            id: row.try_get("id")?,
            app: row.try_get("app")?,
            name: row.try_get("name")?,
            runtime: row.try_get("runtime")?,
            metadata: serde_json::from_str(&metadata)
                .map_err(|e| StoreError::corrupt("metadata", e))?,
            network_policy: BoxPolicy::from_json(&document("network policy", &network_policy)?)
                .map_err(|e| StoreError::corrupt("network policy", e))?,
            ipv4: ipv4.parse().map_err(|e| StoreError::corrupt("ipv4", e))?,
            ipv6: ipv6.parse().map_err(|e| StoreError::corrupt("ipv6", e))?,
            guest: guest(row)?,
            image: row.try_get("image")?,
        },
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
