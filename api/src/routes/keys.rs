//! `/v1/api-keys`: admins mint and revoke their workspace's keys.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::written;
use crate::AppState;
use crate::auth::{Caller, Role};
use crate::db::workspace::{self, KeyInfo};
use crate::error::{ApiError, ApiJson, Result};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    pub role: Role,
}

#[utoipa::path(get, path = "/v1/api-keys", tag = "keys", security(("api_key" = [])),
    responses((status = 200, description = "active keys (never their secrets)", body = [KeyInfo])))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<KeyInfo>>> {
    caller.require_admin()?;
    Ok(Json(
        workspace::list_keys(&state.pool, caller.workspace_id).await?,
    ))
}

#[utoipa::path(post, path = "/v1/api-keys", tag = "keys", security(("api_key" = [])), request_body = NewKey,
    responses((status = 201, description = "the key, with its secret `api_key` shown this once", body = Object)))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewKey>,
) -> Result<Response> {
    caller.require_admin()?;
    if body.name.trim().is_empty() || body.name.chars().count() > 200 {
        return Err(oneo_catalog::Issues::one("name", "must be 1 to 200 characters").into());
    }
    let mut conn = state.pool.acquire().await?;
    let (info, key) =
        workspace::create_key(&mut conn, caller.workspace_id, &body.name, body.role).await?;
    let mut out = json!(info);
    out["api_key"] = json!(key);
    written(&state, StatusCode::CREATED, Some(out)).await
}

#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "keys", security(("api_key" = [])),
    params(("id" = String, Path, description = "the key's id")),
    responses((status = 204, description = "revoked"), (status = 404, description = "no such key"), (status = 409, description = "the last admin key")))]
pub async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response> {
    caller.require_admin()?;
    let missing = || ApiError::NotFound(format!("there is no API key {id}"));
    let key_id = Uuid::parse_str(&id).map_err(|_| missing())?;
    let mut tx = state.pool.begin().await?;
    // Lock the workspace's keys so two admins can't revoke the last two admin keys at once.
    let keys: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, role FROM oneo.api_keys WHERE workspace_id = $1 AND revoked_at IS NULL FOR UPDATE",
    )
    .bind(caller.workspace_id)
    .fetch_all(&mut *tx)
    .await?;
    let role = keys
        .iter()
        .find(|(k, _)| *k == key_id)
        .map(|(_, r)| r.clone())
        .ok_or_else(missing)?;
    if role == "admin" && keys.iter().filter(|(_, r)| r == "admin").count() == 1 {
        return Err(ApiError::conflict(
            "last_admin_key",
            "this is the workspace's last admin key; create another admin key first",
            vec![],
        ));
    }
    sqlx::query("UPDATE oneo.api_keys SET revoked_at = now() WHERE id = $1")
        .bind(key_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    written(&state, StatusCode::NO_CONTENT, None).await
}
