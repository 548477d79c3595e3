//! Ingest's errors. A `TableError` stops one lake table; an `IngestError` stops the pipeline,
//! which then restarts from the slot (nothing is acknowledged that is not in the lake).

/// Stops the whole pipeline; it restarts from the slot's last acknowledged position.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(
        "PostgreSQL runs with wal_level={found}; ingest needs wal_level=logical. Fix: run \
         `ALTER SYSTEM SET wal_level = 'logical'` as a superuser, then restart PostgreSQL \
         (for example `pg_ctlcluster <version> main restart`)"
    )]
    WalLevel { found: String },
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("replication stream: {0}")]
    Replication(String),
    #[error("lake: {0}")]
    Lake(#[from] deltalake::DeltaTableError),
    #[error("lake location {url}: {reason}")]
    LakeLocation { url: String, reason: String },
    #[error("catalog: {0}")]
    Catalog(String),
    #[error("ingest stopped")]
    Stopped,
}

impl From<pg_walstream::ReplicationError> for IngestError {
    fn from(e: pg_walstream::ReplicationError) -> Self {
        IngestError::Replication(e.to_string())
    }
}

/// A change one lake table cannot take: that table stops (state `failed`) until it is resynced;
/// the other tables go on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TableError {
    #[error("column `{column}` (PostgreSQL `{source_column}`): value `{value}` {reason}")]
    Value {
        column: String,
        source_column: String,
        value: String,
        reason: String,
    },
    #[error("row without an `id`")]
    MissingId,
    #[error("the lake table's schema can't take this change: {0}")]
    Schema(String),
    #[error("writing the lake table: {0}")]
    Write(String),
}
