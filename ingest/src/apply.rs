//! A batch into the lake: every table the batch touches (each object's current state and its
//! history) is encoded and committed by a task of its own, so the tables of one batch are
//! written in parallel rather than one after another. Each table still skips the changes its
//! own log says it has, so the slot is acknowledged only once every task has committed.

use std::sync::Arc;

use deltalake::arrow::array::{AsArray, RecordBatch};
use deltalake::arrow::compute::filter_record_batch;
use tracing::Instrument;

use crate::batch::{
    CurrentChanges, DELETED, PendingRow, current_changes, current_rows, history_rows,
};
use crate::error::{IngestError, TableError};
use crate::lake::{LakeTable, column_names};
use crate::layout::ObjectLayout;
use crate::source::Lsn;

/// The lake tables of one object.
pub(crate) struct Tables {
    pub current: LakeTable,
    pub history: LakeTable,
    pub failed: Option<String>,
}

/// One object's share of a batch: its layout, its tables and its rows in commit order.
pub(crate) struct Work {
    pub layout: ObjectLayout,
    pub tables: Tables,
    pub rows: Vec<PendingRow>,
}

/// What writing one object's share did: its tables back, and the number of changes applied
/// or why the object's tables could not take them.
pub(crate) struct Outcome {
    pub layout: ObjectLayout,
    pub tables: Tables,
    pub last: Option<(Lsn, chrono::DateTime<chrono::Utc>)>,
    pub result: Result<usize, TableError>,
}

/// Writes every object's share at once and waits for all of them.
pub(crate) async fn apply_batch(work: Vec<Work>) -> Result<Vec<Outcome>, IngestError> {
    let mut running = Vec::with_capacity(work.len());
    for Work {
        layout,
        tables,
        rows,
    } in work
    {
        let rows = Arc::new(rows);
        let layout = Arc::new(layout);
        let Tables {
            mut current,
            mut history,
            failed,
        } = tables;
        let (l, r) = (Arc::clone(&layout), Arc::clone(&rows));
        let current_task = tokio::spawn(
            async move {
                let started = std::time::Instant::now();
                let result = apply_current(&mut current, &l, &r).await;
                tracing::debug!(object = %l.api_name, ms = started.elapsed().as_millis() as u64, "current state written");
                (current, result)
            }
            .in_current_span(),
        );
        let (l, r) = (Arc::clone(&layout), Arc::clone(&rows));
        let history_task = tokio::spawn(
            async move {
                let started = std::time::Instant::now();
                let result = apply_history(&mut history, &l, &r).await;
                tracing::debug!(object = %l.api_name, ms = started.elapsed().as_millis() as u64, "history written");
                (history, result)
            }
            .in_current_span(),
        );
        running.push((layout, rows, failed, current_task, history_task));
    }
    let mut outcomes = Vec::with_capacity(running.len());
    for (layout, rows, failed, current_task, history_task) in running {
        let lost = |e: tokio::task::JoinError| {
            IngestError::Catalog(format!(
                "writing the lake tables of `{}` stopped: {e}",
                layout.api_name
            ))
        };
        let (current, current_result) = current_task.await.map_err(lost)?;
        let (history, history_result) = history_task.await.map_err(lost)?;
        // The history counts the changes: one row per change applied.
        let result = current_result.and(history_result);
        outcomes.push(Outcome {
            last: rows.last().map(|r| (r.lsn, r.commit_ts)),
            layout: Arc::unwrap_or_clone(layout),
            tables: Tables {
                current,
                history,
                failed,
            },
            result,
        });
    }
    Ok(outcomes)
}

/// The current-state table's share, skipping what its log says it has.
async fn apply_current(
    table: &mut LakeTable,
    layout: &ObjectLayout,
    rows: &[PendingRow],
) -> Result<(), TableError> {
    let Some(last) = rows.last().map(|r| r.lsn) else {
        return Ok(());
    };
    // Rows are in commit order, so what is already applied is a prefix.
    let from = rows.partition_point(|r| table.has_applied(r.lsn));
    if from < rows.len() {
        table.ensure_columns(&layout.current_schema()).await?;
        if let Some(changes) = current_changes(layout, &rows[from..])? {
            write_current(table, layout, changes, last).await?;
        }
    }
    Ok(())
}

/// The history table's share: one row per change it doesn't have yet. Returns how many.
async fn apply_history(
    table: &mut LakeTable,
    layout: &ObjectLayout,
    rows: &[PendingRow],
) -> Result<usize, TableError> {
    let Some(last) = rows.last().map(|r| r.lsn) else {
        return Ok(0);
    };
    let from = rows.partition_point(|r| table.has_applied(r.lsn));
    if from < rows.len() {
        table.ensure_columns(&layout.history_schema()).await?;
        table
            .append(history_rows(layout, &rows[from..])?, last)
            .await?;
    }
    Ok(rows.len() - from)
}

/// Inserts only: appended. Otherwise a merge on `id` (a first write has nothing to merge
/// into, so it appends the rows that aren't deletes).
async fn write_current(
    table: &mut LakeTable,
    layout: &ObjectLayout,
    changes: CurrentChanges,
    lsn: Lsn,
) -> Result<(), TableError> {
    tracing::debug!(
        upserts = changes.upserts,
        deletes = changes.deletes,
        append = changes.only_inserts,
        "current state"
    );
    if changes.only_inserts {
        return table.append(current_rows(layout, &changes)?, lsn).await;
    }
    if table.delta().version().is_none() {
        // Nothing to update or delete in a table that doesn't exist yet.
        let keep = deltalake::arrow::compute::not(
            changes
                .batch
                .column_by_name(DELETED)
                .map(|c| c.as_boolean())
                .ok_or_else(|| TableError::Schema("merge source without `_deleted`".into()))?,
        )
        .map_err(|e| TableError::Schema(e.to_string()))?;
        let upserts = filter_record_batch(&changes.batch, &keep)
            .map_err(|e| TableError::Schema(e.to_string()))?;
        let n = upserts.num_columns() - 1;
        let rows = RecordBatch::try_new(layout.current_schema(), upserts.columns()[..n].to_vec())
            .map_err(|e| TableError::Schema(e.to_string()))?;
        return table.append(rows, lsn).await;
    }
    let columns = column_names(&layout.current_schema());
    table.merge(changes.batch, &columns, lsn).await
}
