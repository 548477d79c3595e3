//! `/v1/reports/run` and `/v1/sql`: analytic answers from the lake, through the query engine,
//! scoped to the caller's workspace.

use std::time::Duration;

use axum::extract::State;
use axum::{Extension, Json};
use oneo_catalog::Issues;
use oneo_query::{
    QueryError, ReportResult, ReportSpec, SqlResult, WorkspaceSchema, WorkspaceSession,
};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::db::schema;
use crate::error::{ApiError, ApiJson, ApiQuery, Result};

/// Longest a `min_lsn` read waits for ingest when it names no `wait_ms`.
const DEFAULT_WAIT: Duration = Duration::from_secs(5);
const MAX_WAIT: Duration = Duration::from_secs(60);

/// How fresh the answer must be.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct Consistency {
    /// Wait until ingest has applied this WAL position (a write's `Oneo-Lsn`) before answering.
    pub min_lsn: Option<String>,
    /// How long to wait for `min_lsn`, in milliseconds (default 5000, at most 60000).
    pub wait_ms: Option<u64>,
    /// Answer from the lake as it was at this moment (RFC 3339), by Delta time travel.
    pub as_of: Option<chrono::DateTime<chrono::Utc>>,
}

#[utoipa::path(post, path = "/v1/reports/run", tag = "reports", security(("api_key" = [])),
    params(Consistency),
    request_body(content = Object, description = "a report spec: `type` (tabular, summary, matrix), `object`, `columns`, `filters`, `filter_logic`, `groupings`, `column_groupings`, `aggregates`, `sort`, `limit`"),
    responses((status = 200, description = "columns and rows (tabular, summary with subtotals and totals) or the pivot (matrix), `truncated` with the total, and `freshness`", body = Object),
              (status = 400, description = "the spec is invalid; `details` names each offending part"),
              (status = 503, description = "the lake is not configured, or `min_lsn` was not reached in time")))]
pub async fn run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(consistency): ApiQuery<Consistency>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Json<ReportResult>> {
    let spec = parse_spec(body)?;
    Ok(Json(answer(&state, &caller, &consistency, &spec).await?))
}

/// A report spec from JSON, or a 400 naming what serde found wrong.
pub(crate) fn parse_spec(body: serde_json::Value) -> Result<ReportSpec> {
    serde_json::from_value(body)
        .map_err(|e| ApiError::Validation(Issues::one("spec", e.to_string())))
}

/// Runs `spec` for the caller, with its freshness.
pub(crate) async fn answer(
    state: &AppState,
    caller: &Caller,
    consistency: &Consistency,
    spec: &ReportSpec,
) -> Result<ReportResult> {
    let session = session(state, caller, consistency).await?;
    let dates =
        super::workspace::date_context(state, caller.workspace_id, chrono::Utc::now()).await?;
    let mut result = oneo_query::run_report(&session, spec, &dates)
        .await
        .map_err(query_error)?;
    result.freshness.lag_ms = lag_ms(state);
    Ok(result)
}

/// A tabular report's every row as CSV, streamed: a header row, then the rows batch by
/// batch as the engine produces them. An error mid-way ends the body early (the status is
/// already sent), so a cut file is never mistaken for a whole one.
pub(crate) async fn stream_csv(
    state: &AppState,
    caller: &Caller,
    spec: &ReportSpec,
) -> Result<axum::body::Body> {
    let session = session(state, caller, &Consistency::default()).await?;
    let dates =
        super::workspace::date_context(state, caller.workspace_id, chrono::Utc::now()).await?;
    let (columns, batches) = oneo_query::stream_tabular(&session, spec, &dates)
        .await
        .map_err(query_error)?;
    tracing::info!(workspace = %caller.workspace_id, object = %spec.object, "streaming a CSV export");
    Ok(axum::body::Body::from_stream(crate::export::csv_stream(
        &columns, batches,
    )))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    /// One read-only statement over the schema `crm` (a table per object).
    sql: String,
    min_lsn: Option<String>,
    wait_ms: Option<u64>,
    as_of: Option<chrono::DateTime<chrono::Utc>>,
}

#[utoipa::path(post, path = "/v1/sql", tag = "reports", security(("api_key" = [])),
    request_body = SqlRequest,
    responses((status = 200, description = "columns, rows (at most 10,000; `truncated` with the total beyond), `freshness`", body = Object),
              (status = 400, description = "the SQL is invalid or not read-only")))]
