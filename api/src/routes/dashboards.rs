//! `/v1/dashboards` (list, create), `/v1/dashboards/{id}` (get, replace, delete),
//! `/v1/dashboards/{id}/data` (materialized answers; live with global filters),
//! `/v1/dashboards/{id}/refresh` and `/v1/dashboards/{id}/export?format=pdf|xlsx`; the page
//! and share links are in `dashboard_page`.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use oneo_catalog::Issues;
use oneo_dashboards::{DashboardSpec, PaperSize, PdfWidget, WidgetState, layout};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::dashboards::{
    Reading, Recompute, chosen_filters, dashboard_error, refresh_one, resolve, service,
};
use crate::error::{ApiError, ApiJson, Result};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Dashboard {
    id: Uuid,
    pub(crate) name: String,
    #[schema(value_type = Object)]
    spec: Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

type Row = (
    Uuid,
    String,
    sqlx::types::Json<Value>,
    DateTime<Utc>,
    DateTime<Utc>,
);

fn dashboard((id, name, spec, created_at, updated_at): Row) -> Dashboard {
    Dashboard {
        id,
        name,
        spec: spec.0,
        created_at,
        updated_at,
    }
}

fn parse(body: Value) -> Result<DashboardSpec> {
    let spec: DashboardSpec = serde_json::from_value(body)
        .map_err(|e| ApiError::Validation(Issues::one("spec", e.to_string())))?;
    spec.validate().map_err(ApiError::Validation)?;
    Ok(spec)
}

/// Every widget must run: a widget whose report is wrong is refused with its error.
fn check_states(spec: &DashboardSpec, states: &[WidgetState]) -> Result<()> {
    let issues: Vec<oneo_catalog::Issue> = spec
        .widgets
        .iter()
        .zip(states)
        .enumerate()
        .filter_map(|(i, (_, s))| {
            let e = s.materialized.answer["error"].as_str()?;
            Some(oneo_catalog::Issue::new(format!("widgets[{i}].report"), e))
        })
        .collect();
    if issues.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(Issues(issues)))
    }
}

#[utoipa::path(get, path = "/v1/dashboards", tag = "dashboards", security(("api_key" = [])),
    responses((status = 200, body = [Dashboard])))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<Dashboard>>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, name, spec, created_at, updated_at FROM oneo.dashboards
          WHERE workspace_id = $1 ORDER BY created_at DESC, id",
    )
    .bind(caller.workspace_id)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(rows.into_iter().map(dashboard).collect()))
}

#[utoipa::path(post, path = "/v1/dashboards", tag = "dashboards", security(("api_key" = [])),
    request_body(content = Object, description = "`name`, `widgets` (each `key`, `title`, `type`: metric|chart|report, `chart`, `report` or `saved_report`, `compare`, `position`), `filters`"),
    responses((status = 201, body = Dashboard), (status = 400, description = "`details` names each offending part")))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<Dashboard>)> {
    caller.require(Role::Analyst, "create dashboards")?;
    let spec = parse(body)?;
    let row = save_new(&state, caller.workspace_id, &spec).await?;
    Ok((StatusCode::CREATED, Json(dashboard(row))))
}

/// Materializes a new dashboard, then saves it: a widget that can't run is refused, and the
/// first open runs no query.
pub(crate) async fn save_new(
    state: &AppState,
    workspace: Uuid,
    spec: &DashboardSpec,
) -> Result<Row> {
    let id = Uuid::now_v7();
    let states = refresh_one(state, workspace, id, spec, Recompute::All).await?;
    if let Err(e) = check_states(spec, &states) {
        service(state)?.store.remove(workspace, id).await.ok();
        return Err(e);
    }
    let row: Row = sqlx::query_as(
        "INSERT INTO oneo.dashboards (id, workspace_id, name, spec) VALUES ($1, $2, $3, $4)
         RETURNING id, name, spec, created_at, updated_at",
    )
    .bind(id)
    .bind(workspace)
    .bind(spec.name.trim())
    .bind(sqlx::types::Json(spec))
    .fetch_one(&state.pool)
    .await?;
    Ok(row)
}

