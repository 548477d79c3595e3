//! Saved reports: `/v1/reports` (list, save), `/v1/reports/{id}` (get, replace, delete),
//! `/v1/reports/{id}/run` (with runtime filters, `as_of`, `min_lsn`) and
//! `/v1/reports/{id}/export?format=csv|xlsx`.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use oneo_catalog::Issues;
use oneo_query::{Filter, ReportKind, ReportResult};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ApiJson, ApiQuery, Result};
use crate::export;
use crate::routes::reports::{Consistency, answer, parse_spec};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SavedReport {
    id: Uuid,
    pub(crate) name: String,
    #[schema(value_type = Object)]
    pub(crate) spec: Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveReport {
    /// 1 to 200 characters.
    name: String,
    /// A report spec, as `/v1/reports/run` takes it.
    #[schema(value_type = Object)]
    spec: Value,
}

type Row = (
    Uuid,
    String,
    sqlx::types::Json<Value>,
    DateTime<Utc>,
    DateTime<Utc>,
);

fn saved((id, name, spec, created_at, updated_at): Row) -> SavedReport {
    SavedReport {
        id,
        name,
        spec: spec.0,
        created_at,
        updated_at,
    }
}

/// Checks a report before it is saved: its name, its spec's shape, and that it runs.
async fn check(state: &AppState, caller: &Caller, body: &SaveReport) -> Result<()> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::Validation(Issues::one(
            "name",
            "must be 1 to 200 characters",
        )));
    }
    let spec = parse_spec(body.spec.clone())?;
    // Running it is the one check that covers everything (paths, types, filter values, the
    // lake's tables); a report that can't run is refused with the same precise error.
    answer(state, caller, &Consistency::default(), &spec).await?;
    Ok(())
}

#[utoipa::path(get, path = "/v1/reports", tag = "reports", security(("api_key" = [])),
    responses((status = 200, description = "the workspace's saved reports, newest first", body = [SavedReport])))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<SavedReport>>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, name, spec, created_at, updated_at FROM oneo.reports
          WHERE workspace_id = $1 ORDER BY created_at DESC, id",
    )
    .bind(caller.workspace_id)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(rows.into_iter().map(saved).collect()))
}

#[utoipa::path(post, path = "/v1/reports", tag = "reports", security(("api_key" = [])),
    request_body = SaveReport,
    responses((status = 201, description = "saved", body = SavedReport),
              (status = 400, description = "the name or spec is invalid; `details` names the part"),
              (status = 403, description = "viewers may not save reports")))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<SaveReport>,
) -> Result<(StatusCode, Json<SavedReport>)> {
    caller.require(Role::Analyst, "save reports")?;
    check(&state, &caller, &body).await?;
    let row: Row = sqlx::query_as(
        "INSERT INTO oneo.reports (id, workspace_id, name, spec) VALUES ($1, $2, $3, $4)
         RETURNING id, name, spec, created_at, updated_at",
    )
    .bind(Uuid::now_v7())
    .bind(caller.workspace_id)
    .bind(body.name.trim())
    .bind(sqlx::types::Json(&body.spec))
    .fetch_one(&state.pool)
    .await?;
    Ok((StatusCode::CREATED, Json(saved(row))))
}

pub(crate) async fn load(state: &AppState, caller: &Caller, id: Uuid) -> Result<SavedReport> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT id, name, spec, created_at, updated_at FROM oneo.reports
          WHERE id = $1 AND workspace_id = $2",
    )
    .bind(id)
    .bind(caller.workspace_id)
    .fetch_optional(&state.pool)
    .await?;
    row.map(saved)
        .ok_or_else(|| ApiError::NotFound(format!("there is no report {id} in this workspace")))
}

#[utoipa::path(get, path = "/v1/reports/{id}", tag = "reports", security(("api_key" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = SavedReport), (status = 404)))]
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<Uuid>,
) -> Result<Json<SavedReport>> {
    Ok(Json(load(&state, &caller, id).await?))
}

#[utoipa::path(put, path = "/v1/reports/{id}", tag = "reports", security(("api_key" = [])),
    params(("id" = Uuid, Path)), request_body = SaveReport,
    responses((status = 200, body = SavedReport), (status = 400), (status = 404)))]
pub async fn replace(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<SaveReport>,
) -> Result<Json<SavedReport>> {
    caller.require(Role::Analyst, "change reports")?;
    load(&state, &caller, id).await?;
    check(&state, &caller, &body).await?;
    let row: Row = sqlx::query_as(
        "UPDATE oneo.reports SET name = $3, spec = $4, updated_at = now()
          WHERE id = $1 AND workspace_id = $2 RETURNING id, name, spec, created_at, updated_at",
    )
    .bind(id)
    .bind(caller.workspace_id)
    .bind(body.name.trim())
    .bind(sqlx::types::Json(&body.spec))
    .fetch_one(&state.pool)
    .await?;
    Ok(Json(saved(row)))
}

