//! Predictive models behind `/v1/models`: definitions and versions are rows in PostgreSQL;
//! a version trains in the background from the lake's history (`oneo_models`), its artifact
//! goes to the lake's object store, and the deployed version's scores are written to
//! `oneo.scores` (which streams into the lake) and to a score field on each record through
//! the normal write path, so the record, its history and its change stream carry them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use oneo_catalog::{FieldDef, FieldType, Issues};
use oneo_models::{
    ArtifactStore, FeatureSpec, ModelError, ModelKind, Purpose, Requirements, Score, Scorer,
};
use oneo_query::WorkspaceSession;
use serde::Serialize;
use serde_json::{Map, Value, json};
use sqlx::PgPool;
use tracing::Instrument;
use uuid::Uuid;

use crate::AppState;
use crate::db::records::{Mode, validate};
use crate::db::schema::load_with_related;
use crate::db::write::{self, WriteItem};
use crate::error::{ApiError, Result};

/// A model's definition.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ModelRow {
    pub id: Uuid,
    pub name: String,
    /// `lead_score`, `win_probability` or `churn_risk`.
    pub kind: String,
    pub horizon_days: i32,
    #[schema(value_type = Vec<String>)]
    pub fields: sqlx::types::Json<Vec<String>>,
    /// The version scoring uses.
    pub deployed: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ModelRow {
    pub fn spec(&self) -> Result<FeatureSpec> {
        let kind = ModelKind::parse(&self.kind)
            .ok_or_else(|| ApiError::BadRequest(format!("unknown model kind `{}`", self.kind)))?;
        Ok(FeatureSpec {
            kind,
            horizon_days: u32::try_from(self.horizon_days).unwrap_or(90),
            fields: self.fields.0.clone(),
        })
    }
}

pub(crate) const MODEL_COLUMNS: &str =
    "id, name, kind, horizon_days, fields, deployed, created_at, updated_at";

pub async fn load_model(pool: &PgPool, workspace: Uuid, id: Uuid) -> Result<Option<ModelRow>> {
    Ok(sqlx::query_as(crate::db::audited(&format!(
        "SELECT {MODEL_COLUMNS} FROM oneo.models WHERE id = $1 AND workspace_id = $2"
    )))
    .bind(id)
    .bind(workspace)
    .fetch_optional(pool)
    .await?)
}

/// A session over the workspace's lake that sees the change histories too.
pub async fn lake_session(state: &AppState, workspace: Uuid) -> Result<WorkspaceSession> {
    let (cfg, schema) = crate::routes::reports::workspace_schema(state, workspace).await?;
    let session = WorkspaceSession::new(&cfg, schema).map_err(model_error_of_query)?;
    session.add_history().map_err(model_error_of_query)?;
    Ok(session)
}

fn model_error_of_query(e: oneo_query::QueryError) -> ApiError {
    ApiError::Query(e.to_string())
}

/// A models-crate error as the API answers it: a definition problem names its part.
pub fn model_error(e: ModelError) -> ApiError {
    match e {
        ModelError::Definition { part, message } => {
            ApiError::Validation(Issues::one(&part, message))
        }
        e @ ModelError::NotEnoughData(_) => {
            ApiError::conflict("not_enough_data", e.to_string(), vec![])
        }
        other => ApiError::Query(other.to_string()),
    }
}

fn artifacts(state: &AppState) -> Result<ArtifactStore> {
    let lake = crate::routes::reports::lake_config(state)?;
    ArtifactStore::new(&lake.lake_root).map_err(model_error)
}

async fn set_progress(pool: &PgPool, model: Uuid, version: i32, progress: &str) {
    let r = sqlx::query(
        "UPDATE oneo.model_versions SET progress = $3 WHERE model_id = $1 AND version = $2",
    )
    .bind(model)
    .bind(version)
    .bind(progress)
    .execute(pool)
    .await;
    if let Err(e) = r {
        tracing::warn!(%model, version, error = %e, "recording training progress failed");
    }
}

