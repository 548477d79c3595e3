//! `/v1/schedules` (list, create), `/v1/schedules/{id}` (get, replace, delete),
//! `/v1/schedules/{id}/run` (send now), `/v1/deliveries` (the log) and the signed download
//! of a file too large to attach (`/deliveries/files/{id}?token=`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use oneo_catalog::{Issue, Issues};
use oneo_dashboards::{ScheduleSpec, Target};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ApiJson, ApiQuery, Result};
use crate::schedules::{self, Delivery};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Schedule {
    id: Uuid,
    name: String,
    /// As it was given (defaults filled in).
    #[schema(value_type = Object)]
    spec: Value,
    /// The API key that made it.
    owner_key_id: Uuid,
    /// The next fire, in UTC; null when paused or when the expression never fires again.
    next_fire_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

type Row = (
    Uuid,
    String,
    sqlx::types::Json<Value>,
    Uuid,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
    DateTime<Utc>,
);

const COLUMNS: &str = "id, name, spec, owner_key_id, next_fire_at, created_at, updated_at";

fn schedule((id, name, spec, owner_key_id, next_fire_at, created_at, updated_at): Row) -> Schedule {
    Schedule {
        id,
        name,
        spec: spec.0,
        owner_key_id,
        next_fire_at,
        created_at,
        updated_at,
    }
}

/// A schedule from its body, checked as far as the workspace lets: its fields, and that its
/// target is a report or dashboard of this workspace. Its next fire.
async fn check(
    state: &AppState,
    caller: &Caller,
    body: Value,
) -> Result<(ScheduleSpec, Option<DateTime<Utc>>)> {
    let spec: ScheduleSpec = serde_json::from_value(body).map_err(|e| {
        let m = e.to_string();
        ApiError::Validation(Issues::one(crate::error::serde_field(&m, "schedule"), m))
    })?;
    let times = spec.validate().map_err(ApiError::Validation)?;
    let (table, field, id) = match spec.target {
        Target::Report(id) => ("oneo.reports", "target.report", id),
        Target::Dashboard(id) => ("oneo.dashboards", "target.dashboard", id),
    };
    // `table` is one of two constants above, never the caller's text.
    let found: Option<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM {table} WHERE id = $1 AND workspace_id = $2"
    )))
    .bind(id)
    .bind(caller.workspace_id)
    .fetch_optional(&state.pool)
    .await?;
    if found.is_none() {
        let what = field.trim_start_matches("target.");
        return Err(ApiError::Validation(Issues(vec![Issue::new(
            field,
            format!("there is no {what} {id} in this workspace"),
        )])));
    }
    let next = if spec.enabled {
        times.next_after(Utc::now())
    } else {
        None
    };
    Ok((spec, next))
}

#[utoipa::path(get, path = "/v1/schedules", tag = "schedules", security(("api_key" = [])),
    responses((status = 200, description = "the workspace's schedules, newest first", body = [Schedule])))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<Schedule>>> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM oneo.schedules WHERE workspace_id = $1 ORDER BY created_at DESC, id"
    )))
    .bind(caller.workspace_id)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(rows.into_iter().map(schedule).collect()))
}

#[utoipa::path(post, path = "/v1/schedules", tag = "schedules", security(("api_key" = [])),
    request_body(content = Object, description = "`name`, `target` (`{\"report\": id}` or `{\"dashboard\": id}`), `cron` (five fields, or six with seconds first), `time_zone` (IANA, default UTC), `formats` (pdf, csv, xlsx), `recipients`, `condition` (`{\"when\": \"always\"}` (default), `{\"when\": \"has_rows\"}`, `{\"when\": \"crosses\", \"widget\"?, \"above\" | \"below\"}`), `missed` (`send_once` (default) or `skip`), `enabled`"),
    responses((status = 201, body = Schedule), (status = 400, description = "`details` names each offending field"), (status = 403)))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<Schedule>)> {
    caller.require(Role::Analyst, "schedule deliveries")?;
    let (spec, next) = check(&state, &caller, body).await?;
    let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO oneo.schedules (id, workspace_id, name, spec, owner_key_id, next_fire_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(caller.workspace_id)
    .bind(spec.name.trim())
    .bind(sqlx::types::Json(&spec))
    .bind(caller.key_id)
    .bind(next)
    .fetch_one(&state.pool)
    .await?;
    Ok((StatusCode::CREATED, Json(schedule(row))))
}

async fn load(state: &AppState, workspace: Uuid, id: Uuid) -> Result<Schedule> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM oneo.schedules WHERE id = $1 AND workspace_id = $2"
    )))
    .bind(id)
    .bind(workspace)
    .fetch_optional(&state.pool)
    .await?;
    row.map(schedule)
        .ok_or_else(|| ApiError::NotFound(format!("there is no schedule {id} in this workspace")))
}

