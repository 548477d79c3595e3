//! The pipeline: slot → micro-batches → Delta commits → acknowledgement.
//!
//! A batch holds whole transactions only and closes after `max_batch_delay` or
//! `max_batch_changes`. Each table's commit records the batch's highest commit LSN; the slot
//! is acknowledged only after every table's commit is durable. After a crash the slot
//! replays from its acknowledged position and each table skips what its log says it has.
//!
//! Writing batch N overlaps gathering batch N+1 ([`write`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deltalake::arrow::array::RecordBatch;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::IngestConfig;
use crate::apply::Tables;
use crate::batch::PendingRow;
use crate::error::{IngestError, TableError};
use crate::lake::{Lake, TableKind};
use crate::layout::{ObjectLayout, load_lake_layouts, object_id_of, system_object_id};
use crate::snapshot::copy_tables;
use crate::source::{
    Change, ChangeSource, Lsn, OpenedSlot, RECORD_SCHEMA, SlotConfig, SlotSnapshot, format_lsn,
    open_slot, parse_lsn, resync_snapshot, scratch_slot_pattern,
};
use crate::status::{StatusHandle, TableState, TableStatus};

mod write;
use write::{Writing, written};

/// Asks the running pipeline to do something.
pub enum Command {
    /// Copy one object's table again from a fresh snapshot (recovers a failed table).
    Resync {
        object_id: i64,
        done: oneshot::Sender<Result<(), String>>,
    },
}

/// Transactions received but not yet in the lake.
#[derive(Default)]
struct Batch {
    rows: HashMap<i64, Vec<PendingRow>>,
    changes: usize,
    /// The end of the last whole transaction received: acknowledged after the batch is written.
    end_lsn: Option<Lsn>,
    oldest_commit: Option<DateTime<Utc>>,
    opened: Option<Instant>,
    catalog_changed: bool,
}

/// The transaction being received.
struct OpenTxn {
    commit_lsn: Lsn,
    commit_ts: DateTime<Utc>,
    rows: Vec<(i64, PendingRow)>,
    catalog_changed: bool,
}

pub(crate) struct Pipeline {
    pub cfg: IngestConfig,
    pub pool: PgPool,
    pub lake: Lake,
    pub status: StatusHandle,
    layouts: HashMap<i64, ObjectLayout>,
    tables: HashMap<i64, Tables>,
    writing: Option<Writing>,
}

impl Pipeline {
    pub fn new(cfg: IngestConfig, pool: PgPool, lake: Lake, status: StatusHandle) -> Self {
        Self {
            cfg,
            pool,
            lake,
            status,
            layouts: HashMap::new(),
            tables: HashMap::new(),
            writing: None,
        }
    }

    fn slot_config(&self) -> SlotConfig {
        SlotConfig {
            database_url: self.cfg.database_url.clone(),
            slot: self.cfg.slot.clone(),
            publication: self.cfg.publication.clone(),
        }
    }