#[utoipa::path(delete, path = "/v1/reports/{id}", tag = "reports", security(("api_key" = [])),
    params(("id" = Uuid, Path)), responses((status = 204), (status = 404)))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    caller.require(Role::Analyst, "delete reports")?;
    let gone = sqlx::query("DELETE FROM oneo.reports WHERE id = $1 AND workspace_id = $2")
        .bind(id)
        .bind(caller.workspace_id)
        .execute(&state.pool)
        .await?
        .rows_affected();
    if gone == 0 {
        return Err(ApiError::NotFound(format!(
            "there is no report {id} in this workspace"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A saved report's run: extra filters for this run only, and how fresh it must be.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunSaved {
    /// ANDed with the report's own filters (and its filter logic).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    filters: Vec<Filter>,
    min_lsn: Option<String>,
    wait_ms: Option<u64>,
    as_of: Option<DateTime<Utc>>,
}

pub(crate) async fn run_saved(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    run: RunSaved,
) -> Result<ReportResult> {
    let report = load(state, caller, id).await?;
    let spec = parse_spec(report.spec)?.with_filters(run.filters);
    let consistency = Consistency {
        min_lsn: run.min_lsn,
        wait_ms: run.wait_ms,
        as_of: run.as_of,
    };
    answer(state, caller, &consistency, &spec).await
}

#[utoipa::path(post, path = "/v1/reports/{id}/run", tag = "reports", security(("api_key" = [])),
    params(("id" = Uuid, Path)), request_body(content = RunSaved, description = "optional"),
    responses((status = 200, description = "as /v1/reports/run answers", body = Object), (status = 404)))]
pub async fn run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<Uuid>,
    body: axum::body::Bytes,
) -> Result<Json<ReportResult>> {
    // The body is optional: an empty one runs the report as saved.
    let run: RunSaved = if body.iter().all(u8::is_ascii_whitespace) {
        RunSaved::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?
    };
    Ok(Json(run_saved(&state, &caller, id, run).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// `csv`, `xlsx` or `pdf`.
    format: String,
}

pub(crate) const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
pub(crate) const CSV: &str = "text/csv; charset=utf-8";
pub(crate) const PDF: &str = "application/pdf";

#[utoipa::path(get, path = "/v1/reports/{id}/export", tag = "reports", security(("api_key" = [])),
    params(("id" = Uuid, Path), ExportParams),
    responses((status = 200, description = "`csv`: a header row of column names, then the rows (a matrix as one row per cell). `xlsx`: typed cells (numbers, dates, booleans); a summary's subtotals and total in bold below its rows; a matrix as a pivot with row and column totals. `pdf`: the title, the table and its totals on A4 pages", content_type = "text/csv", body = String),
              (status = 400, description = "an unknown format"), (status = 404)))]
pub async fn export(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<Uuid>,
    ApiQuery(params): ApiQuery<ExportParams>,
) -> Result<Response> {
    if !matches!(params.format.as_str(), "csv" | "xlsx" | "pdf") {
        return Err(ApiError::Validation(Issues::one(
            "format",
            format!(
                "`{}` is not an export format here; use csv, xlsx or pdf",
                params.format
            ),
        )));
    }
    let report = load(&state, &caller, id).await?;
    let name = file_name(&report.name);
    let spec = parse_spec(report.spec.clone())?;
    if params.format == "csv" && spec.kind == ReportKind::Tabular {
        // Every row, streamed: a tabular report may hold millions.
        let body = crate::routes::reports::stream_csv(&state, &caller, &spec).await?;
        return Ok(attachment(CSV, &name, "csv", body));
    }
    let result = run_saved(&state, &caller, id, RunSaved::default()).await?;
    let groupings = report.spec["groupings"].as_array().map_or(0, Vec::len);
    let (body, content_type) = report_file(&report.name, &params.format, &result, groupings)?;
    Ok(attachment(content_type, &name, &params.format, body))
}

/// A report's answer as a file of `format` (`pdf`, `xlsx`, else `csv`), and its content type.
pub(crate) fn report_file(
    name: &str,
    format: &str,
    result: &ReportResult,
    groupings: usize,
) -> Result<(Vec<u8>, &'static str)> {
    Ok(match format {
        "pdf" => (report_pdf(name, result)?, PDF),
        "xlsx" => (
            export::to_xlsx(result, groupings)
                .map_err(|e| ApiError::Query(format!("XLSX: {e}")))?,
            XLSX,
        ),
        _ => (
            export::to_csv(result).map_err(|e| ApiError::Query(format!("CSV: {e}")))?,
            CSV,
        ),
    })
}

/// A download: the body with its content type, saved by the browser as `name.ext`.
pub(crate) fn attachment(
    content_type: &str,
    name: &str,
    ext: &str,
    body: impl Into<axum::body::Body>,
) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.{ext}\""),
            ),
        ],
        body.into(),
    )
        .into_response()
}

/// A report's name as a safe file name.
pub(crate) fn file_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "report".into() } else { s }
}

/// A report's answer as a PDF: its title, when it was computed, its table and totals.
fn report_pdf(name: &str, result: &ReportResult) -> Result<Vec<u8>> {
    let answer = serde_json::json!({"result": result});
    let lsn = result.freshness.lsn.as_deref().unwrap_or("none yet");
    let widget = oneo_dashboards::PdfWidget {
        title: name,
        kind: oneo_dashboards::WidgetKind::Report,
        chart: None,
        answer: &answer,
        footnote: format!("{} rows - LSN {lsn}", result.total),
    };
    let subtitle = format!(
        "Report - generated {}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    oneo_dashboards::render_pdf(name, &subtitle, &[widget], oneo_dashboards::PaperSize::A4)
        .map_err(crate::dashboards::dashboard_error)
}