pub async fn sql(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<SqlRequest>,
) -> Result<Json<SqlResult>> {
    let consistency = Consistency {
        min_lsn: body.min_lsn,
        wait_ms: body.wait_ms,
        as_of: body.as_of,
    };
    if let Some(lsn) = &consistency.min_lsn {
        wait_for(&state, lsn, consistency.wait_ms).await?;
    }
    let (cfg, workspace) = workspace_schema(&state, caller.workspace_id).await?;
    let session =
        WorkspaceSession::for_sql(&cfg, workspace, consistency.as_of).map_err(query_error)?;
    crate::system::add_system_tables(&state, &session, caller.workspace_id).map_err(query_error)?;
    let mut result = oneo_query::run_sql(&session, &body.sql)
        .await
        .map_err(query_error)?;
    result.freshness.lag_ms = lag_ms(&state);
    Ok(Json(result))
}

/// A session over the caller's workspace only, once the lake holds `min_lsn`.
async fn session(
    state: &AppState,
    caller: &Caller,
    consistency: &Consistency,
) -> Result<WorkspaceSession> {
    if let Some(lsn) = &consistency.min_lsn {
        wait_for(state, lsn, consistency.wait_ms).await?;
    }
    open_session(state, caller.workspace_id, consistency.as_of).await
}

/// A query session that sees `workspace_id`'s objects and nothing else, reading the lake now
/// or as it was at `as_of`.
pub(crate) async fn open_session(
    state: &AppState,
    workspace_id: uuid::Uuid,
    as_of: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<WorkspaceSession> {
    let (cfg, workspace) = workspace_schema(state, workspace_id).await?;
    let session = WorkspaceSession::as_of(&cfg, workspace, as_of).map_err(query_error)?;
    crate::system::add_system_tables(state, &session, workspace_id).map_err(query_error)?;
    Ok(session)
}

/// The lake's settings and `workspace_id`'s objects as the query engine sees them.
/// The server's lake, or why there is none.
pub(crate) fn lake_config(state: &AppState) -> Result<std::sync::Arc<oneo_query::QueryConfig>> {
    state.lake.clone().ok_or_else(|| {
        ApiError::Unavailable(
            "this server has no lake configured, so it can't answer reports".into(),
        )
    })
}

pub(crate) async fn workspace_schema(
    state: &AppState,
    workspace_id: uuid::Uuid,
) -> Result<(std::sync::Arc<oneo_query::QueryConfig>, WorkspaceSchema)> {
    let cfg = lake_config(state)?;
    let objects = schema::load_objects(&state.pool, workspace_id, None).await?;
    let mut objects: Vec<oneo_query::ObjectDef> = objects
        .into_iter()
        .map(|o| oneo_query::ObjectDef {
            id: o.id,
            fields: o.defs(),
            api_name: o.api_name,
        })
        .collect();
    // Workflow runs and steps, streamed into the lake like objects (read-only).
    objects.extend(
        oneo_catalog::system::SYSTEM_OBJECTS
            .iter()
            .map(|s| oneo_query::ObjectDef {
                id: s.object_id(workspace_id),
                fields: s.fields(),
                api_name: s.api_name.to_string(),
            }),
    );
    let workspace = WorkspaceSchema {
        workspace_id,
        objects,
    };
    Ok((cfg, workspace))
}

/// Waits (bounded) until ingest has made `lsn` durable in the lake.
async fn wait_for(state: &AppState, lsn: &str, wait_ms: Option<u64>) -> Result<()> {
    let target = oneo_ingest::parse_lsn(lsn).ok_or_else(|| {
        ApiError::Validation(Issues::one(
            "min_lsn",
            format!("`{lsn}` is not a WAL position such as 0/16B3748"),
        ))
    })?;
    let ingest = state.ingest.as_ref().ok_or_else(|| {
        ApiError::Unavailable(
            "ingest is not running in this server, so min_lsn can't be awaited".into(),
        )
    })?;
    let limit = wait_ms
        .map_or(DEFAULT_WAIT, Duration::from_millis)
        .min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if ingest.status.acknowledged().is_some_and(|a| a >= target) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::Unavailable(format!(
                "the lake had not reached {lsn} after {} ms; try again or raise wait_ms",
                limit.as_millis()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn lag_ms(state: &AppState) -> Option<u64> {
    state.ingest.as_ref().and_then(|i| i.status.lag_ms())
}

pub(crate) fn query_error(e: QueryError) -> ApiError {
    match e {
        QueryError::Spec { part, message } => ApiError::Validation(Issues::one(part, message)),
        QueryError::Sql(m) | QueryError::ReadOnly(m) => ApiError::BadRequest(m),
        QueryError::Timeout(_) => ApiError::Unavailable(e.to_string()),
        e if e.is_caller_error() => ApiError::BadRequest(e.to_string()),
        e => ApiError::Query(e.to_string()),
    }
}