    /// Connects, catches up on what needs a snapshot, then streams until cancelled.
    pub async fn run_once(
        &mut self,
        commands: &mut mpsc::Receiver<Command>,
        cancel: &CancellationToken,
    ) -> Result<(), IngestError> {
        check_wal_level(&self.pool).await?;
        self.tables.clear();
        self.layouts = load_lake_layouts(&self.pool).await?;
        let lost = self.drop_lost_slot().await?;
        // A resync cut short by a crash leaves its scratch slot holding WAL.
        self.drop_scratch_slots().await?;
        let slot = match open_slot(&self.slot_config()).await? {
            OpenedSlot::Existing(slot) => slot,
            OpenedSlot::Created(snapshot) => {
                let reason = if lost {
                    "the slot was lost (WAL it needed was removed); every table was copied again"
                } else {
                    "a new slot; every table was copied from its exported snapshot"
                };
                self.status
                    .pipeline(|p| p.snapshot_reason = Some(reason.into()));
                // System objects' tables are not copied: they fill from the stream.
                let all: Vec<i64> = self.record_tables();
                self.install_snapshot(snapshot, &all)
                    .await?
                    .ok_or_else(|| IngestError::Replication("the new slot gave no stream".into()))?
            }
        };
        // Tables ingest never finished copying (or whose lake folder is gone) are copied
        // from a scratch slot's snapshot; the main slot is behind it, so nothing is lost.
        let mut unfinished = Vec::new();
        for id in self.record_tables() {
            if self.tables(id).await?.current.applied().is_none() {
                unfinished.push(id);
            }
        }
        if !unfinished.is_empty() {
            let names: Vec<String> = unfinished.iter().map(|id| format!("o{id}")).collect();
            let snapshot = resync_snapshot(&self.slot_config(), &names).await?;
            self.install_scratch_snapshot(snapshot, &unfinished).await?;
        }
        let mut source = slot.start(cancel.child_token()).await?;
        self.status.pipeline(|p| {
            p.running = true;
            p.last_error = None;
        });
        info!(slot = %self.cfg.slot, "streaming changes into the lake");
        let result = self.stream(&mut source, commands, cancel).await;
        if let Some(writing) = self.writing.take() {
            // The stream failed with a batch in flight: let its commits finish (they are
            // atomic either way) so the restarted pipeline doesn't race them, but don't
            // acknowledge it; the slot replays it and each table skips what it has.
            match writing.task.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    warn!(error = %e, "the batch in flight when the stream stopped failed too")
                }
                Err(e) => warn!(error = %e, "the batch in flight when the stream stopped was lost"),
            }
        }
        self.status.pipeline(|p| p.running = false);
        source.close().await;
        result
    }

    async fn stream(
        &mut self,
        source: &mut impl ChangeSource,
        commands: &mut mpsc::Receiver<Command>,
        cancel: &CancellationToken,
    ) -> Result<(), IngestError> {
        let mut batch = Batch::default();
        let mut txn: Option<OpenTxn> = None;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last_event = Instant::now();
        let mut next_maintenance = Instant::now() + self.cfg.maintenance_interval;
        loop {
            let deadline = batch
                .opened
                .map(|t| tokio::time::Instant::from_std(t + self.cfg.max_batch_delay));
            tokio::select! {
                biased;
                () = cancel.cancelled() => {
                    self.drain(source, &mut batch).await?;
                    return Ok(());
                }
                joined = written(&mut self.writing) => {
                    self.settle(source, joined).await?;
                }
                () = sleep_until(deadline), if deadline.is_some() => {
                    self.flush(source, &mut batch).await?;
                }
                chunk = source.next_chunk() => {
                    last_event = Instant::now();
                    // A whole chunk per wake-up: the select's other branches (timers, the
                    // write in flight, commands) are built once per chunk, not per change.
                    for change in chunk? {
                        if self.receive(change, &mut txn, &mut batch)? {
                            self.flush(source, &mut batch).await?;
                        }
                    }
                }
                Some(command) = commands.recv() => {
                    self.drain(source, &mut batch).await?;
                    match command {
                        Command::Resync { object_id, done } => {
                            let result = self.resync(object_id).await;
                            let reply = match &result {
                                Ok(()) => Ok(()),
                                Err(e) => Err(e.to_string()),
                            };
                            drop(done.send(reply));
                            result?;
                        }
                    }
                }
                _ = tick.tick() => {
                    self.report_lag(&batch).await;
                    if batch.opened.is_none() && last_event.elapsed() >= self.cfg.heartbeat_interval {
                        // An idle stream still has to move past WAL written for other tables
                        // and databases; a heartbeat message gives it a commit to acknowledge.
                        sqlx::query("SELECT pg_logical_emit_message(true, 'oneo.heartbeat', '')")
                            .execute(&self.pool).await?;
                        last_event = Instant::now();
                    }
                    if Instant::now() >= next_maintenance {
                        self.drain(source, &mut batch).await?;
                        self.maintain().await;
                        next_maintenance = Instant::now() + self.cfg.maintenance_interval;
                    }
                }
            }
        }
    }

    /// Adds a change to the open transaction, or a committed transaction to the batch.
    /// Returns whether the batch is full.
    fn receive(
        &self,
        change: Change,
        txn: &mut Option<OpenTxn>,
        batch: &mut Batch,
    ) -> Result<bool, IngestError> {
        match change {
            Change::Begin {
                commit_lsn,
                commit_ts,
            } => {
                *txn = Some(OpenTxn {
                    commit_lsn,
                    commit_ts,
                    rows: Vec::new(),
                    catalog_changed: false,
                });
            }
            Change::Row(row) => {
                let Some(t) = txn.as_mut() else {
                    return Err(IngestError::Replication(
                        "a row change outside a transaction".into(),
                    ));
                };
                let object_id = if row.schema.as_ref() == RECORD_SCHEMA {
                    object_id_of(&row.table)
                } else if row.schema.as_ref() == "oneo" {
                    system_object_id(&row.table, &row)
                } else {
                    None
                };
                if object_id.is_some() || row.schema.as_ref() == RECORD_SCHEMA {
                    if let Some(object_id) = object_id {
                        let seq = t.rows.len() as i64;
                        t.rows.push((
                            object_id,
                            PendingRow {
                                lsn: t.commit_lsn,
                                commit_ts: t.commit_ts,
                                seq,
                                change: row,
                            },
                        ));
                    }
                } else if matches!(row.table.as_ref(), "workspaces" | "objects" | "fields") {
                    t.catalog_changed = true;
                }
            }
            Change::Commit { end_lsn, .. } => {
                if let Some(t) = txn.take() {
                    batch.opened.get_or_insert_with(Instant::now);
                    batch.oldest_commit.get_or_insert(t.commit_ts);
                    batch.changes += t.rows.len();
                    batch.catalog_changed |= t.catalog_changed;
                    for (object_id, row) in t.rows {
                        batch.rows.entry(object_id).or_default().push(row);
                    }
                }
                batch.end_lsn = Some(end_lsn);
                return Ok(batch.changes >= self.cfg.max_batch_changes);
            }
        }
        Ok(false)
    }

    /// The objects whose tables are copied from snapshots: every record table.
    fn record_tables(&self) -> Vec<i64> {
        self.layouts
            .values()
            .filter(|l| !l.is_system())
            .map(|l| l.object_id)
            .collect()
    }

    async fn tables(&mut self, object_id: i64) -> Result<&mut Tables, IngestError> {
        if !self.tables.contains_key(&object_id) {
            let layout = self
                .layouts
                .get(&object_id)
                .ok_or_else(|| IngestError::Catalog(format!("object {object_id} is unknown")))?;
            let url = |kind| self.lake.table_url(layout.workspace_id, object_id, kind);
            let current = self.lake.open(url(TableKind::Current)).await?;
            let history = self.lake.open(url(TableKind::History)).await?;
            let state = if current.applied().is_some() {
                TableState::Streaming
            } else {
                TableState::Snapshotting
            };
            let applied = current.applied();
            self.status.table(
                object_id,
                || new_status(layout, state),
                |t| {
                    t.state = state;
                    t.last_applied_lsn = applied.map(format_lsn);
                },
            );
            self.tables.insert(
                object_id,
                Tables {
                    current,
                    history,
                    failed: None,
                },
            );
        }
        self.tables
            .get_mut(&object_id)
            .ok_or_else(|| IngestError::Catalog(format!("object {object_id} is unknown")))
    }

    /// Copies the snapshot's tables into the lake. Returns the main slot's stream, if the
    /// snapshot came from it.
    async fn install_snapshot(
        &mut self,
        mut snapshot: SlotSnapshot,
        objects: &[i64],
    ) -> Result<Option<crate::source::Slot>, IngestError> {
        let lsn = snapshot.lsn();
        let layouts: HashMap<String, ObjectLayout> = objects
            .iter()
            .filter_map(|id| self.layouts.get(id))
            .map(|l| (l.source_table(), l.clone()))
            .collect();
        for layout in layouts.values() {
            self.status.table(
                layout.object_id,
                || new_status(layout, TableState::Snapshotting),
                |t| {
                    t.state = TableState::Snapshotting;
                },
            );
        }
        info!(tables = layouts.len(), lsn = %format_lsn(lsn), "copying tables from a snapshot");
        let copied = copy_tables(&mut snapshot, &layouts).await?;
        let slot = snapshot.finish().await?;
        for table in copied {
            let Some(layout) = self.layouts.get(&table.object_id).cloned() else {
                continue;
            };
            let tables = self.tables(table.object_id).await?;
            // The stream's changes from `lsn` on are not in the snapshot.
            let applied = lsn.saturating_sub(1);
            let result = match table.batches {
                Ok(batches) => tables.current.replace(batches, applied).await,
                Err(e) => Err(e),
            };
            let result = match result {
                Ok(()) if tables.history.delta().version().is_none() => {
                    tables
                        .history
                        .append(RecordBatch::new_empty(layout.history_schema()), applied)
                        .await
                }
                // The history keeps its rows; a column whose type changed moves aside so
                // the stream can go on writing the new type under the field's name.
                Ok(()) => tables
                    .history
                    .retire_conflicting_columns(&layout.history_schema())
                    .await
                    .map(|moved| {
                        for (old, new) in moved {
                            info!(object = %layout.api_name, column = %old, kept_as = %new, "history column of another type kept under a new name");
                        }
                    }),
                Err(e) => Err(e),
            };
            let (state, error) = match result {
                Ok(()) => {
                    tables.failed = None;
                    (TableState::Streaming, None)
                }
                Err(TableError::Write(e)) => {
                    return Err(IngestError::Catalog(format!(
                        "writing the snapshot of `{}`: {e}",
                        layout.api_name
                    )));
                }
                Err(e) => {
                    tables.failed = Some(e.to_string());
                    (TableState::Failed, Some(e.to_string()))
                }
            };
            self.status.table(
                layout.object_id,
                || new_status(&layout, state),
                |t| {
                    t.state = state;
                    t.snapshot_rows = table.rows;
                    t.last_applied_lsn = Some(format_lsn(applied));
                    t.last_error = error;
                },
            );
        }
        Ok(slot)
    }

    async fn resync(&mut self, object_id: i64) -> Result<(), IngestError> {
        self.layouts = load_lake_layouts(&self.pool).await?;
        if !self.layouts.contains_key(&object_id) {
            return Err(IngestError::Catalog(format!(
                "object {object_id} is unknown"
            )));
        }
        self.tables.remove(&object_id);
        let snapshot = resync_snapshot(&self.slot_config(), &[format!("o{object_id}")]).await?;
        self.install_scratch_snapshot(snapshot, &[object_id]).await
    }

    /// Copies a scratch slot's snapshot into the lake, then drops the slot, whether the copy
    /// worked or not (a slot left behind would hold WAL until the next start).
    async fn install_scratch_snapshot(
        &mut self,
        snapshot: SlotSnapshot,
        objects: &[i64],
    ) -> Result<(), IngestError> {
        let result = self.install_snapshot(snapshot, objects).await;
        let dropped = self.drop_scratch_slots().await;
        result?;
        dropped
    }

    /// Drops this pipeline's scratch slots. A closed connection's walsender takes a moment
    /// to let its slot go, so an active one is waited for (up to 10 s) rather than skipped.
    async fn drop_scratch_slots(&self) -> Result<(), IngestError> {
        let pattern = scratch_slot_pattern(&self.cfg.slot);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            sqlx::query(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                  WHERE slot_name LIKE $1 ESCAPE '\\' AND NOT active",
            )
            .bind(&pattern)
            .execute(&self.pool)
            .await?;
            let left: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE $1 ESCAPE '\\'",
            )
            .bind(&pattern)
            .fetch_one(&self.pool)
            .await?;
            if left == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                warn!(
                    slots = left,
                    "a resync slot is still in use; it is dropped at the next start"
                );
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn report_lag(&self, batch: &Batch) {
        let wal: Result<String, _> = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
            .fetch_one(&self.pool)
            .await;
        let Some(wal) = wal.ok().as_deref().and_then(parse_lsn) else {
            return;
        };
        let acked = self.status.acknowledged().unwrap_or(0);
        // The batch being written is older than the one being gathered.
        let oldest = self
            .writing
            .as_ref()
            .and_then(|w| w.oldest_commit)
            .or(batch.oldest_commit);
        let lag_ms = oldest
            .map(|t| (Utc::now() - t).num_milliseconds().max(0) as u64)
            .unwrap_or(0);
        self.status.set_lag(wal, wal.saturating_sub(acked), lag_ms);
    }

    /// Compacts small files and vacuums past the retention; failures are only logged.
    async fn maintain(&mut self) {
        let retention = self.cfg.retention;
        for (object_id, tables) in &mut self.tables {
            for table in [&mut tables.current, &mut tables.history] {
                if table.delta().version().is_none() || table.file_count() < 8 {
                    continue;
                }
                match table.maintain(retention).await {
                    Ok((compacted, removed)) => {
                        info!(object_id, compacted, removed, "lake table compacted")
                    }
                    Err(e) => warn!(object_id, error = %e, "compaction failed"),
                }
            }
        }
    }

    /// Drops the slot if PostgreSQL invalidated it; returns whether it did.
    async fn drop_lost_slot(&self) -> Result<bool, IngestError> {
        let state: Option<Option<String>> =
            sqlx::query_scalar("SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1")
                .bind(&self.cfg.slot)
                .fetch_optional(&self.pool)
                .await?;
        if state.flatten().as_deref() == Some("lost") {
            warn!(slot = %self.cfg.slot, "the replication slot was lost; recreating it and copying every table again");
            sqlx::query("SELECT pg_drop_replication_slot($1)")
                .bind(&self.cfg.slot)
                .execute(&self.pool)
                .await?;
            return Ok(true);
        }
        Ok(false)
    }
}

fn new_status(layout: &ObjectLayout, state: TableState) -> TableStatus {
    TableStatus {
        workspace_id: layout.workspace_id,
        object_id: layout.object_id,
        object: layout.api_name.clone(),
        state,
        last_applied_lsn: None,
        last_commit_at: None,
        lag_bytes: None,
        lag_ms: None,
        changes_applied: 0,
        snapshot_rows: 0,
        last_error: None,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Refuses to start unless PostgreSQL decodes logical changes, saying how to fix it.
pub async fn check_wal_level(pool: &PgPool) -> Result<(), IngestError> {
    let level: String = sqlx::query_scalar("SHOW wal_level").fetch_one(pool).await?;
    if level != "logical" {
        return Err(IngestError::WalLevel { found: level });
    }
    Ok(())
}
