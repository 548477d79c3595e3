pub(crate) mod dashboard_page;
pub(crate) mod dashboards;
pub(crate) mod health;
pub(crate) mod hooks;
pub(crate) mod ingest;
pub(crate) mod keys;
pub(crate) mod models;
pub(crate) mod objects;
pub(crate) mod records;
pub(crate) mod reports;
pub(crate) mod saved;
pub(crate) mod schedules;
pub(crate) mod workflow_runs;
pub(crate) mod workflows;
pub(crate) mod workspace;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router, middleware};
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::{AppState, auth};

/// Bulk bodies of 10,000 records need room; everything else is small.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// The whole HTTP surface as a function of state, so tests drive it in process.
pub fn app(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/v1/objects", get(objects::list).post(objects::create))
        .route(
            "/v1/objects/{object}",
            get(objects::get)
                .patch(objects::update)
                .delete(objects::delete),
        )
        .route("/v1/objects/{object}/fields", post(objects::add_field))
        .route(
            "/v1/objects/{object}/fields/{field}",
            patch(objects::update_field).delete(objects::delete_field),
        )
        .route(
            "/v1/records/{object}",
            get(records::list).post(records::create),
        )
        .route("/v1/records/{object}/bulk", post(records::bulk))
        .route(
            "/v1/records/{object}/{id}",
            get(records::get)
                .patch(records::update)
                .delete(records::delete),
        )
        .route("/v1/models", get(models::list).post(models::create))
        .route("/v1/models/{id}", get(models::get))
        .route("/v1/models/{id}/train", post(models::train))
        .route("/v1/models/{id}/deploy", post(models::deploy))
        .route("/v1/models/{id}/score", post(models::score))
        .route("/v1/scores/{object}/{id}", get(models::record_scores))
        .route("/v1/reports/run", post(reports::run))
        .route("/v1/reports", get(saved::list).post(saved::create))
        .route(
            "/v1/reports/{id}",
            get(saved::get).put(saved::replace).delete(saved::delete),
        )
        .route("/v1/reports/{id}/run", post(saved::run))
        .route("/v1/reports/{id}/export", get(saved::export))
        .route("/v1/sql", post(reports::sql))
        .route(
            "/v1/dashboards",
            get(dashboards::list).post(dashboards::create),
        )
        .route(
            "/v1/dashboards/{id}",
            get(dashboards::get)
                .put(dashboards::replace)
                .delete(dashboards::delete),
        )
        .route("/v1/dashboards/{id}/data", get(dashboards::data))
        .route("/v1/dashboards/{id}/refresh", post(dashboards::refresh))
        .route("/v1/dashboards/{id}/export", get(dashboards::export))
        .route("/v1/dashboards/{id}/share", post(dashboard_page::share))
        .route(
            "/v1/schedules",
            get(schedules::list).post(schedules::create),
        )
        .route(
            "/v1/schedules/{id}",
            get(schedules::get)
                .put(schedules::replace)
                .delete(schedules::delete),
        )
        .route("/v1/schedules/{id}/run", post(schedules::run))
        .route("/v1/deliveries", get(schedules::deliveries))
        .route(
            "/v1/workflows",
            get(workflows::list).post(workflows::create),
        )
        .route(
            "/v1/workflows/{id}",
            get(workflows::get)
                .put(workflows::replace)
                .delete(workflows::delete),
        )
        .route("/v1/workflows/{id}/enable", post(workflows::enable))
        .route("/v1/workflows/{id}/disable", post(workflows::disable))
        .route("/v1/workflows/{id}/versions", get(workflows::versions))
        .route("/v1/workflow-runs", get(workflow_runs::list))
        .route("/v1/workflow-runs/{id}", get(workflow_runs::get))
        .route(
            "/v1/workflow-runs/{id}/approve",
            post(workflow_runs::approve),
        )
        .route("/v1/workflow-runs/{id}/reject", post(workflow_runs::reject))
        .route(
            "/v1/workspace",
            get(workspace::get).patch(workspace::update),
        )
        .route("/v1/api-keys", get(keys::list).post(keys::create))
        .route("/v1/ingest/status", get(ingest::status))
        .route("/v1/ingest/metrics", get(ingest::metrics))
        .route("/v1/ingest/tables/{object}/resync", post(ingest::resync))
        .route("/v1/api-keys/{id}", axum::routing::delete(keys::revoke))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(health::openapi))
        // The page authenticates by its own cookie, not the bearer header.
        .route("/dashboards/{id}", get(dashboard_page::page))
        .route("/dashboards/{id}/export.pdf", get(dashboard_page::page_pdf))
        // A signed link in a delivery's mail, for recipients without a key.
        .route("/deliveries/files/{id}", get(schedules::download))
        // A workflow's webhook: the secret in the path is the credential.
        .route("/hooks/{id}/{secret}", post(hooks::hook))
        .merge(v1)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), workspace = tracing::field::Empty)
        }))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint; see /openapi.json".into())
}

/// A panic anywhere under a request (a bug, ours or a dependency's) answers 500 in the usual
/// error shape instead of dropping the connection.
fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown");
    tracing::error!(panic = what, "request panicked");
    let body = serde_json::json!({"error": {"code": "internal", "message": "internal error", "details": []}});
    (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
}

async fn method_not_allowed() -> Response {
    let body = serde_json::json!({"error": {"code": "method_not_allowed", "message": "this endpoint does not take that method; see /openapi.json", "details": []}});
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}

/// A write's response: the body plus the WAL position it is durable at.
pub(crate) async fn written(
    state: &AppState,
    status: StatusCode,
    body: Option<serde_json::Value>,
) -> Result<Response, ApiError> {
    let lsn = crate::db::current_lsn(&state.pool).await?;
    let mut resp = match body {
        Some(b) => (status, Json(b)).into_response(),
        None => status.into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&lsn) {
        resp.headers_mut().insert("oneo-lsn", v);
    }
    Ok(resp)
}
