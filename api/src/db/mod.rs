//! PostgreSQL access: migrations, the catalog's metadata, DDL for objects and fields, and
//! record reads and writes on each object's typed table.

pub mod ddl;
pub mod list;
pub mod records;
pub mod run_writes;
pub mod schema;
pub mod workspace;
pub mod write;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::DatabaseConfig;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

pub async fn connect(cfg: &DatabaseConfig) -> sqlx::Result<PgPool> {
    let opts: PgConnectOptions = cfg.database_url.parse()?;
    PgPoolOptions::new()
        .max_connections(cfg.db_max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(opts.application_name("oneo"))
        .await
}

/// Applies pending migrations; applied ones are skipped, so running it twice is a no-op.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// Whether every migration this build knows has been applied.
pub async fn migrations_current(pool: &PgPool) -> sqlx::Result<bool> {
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(pool)
            .await
            .unwrap_or_default();
    Ok(MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .all(|m| applied.contains(&m.version)))
}

/// The WAL position after a commit: the write is durable at or before it, so an analytic read
/// that waits for this position sees the write.
pub async fn current_lsn(pool: &PgPool) -> sqlx::Result<String> {
    sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
        .fetch_one(pool)
        .await
}

/// The PostgreSQL error code of a failed statement, if it was one.
pub fn pg_code(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.to_string()),
        _ => None,
    }
}

pub fn pg_constraint(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.constraint().map(str::to_string),
        _ => None,
    }
}

/// Marks a statement composed by Oneo as audited: it holds only identifiers Oneo builds from
/// its own numeric ids (`oneo_records.o12`, `f34`), fixed type names, operators and `$n`
/// placeholders. User values are always bound, never spliced.
pub(crate) fn audited(sql: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql.to_owned())
}
