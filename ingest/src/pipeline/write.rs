//! Closing, writing and settling batches: a closed batch is written by a task of its own
//! while the stream goes on, at most one at a time; the next is launched only after the one
//! before it is settled (its commits returned, its tables back, its end LSN acknowledged),
//! so the slot is acknowledged in order and never past what the lake has.

use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::task::{JoinError, JoinHandle};
use tracing::{Instrument, info_span, warn};

use super::{Batch, Pipeline, new_status};
use crate::apply::{Outcome, Work, spawn_batch};
use crate::batch::PendingRow;
use crate::error::{IngestError, TableError};
use crate::layout::load_lake_layouts;
use crate::source::{ChangeSource, Lsn, format_lsn};
use crate::status::TableState;

/// A batch being written by a task of its own; its objects' tables are with that task.
pub(super) struct Writing {
    pub(super) task: JoinHandle<Result<Vec<Outcome>, IngestError>>,
    end_lsn: Lsn,
    changes: usize,
    /// Its oldest commit: what the lag is measured from while it is written.
    pub(super) oldest_commit: Option<DateTime<Utc>>,
    /// When the batch's first transaction arrived, and when its write started.
    opened: Option<Instant>,
    started: Instant,
}

impl Pipeline {
    /// Writes the batch and everything before it, and acknowledges them: nothing is in flight
    /// afterwards (before stopping, a resync, or maintenance, which need every table back).
    pub(super) async fn drain(
        &mut self,
        source: &impl ChangeSource,
        batch: &mut Batch,
    ) -> Result<(), IngestError> {
        self.flush(source, batch).await?;
        if self.writing.is_none() {
            return Ok(());
        }
        let joined = written(&mut self.writing).await;
        self.settle(source, joined).await
    }

    /// Closes the batch: settles the batch in flight (its tables come back), then starts
    /// writing this one to every table it touches and returns while it is written.
    pub(super) async fn flush(
        &mut self,
        source: &impl ChangeSource,
        batch: &mut Batch,
    ) -> Result<(), IngestError> {
        let Some(end_lsn) = batch.end_lsn else {
            return Ok(());
        };
        if self.writing.is_some() {
            let waiting = Instant::now();
            let joined = written(&mut self.writing).await;
            let stalled = waiting.elapsed().as_millis() as u64;
            self.status.pipeline(|p| p.stalled_ms += stalled);
            self.settle(source, joined).await?;
        }
        let b = std::mem::take(batch);
        let span = info_span!("ingest_batch", changes = b.changes, tables = b.rows.len(), end_lsn = %format_lsn(end_lsn));
        let work = async {
            let stale = b.catalog_changed
                || b.rows
                    .iter()
                    .any(|(id, rows)| self.layout_is_stale(*id, rows));
            if stale {
                self.layouts = load_lake_layouts(&self.pool).await?;
            }
            let mut tables: Vec<(i64, Vec<PendingRow>)> = b.rows.into_iter().collect();
            tables.sort_unstable_by_key(|(id, _)| *id);
            let mut work = Vec::with_capacity(tables.len());
            for (object_id, rows) in tables {
                // An object deleted since these changes were made has no table to feed.
                let Some(layout) = self.layouts.get(&object_id).cloned() else {
                    continue;
                };
                if self.tables(object_id).await?.failed.is_some() {
                    continue;
                }
                if let Some(tables) = self.tables.remove(&object_id) {
                    work.push(Work {
                        layout,
                        tables,
                        rows,
                    });
                }
            }
            Ok::<_, IngestError>(work)
        }
        .instrument(span.clone())
        .await?;
        self.writing = Some(Writing {
            task: spawn_batch(work, span),
            end_lsn,
            changes: b.changes,
            oldest_commit: b.oldest_commit,
            opened: b.opened,
            started: Instant::now(),
        });
        Ok(())
    }

    /// The batch in flight has been written: takes its tables back, records what happened
    /// and acknowledges it.
    pub(super) async fn settle(
        &mut self,
        source: &impl ChangeSource,
        joined: Result<Result<Vec<Outcome>, IngestError>, JoinError>,
    ) -> Result<(), IngestError> {
        let Some(w) = self.writing.take() else {
            return Ok(());
        };
        let outcomes = joined.map_err(|e| {
            IngestError::Catalog(format!("writing a batch to the lake stopped: {e}"))
        })??;
        let mut first_error = None;
        for outcome in outcomes {
            if let Err(e) = self.record(outcome) {
                first_error.get_or_insert(e);
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        source.acknowledge(w.end_lsn);
        tracing::debug!(
            end_lsn = %format_lsn(w.end_lsn),
            write_ms = w.started.elapsed().as_millis() as u64,
            gathered_ms = w.opened.map(|t| w.started.saturating_duration_since(t).as_millis() as u64),
            "batch in the lake"
        );
        self.status.pipeline(|p| {
            p.acknowledged = Some(w.end_lsn);
            p.acknowledged_lsn = Some(format_lsn(w.end_lsn));
            p.batches += 1;
            p.changes += w.changes as u64;
            p.write_ms += w.started.elapsed().as_millis() as u64;
        });
        Ok(())
    }

    /// A row carries a column the layout doesn't know: a field was added.
    fn layout_is_stale(&self, object_id: i64, rows: &[PendingRow]) -> bool {
        let Some(layout) = self.layouts.get(&object_id) else {
            return true;
        };
        let Some(new) = rows
            .last()
            .and_then(|r| r.change.new.as_ref().or(r.change.old.as_ref()))
        else {
            return false;
        };
        layout.lacks_columns_of(new)
    }

    /// Takes back one object's tables after a batch and records what happened. A change the
    /// tables can't take stops that object (state `failed`) and not the others; a failure to
    /// reach the lake stops the pipeline, which retries from the slot.
    fn record(&mut self, outcome: Outcome) -> Result<(), IngestError> {
        let Outcome {
            layout,
            mut tables,
            last,
            result,
        } = outcome;
        let object_id = layout.object_id;
        let verdict = match result {
            Ok(applied) => {
                self.status.table(
                    object_id,
                    || new_status(&layout, TableState::Streaming),
                    |t| {
                        t.changes_applied += applied as u64;
                        if let Some((lsn, ts)) = last {
                            t.last_applied_lsn = Some(format_lsn(lsn));
                            t.last_commit_at = Some(ts);
                        }
                    },
                );
                Ok(())
            }
            Err(TableError::Write(e)) => Err(IngestError::Catalog(format!(
                "writing the lake table of `{}`: {e}",
                layout.api_name
            ))),
            Err(e) => {
                warn!(object = %layout.api_name, error = %e, "lake table stopped; resync it to recover");
                let msg = e.to_string();
                tables.failed = Some(msg.clone());
                self.status.table(
                    object_id,
                    || new_status(&layout, TableState::Failed),
                    |t| {
                        t.state = TableState::Failed;
                        t.last_error = Some(msg);
                    },
                );
                Ok(())
            }
        };
        self.tables.insert(object_id, tables);
        verdict
    }
}

/// The batch in flight, once written; never, when there is none.
pub(super) async fn written(
    writing: &mut Option<Writing>,
) -> Result<Result<Vec<Outcome>, IngestError>, JoinError> {
    match writing {
        Some(w) => (&mut w.task).await,
        None => std::future::pending().await,
    }
}
