//! `/v1/models…` (definitions, versions, training, deployment, scoring) and
//! `/v1/scores/{object}/{id}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use oneo_catalog::Issues;
use oneo_models::{FeatureSpec, ModelKind};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ApiJson, Result};
use crate::models::{MODEL_COLUMNS, ModelRow, ScoreRun, load_model, model_error};

/// `POST /v1/models`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewModel {
    /// An API name: the scored records get a number field of this name holding the score.
    pub name: String,
    /// `lead_score`, `win_probability` or `churn_risk`.
    pub kind: String,
    /// Days after the cutoff in which the outcome counts (default 90).
    #[serde(default)]
    pub horizon_days: Option<i32>,
    /// Fields of the scored object added as features.
    #[serde(default)]
    pub fields: Vec<String>,
}

/// A trained version.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ModelVersion {
    version: i32,
    /// `training`, `validated`, `failed`, `deployed` or `archived`.
    status: String,
    progress: Option<String>,
    error: Option<String>,
    #[schema(value_type = Option<Object>)]
    metrics: Option<sqlx::types::Json<Value>>,
    #[schema(value_type = Option<Object>)]
    importance: Option<sqlx::types::Json<Value>>,
    train_rows: Option<i32>,
    validation_rows: Option<i32>,
    /// The Delta version of each lake table it was trained on.
    #[schema(value_type = Option<Object>)]
    table_versions: Option<sqlx::types::Json<Value>>,
    /// Per feature, the population stability index between the training rows and the
    /// records last scored (`{feature, psi}`; above 0.25: the population moved).
    #[schema(value_type = Option<Object>)]
    drift: Option<sqlx::types::Json<Value>>,
    drift_at: Option<DateTime<Utc>>,
    artifact: Option<String>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    deployed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelDetail {
    #[serde(flatten)]
    model: ModelRow,
    versions: Vec<ModelVersion>,
}

fn no_model(id: &str) -> ApiError {
    ApiError::NotFound(format!("there is no model {id}"))
}

async fn model(state: &AppState, caller: &Caller, id: &str) -> Result<ModelRow> {
    let uuid = Uuid::parse_str(id).map_err(|_| no_model(id))?;
    load_model(&state.pool, caller.workspace_id, uuid)
        .await?
        .ok_or_else(|| no_model(id))
}

async fn versions(state: &AppState, model: Uuid) -> Result<Vec<ModelVersion>> {
    Ok(sqlx::query_as(
        "SELECT version, status, progress, error, metrics, importance, train_rows, validation_rows,
                table_versions, drift, drift_at, artifact, created_at, finished_at, deployed_at
           FROM oneo.model_versions WHERE model_id = $1 ORDER BY version DESC",
    )
    .bind(model)
    .fetch_all(&state.pool)
    .await?)
}

#[utoipa::path(get, path = "/v1/models", tag = "models", security(("api_key" = [])),
    responses((status = 200, body = [ModelRow])))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<ModelRow>>> {
    let rows: Vec<ModelRow> = sqlx::query_as(crate::db::audited(&format!(
        "SELECT {MODEL_COLUMNS} FROM oneo.models WHERE workspace_id = $1 ORDER BY name"
    )))
    .bind(caller.workspace_id)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(rows))
}

#[utoipa::path(post, path = "/v1/models", tag = "models", security(("api_key" = [])),
    request_body = NewModel, responses((status = 201, body = ModelRow), (status = 400), (status = 409)))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(new): ApiJson<NewModel>,
) -> Result<(StatusCode, Json<ModelRow>)> {
    caller.require(Role::Admin, "define models")?;
    let mut issues = Vec::new();
    if let Err(m) = oneo_catalog::check_api_name(&new.name) {
        issues.push(("name", m));
    }
    let kind = ModelKind::parse(&new.kind);
    if kind.is_none() {
        issues.push((
            "kind",
            format!(
                "`{}` is not a model kind; use lead_score, win_probability or churn_risk",
                new.kind
            ),
        ));
    }
    let horizon = new.horizon_days.unwrap_or(90);
    if !(1..=3650).contains(&horizon) {
        issues.push((
            "horizon_days",
            format!("{horizon} is out of range: give 1 to 3650 days"),
        ));
    }
    if let Some((part, message)) = issues.into_iter().next() {
        return Err(ApiError::Validation(Issues::one(part, message)));
    }
    let spec = FeatureSpec {
        kind: kind.unwrap_or(ModelKind::WinProbability),
        horizon_days: u32::try_from(horizon).unwrap_or(90),
        fields: new.fields.clone(),
    };
    let (_, schema) = crate::routes::reports::workspace_schema(&state, caller.workspace_id).await?;
    oneo_models::check(&schema, &spec).map_err(model_error)?;
    let row: Option<ModelRow> = sqlx::query_as(crate::db::audited(&format!(
        "INSERT INTO oneo.models (id, workspace_id, name, kind, horizon_days, fields)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (workspace_id, name) DO NOTHING
         RETURNING {MODEL_COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(caller.workspace_id)
    .bind(&new.name)
    .bind(&new.kind)
    .bind(horizon)
    .bind(json!(new.fields))
    .fetch_optional(&state.pool)
    .await?;
    let row = row.ok_or_else(|| {
        ApiError::conflict(
            "duplicate",
            format!("a model named `{}` exists already", new.name),
            vec![],
        )
    })?;
    Ok((StatusCode::CREATED, Json(row)))
}

#[utoipa::path(get, path = "/v1/models/{id}", tag = "models", security(("api_key" = [])),
    params(("id" = String, Path, description = "the model id")),
    responses((status = 200, body = ModelDetail), (status = 404)))]
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<ModelDetail>> {
    let model = model(&state, &caller, &id).await?;
    let versions = versions(&state, model.id).await?;
    Ok(Json(ModelDetail { model, versions }))
}

#[utoipa::path(post, path = "/v1/models/{id}/train", tag = "models", security(("api_key" = [])),
    params(("id" = String, Path, description = "the model id")),
    responses((status = 202, body = Object), (status = 404), (status = 503)))]