/// A file's dashboard: replaces the row loaded from the same file before (its widgets keep
/// their answers where unchanged), or adds one.
pub(crate) async fn upsert_file(
    state: &AppState,
    workspace: Uuid,
    source: &str,
    spec: Value,
) -> Result<Uuid> {
    let spec = parse(spec)?;
    let found: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM oneo.dashboards WHERE workspace_id = $1 AND source = $2",
    )
    .bind(workspace)
    .bind(source)
    .fetch_optional(&state.pool)
    .await?;
    let Some(id) = found else {
        let row = save_new(state, workspace, &spec).await?;
        sqlx::query("UPDATE oneo.dashboards SET source = $2 WHERE id = $1")
            .bind(row.0)
            .bind(source)
            .execute(&state.pool)
            .await?;
        return Ok(row.0);
    };
    let states = refresh_one(state, workspace, id, &spec, Recompute::Stale).await?;
    check_states(&spec, &states)?;
    sqlx::query(
        "UPDATE oneo.dashboards SET name = $2, spec = $3, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(spec.name.trim())
    .bind(sqlx::types::Json(&spec))
    .execute(&state.pool)
    .await?;
    Ok(id)
}

/// The workspace's dashboard named `spec.name`, created (and materialized) if it has none.
pub(crate) async fn ensure(state: &AppState, workspace: Uuid, spec: Value) -> Result<Uuid> {
    let spec = parse(spec)?;
    let found: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM oneo.dashboards WHERE workspace_id = $1 AND name = $2 ORDER BY created_at LIMIT 1",
    )
    .bind(workspace)
    .bind(spec.name.trim())
    .fetch_optional(&state.pool)
    .await?;
    match found {
        Some(id) => Ok(id),
        None => Ok(save_new(state, workspace, &spec).await?.0),
    }
}

pub(crate) async fn load(
    state: &AppState,
    workspace: Uuid,
    id: Uuid,
) -> Result<(Dashboard, DashboardSpec)> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT id, name, spec, created_at, updated_at FROM oneo.dashboards
          WHERE id = $1 AND workspace_id = $2",
    )
    .bind(id)
    .bind(workspace)
    .fetch_optional(&state.pool)
    .await?;
    let d = row.map(dashboard).ok_or_else(|| {
        ApiError::NotFound(format!("there is no dashboard {id} in this workspace"))
    })?;
    let spec = serde_json::from_value(d.spec.clone())
        .map_err(|e| ApiError::Query(format!("the stored dashboard no longer parses: {e}")))?;
    Ok((d, spec))
}

#[utoipa::path(get, path = "/v1/dashboards/{id}", tag = "dashboards", security(("api_key" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = Dashboard), (status = 404)))]
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<Uuid>,
) -> Result<Json<Dashboard>> {
    Ok(Json(load(&state, caller.workspace_id, id).await?.0))
}

#[utoipa::path(put, path = "/v1/dashboards/{id}", tag = "dashboards", security(("api_key" = [])),
    params(("id" = Uuid, Path)), request_body = Object,
    responses((status = 200, body = Dashboard), (status = 400), (status = 404)))]
