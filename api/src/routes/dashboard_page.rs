//! The dashboard as a web page, `/dashboards/{id}` (and its PDF), for viewers with a key
//! (kept in a cookie) or a share link; `POST /v1/dashboards/{id}/share` makes those links.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use chrono::Utc;
use oneo_catalog::{FieldType, Issues};
use oneo_dashboards::{FilterControl, Page, PageWidget, layout};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::dashboards::chosen_filters;
use crate::error::{ApiError, Result};
use crate::routes::dashboards::{export, lag_ms, load, states};

/// `POST /v1/dashboards/{id}/share`: how long the link lives.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    /// 1 to 720 (30 days); 168 (a week) by default.
    expires_in_hours: Option<i64>,
}

#[utoipa::path(post, path = "/v1/dashboards/{id}/share", tag = "dashboards", security(("api_key" = [])),
    params(("id" = Uuid, Path)), request_body(content = ShareRequest, description = "optional"),
    responses((status = 200, description = "`url` (a path on this server: the page, no key needed) and `expires_at`", body = Object), (status = 400), (status = 404)))]
pub async fn share(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<Uuid>,
    body: axum::body::Bytes,
) -> Result<Json<Value>> {
    caller.require(Role::Analyst, "share dashboards")?;
    let req: ShareRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ShareRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::Validation(Issues::one("body", e.to_string())))?
    };
    let hours = req.expires_in_hours.unwrap_or(168);
    if !(1..=720).contains(&hours) {
        return Err(ApiError::Validation(Issues::one(
            "expires_in_hours",
            "must be from 1 to 720 (30 days)",
        )));
    }
    load(&state, caller.workspace_id, id).await?;
    let expires = Utc::now() + chrono::Duration::hours(hours);
    let token = crate::share::sign(
        &state.pool,
        crate::share::Link::Dashboard,
        caller.workspace_id,
        id,
        expires,
    )
    .await?;
    Ok(Json(
        json!({"url": format!("/dashboards/{id}?share={token}"), "expires_at": expires}),
    ))
}

/// Who is looking at a page: by its share token, else by the key in its cookie.
async fn viewer(
    state: &AppState,
    id: Uuid,
    params: &BTreeMap<String, String>,
    headers: &HeaderMap,
) -> Result<Uuid> {
    if let Some(token) = params.get("share") {
        return crate::share::verify(&state.pool, crate::share::Link::Dashboard, token, id).await;
    }
    let key = cookie_key(headers).ok_or_else(|| {
        ApiError::Unauthenticated(
            "open the dashboard with ?key=<API key> once (the page keeps it in a cookie), or with a share link".into(),
        )
    })?;
    Ok(crate::auth::caller_for_key(&state.pool, &key)
        .await?
        .workspace_id)
}

const COOKIE: &str = "oneo_key";

fn cookie_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// `GET /dashboards/{id}`: the page. `?key=<api key>` is exchanged for an HttpOnly cookie
/// and a redirect, so the key leaves the address bar and the history.
pub async fn page(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(params): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response> {
    if let Some(key) = params.get("key") {
        crate::auth::caller_for_key(&state.pool, key).await?;
        let rest: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| k.as_str() != "key")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let query = serde_urlencoded_pairs(&rest);
        let to = if query.is_empty() {
            format!("/dashboards/{id}")
        } else {
            format!("/dashboards/{id}?{query}")
        };
        let cookie = format!("{COOKIE}={key}; HttpOnly; SameSite=Strict; Path=/dashboards");
        return Ok(([(header::SET_COOKIE, cookie)], Redirect::to(&to)).into_response());
    }
    let workspace = viewer(&state, id, &params, &headers).await?;
    let (d, spec) = load(&state, workspace, id).await?;
    let chosen = chosen_filters(&params);
    let states = states(&state, workspace, id, &spec, &chosen).await?;
    let reading_schema = crate::routes::reports::workspace_schema(&state, workspace)
        .await?
        .1;
    let filters: Vec<FilterControl<'_>> = spec
        .filters
        .iter()
        .map(|f| {
            let field = spec
                .widgets
                .iter()
                .filter_map(|w| w.report.as_ref().map(|r| r.object.as_str()))
                .find_map(|o| reading_schema.object(o).and_then(|o| o.field(&f.field)));
            FilterControl {
                filter: f,
                options: field.and_then(|d| d.options.clone()).unwrap_or_default(),
                is_date: field
                    .is_some_and(|d| matches!(d.field_type, FieldType::Date | FieldType::Datetime)),
            }
        })
        .collect();
    let positions = layout(&spec.widgets);
    let widgets = spec
        .widgets
        .iter()
        .zip(&states)
        .zip(positions)
        .map(|((w, s), position)| PageWidget {
            title: &w.title,
            kind: w.kind,
            chart: w.chart,
            position,
            state: s,
        })
        .collect();
    let html = oneo_dashboards::render_page(&Page {
        name: &d.name,
        description: spec.description.as_deref(),
        widgets,
        filters,
        chosen: &chosen,
        lag_ms: lag_ms(&state),
        exports: vec![(
            "PDF",
            match params.get("share") {
                Some(t) => format!(
                    "/dashboards/{id}/export.pdf?{}",
                    serde_urlencoded_pairs(&[("share".into(), t.clone())])
                ),
                None => format!("/dashboards/{id}/export.pdf"),
            },
        )],
        keep: params
            .get("share")
            .map(|t| ("share", t.clone()))
            .into_iter()
            .collect(),
        now: Utc::now(),
    });
    Ok(Html(html).into_response())
}

/// `GET /dashboards/{id}/export.pdf`: the PDF for a viewer of the page (its cookie).
pub async fn page_pdf(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(params): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response> {
    let workspace = viewer(&state, id, &params, &headers).await?;
    // A page viewer reads; the export checks no role beyond that.
    let caller = Caller {
        workspace_id: workspace,
        key_id: Uuid::nil(),
        role: Role::Viewer,
    };
    export(State(state), Extension(caller), Path(id), Query(params)).await
}

fn serde_urlencoded_pairs(pairs: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}
