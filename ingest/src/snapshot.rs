//! Copying record tables from a slot's exported snapshot into their lake tables.
//!
//! The snapshot holds every transaction committed before its LSN `X`; the stream delivers
//! those committed at or after it. Each copied table is replaced in one Delta commit that
//! records `X - 1` as applied, so the stream's changes below `X` are skipped for it and the
//! rest applied: no gap, no duplicate. A copy cut short commits nothing, and the table is
//! copied again on the next start.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use deltalake::arrow::array::RecordBatch;

use crate::batch::{PendingRow, ValueColumns, current_changes, current_rows};
use crate::error::{IngestError, TableError};
use crate::layout::ObjectLayout;
use crate::source::{Lsn, Op, RECORD_SCHEMA, RowChange, SlotSnapshot};

/// Rows are turned into Arrow batches this many at a time while copying.
const CHUNK: usize = 50_000;

/// A copied table's rows, ready to replace its current-state table.
pub struct CopiedTable {
    pub object_id: i64,
    pub batches: Result<Vec<RecordBatch>, TableError>,
    pub rows: u64,
}

/// Reads every row of the snapshot into Arrow batches, per table in `layouts` (keyed by
/// record table name). Tables without rows get an empty batch, so they are created too.
pub async fn copy_tables(
    snapshot: &mut SlotSnapshot,
    layouts: &HashMap<String, ObjectLayout>,
) -> Result<Vec<CopiedTable>, IngestError> {
    let lsn: Lsn = snapshot.lsn();
    let now = Utc::now();
    let mut copied: HashMap<String, CopiedTable> = HashMap::new();
    let mut pending: Vec<PendingRow> = Vec::with_capacity(CHUNK);
    let mut current: Option<Arc<str>> = None;
    let schema: Arc<str> = RECORD_SCHEMA.into();
    while let Some((table, tuple)) = snapshot.next_row().await? {
        if current.as_deref() != Some(table.as_ref()) {
            if let Some(done) = current.take() {
                add_chunk(&mut copied, layouts, &done, &mut pending);
            }
            current = Some(table.clone());
        }
        pending.push(PendingRow {
            lsn,
            commit_ts: now,
            seq: 0,
            change: Box::new(RowChange {
                schema: Arc::clone(&schema),
                table: Arc::clone(&table),
                op: Op::Insert,
                new: Some(tuple),
                old: None,
            }),
        });
        if pending.len() >= CHUNK {
            add_chunk(&mut copied, layouts, &table, &mut pending);
        }
    }
    if let Some(done) = current {
        add_chunk(&mut copied, layouts, &done, &mut pending);
    }
    let mut out = Vec::new();
    for (name, layout) in layouts {
        out.push(copied.remove(name).unwrap_or_else(|| CopiedTable {
            object_id: layout.object_id,
            batches: Ok(vec![RecordBatch::new_empty(layout.current_schema())]),
            rows: 0,
        }));
    }
    Ok(out)
}

fn add_chunk(
    copied: &mut HashMap<String, CopiedTable>,
    layouts: &HashMap<String, ObjectLayout>,
    table: &str,
    pending: &mut Vec<PendingRow>,
) {
    let rows = std::mem::take(pending);
    // A table the catalog doesn't know (yet) is left for the stream.
    let Some(layout) = layouts.get(table) else {
        return;
    };
    let entry = copied
        .entry(table.to_string())
        .or_insert_with(|| CopiedTable {
            object_id: layout.object_id,
            batches: Ok(Vec::new()),
            rows: 0,
        });
    entry.rows += rows.len() as u64;
    let Ok(batches) = entry.batches.as_mut() else {
        return;
    };
    let chunk = ValueColumns::parse(layout, &rows)
        .and_then(|values| current_changes(layout, &rows, &values))
        .and_then(|c| c.map(|c| current_rows(layout, &c)).transpose());
    match chunk {
        Ok(Some(batch)) => batches.push(batch),
        Ok(None) => {}
        Err(e) => entry.batches = Err(e),
    }
}