/// Trains `version` of `model` and records the outcome on the version: `validated` with
/// its metrics, or `failed` with the reason. Runs in the background.
pub async fn train(state: AppState, workspace: Uuid, model: ModelRow, version: i32) {
    let span = tracing::info_span!("train_model", model = %model.id, version);
    let outcome = train_inner(&state, workspace, &model, version)
        .instrument(span)
        .await;
    let r = match outcome {
        Ok(()) => return,
        Err(e) => {
            let message = match e {
                ApiError::Validation(issues) => issues.to_string(),
                other => other.to_string(),
            };
            tracing::warn!(error = %message, "training failed");
            sqlx::query(
                "UPDATE oneo.model_versions SET status = 'failed', error = $3, progress = NULL, finished_at = now()
                  WHERE model_id = $1 AND version = $2",
            )
            .bind(model.id)
            .bind(version)
            .bind(message)
            .execute(&state.pool)
            .await
        }
    };
    if let Err(e) = r {
        tracing::error!(error = %e, "recording a failed training failed");
    }
}

async fn train_inner(
    state: &AppState,
    workspace: Uuid,
    model: &ModelRow,
    version: i32,
) -> Result<()> {
    let spec = model.spec()?;
    set_progress(
        &state.pool,
        model.id,
        version,
        "reading features from the lake",
    )
    .await;
    let session = lake_session(state, workspace).await?;
    let rows = oneo_models::extract(&session, &spec, Purpose::Training)
        .await
        .map_err(model_error)?;
    set_progress(
        &state.pool,
        model.id,
        version,
        &format!("training on {} labelled rows", rows.len()),
    )
    .await;
    let for_training = spec.clone();
    let (trained, rows) = tokio::task::spawn_blocking(move || {
        let t = Scorer::train(
            &for_training,
            &rows,
            &Requirements::default(),
            Default::default(),
        );
        (t, rows)
    })
    .await
    .map_err(|e| ApiError::Query(format!("training stopped: {e}")))?;
    let trained = trained.map_err(model_error)?;
    let path = ArtifactStore::relative_path(workspace, model.id, version);
    artifacts(state)?
        .put(&path, &trained.scorer)
        .await
        .map_err(model_error)?;
    let importance: Vec<Value> = trained
        .importance
        .iter()
        .map(|(f, s)| json!({"feature": f, "share": s}))
        .collect();
    sqlx::query(
        "UPDATE oneo.model_versions
            SET status = 'validated', progress = NULL, metrics = $3, importance = $4, train_rows = $5,
                validation_rows = $6, table_versions = $7, artifact = $8, finished_at = now()
          WHERE model_id = $1 AND version = $2",
    )
    .bind(model.id)
    .bind(version)
    .bind(json!(trained.metrics))
    .bind(Value::Array(importance))
    .bind(i32::try_from(trained.train_rows).unwrap_or(i32::MAX))
    .bind(i32::try_from(trained.validation_rows).unwrap_or(i32::MAX))
    .bind(json!(rows.versions))
    .bind(path)
    .execute(&state.pool)
    .await?;
    Ok(())
}

/// What one scoring pass did.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct ScoreRun {
    /// Open records scored.
    pub scored: usize,
    /// Scores that changed (or are new), and so were written.
    pub changed: usize,
    /// Scores removed: their records were closed or deleted.
    pub removed: usize,
}

/// The record field a model's scores are written to: named as the model.
fn score_field(model: &ModelRow) -> FieldDef {
    FieldDef {
        min: Some(1.into()),
        max: Some(99.into()),
        scale: Some(0),
        ..FieldDef::new(
            &model.name,
            &format!("Score: {}", model.name),
            FieldType::Number,
        )
    }
}

/// Adds the score field to the scored object unless it has it; refuses a field of that
/// name that isn't a whole number.
pub async fn ensure_score_field(state: &AppState, workspace: Uuid, model: &ModelRow) -> Result<()> {
    let object = model.spec()?.kind.object();
    let mut tx = state.pool.begin().await?;
    crate::db::ddl::limit_lock_wait(&mut tx).await?;
    let ws = crate::db::schema::WorkspaceSchema::load(&mut *tx, workspace).await?;
    let meta = ws
        .object(object)
        .ok_or_else(|| ApiError::no_object(object))?;
    if let Some(existing) = meta.defs().into_iter().find(|f| f.api_name == model.name) {
        if existing.field_type != FieldType::Number {
            return Err(ApiError::conflict(
                "score_field_taken",
                format!(
                    "`{object}.{}` is a {} field; the model's scores need a number field of its name",
                    model.name,
                    existing.field_type.as_str()
                ),
                vec![],
            ));
        }
        return Ok(());
    }
    let mut def = score_field(model);
    def.validate(object, &meta.defs(), &ws)?;
    crate::db::ddl::add_field(&mut tx, &ws, meta, def, false).await?;
    tx.commit().await?;
    Ok(())
}

