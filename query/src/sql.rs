//! Read-only SQL over a workspace's `crm` schema.
//!
//! DDL, DML, `COPY`, `SET` and every other statement but a query are refused by DataFusion's
//! own [`SQLOptions`]; reading files by URL is never enabled; the session's only catalog is
//! the caller's workspace.

use datafusion::execution::context::SQLOptions;
use serde::Serialize;
use serde_json::Value as Json;

use crate::error::QueryError;
use crate::report::limited;
use crate::result::{ColumnInfo, Freshness};
use crate::workspace::WorkspaceSession;

/// Rows an SQL answer carries at most; beyond that it says `truncated` with the total.
pub const SQL_ROW_LIMIT: usize = 10_000;

#[derive(Debug, Clone, Serialize)]
pub struct SqlResult {
    pub columns: Vec<ColumnInfo>,
    pub rows: Vec<Vec<Json>>,
    pub row_count: usize,
    pub truncated: bool,
    pub total: usize,
    pub freshness: Freshness,
}

fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Plans and runs one read-only statement.
pub async fn run_sql(session: &WorkspaceSession, sql: &str) -> Result<SqlResult, QueryError> {
    let df = session
        .context()
        .sql_with_options(sql, read_only())
        .await
        .map_err(|e| QueryError::Sql(e.find_root().to_string()))?;
    let schema = df.schema().clone();
    let (out, truncated, total) = limited(session, df, SQL_ROW_LIMIT).await?;
    Ok(SqlResult {
        columns: schema
            .fields()
            .iter()
            .map(|f| ColumnInfo {
                name: f.name().clone(),
                kind: f.data_type().to_string(),
            })
            .collect(),
        row_count: out.len(),
        rows: out,
        truncated,
        total,
        freshness: Freshness::of(session),
    })
}
