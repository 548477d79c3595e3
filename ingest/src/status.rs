//! What ingest is doing, per lake table and overall, for `/v1/ingest/status` and metrics.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::source::{Lsn, format_lsn};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableState {
    /// Being copied from a snapshot.
    Snapshotting,
    /// Applying the change stream.
    Streaming,
    /// Stopped on a change it can't represent (see `last_error`); resync to recover.
    Failed,
}

/// One record table's lake tables (current state and history).
#[derive(Debug, Clone, Serialize)]
pub struct TableStatus {
    pub workspace_id: Uuid,
    pub object_id: i64,
    pub object: String,
    pub state: TableState,
    /// The commit LSN of the last transaction whose changes are in the table.
    pub last_applied_lsn: Option<String>,
    pub last_commit_at: Option<DateTime<Utc>>,
    /// How far the stream is behind PostgreSQL, in WAL bytes and in time.
    pub lag_bytes: Option<u64>,
    pub lag_ms: Option<u64>,
    /// Changes applied since this process started (history rows written).
    pub changes_applied: u64,
    /// Rows copied by the last snapshot.
    pub snapshot_rows: u64,
    pub last_error: Option<String>,
}

/// The pipeline as a whole.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PipelineStatus {
    pub running: bool,
    pub slot: String,
    /// Everything up to here is durable in the lake and acknowledged to the slot.
    pub acknowledged_lsn: Option<String>,
    pub wal_lsn: Option<String>,
    pub lag_bytes: Option<u64>,
    pub lag_ms: Option<u64>,
    pub batches: u64,
    pub changes: u64,
    pub restarts: u64,
    /// Milliseconds batches spent being written to the lake, summed.
    pub write_ms: u64,
    /// Milliseconds the stream stood still waiting for the batch before to be written: near
    /// `write_ms` when the lake is the bottleneck, near 0 when reading is.
    pub stalled_ms: u64,
    pub last_error: Option<String>,
    /// Why the last full snapshot was taken (a new slot, or a lost one).
    pub snapshot_reason: Option<String>,
    #[serde(skip)]
    pub acknowledged: Option<Lsn>,
}

#[derive(Debug, Default)]
struct Inner {
    pipeline: PipelineStatus,
    tables: BTreeMap<i64, TableStatus>,
}

/// Shared, cheap to clone; ingest writes it, the API reads it.
#[derive(Debug, Clone, Default)]
pub struct StatusHandle(Arc<RwLock<Inner>>);

/// A workspace's view: the pipeline and that workspace's tables only.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub pipeline: PipelineStatus,
    pub tables: Vec<TableStatus>,
}

impl StatusHandle {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        // A panic while holding the lock can't leave the status inconsistent in a way that
        // matters more than losing it, so a poisoned lock is simply taken over.
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn pipeline(&self, f: impl FnOnce(&mut PipelineStatus)) {
        f(&mut self.write().pipeline);
    }

    /// Updates a table's status, creating it from `new` the first time.
    pub fn table(
        &self,
        object_id: i64,
        new: impl FnOnce() -> TableStatus,
        f: impl FnOnce(&mut TableStatus),
    ) {
        let mut inner = self.write();
        f(inner.tables.entry(object_id).or_insert_with(new));
    }

    /// The lag figures apply to every table that is streaming.
    pub fn set_lag(&self, wal_lsn: Lsn, lag_bytes: u64, lag_ms: u64) {
        let mut inner = self.write();
        inner.pipeline.wal_lsn = Some(format_lsn(wal_lsn));
        inner.pipeline.lag_bytes = Some(lag_bytes);
        inner.pipeline.lag_ms = Some(lag_ms);
        for t in inner.tables.values_mut() {
            let streaming = t.state == TableState::Streaming;
            t.lag_bytes = streaming.then_some(lag_bytes);
            t.lag_ms = streaming.then_some(lag_ms);
        }
    }

    /// How far the lake was behind PostgreSQL at the last measurement.
    pub fn lag_ms(&self) -> Option<u64> {
        self.read().pipeline.lag_ms
    }

    pub fn report(&self, workspace: Uuid) -> StatusReport {
        let inner = self.read();
        StatusReport {
            pipeline: inner.pipeline.clone(),
            tables: inner
                .tables
                .values()
                .filter(|t| t.workspace_id == workspace)
                .cloned()
                .collect(),
        }
    }

    /// The position acknowledged to the slot: every change up to it is in the lake.
    pub fn acknowledged(&self) -> Option<Lsn> {
        self.read().pipeline.acknowledged
    }

    /// Prometheus text exposition of one workspace's report.
    pub fn metrics(&self, workspace: Uuid) -> String {
        let r = self.report(workspace);
        let mut out = String::new();
        let p = &r.pipeline;
        let gauge = |out: &mut String, name: &str, help: &str, value: Option<u64>| {
            // Writing to a String can't fail.
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            let _ = writeln!(
                out,
                "{name} {}",
                value.map_or("NaN".into(), |v| v.to_string())
            );
        };
        gauge(
            &mut out,
            "oneo_ingest_up",
            "1 while the pipeline streams",
            Some(u64::from(p.running)),
        );
        gauge(
            &mut out,
            "oneo_ingest_lag_bytes",
            "WAL bytes not yet in the lake",
            p.lag_bytes,
        );
        gauge(
            &mut out,
            "oneo_ingest_lag_milliseconds",
            "Age of the oldest change not yet in the lake",
            p.lag_ms,
        );
        gauge(
            &mut out,
            "oneo_ingest_acknowledged_lsn",
            "Position acknowledged to the slot",
            p.acknowledged,
        );
        for (name, help, ms) in [
            (
                "oneo_ingest_write_seconds_total",
                "Time batches spent being written to the lake",
                p.write_ms,
            ),
            (
                "oneo_ingest_stalled_seconds_total",
                "Time the stream waited for the batch before it to be written",
                p.stalled_ms,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                ms as f64 / 1e3
            );
        }
        let _ = writeln!(
            out,
            "# HELP oneo_ingest_table_changes_total Changes applied to a table\n# TYPE oneo_ingest_table_changes_total counter"
        );
        for t in &r.tables {
            let _ = writeln!(
                out,
                "oneo_ingest_table_changes_total{{object=\"{}\"}} {}",
                t.object, t.changes_applied
            );
        }
        let _ = writeln!(
            out,
            "# HELP oneo_ingest_table_failed 1 when a table stopped on an error\n# TYPE oneo_ingest_table_failed gauge"
        );
        for t in &r.tables {
            let _ = writeln!(
                out,
                "oneo_ingest_table_failed{{object=\"{}\"}} {}",
                t.object,
                u8::from(t.state == TableState::Failed)
            );
        }
        out
    }
}
