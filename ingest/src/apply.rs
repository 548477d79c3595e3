//! A batch into the lake: every table the batch touches (each object's current state and its
//! history) is encoded and committed by a task of its own, so the tables of one batch are
//! written in parallel rather than one after another. Each table still skips the changes its
//! own log says it has, so the slot is acknowledged only once every task has committed.

use std::sync::{Arc, LazyLock};

use deltalake::arrow::array::{AsArray, RecordBatch};
use deltalake::arrow::compute::filter_record_batch;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::batch::{
    CurrentChanges, DELETED, PendingRow, ValueColumns, current_changes, current_rows, history_rows,
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

/// Starts writing a batch on the lake writer's runtime (its own threads): encoding a
/// table's Parquet holds a thread for tens of milliseconds at a time, and on the stream's
/// runtime that kept the replication reader from draining its socket, so the walsender
/// waited. The stream's runtime is the fallback if those threads can't be started.
pub(crate) fn spawn_batch(
    work: Vec<Work>,
    span: tracing::Span,
) -> JoinHandle<Result<Vec<Outcome>, IngestError>> {
    static WRITER: LazyLock<Option<Runtime>> = LazyLock::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            .thread_name("oneo-lake-writer")
            .enable_all()
            .build()
            .inspect_err(
                |e| tracing::warn!(error = %e, "no lake writer threads; writing on the stream's"),
            )
            .ok()
    });
    let task = apply_batch(work).instrument(span);
    match WRITER.as_ref() {
        Some(runtime) => runtime.spawn(task),
        None => tokio::spawn(task),
    }
}

/// Writes every object's share at once and waits for all of them.
async fn apply_batch(work: Vec<Work>) -> Result<Vec<Outcome>, IngestError> {
    let mut running = Vec::with_capacity(work.len());
    for w in work {
        let name = w.layout.api_name.clone();
        running.push((name, tokio::spawn(apply_object(w).in_current_span())));
    }
    let mut outcomes = Vec::with_capacity(running.len());
    for (name, task) in running {
        let stopped = |e: String| {
            IngestError::Catalog(format!("writing the lake tables of `{name}` stopped: {e}"))
        };
        outcomes.push(
            task.await
                .map_err(|e| stopped(e.to_string()))?
                .map_err(stopped)?,
        );
    }
    Ok(outcomes)
}

/// One object's share: its values parsed once, then its current-state and history tables
/// encoded and committed concurrently, each skipping what its own log says it has.
/// Fails only if the current state's task was lost, and its table with it.
async fn apply_object(work: Work) -> Result<Outcome, String> {
    let Work {
        layout,
        tables,
        rows,
    } = work;
    let Tables {
        mut current,
        mut history,
        failed,
    } = tables;
    let last = rows.last().map(|r| (r.lsn, r.commit_ts));
    // Rows are in commit order, so what a table already has is a prefix.
    let from_current = rows.partition_point(|r| current.has_applied(r.lsn));
    let from_history = rows.partition_point(|r| history.has_applied(r.lsn));
    let from = from_current.min(from_history);
    let parsed = if from < rows.len() {
        let started = std::time::Instant::now();
        let parsed = ValueColumns::parse(&layout, &rows[from..]);
        tracing::debug!(object = %layout.api_name, ms = started.elapsed().as_millis() as u64, "values parsed");
        parsed
    } else {
        Ok(ValueColumns::empty())
    };
    let values = match parsed {
        Ok(values) => Arc::new(values),
        Err(e) => {
            return Ok(Outcome {
                layout,
                tables: Tables {
                    current,
                    history,
                    failed,
                },
                last,
                result: Err(e),
            });
        }
    };
    let rows = Arc::new(rows);
    let layout = Arc::new(layout);
    let (l, r, v) = (Arc::clone(&layout), Arc::clone(&rows), Arc::clone(&values));
    let current_task = tokio::spawn(
        async move {
            let started = std::time::Instant::now();
            let values = v.slice(from_current - from, r.len() - from_current);
            let result = apply_current(&mut current, &l, &r[from_current..], &values).await;
            tracing::debug!(object = %l.api_name, ms = started.elapsed().as_millis() as u64, "current state written");
            (current, result)
        }
        .in_current_span(),
    );
    let (l, r, v) = (Arc::clone(&layout), Arc::clone(&rows), values);
    let history_task = async move {
        let started = std::time::Instant::now();
        let values = v.slice(from_history - from, r.len() - from_history);
        let result = apply_history(&mut history, &l, &r[from_history..], &values).await;
        tracing::debug!(object = %l.api_name, ms = started.elapsed().as_millis() as u64, "history written");
        (history, result)
    };
    // The history is written on this task while the current state is on its own.
    let (history, history_result) = history_task.await;
    // A lost task took its table with it: the pipeline restarts from the slot.
    let (current, current_result) = current_task.await.map_err(|e| e.to_string())?;
    Ok(Outcome {
        last,
        layout: Arc::unwrap_or_clone(layout),
        tables: Tables {
            current,
            history,
            failed,
        },
        // The history counts the changes: one row per change applied.
        result: current_result.and(history_result),
    })
}

/// The current-state table's share (changes it doesn't have yet, with their values).
async fn apply_current(
    table: &mut LakeTable,
    layout: &ObjectLayout,
    rows: &[PendingRow],
    values: &ValueColumns,
) -> Result<(), TableError> {
    let Some(last) = rows.last().map(|r| r.lsn) else {
        return Ok(());
    };
    table.ensure_columns(&layout.current_schema()).await?;
    if let Some(changes) = current_changes(layout, rows, values)? {
        write_current(table, layout, changes, last).await?;
    }
    Ok(())
}

/// The history table's share: one row per change it doesn't have yet. Returns how many.
async fn apply_history(
    table: &mut LakeTable,
    layout: &ObjectLayout,
    rows: &[PendingRow],
    values: &ValueColumns,
) -> Result<usize, TableError> {
    let Some(last) = rows.last().map(|r| r.lsn) else {
        return Ok(0);
    };
    table.ensure_columns(&layout.history_schema()).await?;
    table
        .append(history_rows(layout, rows, values)?, last)
        .await?;
    Ok(rows.len())
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
