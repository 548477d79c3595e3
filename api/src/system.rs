//! The schema `oneo` of every query session: system tables about the caller's workspace,
//! readable by `/v1/sql` and Flight SQL like the record tables.
//!
//! `oneo.ingest_status` holds one row per record table of the workspace, as
//! `GET /v1/ingest/status` reports it (present when ingest runs in this server);
//! `oneo.scores` is the scores of the workspace's models (`crm.score`).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray, TimestampMicrosecondArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use oneo_ingest::TableStatus;
use oneo_query::{QueryError, WorkspaceSession};
use uuid::Uuid;

use crate::AppState;

/// Adds the system tables of `workspace` to `session`.
pub(crate) fn add_system_tables(
    state: &AppState,
    session: &WorkspaceSession,
    workspace: Uuid,
) -> Result<(), QueryError> {
    if let Some(ingest) = &state.ingest {
        let report = ingest.status.report(workspace);
        session.add_system_table("ingest_status", ingest_status(&report.tables)?)?;
    }
    // Every record's latest score by each model: the system object `score` (see
    // `oneo_catalog::system`), under the name the API documents.
    session.add_system_alias("scores", "score")?;
    Ok(())
}

/// The tables' status as rows, by object name.
fn ingest_status(tables: &[TableStatus]) -> Result<RecordBatch, QueryError> {
    let mut tables: Vec<&TableStatus> = tables.iter().collect();
    tables.sort_by(|a, b| a.object.cmp(&b.object));
    let text = |f: &dyn Fn(&TableStatus) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(
            tables.iter().map(|t| f(t)).collect::<Vec<_>>(),
        ))
    };
    let count = |f: &dyn Fn(&TableStatus) -> Option<u64>| -> ArrayRef {
        Arc::new(UInt64Array::from(
            tables.iter().map(|t| f(t)).collect::<Vec<_>>(),
        ))
    };
    let state = |t: &TableStatus| {
        serde_json::to_value(t.state)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
    };
    let committed: ArrayRef = Arc::new(
        TimestampMicrosecondArray::from(
            tables
                .iter()
                .map(|t| t.last_commit_at.map(|c| c.timestamp_micros()))
                .collect::<Vec<_>>(),
        )
        .with_timezone("UTC"),
    );
    let schema = Arc::new(Schema::new(vec![
        Field::new("object", DataType::Utf8, false),
        Field::new("state", DataType::Utf8, true),
        Field::new("last_applied_lsn", DataType::Utf8, true),
        Field::new(
            "last_commit_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("lag_bytes", DataType::UInt64, true),
        Field::new("lag_ms", DataType::UInt64, true),
        Field::new("changes_applied", DataType::UInt64, true),
        Field::new("snapshot_rows", DataType::UInt64, true),
        Field::new("last_error", DataType::Utf8, true),
    ]));
    let columns = vec![
        text(&|t| Some(t.object.clone())),
        text(&state),
        text(&|t| t.last_applied_lsn.clone()),
        committed,
        count(&|t| t.lag_bytes),
        count(&|t| t.lag_ms),
        count(&|t| Some(t.changes_applied)),
        count(&|t| Some(t.snapshot_rows)),
        text(&|t| t.last_error.clone()),
    ];
    Ok(RecordBatch::try_new(schema, columns).map_err(datafusion::error::DataFusionError::from)?)
}