pub async fn train(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>)> {
    caller.require(Role::Admin, "train models")?;
    let model = model(&state, &caller, &id).await?;
    crate::routes::reports::lake_config(&state)?;
    let version = crate::models::new_version(&state.pool, caller.workspace_id, model.id).await?;
    tokio::spawn(crate::models::train(
        state.clone(),
        caller.workspace_id,
        model.clone(),
        version,
    ));
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"model": model.id, "version": version, "status": "training"})),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// A validated (or earlier deployed) version; deploying an older one rolls back.
    pub version: i32,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Deployed {
    model: ModelRow,
    scoring: ScoreRun,
}

#[utoipa::path(post, path = "/v1/models/{id}/deploy", tag = "models", security(("api_key" = [])),
    params(("id" = String, Path, description = "the model id")), request_body = Deploy,
    responses((status = 200, body = Deployed), (status = 400), (status = 404), (status = 409)))]
pub async fn deploy(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Deploy>,
) -> Result<Json<Deployed>> {
    caller.require(Role::Admin, "deploy models")?;
    let model = model(&state, &caller, &id).await?;
    let (model, scoring) =
        crate::models::deploy(&state, caller.workspace_id, &model, body.version).await?;
    Ok(Json(Deployed { model, scoring }))
}

#[utoipa::path(post, path = "/v1/models/{id}/score", tag = "models", security(("api_key" = [])),
    params(("id" = String, Path, description = "the model id")),
    responses((status = 200, body = ScoreRun), (status = 404), (status = 409)))]
pub async fn score(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<ScoreRun>> {
    caller.require(Role::Admin, "score models")?;
    let model = model(&state, &caller, &id).await?;
    Ok(Json(
        crate::models::score(&state, caller.workspace_id, &model).await?,
    ))
}

/// A record's score by one model.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct RecordScore {
    model_id: Uuid,
    model: String,
    kind: String,
    version: i32,
    /// 1–99.
    score: i32,
    probability: f64,
    /// The strongest factors each way: `{feature, text, points}`.
    #[schema(value_type = Object)]
    factors: sqlx::types::Json<Value>,
    updated_at: DateTime<Utc>,
}

#[utoipa::path(get, path = "/v1/scores/{object}/{id}", tag = "models", security(("api_key" = [])),
    params(("object" = String, Path, description = "the object's API name"), ("id" = String, Path, description = "the record id")),
    responses((status = 200, body = [RecordScore]), (status = 404)))]
pub async fn record_scores(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((object, id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let not_found = || ApiError::NotFound(format!("there is no `{object}` record {id}"));
    let record = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let meta = crate::db::schema::load_object(&state.pool, caller.workspace_id, &object)
        .await?
        .ok_or_else(|| ApiError::no_object(&object))?;
    // A deleted record has no score, whatever a scoring pass left behind.
    let exists: bool = sqlx::query_scalar(crate::db::audited(&format!(
        "SELECT EXISTS (SELECT 1 FROM {} WHERE id = $1)",
        meta.table()
    )))
    .bind(record)
    .fetch_one(&state.pool)
    .await?;
    if !exists {
        return Err(not_found());
    }
    let scores: Vec<RecordScore> = sqlx::query_as(
        "SELECT model_id, model, kind, version, score, probability::float8 AS probability, factors, updated_at
           FROM oneo.scores WHERE workspace_id = $1 AND object = $2 AND record_id = $3 ORDER BY model",
    )
    .bind(caller.workspace_id)
    .bind(&object)
    .bind(record)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(
        json!({"object": object, "id": record, "scores": scores}),
    ))
}