pub async fn replace(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Dashboard>> {
    caller.require(Role::Analyst, "change dashboards")?;
    load(&state, caller.workspace_id, id).await?;
    let spec = parse(body)?;
    // Widgets whose definition is unchanged keep their answers (same fingerprint).
    let states = refresh_one(&state, caller.workspace_id, id, &spec, Recompute::Stale).await?;
    check_states(&spec, &states)?;
    let row: Row = sqlx::query_as(
        "UPDATE oneo.dashboards SET name = $3, spec = $4, updated_at = now()
          WHERE id = $1 AND workspace_id = $2 RETURNING id, name, spec, created_at, updated_at",
    )
    .bind(id)
    .bind(caller.workspace_id)
    .bind(spec.name.trim())
    .bind(sqlx::types::Json(&spec))
    .fetch_one(&state.pool)
    .await?;
    Ok(Json(dashboard(row)))
}

#[utoipa::path(delete, path = "/v1/dashboards/{id}", tag = "dashboards", security(("api_key" = [])),
    params(("id" = Uuid, Path)), responses((status = 204), (status = 404)))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    caller.require(Role::Analyst, "delete dashboards")?;
    let gone = sqlx::query("DELETE FROM oneo.dashboards WHERE id = $1 AND workspace_id = $2")
        .bind(id)
        .bind(caller.workspace_id)
        .execute(&state.pool)
        .await?
        .rows_affected();
    if gone == 0 {
        return Err(ApiError::NotFound(format!(
            "there is no dashboard {id} in this workspace"
        )));
    }
    if let Ok(s) = service(&state) {
        s.store
            .remove(caller.workspace_id, id)
            .await
            .map_err(dashboard_error)?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The widgets' states: materialized (recomputing only stale ones the policy allows), or
/// live when global filter values are chosen.
pub(crate) async fn states(
    state: &AppState,
    workspace: Uuid,
    id: Uuid,
    spec: &DashboardSpec,
    chosen: &BTreeMap<String, String>,
) -> Result<Vec<WidgetState>> {
    if chosen.is_empty() {
        return refresh_one(state, workspace, id, spec, Recompute::Stale).await;
    }
    for field in chosen.keys() {
        if !spec.filters.iter().any(|f| &f.field == field) {
            let declared: Vec<&str> = spec.filters.iter().map(|f| f.field.as_str()).collect();
            return Err(ApiError::Validation(Issues::one(
                format!("f.{field}"),
                format!(
                    "this dashboard has no filter on `{field}` (it has: {})",
                    declared.join(", ")
                ),
            )));
        }
    }
    let widgets = resolve(state, workspace, spec).await?;
    let reading = Reading::open(state, workspace).await?;
    oneo_dashboards::live(reading.context(), &widgets, &spec.filters, chosen)
        .await
        .map_err(dashboard_error)
}

pub(crate) fn lag_ms(state: &AppState) -> Option<u64> {
    state.ingest.as_ref().and_then(|i| i.status.lag_ms())
}

fn data_json(
    state: &AppState,
    d: &Dashboard,
    spec: &DashboardSpec,
    states: &[WidgetState],
) -> Value {
    let positions = layout(&spec.widgets);
    let lag = lag_ms(state);
    let widgets: Vec<Value> = spec
        .widgets
        .iter()
        .zip(states)
        .zip(positions)
        .map(|((w, s), p)| {
            let m = &s.materialized;
            json!({
                "key": w.key, "title": w.title, "type": w.kind, "chart": w.chart, "position": p,
                "answer": m.answer,
                "computed_at": m.computed_at,
                "current": s.current,
                "recomputed": s.recomputed,
                "freshness": {"lsn": m.lsn, "lag_ms": if s.current { lag } else { None }},
            })
        })
        .collect();
    json!({"id": d.id, "name": d.name, "widgets": widgets})
}

#[utoipa::path(get, path = "/v1/dashboards/{id}/data", tag = "dashboards", security(("api_key" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "each widget's answer, `computed_at`, `current` (no table it read changed since) and `freshness`; `f.<field>=value` parameters apply global filters and run live", body = Object), (status = 404)))]
pub async fn data(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<Uuid>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<Json<Value>> {
    let (d, spec) = load(&state, caller.workspace_id, id).await?;
    let chosen = chosen_filters(&params);
    let states = states(&state, caller.workspace_id, id, &spec, &chosen).await?;
    Ok(Json(data_json(&state, &d, &spec, &states)))
}

#[utoipa::path(post, path = "/v1/dashboards/{id}/refresh", tag = "dashboards", security(("api_key" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "as `/data`; widgets whose tables changed are recomputed now (`force=true`: every widget)", body = Object), (status = 404)))]
pub async fn refresh(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<Uuid>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<Json<Value>> {
    let (d, spec) = load(&state, caller.workspace_id, id).await?;
    let force = params.get("force").is_some_and(|v| v == "true");
    // An explicit refresh does not wait out the minimum interval.
    let which = if force {
        Recompute::All
    } else {
        Recompute::StaleNow
    };
    let states = refresh_one(&state, caller.workspace_id, id, &spec, which).await?;
    Ok(Json(data_json(&state, &d, &spec, &states)))
}

fn footnote(s: &WidgetState) -> String {
    let m = &s.materialized;
    format!(
        "Computed {} - LSN {}{}",
        m.computed_at.format("%Y-%m-%d %H:%M:%S UTC"),
        m.lsn.as_deref().unwrap_or("none yet"),
        if s.current {
            ""
        } else {
            " - tables changed since"
        }
    )
}

/// The dashboard as a PDF document.
pub(crate) fn pdf_of(
    spec: &DashboardSpec,
    states: &[WidgetState],
    paper: PaperSize,
) -> Result<Vec<u8>> {
    let widgets: Vec<PdfWidget<'_>> = spec
        .widgets
        .iter()
        .zip(states)
        .map(|(w, s)| PdfWidget {
            title: &w.title,
            kind: w.kind,
            chart: w.chart,
            answer: &s.materialized.answer,
            footnote: footnote(s),
        })
        .collect();
    let subtitle = format!(
        "Dashboard - generated {}",
        Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    oneo_dashboards::render_pdf(&spec.name, &subtitle, &widgets, paper).map_err(dashboard_error)
}

pub(crate) fn paper(params: &BTreeMap<String, String>) -> Result<PaperSize> {
    match params.get("paper") {
        None => Ok(PaperSize::A4),
        Some(p) => PaperSize::parse(p).ok_or_else(|| {
            ApiError::Validation(Issues::one(
                "paper",
                format!("`{p}` is not a paper size; use a4 or letter"),
            ))
        }),
    }
}

#[utoipa::path(get, path = "/v1/dashboards/{id}/export", tag = "dashboards", security(("api_key" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "`format=pdf` (`paper=a4|letter`): every widget's title, numbers, charts and tables; `format=xlsx`: a sheet per widget with typed cells; `format=csv`: a section per widget (its title, then its table)", content_type = "application/pdf", body = Vec<u8>), (status = 400), (status = 404)))]
pub async fn export(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<Uuid>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<Response> {
    let format = params.get("format").map_or("pdf", String::as_str);
    if !matches!(format, "pdf" | "xlsx" | "csv") {
        return Err(ApiError::Validation(Issues::one(
            "format",
            format!("`{format}` is not a dashboard export format; use pdf, xlsx or csv"),
        )));
    }
    let paper = paper(&params)?;
    let (_, spec) = load(&state, caller.workspace_id, id).await?;
    let chosen = chosen_filters(&params);
    let states = states(&state, caller.workspace_id, id, &spec, &chosen).await?;
    let (body, content_type) = dashboard_file(&spec, &states, format, paper)?;
    let name = crate::routes::saved::file_name(&spec.name);
    Ok(crate::routes::saved::attachment(
        content_type,
        &name,
        format,
        body,
    ))
}

/// The dashboard as a file of `format` (`csv`, `xlsx`, else `pdf`), and its content type.
pub(crate) fn dashboard_file(
    spec: &DashboardSpec,
    states: &[WidgetState],
    format: &str,
    paper: PaperSize,
) -> Result<(Vec<u8>, &'static str)> {
    use crate::routes::saved::{CSV, PDF, XLSX};
    let sheets: Vec<(&str, &Value)> = spec
        .widgets
        .iter()
        .zip(states)
        .map(|(w, s)| (w.title.as_str(), &s.materialized.answer))
        .collect();
    Ok(match format {
        "csv" => (
            crate::export::dashboard_csv(&sheets)
                .map_err(|e| ApiError::Query(format!("CSV: {e}")))?,
            CSV,
        ),
        "xlsx" => (
            crate::export::dashboard_xlsx(&sheets)
                .map_err(|e| ApiError::Query(format!("XLSX: {e}")))?,
            XLSX,
        ),
        _ => (pdf_of(spec, states, paper)?, PDF),
    })
}
