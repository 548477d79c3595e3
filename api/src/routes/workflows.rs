//! `/v1/workflows` (list, create), `/v1/workflows/{id}` (get, replace as a new version,
//! delete), `/v1/workflows/{id}/enable|disable` and `/v1/workflows/{id}/versions`. Every
//! save is validated against the workspace's objects as they are now.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use base64::Engine;
use chrono::{DateTime, Utc};
use oneo_catalog::Issues;
use oneo_workflows::WorkflowSpec;
use rand::RngCore;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::db::schema::WorkspaceSchema;
use crate::error::{ApiError, ApiJson, Result};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Workflow {
    id: Uuid,
    name: String,
    /// Starts at 1; each replace adds one.
    version: i32,
    enabled: bool,
    #[schema(value_type = Object)]
    spec: Value,
    /// The API key that created it.
    owner_key_id: Uuid,
    /// For a webhook trigger: the path that starts a run (it holds the secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    hook_path: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

type Row = (
    Uuid,
    String,
    i32,
    bool,
    sqlx::types::Json<Value>,
    Uuid,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
);

const COLUMNS: &str =
    "id, name, version, enabled, spec, owner_key_id, hook_secret, created_at, updated_at";

fn workflow(
    (id, name, version, enabled, spec, owner_key_id, secret, created_at, updated_at): Row,
) -> Workflow {
    let hook = spec.0["trigger"]["type"] == "webhook";
    Workflow {
        id,
        name,
        version,
        enabled,
        spec: spec.0,
        owner_key_id,
        hook_path: hook.then(|| format!("/hooks/{id}/{secret}")),
        created_at,
        updated_at,
    }
}

/// The definition from its body, checked against the workspace's objects.
async fn check(state: &AppState, caller: &Caller, body: Value) -> Result<WorkflowSpec> {
    let spec: WorkflowSpec = serde_json::from_value(body).map_err(|e| {
        let m = e.to_string();
        ApiError::Validation(Issues::one(crate::error::serde_field(&m, "workflow"), m))
    })?;
    let schema = WorkspaceSchema::load(&state.pool, caller.workspace_id).await?;
    spec.validate(&schema).map_err(ApiError::Validation)?;
    Ok(spec)
}

fn secret() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[utoipa::path(get, path = "/v1/workflows", tag = "workflows", security(("api_key" = [])),
    responses((status = 200, description = "the workspace's workflows, newest first", body = [Workflow])))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<Workflow>>> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM oneo.workflows WHERE workspace_id = $1 ORDER BY created_at DESC, id"
    )))
    .bind(caller.workspace_id)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(rows.into_iter().map(workflow).collect()))
}

#[utoipa::path(post, path = "/v1/workflows", tag = "workflows", security(("api_key" = [])),
    request_body(content = Object, description = "`name`, `trigger` (`record_created`, `record_updated`, `field_changed`, `record_deleted`, `schedule`, `time_based`, `webhook`), `steps` (each a `key`, a `type` — `update_record`, `create_record`, `send_email`, `http_request`, `condition`, `wait`, `loop`, `approval` — its fields, `next`, `on_error`), `max_depth`, `enabled`"),
    responses((status = 201, body = Workflow), (status = 400, description = "`details` names each offending place, e.g. `steps[2].values.amount`"), (status = 403)))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<Workflow>)> {
    caller.require(Role::Member, "create workflows")?;
    let spec = check(&state, &caller, body).await?;
    let id = Uuid::now_v7();
    let mut tx = state.pool.begin().await?;
    let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO oneo.workflows (id, workspace_id, name, version, enabled, spec, owner_key_id, hook_secret)
         VALUES ($1, $2, $3, 1, $4, $5, $6, $7) RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(caller.workspace_id)
    .bind(spec.name.trim())
    .bind(spec.enabled)
    .bind(sqlx::types::Json(&spec))
    .bind(caller.key_id)
    .bind(secret())
    .fetch_one(&mut *tx)
    .await?;
    save_version(&mut tx, id, 1, &spec, caller.key_id).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(workflow(row))))
}

async fn save_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    id: Uuid,
    version: i32,
    spec: &WorkflowSpec,
    by: Uuid,
) -> Result<()> {
    sqlx::query("INSERT INTO oneo.workflow_versions (workflow_id, version, spec, saved_by) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(version)
        .bind(sqlx::types::Json(spec))
        .bind(by)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("there is no workflow {id} in this workspace"))
}

