//! Durable state of boxfence: apps, app policies, machines and API tokens.
//!
//! The server talks to a [`Store`]; [`SqliteStore`] is the embedded
//! default. The SQL is written so that a PostgreSQL implementation can
//! share it (TEXT JSON, `$n` placeholders, `ON CONFLICT ... DO UPDATE`,
//! `RETURNING`).

#![forbid(unsafe_code)]

mod encode;
mod error;
mod migrations;
mod model;
mod rows;
mod sqlite;
mod time;

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use async_trait::async_trait;
use boxfence_policy::{AppPolicy, BoxPolicy};

pub use error::StoreError;
pub use model::{
    App, AttachKind, Attachment, NewMachine, NewToken, StoredMachine, StoredPolicy, StoredToken,
};
pub use sqlite::{DEFAULT_DATABASE, SqliteStore};
pub use time::{format_unix, now_rfc3339};

/// Everything the daemon keeps across restarts. Every write returns only
/// once it is durable.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates an app; [`StoreError::Conflict`] when the name is taken.
    async fn create_app(&self, name: &str) -> Result<App, StoreError>;

    /// The app called `name`, if any.
    async fn app(&self, name: &str) -> Result<Option<App>, StoreError>;

    /// Every app, by name.
    async fn apps(&self) -> Result<Vec<App>, StoreError>;

    /// Deletes an app with its policies, tokens and (only when `force`)
    /// machines; refuses with [`StoreError::AppHasMachines`] otherwise.
    async fn delete_app(&self, name: &str, force: bool) -> Result<(), StoreError>;

    /// Creates or updates a policy. With `policy.id`, updates that policy
    /// ([`StoreError::NotFound`] if the app has none with that id);
    /// without, upserts by name, taking `new_id` when it creates.
    async fn put_policy(
        &self,
        app: &str,
        policy: &AppPolicy,
        new_id: &str,
    ) -> Result<StoredPolicy, StoreError>;

    /// The app's policies, by name.
    async fn policies(&self, app: &str) -> Result<Vec<StoredPolicy>, StoreError>;

    /// One policy of the app.
    async fn policy(&self, app: &str, id: &str) -> Result<Option<StoredPolicy>, StoreError>;

    /// Deletes a policy; false when the app has none with that id.
    async fn delete_policy(&self, app: &str, id: &str) -> Result<bool, StoreError>;

    /// Records a machine; [`StoreError::AddressInUse`] when another holds
    /// one of its addresses, [`StoreError::Conflict`] when its name is
    /// taken in the app.
    async fn insert_machine(&self, machine: &NewMachine) -> Result<StoredMachine, StoreError>;

    /// The machine with that id, in any app.
    async fn machine(&self, id: &str) -> Result<Option<StoredMachine>, StoreError>;

    /// The machines of one app, or of every app, by creation.
    async fn machines(&self, app: Option<&str>) -> Result<Vec<StoredMachine>, StoreError>;

    /// Every address held by a machine.
    async fn used_addresses(&self) -> Result<HashSet<IpAddr>, StoreError>;

    /// Replaces the metadata if the machine is still at `version`; false
    /// when it changed meanwhile (read again and retry) or is gone.
    async fn set_metadata(
        &self,
        id: &str,
        version: i64,
        metadata: &BTreeMap<String, String>,
    ) -> Result<bool, StoreError>;

    /// Replaces the box policy; the machine as stored after, if it exists.
    async fn set_network_policy(
        &self,
        id: &str,
        policy: &BoxPolicy,
    ) -> Result<Option<StoredMachine>, StoreError>;

    /// Deletes a machine; false when there was none.
    async fn delete_machine(&self, id: &str) -> Result<bool, StoreError>;

    /// Records an API token (only its secret's hash).
    async fn insert_token(&self, token: &NewToken) -> Result<(), StoreError>;

    /// The token with that id.
    async fn token(&self, id: &str) -> Result<Option<StoredToken>, StoreError>;

    /// True when an admin token was ever generated and stored.
    async fn has_admin_token(&self) -> Result<bool, StoreError>;
}