/// Scores every open record with the deployed version: changed scores are written to
/// `oneo.scores` and to the records' score field; scores of records no longer open are
/// removed. A pass that changes nothing writes nothing.
pub async fn score(state: &AppState, workspace: Uuid, model: &ModelRow) -> Result<ScoreRun> {
    let span = tracing::info_span!("score_model", model = %model.id);
    score_inner(state, workspace, model).instrument(span).await
}

async fn score_inner(state: &AppState, workspace: Uuid, model: &ModelRow) -> Result<ScoreRun> {
    let version = model.deployed.ok_or_else(|| {
        ApiError::conflict(
            "not_deployed",
            "the model has no deployed version to score with",
            vec![],
        )
    })?;
    let path: Option<String> = sqlx::query_scalar(
        "SELECT artifact FROM oneo.model_versions WHERE model_id = $1 AND version = $2",
    )
    .bind(model.id)
    .bind(version)
    .fetch_one(&state.pool)
    .await?;
    let path = path.ok_or_else(|| ApiError::Query(format!("version {version} has no artifact")))?;
    let scorer = artifacts(state)?.get(&path).await.map_err(model_error)?;
    let session = lake_session(state, workspace).await?;
    let today = Utc::now().date_naive();
    let rows = oneo_models::extract(&session, &scorer.spec, Purpose::Scoring { today })
        .await
        .map_err(model_error)?;
    let (scores, drift) =
        tokio::task::spawn_blocking(move || (scorer.score(&rows), scorer.drift(&rows)))
            .await
            .map_err(|e| ApiError::Query(format!("scoring stopped: {e}")))?;
    let drift: Vec<Value> = drift
        .iter()
        .map(|(f, psi)| json!({"feature": f, "psi": (psi * 1e4).round() / 1e4}))
        .collect();
    sqlx::query(
        "UPDATE oneo.model_versions SET drift = $3, drift_at = now() WHERE model_id = $1 AND version = $2",
    )
    .bind(model.id)
    .bind(version)
    .bind(Value::Array(drift))
    .execute(&state.pool)
    .await?;
    write_scores(state, workspace, model, version, &scores).await
}

