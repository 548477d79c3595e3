//! Oneo's ingest: every committed change in PostgreSQL's record tables, streamed by logical
//! replication (pgoutput) into Delta Lake tables, exactly once.
//!
//! Each object of each workspace gets two Delta tables under the lake root,
//! `<workspace id>/o<object id>/current` (one row per live record: updates replace, deletes
//! remove) and `…/history` (one row per change). Both carry `_lsn` and `_commit_ts`.
//!
//! ```no_run
//! # async fn run(pool: sqlx::PgPool) -> Result<(), oneo_ingest::IngestError> {
//! use oneo_ingest::{Ingest, IngestConfig};
//! let cfg = IngestConfig::new("postgres://postgres@127.0.0.1:5432/oneo", "./data/lake");
//! let ingest = Ingest::new(cfg, pool)?;
//! let handle = ingest.handle(); // status and resync, for the API
//! ingest.run(tokio_util::sync::CancellationToken::new()).await?;
//! # Ok(()) }
//! ```

mod apply;
mod batch;
pub mod decode;
pub mod error;
pub mod lake;
pub mod layout;
mod pipeline;
mod snapshot;
pub mod source;
pub mod status;
pub mod values;

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

pub use error::{IngestError, TableError};
pub use lake::{Lake, TableKind};
pub use pipeline::check_wal_level;
use pipeline::{Command, Pipeline};
pub use source::{format_lsn, parse_lsn};
pub use status::{StatusHandle, StatusReport, TableState, TableStatus};

/// Ingest's settings; [`IngestConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub database_url: String,
    /// A local folder or a `file://` URL.
    pub lake: String,
    pub slot: String,
    pub publication: String,
    /// A batch is written when it holds this many changes…
    pub max_batch_changes: usize,
    /// …or when its first transaction has waited this long.
    pub max_batch_delay: Duration,
    /// Time travel reaches back this far; older unreferenced files are vacuumed.
    pub retention: chrono::Duration,
    pub maintenance_interval: Duration,
    /// With nothing to stream for this long, a heartbeat lets the slot move on.
    pub heartbeat_interval: Duration,
}

impl IngestConfig {
    /// Defaults; the slot is named after the database (`oneo_<database>`), because slot
    /// names are unique across the whole PostgreSQL cluster.
    pub fn new(database_url: impl Into<String>, lake: impl Into<String>) -> Self {
        let database_url = database_url.into();
        Self {
            slot: default_slot(&database_url),
            database_url,
            lake: lake.into(),
            publication: "oneo_changes".into(),
            max_batch_changes: 50_000,
            max_batch_delay: Duration::from_secs(1),
            retention: chrono::Duration::days(7),
            maintenance_interval: Duration::from_secs(600),
            heartbeat_interval: Duration::from_secs(10),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_slot_is_named_after_the_database() {
        let cfg = super::IngestConfig::new("postgres://u@h:5432/Oneo-Demo?x=1", "/tmp/l");
        assert_eq!(cfg.slot, "oneo_oneo_demo");
        assert_eq!(super::default_slot("postgres://u@h"), "oneo_postgres");
    }
}

fn default_slot(database_url: &str) -> String {
    let db = url::Url::parse(database_url)
        .ok()
        .map(|u| u.path().trim_start_matches('/').to_string())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "postgres".into());
    let name: String = db
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    // Slot names are at most 63 characters; leave room for a resync suffix.
    format!("oneo_{}", &name[..name.len().min(40)])
}

/// The ingest pipeline, ready to run.
pub struct Ingest {
    pipeline: Pipeline,
    commands: mpsc::Receiver<Command>,
    handle: IngestHandle,
}

/// What the API holds: the status, and a way to ask for a resync.
#[derive(Clone)]
pub struct IngestHandle {
    pub status: StatusHandle,
    commands: mpsc::Sender<Command>,
    lake: Lake,
}

impl IngestHandle {
    /// Copies an object's table again from a fresh snapshot; returns when it is done.
    pub async fn resync(&self, object_id: i64) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        self.commands
            .send(Command::Resync { object_id, done })
            .await
            .map_err(|_| "ingest is not running".to_string())?;
        wait.await
            .map_err(|_| "ingest stopped before the resync finished".to_string())?
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }
}

impl Ingest {
    pub fn new(cfg: IngestConfig, pool: PgPool) -> Result<Self, IngestError> {
        let lake = Lake::new(&cfg.lake)?;
        let status = StatusHandle::default();
        status.pipeline(|p| p.slot = cfg.slot.clone());
        let (tx, commands) = mpsc::channel(16);
        let handle = IngestHandle {
            status: status.clone(),
            commands: tx,
            lake: lake.clone(),
        };
        Ok(Self {
            pipeline: Pipeline::new(cfg, pool, lake, status),
            commands,
            handle,
        })
    }

    pub fn handle(&self) -> IngestHandle {
        self.handle.clone()
    }

    /// Runs until `cancel`. A failure restarts the pipeline from the slot after a pause
    /// (nothing unacknowledged is lost, nothing applied is applied twice); a PostgreSQL that
    /// can't do logical replication stops it with the fix in the error.
    pub async fn run(mut self, cancel: CancellationToken) -> Result<(), IngestError> {
        let mut pause = Duration::from_millis(500);
        loop {
            let result = self.pipeline.run_once(&mut self.commands, &cancel).await;
            match result {
                Ok(()) => return Ok(()),
                Err(e @ IngestError::WalLevel { .. }) => return Err(e),
                Err(e) if cancel.is_cancelled() => {
                    info!(error = %e, "ingest stopped");
                    return Ok(());
                }
                Err(e) => {
                    error!(error = %e, "ingest failed; restarting from the slot");
                    self.pipeline.status.pipeline(|p| {
                        p.last_error = Some(e.to_string());
                        p.restarts += 1;
                    });
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(Duration::from_secs(10));
        }
    }
}
