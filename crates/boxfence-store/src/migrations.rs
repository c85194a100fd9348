//! The schema's migrations, embedded so the binary needs no files beside
//! it. Each is plain SQL that SQLite and PostgreSQL both accept.

use sqlx::migrate::{Migration, MigrationType, Migrator};

/// Version, description and SQL of each migration, in order.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../migrations/0001_initial.sql")),
    (2, "guest", include_str!("../migrations/0002_guest.sql")),
    (
        3,
        "oci_images",
        include_str!("../migrations/0003_oci_images.sql"),
    ),
];

/// A migrator over [`MIGRATIONS`].
pub(crate) fn migrator() -> Migrator {
    Migrator {
        migrations: MIGRATIONS
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into(),
                    false,
                )
            })
            .collect(),
        ..Migrator::DEFAULT
    }
}