async fn write_scores(
    state: &AppState,
    workspace: Uuid,
    model: &ModelRow,
    version: i32,
    scores: &[Score],
) -> Result<ScoreRun> {
    let object = model.spec()?.kind.object();
    let (meta, related) = {
        let mut conn = state.pool.acquire().await?;
        load_with_related(&mut conn, workspace, object)
            .await?
            .ok_or_else(|| ApiError::no_object(object))?
    };
    // The lake may not have seen the latest deletes yet: only records that still exist are
    // scored.
    let wanted: Vec<Uuid> = scores
        .iter()
        .filter_map(|s| Uuid::parse_str(&s.id).ok())
        .collect();
    let ids: std::collections::HashSet<Uuid> = sqlx::query_scalar(crate::db::audited(&format!(
        "SELECT id FROM {} WHERE id = ANY($1)",
        meta.table()
    )))
    .bind(&wanted)
    .fetch_all(&state.pool)
    .await?
    .into_iter()
    .collect();
    let scores: Vec<&Score> = scores
        .iter()
        .filter(|s| Uuid::parse_str(&s.id).is_ok_and(|id| ids.contains(&id)))
        .collect();
    let mut run = ScoreRun {
        scored: scores.len(),
        ..Default::default()
    };
    let current: HashMap<Uuid, (i32, i32)> = sqlx::query_as::<_, (Uuid, i32, i32)>(
        "SELECT record_id, score, version FROM oneo.scores WHERE model_id = $1",
    )
    .bind(model.id)
    .fetch_all(&state.pool)
    .await?
    .into_iter()
    .map(|(id, s, v)| (id, (s, v)))
    .collect();
    let changed: Vec<&Score> = scores
        .iter()
        .copied()
        .filter(|s| {
            let id = Uuid::parse_str(&s.id).ok();
            id.and_then(|id| current.get(&id)) != Some(&(i32::from(s.score), version))
        })
        .collect();
    run.changed = changed.len();
    for chunk in changed.chunks(1000) {
        let mut tx = state.pool.begin().await?;
        let mut items = Vec::with_capacity(chunk.len());
        for s in chunk {
            let Ok(id) = Uuid::parse_str(&s.id) else {
                continue;
            };
            sqlx::query(
                "INSERT INTO oneo.scores (id, workspace_id, model_id, model, kind, object, record_id, version, score, probability, factors)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, round($10::numeric, 6), $11)
                 ON CONFLICT (model_id, record_id) DO UPDATE
                    SET version = EXCLUDED.version, score = EXCLUDED.score, probability = EXCLUDED.probability,
                        factors = EXCLUDED.factors, updated_at = now()",
            )
            .bind(Uuid::now_v7())
            .bind(workspace)
            .bind(model.id)
            .bind(&model.name)
            .bind(&model.kind)
            .bind(object)
            .bind(id)
            .bind(version)
            .bind(i32::from(s.score))
            .bind(s.probability)
            .bind(json!(s.factors))
            .execute(&mut *tx)
            .await?;
            let body = Map::from_iter([(model.name.clone(), Value::from(s.score))]);
            let values = validate(&meta, &body, Mode::Update)
                .map_err(|i| ApiError::Validation(Issues(i)))?;
            items.push(WriteItem {
                id,
                version: None,
                values,
            });
        }
        write::update(&mut tx, &meta, &related, &items)
            .await
            .map_err(|e| ApiError::Query(format!("writing scores to `{object}` failed: {e:?}")))?;
        tx.commit().await?;
    }
    // Records no longer open (closed, or deleted) lose their score, and their field.
    let gone: Vec<Uuid> = current
        .keys()
        .filter(|id| !ids.contains(id))
        .copied()
        .collect();
    if !gone.is_empty() {
        let mut tx = state.pool.begin().await?;
        sqlx::query("DELETE FROM oneo.scores WHERE model_id = $1 AND record_id = ANY($2)")
            .bind(model.id)
            .bind(&gone)
            .execute(&mut *tx)
            .await?;
        // Those still there (closed, not deleted) have their field cleared through the
        // write path like any change.
        let column = meta
            .fields
            .iter()
            .find(|f| f.def.api_name == model.name)
            .map(|f| f.column());
        if let Some(column) = column {
            let open: Vec<Uuid> = sqlx::query_scalar(crate::db::audited(&format!(
                "SELECT id FROM {} WHERE id = ANY($1) AND {column} IS NOT NULL",
                meta.table()
            )))
            .bind(&gone)
            .fetch_all(&mut *tx)
            .await?;
            let body = Map::from_iter([(model.name.clone(), Value::Null)]);
            let values = validate(&meta, &body, Mode::Update)
                .map_err(|i| ApiError::Validation(Issues(i)))?;
            let items: Vec<WriteItem> = open
                .into_iter()
                .map(|id| WriteItem {
                    id,
                    version: None,
                    values: values.clone(),
                })
                .collect();
            if !items.is_empty() {
                write::update(&mut tx, &meta, &related, &items)
                    .await
                    .map_err(|e| {
                        ApiError::Query(format!("clearing scores of `{object}` failed: {e:?}"))
                    })?;
            }
        }
        tx.commit().await?;
        run.removed = gone.len();
    }
    Ok(run)
}

/// Adds a version of `model` to train: `training`, queued.
pub async fn new_version(pool: &PgPool, workspace: Uuid, model: Uuid) -> Result<i32> {
    Ok(sqlx::query_scalar(
        "INSERT INTO oneo.model_versions (model_id, version, workspace_id, status, progress)
         SELECT $1, coalesce(max(version), 0) + 1, $2, 'training', 'queued'
           FROM oneo.model_versions WHERE model_id = $1
         RETURNING version",
    )
    .bind(model)
    .bind(workspace)
    .fetch_one(pool)
    .await?)
}

