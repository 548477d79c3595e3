//! Read-only SQL over a workspace's `crm` schema.
//!
//! Every statement is planned first and checked before anything runs: DDL, DML, `COPY`, `SET`
//! and every other statement but a query are refused by DataFusion's own [`SQLOptions`] with
//! [`QueryError::ReadOnly`]; reading files by URL is never enabled; the session's only catalog
//! is the caller's workspace. `/v1/sql` collects a bounded answer ([`run_sql`]); Flight SQL
//! streams one ([`plan_query`], [`bind_parameters`], [`with_classic_types`],
//! [`execute_stream`]).

use std::collections::HashMap;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::ScalarValue;
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::context::SQLOptions;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
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

/// Plans one statement for reading. Planning alone has no side effects, and the plan is checked
/// before anything runs, so a statement that would write is refused having changed nothing.
pub async fn plan_query(session: &WorkspaceSession, sql: &str) -> Result<DataFrame, QueryError> {
    let state = session.context().state();
    let plan = state
        .create_logical_plan(sql)
        .await
        .map_err(|e| QueryError::Sql(e.find_root().to_string()))?;
    read_only().verify_plan(&plan).map_err(|e| {
        let reason = match e.find_root() {
            DataFusionError::Plan(m) => m.clone(),
            other => other.to_string(),
        };
        QueryError::ReadOnly(format!(
            "{}; this connection only reads (SELECT, WITH, EXPLAIN, SHOW)",
            reason.trim_end_matches('.')
        ))
    })?;
    Ok(DataFrame::new(state, plan))
}

/// The same rows with every string and binary column in its classic Arrow type (`Utf8`,
/// `Binary`) rather than the view types DataFusion reads Parquet into: what every Flight SQL
/// client, old JDBC and ODBC drivers included, can decode, and what `GetTables` announces.
pub fn with_classic_types(df: DataFrame) -> Result<DataFrame, QueryError> {
    let classic = |t: &DataType| match t {
        DataType::Utf8View => Some(DataType::Utf8),
        DataType::BinaryView => Some(DataType::Binary),
        _ => None,
    };
    if !df
        .schema()
        .fields()
        .iter()
        .any(|f| classic(f.data_type()).is_some())
    {
        return Ok(df);
    }
    let exprs: Vec<_> = df
        .schema()
        .iter()
        .map(|(qualifier, field)| {
            let column = datafusion::prelude::Expr::Column(datafusion::common::Column::from((
                qualifier, field,
            )));
            match classic(field.data_type()) {
                Some(t) => datafusion::prelude::cast(column, t).alias(field.name()),
                None => column,
            }
        })
        .collect();
    Ok(df.select(exprs)?)
}

/// The statement's placeholders (`$1`, `$2`, …) in order, each typed as the plan infers it
/// (`Null` where nothing in the statement says).
pub fn parameter_fields(df: &DataFrame) -> Result<Vec<Field>, QueryError> {
    let types = df.logical_plan().get_parameter_types()?;
    let mut named: Vec<(usize, String, Option<DataType>)> = types
        .into_iter()
        .map(|(name, t)| (placeholder_index(&name).unwrap_or(usize::MAX), name, t))
        .collect();
    named.sort();
    Ok(named
        .into_iter()
        .map(|(_, name, t)| Field::new(name, t.unwrap_or(DataType::Null), true))
        .collect())
}

fn placeholder_index(name: &str) -> Option<usize> {
    name.strip_prefix('$')?.parse().ok()
}

/// Binds one row of parameter values (column `i` to `$i+1`), each cast to the type its
/// placeholder is used as.
pub fn bind_parameters(df: DataFrame, params: &RecordBatch) -> Result<DataFrame, QueryError> {
    let wanted: HashMap<String, Option<DataType>> = df.logical_plan().get_parameter_types()?;
    if wanted.is_empty() && params.num_columns() == 0 {
        return Ok(df);
    }
    if params.num_rows() != 1 {
        return Err(QueryError::spec(
            "parameters",
            format!(
                "bind exactly one row of values to a query, not {}",
                params.num_rows()
            ),
        ));
    }
    if params.num_columns() != wanted.len() {
        return Err(QueryError::spec(
            "parameters",
            format!(
                "the statement has {} placeholder(s) but {} value(s) were bound",
                wanted.len(),
                params.num_columns()
            ),
        ));
    }
    let mut values = Vec::with_capacity(params.num_columns());
    for (i, column) in params.columns().iter().enumerate() {
        let name = format!("${}", i + 1);
        let Some(want) = wanted.get(&name) else {
            return Err(QueryError::spec(
                "parameters",
                format!("the statement has no placeholder {name}; use $1, $2, … in order"),
            ));
        };
        let value = ScalarValue::try_from_array(column, 0)?;
        let value = match want {
            Some(t) if value.data_type() != *t && !value.is_null() => {
                value.cast_to(t).map_err(|_| {
                    QueryError::spec(
                        format!("parameters.{name}"),
                        format!("`{value}` can't be read as {t}, the type {name} is used as"),
                    )
                })?
            }
            Some(t) if value.is_null() => ScalarValue::try_from(t)?,
            _ => value,
        };
        values.push(value);
    }
    Ok(df.with_param_values(values)?)
}

/// Runs a planned query as a stream of batches, held to the session's memory limit and time
/// limit (counted from now). Dropping the stream stops the query.
/// A plan whose partitions are each sorted, merged into one stream in that order. The
/// optimizer may spread a sorted plan over partitions below a final projection (a round-robin
/// repartition that "maintains" each partition's order), and streaming the partitions as they
/// come would interleave them: a report sorted newest first would arrive in runs.
fn in_order(
    plan: std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>,
) -> std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan> {
    use datafusion::physical_plan::ExecutionPlanProperties;
    if plan.output_partitioning().partition_count() <= 1 {
        return plan;
    }
    match plan.output_ordering() {
        Some(order) => std::sync::Arc::new(
            datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec::new(
                order.clone(),
                plan,
            ),
        ),
        None => plan,
    }
}

pub async fn execute_stream(
    session: &WorkspaceSession,
    df: DataFrame,
) -> Result<SendableRecordBatchStream, QueryError> {
    let limit = session.timeout();
    let deadline = tokio::time::Instant::now() + limit;
    let task = std::sync::Arc::new(df.task_ctx());
    let plan = tokio::time::timeout_at(deadline, df.create_physical_plan())
        .await
        .map_err(|_| QueryError::Timeout(limit.as_secs()))??;
    let inner = datafusion::physical_plan::execute_stream(in_order(plan), task)?;
    let schema = inner.schema();
    let bounded = futures::stream::unfold(Some(inner), move |inner| async move {
        let mut inner = inner?;
        match tokio::time::timeout_at(deadline, inner.next()).await {
            Ok(Some(item)) => Some((item, Some(inner))),
            Ok(None) => None,
            // Dropping `inner` here stops the plan's tasks.
            Err(_) => Some((
                Err(DataFusionError::External(Box::new(QueryError::Timeout(
                    limit.as_secs(),
                )))),
                None,
            )),
        }
    });
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, bounded)))
}

/// Plans and runs one read-only statement.
pub async fn run_sql(session: &WorkspaceSession, sql: &str) -> Result<SqlResult, QueryError> {
    let df = plan_query(session, sql).await?;
    let schema = df.schema().clone();
    let (out, truncated, total) = limited(session, df.clone(), df, SQL_ROW_LIMIT).await?;
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
