//! `/v1/workflow-runs`: the runs of the workspace's workflows, newest first, each with its
//! steps' attempts; and the decisions on runs paused at an approval.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use oneo_catalog::Issues;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ApiQuery, Result};

const STATUSES: [&str; 6] = [
    "pending",
    "running",
    "waiting",
    "succeeded",
    "failed",
    "cut",
];

/// One attempt of one step.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct StepAttempt {
    #[serde(skip)]
    run_id: Uuid,
    /// The step's key, or `loop[item].key` inside a loop.
    path: String,
    step_type: String,
    attempt: i32,
    /// `started`, `succeeded`, `failed`, `waiting` or `unknown` (the server stopped while
    /// an email or call was going out; it is not sent again).
    status: String,
    #[schema(value_type = Option<Object>)]
    input: Option<sqlx::types::Json<Value>>,
    #[schema(value_type = Option<Object>)]
    output: Option<sqlx::types::Json<Value>>,
    error: Option<String>,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct WorkflowRun {
    id: Uuid,
    workflow_id: Uuid,
    /// The workflow version it follows.
    version: i32,
    /// `pending`, `running`, `waiting`, `succeeded`, `failed` or `cut`.
    status: String,
    /// What started it: for a record change, `<commit LSN>/<record id>/<op>`.
    source: String,
    /// `{object, op, record_id, old, new}`, or a webhook's `{op, fields}`.
    #[schema(value_type = Object)]
    trigger: sqlx::types::Json<Value>,
    /// How many runs' writes led to this one; beyond the workflow's `max_depth` it is `cut`.
    depth: i32,
    parent_run: Option<Uuid>,
    /// What a waiting run waits for: `{path, kind: wait|condition|approval|retry, …}`.
    #[schema(value_type = Option<Object>)]
    waiting: Option<sqlx::types::Json<Value>>,
    wake_at: Option<DateTime<Utc>>,
    error: Option<String>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    #[sqlx(skip)]
    steps: Vec<StepAttempt>,
}

const COLUMNS: &str =
    "id, workflow_id, version, status, source, trigger, depth, parent_run, waiting,
    wake_at, error, created_at, started_at, finished_at";

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

async fn with_steps(state: &AppState, mut runs: Vec<WorkflowRun>) -> Result<Vec<WorkflowRun>> {
    let ids: Vec<Uuid> = runs.iter().map(|r| r.id).collect();
    let steps: Vec<StepAttempt> = sqlx::query_as(
        "SELECT run_id, path, step_type, attempt, status, input, output, error, started_at, finished_at
           FROM oneo.workflow_steps WHERE run_id = ANY($1) ORDER BY started_at, path, attempt",
    )
    .bind(&ids)
    .fetch_all(&state.pool)
    .await?;
    for s in steps {
        if let Some(r) = runs.iter_mut().find(|r| r.id == s.run_id) {
            r.steps.push(s);
        }
    }
    Ok(runs)
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
    let runs: Vec<WorkflowRun> = sqlx::query_as(crate::db::audited(&format!(
        "SELECT {COLUMNS} FROM oneo.workflow_runs
          WHERE workspace_id = $1 AND ($2::uuid IS NULL OR workflow_id = $2)
            AND ($3::text IS NULL OR status = $3) AND ($4::timestamptz IS NULL OR created_at >= $4)
          ORDER BY created_at DESC, id DESC LIMIT $5"
    )))
    .bind(caller.workspace_id)
    .bind(p.workflow)
    .bind(p.status)
    .bind(p.since)
    .bind(limit)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(with_steps(&state, runs).await?))
}

fn no_run(id: &str) -> ApiError {
    ApiError::NotFound(format!("there is no workflow run {id}"))
}

async fn one(state: &AppState, caller: &Caller, id: &str) -> Result<WorkflowRun> {
    let uuid = Uuid::parse_str(id).map_err(|_| no_run(id))?;
    let run: Option<WorkflowRun> = sqlx::query_as(crate::db::audited(&format!(
        "SELECT {COLUMNS} FROM oneo.workflow_runs WHERE id = $1 AND workspace_id = $2"
    )))
    .bind(uuid)
    .bind(caller.workspace_id)
    .fetch_optional(&state.pool)
    .await?;
    let run = run.ok_or_else(|| no_run(id))?;
    Ok(with_steps(state, vec![run]).await?.remove(0))
}