/// Deploys `version` (validated, or deployed before: a rollback), archives the one it
/// replaces, and scores every open record with it.
pub async fn deploy(
    state: &AppState,
    workspace: Uuid,
    model: &ModelRow,
    version: i32,
) -> Result<(ModelRow, ScoreRun)> {
    let status: Option<String> = sqlx::query_scalar(
        "SELECT status FROM oneo.model_versions WHERE model_id = $1 AND version = $2",
    )
    .bind(model.id)
    .bind(version)
    .fetch_optional(&state.pool)
    .await?;
    match status.as_deref() {
        None => {
            return Err(ApiError::Validation(Issues::one(
                "version",
                format!("model {} has no version {}", model.id, version),
            )));
        }
        Some("training" | "failed") => {
            return Err(ApiError::conflict(
                "not_validated",
                format!(
                    "version {} is {}: only a validated version can be deployed",
                    version,
                    status.unwrap_or_default()
                ),
                vec![],
            ));
        }
        Some(_) => {}
    }
    ensure_score_field(state, workspace, model).await?;
    let mut tx = state.pool.begin().await?;
    sqlx::query(
        "UPDATE oneo.model_versions SET status = 'archived'
          WHERE model_id = $1 AND status = 'deployed' AND version <> $2",
    )
    .bind(model.id)
    .bind(version)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE oneo.model_versions SET status = 'deployed', deployed_at = now()
          WHERE model_id = $1 AND version = $2",
    )
    .bind(model.id)
    .bind(version)
    .execute(&mut *tx)
    .await?;
    let model: ModelRow = sqlx::query_as(crate::db::audited(&format!(
        "UPDATE oneo.models SET deployed = $2, updated_at = now() WHERE id = $1 RETURNING {MODEL_COLUMNS}"
    )))
    .bind(model.id)
    .bind(version)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let scoring = score(state, workspace, &model).await?;
    Ok((model, scoring))
}

/// The models `oneo demo` deploys: (name, kind).
pub const DEMO_MODELS: [(&str, &str); 3] = [
    ("win_score", "win_probability"),
    ("lead_score", "lead_score"),
    ("churn_risk", "churn_risk"),
];

/// Each of [`DEMO_MODELS`] defined, trained and deployed in `workspace` unless it has a
/// deployed version already; each one's model, and what went wrong for a model that failed.
pub async fn ensure_demo_models(
    state: &AppState,
    workspace: Uuid,
) -> Result<Vec<(ModelRow, std::result::Result<ScoreRun, String>)>> {
    let mut out = Vec::new();
    for (name, kind) in DEMO_MODELS {
        sqlx::query(
            "INSERT INTO oneo.models (id, workspace_id, name, kind, horizon_days)
             VALUES ($1, $2, $3, $4, 90) ON CONFLICT (workspace_id, name) DO NOTHING",
        )
        .bind(Uuid::now_v7())
        .bind(workspace)
        .bind(name)
        .bind(kind)
        .execute(&state.pool)
        .await?;
        let model: ModelRow = sqlx::query_as(crate::db::audited(&format!(
            "SELECT {MODEL_COLUMNS} FROM oneo.models WHERE workspace_id = $1 AND name = $2"
        )))
        .bind(workspace)
        .bind(name)
        .fetch_one(&state.pool)
        .await?;
        if model.deployed.is_some() {
            out.push((model, Ok(ScoreRun::default())));
            continue;
        }
        let version = new_version(&state.pool, workspace, model.id).await?;
        train(state.clone(), workspace, model.clone(), version).await;
        let (status, error): (String, Option<String>) = sqlx::query_as(
            "SELECT status, error FROM oneo.model_versions WHERE model_id = $1 AND version = $2",
        )
        .bind(model.id)
        .bind(version)
        .fetch_one(&state.pool)
        .await?;
        if status != "validated" {
            out.push((model, Err(error.unwrap_or(status))));
            continue;
        }
        match deploy(state, workspace, &model, version).await {
            Ok((model, run)) => out.push((model, Ok(run))),
            Err(e) => out.push((model, Err(e.to_string()))),
        }
    }
    Ok(out)
}
