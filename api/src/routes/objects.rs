//! `/v1/objects…`: define objects and their fields.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use oneo_catalog::{FieldDef, FieldType, Issues};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;

use super::written;
use crate::AppState;
use crate::auth::Caller;
use crate::db::schema::{FieldMeta, ObjectMeta, WorkspaceSchema, load_object};
use crate::db::{ddl, schema};
use crate::error::{ApiError, ApiJson, Result};

/// A new object and, optionally, its first fields.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewObject {
    pub api_name: String,
    pub label: String,
    #[serde(default)]
    pub fields: Vec<FieldDef>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectPatch {
    pub label: String,
}

/// Changes to a field. The API name and type never change.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldPatch {
    pub label: Option<String>,
    pub required: Option<bool>,
    pub unique: Option<bool>,
    pub max_length: Option<u32>,
    pub pattern: Option<String>,
    pub min: Option<Decimal>,
    pub max: Option<Decimal>,
    pub options: Option<Vec<String>>,
    pub expression: Option<String>,
    pub default: Option<serde_json::Value>,
}

async fn object_or_404(state: &AppState, caller: &Caller, name: &str) -> Result<ObjectMeta> {
    load_object(&state.pool, caller.workspace_id, name)
        .await?
        .ok_or_else(|| ApiError::no_object(name))
}

#[utoipa::path(get, path = "/v1/objects", tag = "objects", security(("api_key" = [])),
    responses((status = 200, description = "the workspace's objects with their fields", body = [ObjectMeta])))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<ObjectMeta>>> {
    Ok(Json(
        schema::load_objects(&state.pool, caller.workspace_id, None).await?,
    ))
}

#[utoipa::path(post, path = "/v1/objects", tag = "objects", security(("api_key" = [])), request_body = NewObject,
    responses((status = 201, description = "created", body = ObjectMeta), (status = 400, description = "invalid definition"), (status = 409, description = "exists")))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewObject>,
) -> Result<Response> {
    caller.require_admin()?;
    let mut tx = state.pool.begin().await?;
    ddl::limit_lock_wait(&mut tx).await?;
    let mut ws = WorkspaceSchema::load(&mut *tx, caller.workspace_id).await?;
    let object = ddl::create_object(
        &mut tx,
        &mut ws,
        caller.workspace_id,
        &body.api_name,
        &body.label,
        body.fields,
        false,
    )
    .await?;
    tx.commit().await?;
    written(&state, StatusCode::CREATED, Some(json!(object))).await
}

#[utoipa::path(get, path = "/v1/objects/{object}", tag = "objects", security(("api_key" = [])),
    params(("object" = String, Path, description = "the object's API name")),
    responses((status = 200, description = "the object", body = ObjectMeta), (status = 404, description = "no such object")))]
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<ObjectMeta>> {
    Ok(Json(object_or_404(&state, &caller, &name).await?))
}

#[utoipa::path(patch, path = "/v1/objects/{object}", tag = "objects", security(("api_key" = [])), request_body = ObjectPatch,
    params(("object" = String, Path, description = "the object's API name")),
    responses((status = 200, description = "renamed; the API name stays", body = ObjectMeta)))]
pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<ObjectPatch>,
) -> Result<Response> {
    caller.require_admin()?;
    oneo_catalog::validate_label(&body.label)?;
    let done = sqlx::query("UPDATE oneo.objects SET label = $1, updated_at = now() WHERE workspace_id = $2 AND api_name = $3")
        .bind(&body.label)
        .bind(caller.workspace_id)
        .bind(&name)
        .execute(&state.pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::no_object(&name));
    }
    let object = object_or_404(&state, &caller, &name).await?;
    written(&state, StatusCode::OK, Some(json!(object))).await
}

#[utoipa::path(delete, path = "/v1/objects/{object}", tag = "objects", security(("api_key" = [])),
    params(("object" = String, Path, description = "the object's API name")),
    responses((status = 204, description = "deleted with its records"), (status = 409, description = "standard, or other fields depend on it")))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Response> {
    caller.require_admin()?;
    let mut tx = state.pool.begin().await?;
    ddl::limit_lock_wait(&mut tx).await?;
    let ws = WorkspaceSchema::load(&mut *tx, caller.workspace_id).await?;
    let object = ws.object(&name).ok_or_else(|| ApiError::no_object(&name))?;
    if object.is_standard {
        return Err(ApiError::conflict(
            "standard",
            format!("`{name}` is a standard object and can't be deleted"),
            vec![],
        ));
    }
    refuse_dependents(&ws.dependents(&name, None), &format!("object `{name}`"))?;
    ddl::drop_object(&mut tx, object).await?;
    tx.commit().await?;
    written(&state, StatusCode::NO_CONTENT, None).await
}

fn refuse_dependents(dependents: &[String], what: &str) -> Result<()> {
    if dependents.is_empty() {
        return Ok(());
    }
    Err(ApiError::conflict(
        "has_dependents",
        format!(
            "{what} is used by {}; change or delete those first",
            dependents.join(", ")
        ),
        dependents.iter().map(|d| json!({"dependent": d})).collect(),
    ))
}

#[utoipa::path(post, path = "/v1/objects/{object}/fields", tag = "objects", security(("api_key" = [])), request_body = FieldDef,
    params(("object" = String, Path, description = "the object's API name")),
    responses((status = 201, description = "added; existing records get null or the default", body = FieldMeta), (status = 400, description = "invalid definition")))]
