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
    /// The database cannot be reached or written for now (its disk is
    /// full, an I/O error, read-only, locked past the busy timeout): the
    /// change was not committed, and the same call succeeds once that
    /// clears.
    #[error("database unavailable, the change was not committed: {0}")]
    Unavailable(sqlx::Error),
    /// The database failed otherwise.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

/// SQLite's primary result codes that say the database is out of reach
/// rather than the statement wrong: BUSY, LOCKED, NOMEM, READONLY, IOERR,
/// FULL, CANTOPEN (<https://sqlite.org/rescode.html>).
const UNAVAILABLE_CODES: [i32; 7] = [5, 6, 7, 8, 10, 13, 14];

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        let unavailable = match &error {
            sqlx::Error::Database(db) => db
                .code()
                .and_then(|code| code.parse::<i32>().ok())
                // Extended codes keep the primary code in the low byte.
                .is_some_and(|code| UNAVAILABLE_CODES.contains(&(code & 0xff))),
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            _ => false,
        };
        if unavailable {
            Self::Unavailable(error)
        } else {
            Self::Database(error)
        }
    }
}

impl StoreError {
    pub(crate) fn corrupt(what: &'static str, detail: impl ToString) -> Self {
        Self::Corrupt {
            what,
            detail: detail.to_string(),
        }
    }
}