async fn load(state: &AppState, workspace: Uuid, id: Uuid) -> Result<Workflow> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM oneo.workflows WHERE id = $1 AND workspace_id = $2"
    )))
    .bind(id)
    .bind(workspace)
    .fetch_optional(&state.pool)
    .await?;
    row.map(workflow).ok_or_else(|| not_found(id))
}

#[utoipa::path(get, path = "/v1/workflows/{id}", tag = "workflows", security(("api_key" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = Workflow), (status = 404)))]
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<Uuid>,
) -> Result<Json<Workflow>> {
    Ok(Json(load(&state, caller.workspace_id, id).await?))
}

#[utoipa::path(put, path = "/v1/workflows/{id}", tag = "workflows", security(("api_key" = [])),
    params(("id" = Uuid, Path)), request_body = Object,
    responses((status = 200, description = "saved as the next version; earlier versions stay readable", body = Workflow), (status = 400), (status = 404)))]
pub async fn replace(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Workflow>> {
    caller.require(Role::Member, "change workflows")?;
    load(&state, caller.workspace_id, id).await?;
    let spec = check(&state, &caller, body).await?;
    let mut tx = state.pool.begin().await?;
    // The row lock orders concurrent saves: each gets its own version number.
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE oneo.workflows SET name = $3, spec = $4, enabled = $5, version = version + 1, updated_at = now(),
                next_fire_at = NULL, scanned_until = NULL
          WHERE id = $1 AND workspace_id = $2 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(caller.workspace_id)
    .bind(spec.name.trim())
    .bind(sqlx::types::Json(&spec))
    .bind(spec.enabled)
    .fetch_optional(&mut *tx)
    .await?;
    let row = row.ok_or_else(|| not_found(id))?;
    save_version(&mut tx, id, row.2, &spec, caller.key_id).await?;
    tx.commit().await?;
    Ok(Json(workflow(row)))
}

#[utoipa::path(delete, path = "/v1/workflows/{id}", tag = "workflows", security(("api_key" = [])),
    params(("id" = Uuid, Path)), responses((status = 204), (status = 404)))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    caller.require(Role::Member, "delete workflows")?;
    let gone = sqlx::query("DELETE FROM oneo.workflows WHERE id = $1 AND workspace_id = $2")
        .bind(id)
        .bind(caller.workspace_id)
        .execute(&state.pool)
        .await?
        .rows_affected();
    if gone == 0 {
        return Err(not_found(id));
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn set_enabled(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    on: bool,
) -> Result<Json<Workflow>> {
    caller.require(
        Role::Member,
        if on {
            "enable workflows"
        } else {
            "disable workflows"
        },
    )?;
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE oneo.workflows SET enabled = $3, spec = jsonb_set(spec, '{{enabled}}', to_jsonb($3)), updated_at = now(),
                next_fire_at = NULL, scanned_until = NULL
          WHERE id = $1 AND workspace_id = $2 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(caller.workspace_id)
    .bind(on)
    .fetch_optional(&state.pool)
    .await?;
    row.map(workflow).map(Json).ok_or_else(|| not_found(id))
}

#[utoipa::path(post, path = "/v1/workflows/{id}/enable", tag = "workflows", security(("api_key" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = Workflow), (status = 404)))]
pub async fn enable(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<Uuid>,
) -> Result<Json<Workflow>> {
    set_enabled(&state, &caller, id, true).await
}

#[utoipa::path(post, path = "/v1/workflows/{id}/disable", tag = "workflows", security(("api_key" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, description = "no new runs start; runs under way finish", body = Workflow), (status = 404)))]
pub async fn disable(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<Uuid>,
) -> Result<Json<Workflow>> {
    set_enabled(&state, &caller, id, false).await
}

#[utoipa::path(get, path = "/v1/workflows/{id}/versions", tag = "workflows", security(("api_key" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, description = "every saved version, newest first: `version`, `spec`, `saved_by`, `created_at`", body = [Object]), (status = 404)))]
pub async fn versions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<Value>>> {
    load(&state, caller.workspace_id, id).await?;
    let rows: Vec<(i32, sqlx::types::Json<Value>, Uuid, DateTime<Utc>)> = sqlx::query_as(
        "SELECT version, spec, saved_by, created_at FROM oneo.workflow_versions
          WHERE workflow_id = $1 ORDER BY version DESC",
    )
    .bind(id)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(|(version, spec, saved_by, created_at)| {
                serde_json::json!({"version": version, "spec": spec.0, "saved_by": saved_by, "created_at": created_at})
            })
            .collect(),
    ))
}