#[utoipa::path(get, path = "/v1/schedules/{id}", tag = "schedules", security(("api_key" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = Schedule), (status = 404)))]
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<Uuid>,
) -> Result<Json<Schedule>> {
    Ok(Json(load(&state, caller.workspace_id, id).await?))
}

#[utoipa::path(put, path = "/v1/schedules/{id}", tag = "schedules", security(("api_key" = [])),
    params(("id" = Uuid, Path)), request_body = Object,
    responses((status = 200, description = "replaced; the next fire is counted from now", body = Schedule), (status = 400), (status = 404)))]
pub async fn replace(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Schedule>> {
    caller.require(Role::Analyst, "change schedules")?;
    load(&state, caller.workspace_id, id).await?;
    let (spec, next) = check(&state, &caller, body).await?;
    let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE oneo.schedules SET name = $3, spec = $4, next_fire_at = $5, updated_at = now()
          WHERE id = $1 AND workspace_id = $2 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(caller.workspace_id)
    .bind(spec.name.trim())
    .bind(sqlx::types::Json(&spec))
    .bind(next)
    .fetch_one(&state.pool)
    .await?;
    Ok(Json(schedule(row)))
}

#[utoipa::path(delete, path = "/v1/schedules/{id}", tag = "schedules", security(("api_key" = [])),
    params(("id" = Uuid, Path)), responses((status = 204, description = "deleted; its deliveries stay in the log"), (status = 404)))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    caller.require(Role::Analyst, "delete schedules")?;
    let gone = sqlx::query("DELETE FROM oneo.schedules WHERE id = $1 AND workspace_id = $2")
        .bind(id)
        .bind(caller.workspace_id)
        .execute(&state.pool)
        .await?
        .rows_affected();
    if gone == 0 {
        return Err(ApiError::NotFound(format!(
            "there is no schedule {id} in this workspace"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/schedules/{id}/run", tag = "schedules", security(("api_key" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "the delivery after its first attempt: `sent`, `skipped` (its condition was not met), or `retrying` with the error (the scheduler tries again)", body = Delivery), (status = 404), (status = 503, description = "this server runs no deliveries")))]
pub async fn run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<Uuid>,
) -> Result<Json<Delivery>> {
    caller.require(Role::Analyst, "send schedules")?;
    let service = schedules::service(&state)?.clone();
    let s = load(&state, caller.workspace_id, id).await?;
    let spec: ScheduleSpec = serde_json::from_value(s.spec)
        .map_err(|e| ApiError::Query(format!("the stored schedule no longer parses: {e}")))?;
    let delivery =
        schedules::insert_manual(&state.pool, caller.workspace_id, id, &s.name, &spec).await?;
    // Tried here, now; if a scheduler took it first, it is theirs and this answers its state.
    let tried = schedules::attempt_next(&state, &service, Some(delivery)).await?;
    match tried {
        Some(d) => Ok(Json(d)),
        None => schedules::load_delivery(&state.pool, caller.workspace_id, delivery)
            .await?
            .map(Json)
            .ok_or_else(|| ApiError::NotFound(format!("there is no delivery {delivery}"))),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeliveryParams {
    /// Only this schedule's deliveries.
    schedule: Option<Uuid>,
    /// At most this many, newest first (1 to 500, default 50).
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/deliveries", tag = "schedules", security(("api_key" = [])),
    params(DeliveryParams),
    responses((status = 200, description = "the delivery log, newest first: each fire with its recipients, formats, files and sizes, the LSN its numbers reflect, its status, error and every attempt", body = [Delivery]), (status = 400)))]
pub async fn deliveries(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(params): ApiQuery<DeliveryParams>,
) -> Result<Json<Vec<Delivery>>> {
    let limit = params.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::Validation(Issues::one(
            "limit",
            "must be 1 to 500",
        )));
    }
    Ok(Json(
        schedules::list_deliveries(&state.pool, caller.workspace_id, params.schedule, limit)
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
pub struct TokenParams {
    token: String,
}

/// A file too large to attach, for whoever holds its signed link until it expires.
pub async fn download(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    ApiQuery(params): ApiQuery<TokenParams>,
) -> Result<Response> {
    let workspace = crate::share::verify(
        &state.pool,
        crate::share::Link::DeliveryFile,
        &params.token,
        id,
    )
    .await?;
    let file: Option<(String, String, Vec<u8>)> = sqlx::query_as(
        "SELECT name, content_type, body FROM oneo.delivery_files
          WHERE id = $1 AND workspace_id = $2 AND expires_at > now()",
    )
    .bind(id)
    .bind(workspace)
    .fetch_optional(&state.pool)
    .await?;
    let (name, content_type, body) = file.ok_or_else(|| {
        ApiError::NotFound("this file is gone (its delivery was deleted or it expired)".into())
    })?;
    let (stem, ext) = name.rsplit_once('.').unwrap_or((name.as_str(), "bin"));
    Ok(crate::routes::saved::attachment(
        &content_type,
        stem,
        ext,
        body,
    ))
}