#[utoipa::path(get, path = "/v1/workflow-runs/{id}", tag = "workflows", security(("api_key" = [])),
    params(("id" = String, Path, description = "the run id")),
    responses((status = 200, body = WorkflowRun), (status = 404)))]
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<WorkflowRun>> {
    Ok(Json(one(&state, &caller, &id).await?))
}

/// A decision's optional note, kept with it.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    #[serde(default)]
    comment: Option<String>,
}

/// The body is optional: nothing, or `{"comment": …}`.
fn note(body: &[u8]) -> Result<Decision> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Decision::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

async fn decide(
    state: &AppState,
    caller: &Caller,
    id: &str,
    approved: bool,
    note: Decision,
) -> Result<WorkflowRun> {
    if note
        .comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > 2000)
    {
        return Err(ApiError::Validation(Issues::one(
            "comment",
            "at most 2000 characters",
        )));
    }
    let uuid = Uuid::parse_str(id).map_err(|_| no_run(id))?;
    let mut tx = state.pool.begin().await?;
    // Waits for a worker holding the run (it is between steps only briefly).
    let row: Option<(String, Option<sqlx::types::Json<Value>>)> = sqlx::query_as(
        "SELECT status, waiting FROM oneo.workflow_runs WHERE id = $1 AND workspace_id = $2
         FOR NO KEY UPDATE",
    )
    .bind(uuid)
    .bind(caller.workspace_id)
    .fetch_optional(&mut *tx)
    .await?;
    let (status, waiting) = row.ok_or_else(|| no_run(id))?;
    let mut waiting = match waiting {
        Some(w)
            if status == "waiting"
                && w.0.get("kind").and_then(Value::as_str) == Some("approval")
                && w.0.get("decision").is_none_or(Value::is_null) =>
        {
            w.0
        }
        _ => {
            return Err(ApiError::conflict(
                "not_awaiting_approval",
                format!("run {id} is not waiting for an approval (it is {status})"),
                vec![],
            ));
        }
    };
    let role = waiting
        .get("role")
        .and_then(Value::as_str)
        .and_then(Role::parse)
        .unwrap_or(Role::Member);
    caller.require(role, "decide this approval")?;
    waiting["decision"] = json!({
        "approved": approved, "by": caller.key_id, "at": Utc::now(), "comment": note.comment,
    });
    sqlx::query("UPDATE oneo.workflow_runs SET waiting = $2, wake_at = now(), updated_at = now() WHERE id = $1")
        .bind(uuid)
        .bind(sqlx::types::Json(&waiting))
        .execute(&mut *tx)
        .await?;
    crate::workflow_worker::announce(&mut *tx).await?;
    tx.commit().await?;
    one(state, caller, id).await
}

#[utoipa::path(post, path = "/v1/workflow-runs/{id}/approve", tag = "workflows", security(("api_key" = [])),
    params(("id" = String, Path, description = "the run id")), request_body = Option<Decision>,
    responses((status = 200, body = WorkflowRun), (status = 403, description = "the key's role is below the approval's"),
              (status = 409, description = "the run is not waiting for an approval")))]
pub async fn approve(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<WorkflowRun>> {
    Ok(Json(
        decide(&state, &caller, &id, true, note(&body)?).await?,
    ))
}

#[utoipa::path(post, path = "/v1/workflow-runs/{id}/reject", tag = "workflows", security(("api_key" = [])),
    params(("id" = String, Path, description = "the run id")), request_body = Option<Decision>,
    responses((status = 200, body = WorkflowRun), (status = 403), (status = 409)))]
pub async fn reject(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<WorkflowRun>> {
    Ok(Json(
        decide(&state, &caller, &id, false, note(&body)?).await?,
    ))
}