pub async fn add_field(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    ApiJson(mut def): ApiJson<FieldDef>,
) -> Result<Response> {
    caller.require_admin()?;
    let mut tx = state.pool.begin().await?;
    ddl::limit_lock_wait(&mut tx).await?;
    let ws = WorkspaceSchema::load(&mut *tx, caller.workspace_id).await?;
    let object = ws.object(&name).ok_or_else(|| ApiError::no_object(&name))?;
    def.validate(&name, &object.defs(), &ws)?;
    let field = ddl::add_field(&mut tx, &ws, object, def, false).await?;
    tx.commit().await?;
    written(&state, StatusCode::CREATED, Some(json!(field))).await
}

fn apply(patch: FieldPatch, old: &FieldDef) -> FieldDef {
    let mut d = old.clone();
    let FieldPatch {
        label,
        required,
        unique,
        max_length,
        pattern,
        min,
        max,
        options,
        expression,
        default,
    } = patch;
    d.label = label.unwrap_or(d.label);
    d.required = required.unwrap_or(d.required);
    d.unique = unique.unwrap_or(d.unique);
    d.max_length = max_length.or(d.max_length);
    d.pattern = pattern.or(d.pattern);
    d.min = min.or(d.min);
    d.max = max.or(d.max);
    d.options = options.or(d.options);
    d.expression = expression.or(d.expression);
    d.default = default.or(d.default);
    d
}

/// Formulas may read formulas, but never in a circle.
fn formula_cycle(fields: &[FieldDef]) -> Option<String> {
    fn visit<'a>(name: &'a str, fields: &'a [FieldDef], path: &mut Vec<&'a str>) -> Option<String> {
        if let Some(start) = path.iter().position(|p| *p == name) {
            let mut cycle: Vec<&str> = path[start..].to_vec();
            cycle.push(name);
            return Some(cycle.join(" -> "));
        }
        let f = fields
            .iter()
            .find(|f| f.api_name == name && f.field_type == FieldType::Formula)?;
        path.push(&f.api_name);
        for op in f.formula_operands() {
            if let Some(operand) = fields.iter().find(|x| x.api_name == op)
                && let Some(c) = visit(&operand.api_name, fields, path)
            {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    fields
        .iter()
        .find_map(|f| visit(&f.api_name, fields, &mut Vec::new()))
}

#[utoipa::path(patch, path = "/v1/objects/{object}/fields/{field}", tag = "objects", security(("api_key" = [])), request_body = FieldPatch,
    params(("object" = String, Path, description = "the object's API name"), ("field" = String, Path, description = "the field's API name")),
    responses((status = 200, description = "changed", body = FieldMeta), (status = 409, description = "existing records conflict with the change")))]
pub async fn update_field(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, field_name)): Path<(String, String)>,
    ApiJson(patch): ApiJson<FieldPatch>,
) -> Result<Response> {
    caller.require_admin()?;
    let mut tx = state.pool.begin().await?;
    ddl::limit_lock_wait(&mut tx).await?;
    let ws = WorkspaceSchema::load(&mut *tx, caller.workspace_id).await?;
    let object = ws.object(&name).ok_or_else(|| ApiError::no_object(&name))?;
    let old = object.field(&field_name).ok_or_else(|| {
        ApiError::NotFound(format!("object `{name}` has no field `{field_name}`"))
    })?;
    let label_only = FieldPatch {
        label: None,
        ..patch.clone()
    } == FieldPatch::default();
    if old.is_standard && !label_only {
        return Err(ApiError::BadRequest(format!(
            "`{name}.{field_name}` is a standard field: only its label can change"
        )));
    }
    let mut def = apply(patch, &old.def);
    let siblings: Vec<FieldDef> = object
        .defs()
        .into_iter()
        .filter(|f| f.api_name != field_name)
        .collect();
    def.validate(&name, &siblings, &ws)?;
    let mut all = siblings;
    all.push(def.clone());
    if let Some(cycle) = formula_cycle(&all) {
        return Err(Issues::one(
            "expression",
            format!("formulas would read each other in a circle: {cycle}"),
        )
        .into());
    }
    let new = FieldMeta {
        id: old.id,
        def,
        is_standard: old.is_standard,
    };
    ddl::change_constraints(&mut tx, object, old, &new).await?;
    sqlx::query("UPDATE oneo.fields SET definition = $1, updated_at = now() WHERE id = $2")
        .bind(sqlx::types::Json(&new.def))
        .bind(new.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    written(&state, StatusCode::OK, Some(json!(new))).await
}

#[utoipa::path(delete, path = "/v1/objects/{object}/fields/{field}", tag = "objects", security(("api_key" = [])),
    params(("object" = String, Path, description = "the object's API name"), ("field" = String, Path, description = "the field's API name")),
    responses((status = 204, description = "deleted with its values"), (status = 409, description = "standard, or a formula, rollup or lookup depends on it")))]
pub async fn delete_field(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, field_name)): Path<(String, String)>,
) -> Result<Response> {
    caller.require_admin()?;
    let mut tx = state.pool.begin().await?;
    ddl::limit_lock_wait(&mut tx).await?;
    let ws = WorkspaceSchema::load(&mut *tx, caller.workspace_id).await?;
    let object = ws.object(&name).ok_or_else(|| ApiError::no_object(&name))?;
    let field = object.field(&field_name).ok_or_else(|| {
        ApiError::NotFound(format!("object `{name}` has no field `{field_name}`"))
    })?;
    if field.is_standard {
        return Err(ApiError::conflict(
            "standard",
            format!("`{name}.{field_name}` is a standard field and can't be deleted"),
            vec![],
        ));
    }
    refuse_dependents(
        &ws.dependents(&name, Some(&field_name)),
        &format!("field `{name}.{field_name}`"),
    )?;
    ddl::drop_field(&mut tx, object, field).await?;
    tx.commit().await?;
    written(&state, StatusCode::NO_CONTENT, None).await
}
