//! `/v1/workspace`: the caller's workspace and its settings. Its time zone and fiscal-year
//! start month decide what relative dates in report filters mean (`TODAY`,
//! `THIS_FISCAL_QUARTER`, `LAST_N_DAYS:30`, …).

use std::str::FromStr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use oneo_catalog::{Issue, Issues};
use oneo_query::DateContext;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::written;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiJson, Result};

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct WorkspaceInfo {
    id: Uuid,
    name: String,
    /// An IANA time zone (`Europe/Berlin`); relative dates are days in this zone.
    time_zone: String,
    /// The month (1–12) the fiscal year starts in.
    fiscal_year_start_month: i16,
    created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSettings {
    time_zone: Option<String>,
    fiscal_year_start_month: Option<i64>,
}

async fn load(state: &AppState, workspace: Uuid) -> Result<WorkspaceInfo> {
    Ok(sqlx::query_as(
        "SELECT id, name, time_zone, fiscal_year_start_month, created_at
           FROM oneo.workspaces WHERE id = $1",
    )
    .bind(workspace)
    .fetch_one(&state.pool)
    .await?)
}

/// What relative dates mean for `workspace` at `now`: its time zone and fiscal year.
pub(crate) async fn date_context(
    state: &AppState,
    workspace: Uuid,
    now: DateTime<Utc>,
) -> Result<DateContext> {
    let info = load(state, workspace).await?;
    let mut ctx = DateContext::new(now);
    // Both were checked when set; a value that no longer parses falls back to the default.
    ctx.time_zone = Tz::from_str(&info.time_zone).unwrap_or(Tz::UTC);
    ctx.fiscal_year_start_month = u32::try_from(info.fiscal_year_start_month)
        .ok()
        .filter(|m| (1..=12).contains(m))
        .unwrap_or(1);
    Ok(ctx)
}

#[utoipa::path(get, path = "/v1/workspace", tag = "workspace", security(("api_key" = [])),
    responses((status = 200, description = "the caller's workspace and its settings", body = WorkspaceInfo)))]
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<WorkspaceInfo>> {
    Ok(Json(load(&state, caller.workspace_id).await?))
}

#[utoipa::path(patch, path = "/v1/workspace", tag = "workspace", security(("api_key" = [])),
    request_body = WorkspaceSettings,
    responses((status = 200, description = "the workspace with its new settings", body = WorkspaceInfo),
              (status = 400, description = "a setting out of range, naming it"), (status = 403, description = "not an admin key")))]
pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<WorkspaceSettings>,
) -> Result<Response> {
    caller.require_admin()?;
    let mut issues = Vec::new();
    if let Some(tz) = &body.time_zone
        && Tz::from_str(tz).is_err()
    {
        issues.push(Issue::new(
            "time_zone",
            format!("`{tz}` is not an IANA time zone; use e.g. `UTC`, `Europe/Berlin`, `America/New_York`"),
        ));
    }
    if let Some(m) = body.fiscal_year_start_month
        && !(1..=12).contains(&m)
    {
        issues.push(Issue::new(
            "fiscal_year_start_month",
            format!("{m} is not a month; use 1 (January) to 12 (December)"),
        ));
    }
    if !issues.is_empty() {
        return Err(Issues(issues).into());
    }
    sqlx::query(
        "UPDATE oneo.workspaces
            SET time_zone = coalesce($2, time_zone),
                fiscal_year_start_month = coalesce($3::smallint, fiscal_year_start_month)
          WHERE id = $1",
    )
    .bind(caller.workspace_id)
    .bind(&body.time_zone)
    .bind(body.fiscal_year_start_month)
    .execute(&state.pool)
    .await?;
    let info = load(&state, caller.workspace_id).await?;
    written(&state, StatusCode::OK, Some(serde_json::json!(info))).await
}
