//! `POST /hooks/{workflow id}/{secret}`: a webhook starts a run of its workflow. The secret
//! in the path is the credential (no API key); the body must hold the trigger's declared
//! fields, each read as its type. An `Idempotency-Key` header makes a retried call start
//! the run once.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use oneo_catalog::{FieldDef, Issue, Issues};
use oneo_workflows::{Trigger, WorkflowSpec};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiError, Result};

/// The same answer for an unknown workflow and a wrong secret: a caller learns nothing.
fn no_hook() -> ApiError {
    ApiError::NotFound("there is no webhook at this address".into())
}

/// The body's fields, checked against the declared ones and read as their types.
fn fields_of(trigger: &Trigger, body: &Value) -> Result<Map<String, Value>> {
    let Trigger::Webhook { fields } = trigger else {
        return Err(no_hook());
    };
    let Some(given) = body.as_object() else {
        return Err(ApiError::Validation(Issues::one(
            "body",
            "must be a JSON object of the webhook's fields",
        )));
    };
    let mut issues = Vec::new();
    let mut out = Map::new();
    for f in fields {
        match given.get(&f.name).filter(|v| !v.is_null()) {
            None if f.required => issues.push(Issue::new(f.name.clone(), "is required")),
            None => {}
            Some(v) => match FieldDef::new(&f.name, &f.name, f.field_type).parse_value(v) {
                Ok(value) => {
                    out.insert(f.name.clone(), value.to_json());
                }
                Err(e) => issues.push(Issue::new(f.name.clone(), e)),
            },
        }
    }
    let declared: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    for k in given.keys().filter(|k| !declared.contains(&k.as_str())) {
        issues.push(Issue::new(
            k.clone(),
            format!(
                "is not a field of this webhook (it takes: {})",
                declared.join(", ")
            ),
        ));
    }
    if issues.is_empty() {
        Ok(out)
    } else {
        Err(ApiError::Validation(Issues(issues)))
    }
}

pub async fn hook(
    State(state): State<AppState>,
    Path((id, secret)): Path<(Uuid, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>)> {
    let row: Option<(Uuid, i32, bool, sqlx::types::Json<Value>, String)> = sqlx::query_as(
        "SELECT workspace_id, version, enabled, spec, hook_secret FROM oneo.workflows WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&state.pool)
    .await?;
    let Some((workspace, version, enabled, spec, stored)) = row else {
        return Err(no_hook());
    };
    // Digests compared, so the time taken says nothing about the secret.
    if Sha256::digest(secret.as_bytes()) != Sha256::digest(stored.as_bytes()) {
        return Err(no_hook());
    }
    let spec: WorkflowSpec = serde_json::from_value(spec.0).map_err(|_| no_hook())?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    let fields = fields_of(&spec.trigger, &body)?;
    if !enabled {
        return Err(ApiError::conflict(
            "workflow_disabled",
            "this workflow is disabled; enable it to take webhooks",
            vec![],
        ));
    }
    let source = match headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
        Some(k) if !k.is_empty() && k.len() <= 200 => format!("webhook/key:{k}"),
        Some(_) => {
            return Err(ApiError::Validation(Issues::one(
                "Idempotency-Key",
                "must be 1 to 200 visible ASCII characters",
            )));
        }
        None => format!("webhook/{}", Uuid::now_v7()),
    };
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO oneo.workflow_runs (id, workflow_id, workspace_id, version, status, source, trigger)
         VALUES ($1, $2, $3, $4, 'pending', $5, $6)
         ON CONFLICT (workflow_id, source) DO NOTHING RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(id)
    .bind(workspace)
    .bind(version)
    .bind(&source)
    .bind(json!({"op": "webhook", "fields": fields}))
    .fetch_optional(&state.pool)
    .await?;
    if inserted.is_some() {
        crate::workflow_worker::announce(&state.pool).await?;
    }
    let (run, duplicate) = match inserted {
        Some(run) => (run, false),
        None => (
            sqlx::query_scalar(
                "SELECT id FROM oneo.workflow_runs WHERE workflow_id = $1 AND source = $2",
            )
            .bind(id)
            .bind(&source)
            .fetch_one(&state.pool)
            .await?,
            true,
        ),
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"run_id": run, "duplicate": duplicate})),
    ))
}
