//! The embedded store: one SQLite file in WAL mode.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use boxfence_policy::{AppPolicy, BoxPolicy};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection as _, Row, query};

use crate::Store;
use crate::encode::{is_unique_violation, json, machine_insert_error, policy_body};
use crate::error::StoreError;
use crate::model::{App, NewMachine, NewToken, StoredMachine, StoredPolicy, StoredToken};
use crate::rows;
use crate::time::now_rfc3339;

/// The database used when none is configured: a file in the working
/// directory.
pub const DEFAULT_DATABASE: &str = "sqlite://./boxfence.db";

const MACHINE_COLUMNS: &str = "id, app, name, runtime, metadata, network_policy, ipv4, ipv6, \
                               guest_cpus, guest_memory_mb, image, version, created_at, updated_at";

/// [`Store`] on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` and brings its
    /// schema up to date.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit survives power loss, so a 2xx means durable.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Writers queue on SQLite's lock instead of failing at once.
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        let migrator = crate::migrations::migrator();
        migrator.run(&pool).await?;
        Ok(Self { pool })
    }

    /// Closes every connection (waits for running queries).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Runs `work` in a write transaction and commits it, returning only
    /// once the COMMIT itself succeeded: SQLite reports a full disk or an
    /// I/O error at commit, and a statement left unfinished (a one-row
    /// fetch of `… RETURNING`) would have that error discarded on reset,
    /// its change silently lost. IMMEDIATE takes the write lock at once, so
    /// writers queue on the busy timeout instead of failing to upgrade.
    async fn write<T>(
        &self,
        work: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        // An error drops `tx`, which rolls back.
        let value = work(&mut tx).await?;
        if let Err(error) = tx.commit().await {
            // After a failed COMMIT, SQLite may or may not have rolled the
            // transaction back: close the connection (which rolls back
            // whatever is left) rather than hand that state to the next
            // write.
            conn.close_on_drop();
            return Err(error.into());
        }
        Ok(value)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_app(&self, name: &str) -> Result<App, StoreError> {
        let created_at = now_rfc3339();
        self.write(async |tx| {
            query("INSERT INTO apps (name, created_at) VALUES ($1, $2)")
                .bind(name)
                .bind(&created_at)
                .execute(tx)
                .await
                .map_err(|error| {
                    if is_unique_violation(&error) {
                        StoreError::Conflict(format!("app {name} already exists"))
                    } else {
                        error.into()
                    }
                })
        })
        .await?;
        Ok(App {
            name: name.to_owned(),
            created_at,
        })
    }

    async fn app(&self, name: &str) -> Result<Option<App>, StoreError> {
        let row = query("SELECT name, created_at FROM apps WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| rows::app(&row)).transpose()
    }

    async fn apps(&self) -> Result<Vec<App>, StoreError> {
        query("SELECT name, created_at FROM apps ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(rows::app)
            .collect()
    }

    async fn delete_app(&self, name: &str, force: bool) -> Result<(), StoreError> {
        self.write(async |tx| {
            // One statement, so no machine can slip in between check and
            // delete.
            let deleted = query(
                "DELETE FROM apps WHERE name = $1 \
                 AND ($2 OR NOT EXISTS (SELECT 1 FROM machines WHERE app = $1))",
            )
            .bind(name)
            .bind(force)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if deleted == 1 {
                return Ok(());
            }
            let machines: i64 = query("SELECT COUNT(*) FROM machines WHERE app = $1")
                .bind(name)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            if machines > 0 {
                Err(StoreError::AppHasMachines {
                    app: name.to_owned(),
                    machines,
                })
            } else {
                Err(StoreError::NotFound(format!("app {name} not found")))
            }
        })
        .await
    }

    async fn put_policy(
        &self,
        app: &str,
        policy: &AppPolicy,
        new_id: &str,
    ) -> Result<StoredPolicy, StoreError> {
        let body = policy_body(policy)?;
        let now = now_rfc3339();
        let name_taken = |error: sqlx::Error| {
            if is_unique_violation(&error) {
                StoreError::Conflict(format!(
                    "app {app} already has another policy named {}",
                    policy.name
                ))
            } else {
                error.into()
            }
        };
        // One statement (no read-then-write), so that concurrent applies
        // serialise on SQLite's write lock and the unique (app, name) key
        // merges them into one policy. `fetch_all` runs it to completion.
        let rows = self
            .write(async |tx| {
                match &policy.id {
                    Some(id) => query(
                        "UPDATE app_policies SET name = $1, body = $2, updated_at = $3 \
                         WHERE app = $4 AND id = $5 RETURNING id, created_at, updated_at",
                    )
                    .bind(&policy.name)
                    .bind(&body)
                    .bind(&now)
                    .bind(app)
                    .bind(id),
                    None => query(
                        "INSERT INTO app_policies (id, app, name, body, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $5) \
                         ON CONFLICT (app, name) DO UPDATE \
                         SET body = excluded.body, updated_at = excluded.updated_at \
                         RETURNING id, created_at, updated_at",
                    )
                    .bind(new_id)
                    .bind(app)
                    .bind(&policy.name)
                    .bind(&body)
                    .bind(&now),
                }
                .fetch_all(tx)
                .await
                .map_err(name_taken)
            })
            .await?;
        let row = rows.first().ok_or_else(|| {
            StoreError::NotFound(format!(
                "app {app} has no policy with id {}",
                policy.id.as_deref().unwrap_or_default()
            ))
        })?;
        Ok(StoredPolicy {
            app: app.to_owned(),
            policy: AppPolicy {
                id: Some(row.try_get("id")?),
                ..policy.clone()
            },
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    async fn policies(&self, app: &str) -> Result<Vec<StoredPolicy>, StoreError> {
        query(
            "SELECT id, app, body, created_at, updated_at FROM app_policies \
             WHERE app = $1 ORDER BY name",
        )
        .bind(app)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::policy)
        .collect()
    }

    async fn policy(&self, app: &str, id: &str) -> Result<Option<StoredPolicy>, StoreError> {
        let row = query(
            "SELECT id, app, body, created_at, updated_at FROM app_policies \
             WHERE app = $1 AND id = $2",
        )
        .bind(app)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| rows::policy(&row)).transpose()
    }

    async fn delete_policy(&self, app: &str, id: &str) -> Result<bool, StoreError> {
        let deleted = self
            .write(async |tx| {
                Ok(query("DELETE FROM app_policies WHERE app = $1 AND id = $2")
                    .bind(app)
                    .bind(id)
                    .execute(tx)
                    .await?)
            })
            .await?;
        Ok(deleted.rows_affected() == 1)
    }

    async fn insert_machine(&self, machine: &NewMachine) -> Result<StoredMachine, StoreError> {
        let now = now_rfc3339();
        let metadata = json("metadata", &machine.metadata)?;
        let network_policy = json("network policy", &machine.network_policy)?;
        self.write(async |tx| {
            query(
                "INSERT INTO machines (id, app, name, runtime, metadata, network_policy, ipv4, \
                 ipv6, guest_cpus, guest_memory_mb, image, version, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, $12, $12)",
            )
            .bind(&machine.id)
            .bind(&machine.app)
            .bind(&machine.name)
            .bind(&machine.runtime)
            .bind(&metadata)
            .bind(&network_policy)
            .bind(machine.ipv4.to_string())
            .bind(machine.ipv6.to_string())
            .bind(machine.guest.map(|guest| i64::from(guest.cpus)))
            .bind(machine.guest.map(|guest| i64::from(guest.memory_mb)))
            .bind(machine.image.as_deref())
            .bind(&now)
            .execute(tx)
            .await
            .map_err(|error| machine_insert_error(error, machine))
        })
        .await?;
        Ok(StoredMachine {
            machine: machine.clone(),
            version: 1,
            created_at: now.clone(),
            updated_at: now,
        })
    }

    async fn machine(&self, id: &str) -> Result<Option<StoredMachine>, StoreError> {
        let row = query(&format!(
            "SELECT {MACHINE_COLUMNS} FROM machines WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| rows::machine(&row)).transpose()
    }

    async fn machines(&self, app: Option<&str>) -> Result<Vec<StoredMachine>, StoreError> {
        let rows: Vec<SqliteRow> = match app {
            Some(app) => {
                query(&format!(
                    "SELECT {MACHINE_COLUMNS} FROM machines WHERE app = $1 \
                     ORDER BY created_at, id"
                ))
                .bind(app)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                query(&format!(
                    "SELECT {MACHINE_COLUMNS} FROM machines ORDER BY created_at, id"
                ))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(rows::machine).collect()
    }

    async fn used_addresses(&self) -> Result<HashSet<IpAddr>, StoreError> {
        let mut used = HashSet::new();
        for row in query("SELECT ipv4, ipv6 FROM machines")
            .fetch_all(&self.pool)
            .await?
        {
            for column in ["ipv4", "ipv6"] {
                let text: String = row.try_get(column)?;
                used.insert(
                    text.parse()
                        .map_err(|e| StoreError::corrupt("address", e))?,
                );
            }
        }
        Ok(used)
    }

    async fn set_metadata(
        &self,
        id: &str,
        version: i64,
        metadata: &BTreeMap<String, String>,
    ) -> Result<bool, StoreError> {
        let metadata = json("metadata", metadata)?;
        let updated = self
            .write(async |tx| {
                Ok(query(
                    "UPDATE machines SET metadata = $1, version = version + 1, updated_at = $2 \
                     WHERE id = $3 AND version = $4",
                )
                .bind(&metadata)
                .bind(now_rfc3339())
                .bind(id)
                .bind(version)
                .execute(tx)
                .await?)
            })
            .await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn set_network_policy(
        &self,
        id: &str,
        policy: &BoxPolicy,
    ) -> Result<Option<StoredMachine>, StoreError> {
        let policy = json("network policy", policy)?;
        let rows = self
            .write(async |tx| {
                Ok(query(&format!(
                    "UPDATE machines SET network_policy = $1, version = version + 1, \
                     updated_at = $2 WHERE id = $3 RETURNING {MACHINE_COLUMNS}"
                ))
                .bind(&policy)
                .bind(now_rfc3339())
                .bind(id)
                .fetch_all(tx)
                .await?)
            })
            .await?;
        rows.first().map(rows::machine).transpose()
    }

    async fn delete_machine(&self, id: &str) -> Result<bool, StoreError> {
        let deleted = self
            .write(async |tx| {
                Ok(query("DELETE FROM machines WHERE id = $1")
                    .bind(id)
                    .execute(tx)
                    .await?)
            })
            .await?;
        Ok(deleted.rows_affected() == 1)
    }

    async fn insert_token(&self, token: &NewToken) -> Result<(), StoreError> {
        self.write(async |tx| {
            query("INSERT INTO tokens (id, app, secret_hash, created_at) VALUES ($1, $2, $3, $4)")
                .bind(&token.id)
                .bind(&token.app)
                .bind(&token.secret_hash)
                .bind(now_rfc3339())
                .execute(tx)
                .await
                .map_err(|error| match &error {
                    sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                        StoreError::NotFound("app not found".into())
                    }
                    _ => error.into(),
                })
        })
        .await?;
        Ok(())
    }

    async fn token(&self, id: &str) -> Result<Option<StoredToken>, StoreError> {
        let row = query("SELECT id, app, secret_hash, created_at FROM tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(StoredToken {
                token: NewToken {
                    id: row.try_get("id")?,
                    app: row.try_get("app")?,
                    secret_hash: row.try_get("secret_hash")?,
                },
                created_at: row.try_get("created_at")?,
            })
        })
        .transpose()
    }

    async fn has_admin_token(&self) -> Result<bool, StoreError> {
        let row = query("SELECT COUNT(*) FROM tokens WHERE app IS NULL")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>(0)? > 0)
    }
}
