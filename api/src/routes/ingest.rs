//! `/v1/ingest`: how far the lake is behind PostgreSQL, per table of the caller's workspace,
//! and resynchronising a table from a fresh snapshot.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use oneo_ingest::{IngestHandle, StatusReport};

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::db::schema;
use crate::error::{ApiError, Result};

fn running(state: &AppState) -> Result<&IngestHandle> {
    state.ingest.as_ref().ok_or_else(|| {
        ApiError::Unavailable(
            "ingest is not running in this server (it was started with --no-ingest)".into(),
        )
    })
}

#[utoipa::path(get, path = "/v1/ingest/status", tag = "ingest", security(("api_key" = [])),
    responses((status = 200, description = "the pipeline, and each of this workspace's tables: state (snapshotting, streaming, failed), last applied LSN, lag in bytes and milliseconds, changes applied, last error", body = Object),
              (status = 503, description = "ingest is not running in this server")))]
pub async fn status(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<StatusReport>> {
    Ok(Json(running(&state)?.status.report(caller.workspace_id)))
}

#[utoipa::path(get, path = "/v1/ingest/metrics", tag = "ingest", security(("api_key" = [])),
    responses((status = 200, description = "the same figures in Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response> {
    let text = running(&state)?.status.metrics(caller.workspace_id);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

#[utoipa::path(post, path = "/v1/ingest/tables/{object}/resync", tag = "ingest", security(("api_key" = [])),
    params(("object" = String, Path, description = "the object's API name")),
    responses((status = 200, description = "copied again from a fresh snapshot; the table's new status", body = Object),
              (status = 403, description = "admins only"), (status = 404, description = "no such object")))]
pub async fn resync(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(object): Path<String>,
) -> Result<Response> {
    caller.require(Role::Admin, "resync lake tables")?;
    let handle = running(&state)?;
    let meta = schema::load_object(&state.pool, caller.workspace_id, &object)
        .await?
        .ok_or_else(|| ApiError::no_object(&object))?;
    handle
        .resync(meta.id)
        .await
        .map_err(|e| ApiError::Unavailable(format!("resync of `{object}` failed: {e}")))?;
    let report = handle.status.report(caller.workspace_id);
    let table = report.tables.into_iter().find(|t| t.object_id == meta.id);
    Ok((StatusCode::OK, Json(table)).into_response())
}
