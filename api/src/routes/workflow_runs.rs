//! `/v1/workflow-runs`: the runs of the workspace's workflows, newest first.

use axum::extract::State;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use oneo_catalog::Issues;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiQuery, Result};

const STATUSES: [&str; 6] = [
    "pending",
    "running",
    "waiting",
    "succeeded",
    "failed",
    "cut",
];

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkflowRun {
    id: Uuid,
    workflow_id: Uuid,
    /// The workflow version it follows.
    version: i32,
    /// `pending`, `running`, `waiting`, `succeeded`, `failed` or `cut`.
    status: String,
    /// What started it: for a record change, `<commit LSN>/<record id>/<op>`.
    source: String,
    /// `{object, op, record_id, old, new}`.
    #[schema(value_type = Object)]
    trigger: Value,
    depth: i32,
    error: Option<String>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

type Row = (
    Uuid,
    Uuid,
    i32,
    String,
    String,
    sqlx::types::Json<Value>,
    i32,
    Option<String>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RunParams {
    /// Only this workflow's runs.
    workflow: Option<Uuid>,
    /// Only runs in this status.
    status: Option<String>,
    /// Only runs started at or after this instant (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// At most this many (1 to 500, default 50).
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/workflow-runs", tag = "workflows", security(("api_key" = [])),
    params(RunParams), responses((status = 200, body = [WorkflowRun]), (status = 400)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(p): ApiQuery<RunParams>,
) -> Result<Json<Vec<WorkflowRun>>> {
    let limit = p.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::Validation(Issues::one(
            "limit",
            "must be 1 to 500",
        )));
    }
    if let Some(s) = p.status.as_deref().filter(|s| !STATUSES.contains(s)) {
        return Err(ApiError::Validation(Issues::one(
            "status",
            format!(
                "`{s}` is not a run status; use one of {}",
                STATUSES.join(", ")
            ),
        )));
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, workflow_id, version, status, source, trigger, depth, error, created_at, finished_at
           FROM oneo.workflow_runs
          WHERE workspace_id = $1 AND ($2::uuid IS NULL OR workflow_id = $2)
            AND ($3::text IS NULL OR status = $3) AND ($4::timestamptz IS NULL OR created_at >= $4)
          ORDER BY created_at DESC, id DESC LIMIT $5",
    )
    .bind(caller.workspace_id)
    .bind(p.workflow)
    .bind(p.status)
    .bind(p.since)
    .bind(limit)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(
                |(
                    id,
                    workflow_id,
                    version,
                    status,
                    source,
                    trigger,
                    depth,
                    error,
                    created_at,
                    finished_at,
                )| WorkflowRun {
                    id,
                    workflow_id,
                    version,
                    status,
                    source,
                    trigger: trigger.0,
                    depth,
                    error,
                    created_at,
                    finished_at,
                },
            )
            .collect(),
    ))
}
