//! What can go wrong in the store.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object already exists (its name is taken).
    #[error("{0}")]
    Conflict(String),
    /// The object to update does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The app still has machines and deletion was not forced.
    #[error("app {app} still has {machines} machine(s); delete them first or use force")]
    AppHasMachines {
        /// The app.
        app: String,
        /// How many machines it has.
        machines: i64,
    },
    /// Another machine holds one of the addresses.
    #[error("address already in use by another machine")]
    AddressInUse,
    /// A stored document no longer parses (corruption or a downgrade).
    #[error("stored {what} is unreadable: {detail}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// Why it did not parse.
        detail: String,
    },
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    pub(crate) fn corrupt(what: &'static str, detail: impl ToString) -> Self {
        Self::Corrupt {
            what,
            detail: detail.to_string(),
        }
    }
}
