//! Encoding records for the database, and reading its constraint errors.

use boxfence_policy::AppPolicy;

use crate::error::StoreError;
use crate::model::NewMachine;

/// True when a statement broke a UNIQUE constraint.
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// The stored body of a policy: the policy without its id (the id column
/// is authoritative).
pub(crate) fn policy_body(policy: &AppPolicy) -> Result<String, StoreError> {
    let without_id = AppPolicy {
        id: None,
        ..policy.clone()
    };
    serde_json::to_string(&without_id).map_err(|e| StoreError::corrupt("policy", e))
}

/// A value as JSON text.
pub(crate) fn json<T: serde::Serialize>(
    what: &'static str,
    value: &T,
) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::corrupt(what, e))
}

/// What a failed machine insert means: an address, id or name taken, or
/// a missing app.
pub(crate) fn machine_insert_error(error: sqlx::Error, machine: &NewMachine) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            // SQLite names the column ("UNIQUE constraint failed:
            // machines.ipv4"); a PostgreSQL store maps constraint names.
            let message = db.message();
            if message.contains("ipv4") || message.contains("ipv6") {
                StoreError::AddressInUse
            } else if message.contains("machines.id") {
                StoreError::Conflict(format!("machine id {} is taken", machine.id))
            } else {
                StoreError::Conflict(format!(
                    "app {} already has a machine named {}",
                    machine.app, machine.name
                ))
            }
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::NotFound(format!("app {} not found", machine.app))
        }
        _ => error.into(),
    }
}
