//! `/v1/records/{object}…`: create, read, update, delete and list records, one or in bulk.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use oneo_catalog::Issue;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json_, json};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::written;
use crate::AppState;
use crate::auth::Caller;
use crate::db::list;
use crate::db::records::{Mode, Projection, validate};
use crate::db::schema::{ObjectMeta, load_with_related};
use crate::db::write::{self, Failure, Kind, WriteError, WriteItem};
use crate::error::{ApiError, ApiJson, ApiQuery, Result};

pub const MAX_BULK: usize = 10_000;

/// An object with the objects its lookups and rollups touch.
struct Target {
    object: ObjectMeta,
    related: HashMap<String, ObjectMeta>,
}

async fn target(conn: &mut PgConnection, caller: &Caller, name: &str) -> Result<Target> {
    let (object, related) = load_with_related(conn, caller.workspace_id, name)
        .await?
        .ok_or_else(|| ApiError::no_object(name))?;
    Ok(Target { object, related })
}

fn not_found(object: &str, id: &str) -> ApiError {
    ApiError::NotFound(format!("there is no `{object}` record with id {id}"))
}

/// Ids that are not UUIDs can't exist; they get the same 404 as ids that don't.
fn parse_id(object: &str, id: &str) -> Result<Uuid> {
    Uuid::parse_str(id).map_err(|_| not_found(object, id))
}

async fn read_one(conn: &mut PgConnection, t: &Target, id: Uuid) -> Result<Option<Json_>> {
    let p = Projection::new(&t.object, &t.related);
    let row = sqlx::query(crate::db::audited(&format!(
        "SELECT {} FROM {} r WHERE r.id = $1",
        p.select,
        t.object.table()
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| p.decode(&t.object, &r)).transpose()?)
}

/// One record's failure as the single-record endpoints report it.
fn single_failure(object: &str, e: WriteError) -> ApiError {
    let failures = match e {
        WriteError::Db(e) => return e.into(),
        WriteError::Failed(f) => f,
    };
    let detail = |f: &Failure| {
        let mut d = json!({"field": f.field, "reason": f.reason});
        if let Some(v) = f.current_version {
            d["current_version"] = json!(v);
        }
        d
    };
    let first = &failures[0];
    match first.kind {
        Kind::Invalid => ApiError::Validation(oneo_catalog::Issues(
            failures
                .iter()
                .map(|f| Issue::new(f.field.clone().unwrap_or_default(), f.reason.clone()))
                .collect(),
        )),
        Kind::NotFound => ApiError::NotFound(first.reason.clone()),
        Kind::Duplicate => ApiError::conflict(
            "unique_violation",
            format!(
                "`{object}.{}` must be unique and another record already has this value",
                first.field.clone().unwrap_or_default()
            ),
            failures.iter().map(detail).collect(),
        ),
        Kind::Stale => ApiError::conflict(
            "version_conflict",
            first.reason.clone(),
            failures.iter().map(detail).collect(),
        ),
        Kind::Referenced => ApiError::conflict("referenced", first.reason.clone(), vec![]),
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecordPage {
    /// Records: `id`, `version`, `created_at`, `updated_at` and a key per field API name.
    #[schema(value_type = Vec<Object>)]
    pub records: Vec<Json_>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/records/{object}", tag = "records", security(("api_key" = [])),
    params(("object" = String, Path, description = "the object's API name"),
        ("filter" = Option<Vec<String>>, Query, description = "FIELD:OP:VALUE, repeatable; OP is eq, ne, lt, lte, gt, gte, in, contains or is_null"),
        ("sort" = Option<String>, Query, description = "comma-separated fields, `-` for descending (default id)"),
        ("limit" = Option<i64>, Query, description = "1..=1000, default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "a page of records", body = RecordPage), (status = 400, description = "bad filter, sort, limit or cursor")))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    ApiQuery(pairs): ApiQuery<Vec<(String, String)>>,
) -> Result<Json<RecordPage>> {
    let mut conn = state.pool.acquire().await?;
    let t = target(&mut conn, &caller, &name).await?;
    let q = list::compile(&t.object, &pairs)?;
    let p = Projection::new(&t.object, &t.related);
    let where_sql = if q.where_sql.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", q.where_sql.join(" AND "))
    };
    let sql = format!(
        "SELECT {}, {} FROM {} r {where_sql} ORDER BY {} LIMIT {}",
        p.select,
        q.key_sql.join(", "),
        t.object.table(),
        q.order_sql,
        q.limit + 1
    );
    let mut query = sqlx::query(crate::db::audited(&sql));
    for v in &q.params {
        query = query.bind(v);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    let more = rows.len() as i64 > q.limit;
    let page = &rows[..rows.len().min(usize::try_from(q.limit).unwrap_or(0))];
    let records = page
        .iter()
        .map(|r| p.decode(&t.object, r))
        .collect::<sqlx::Result<Vec<_>>>()?;
    let next_cursor = match (more, page.last()) {
        (true, Some(last)) => {
            let first_key = last.len() - q.key_sql.len();
            let keys = (first_key..last.len())
                .map(|i| last.try_get::<Option<String>, _>(i))
                .collect::<sqlx::Result<Vec<_>>>()?;
            Some(q.cursor_after(keys))
        }
        _ => None,
    };
    Ok(Json(RecordPage {
        records,
        next_cursor,
    }))
}

fn body_object(v: Json_) -> Result<Map<String, Json_>> {
    match v {
        Json_::Object(m) => Ok(m),
        _ => Err(ApiError::BadRequest(
            "the body must be a JSON object of field API names to values".into(),
        )),
    }
}

#[utoipa::path(post, path = "/v1/records/{object}", tag = "records", security(("api_key" = [])), request_body = Object,
    params(("object" = String, Path, description = "the object's API name")),
    responses((status = 201, description = "created; `Oneo-Lsn` says where it is durable", body = Object), (status = 400, description = "invalid values"), (status = 409, description = "a unique value is taken")))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<Json_>,
) -> Result<Response> {
    caller.require_member()?;
    let body = body_object(body)?;
    let mut tx = state.pool.begin().await?;
    let t = target(&mut tx, &caller, &name).await?;
    let values = validate(&t.object, &body, Mode::Create)
        .map_err(|i| ApiError::Validation(oneo_catalog::Issues(i)))?;
    let item = WriteItem {
        id: Uuid::now_v7(),
        version: None,
        values,
    };
    write::insert(&mut tx, &t.object, &t.related, std::slice::from_ref(&item))
        .await
        .map_err(|e| single_failure(&name, e))?;
    let record = read_one(&mut tx, &t, item.id).await?;
    tx.commit().await?;
    written(&state, StatusCode::CREATED, record).await
}

#[utoipa::path(get, path = "/v1/records/{object}/{id}", tag = "records", security(("api_key" = [])),
    params(("object" = String, Path, description = "the object's API name"), ("id" = String, Path, description = "the record id")),
    responses((status = 200, description = "the record, formulas and rollups computed", body = Object), (status = 404, description = "no such record")))]
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Json_>> {
    let mut conn = state.pool.acquire().await?;
    let t = target(&mut conn, &caller, &name).await?;
    let uuid = parse_id(&name, &id)?;
    read_one(&mut conn, &t, uuid)
        .await?
        .map(Json)
        .ok_or_else(|| not_found(&name, &id))
}

fn version_of(body: &Map<String, Json_>) -> Result<Option<i64>, Issue> {
    match body.get("version") {
        None | Some(Json_::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| Issue::new("version", "must be the positive whole number you read")),
    }
}

#[utoipa::path(patch, path = "/v1/records/{object}/{id}", tag = "records", security(("api_key" = [])), request_body = Object,
    params(("object" = String, Path, description = "the object's API name"), ("id" = String, Path, description = "the record id")),
    responses((status = 200, description = "updated", body = Object), (status = 409, description = "the record changed since `version`; details carry current_version")))]
pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<Json_>,
) -> Result<Response> {
    caller.require_member()?;
    let body = body_object(body)?;
    let mut tx = state.pool.begin().await?;
    let t = target(&mut tx, &caller, &name).await?;
    let uuid = parse_id(&name, &id)?;
    let version =
        version_of(&body).map_err(|i| ApiError::Validation(oneo_catalog::Issues(vec![i])))?;
    let values = validate(&t.object, &body, Mode::Update)
        .map_err(|i| ApiError::Validation(oneo_catalog::Issues(i)))?;
    let item = WriteItem {
        id: uuid,
        version,
        values,
    };
    write::update(&mut tx, &t.object, &t.related, std::slice::from_ref(&item))
        .await
        .map_err(|e| single_failure(&name, e))?;
    let record = read_one(&mut tx, &t, uuid).await?;
    tx.commit().await?;
    written(&state, StatusCode::OK, record).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeleteParams {
    /// Delete only if the record is still at this version.
    pub version: Option<i64>,
}

#[utoipa::path(delete, path = "/v1/records/{object}/{id}", tag = "records", security(("api_key" = [])),
    params(("object" = String, Path, description = "the object's API name"), ("id" = String, Path, description = "the record id"), DeleteParams),
    responses((status = 204, description = "deleted"), (status = 404, description = "no such record"), (status = 409, description = "changed since `version`, or a required lookup points here")))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, id)): Path<(String, String)>,
    ApiQuery(params): ApiQuery<DeleteParams>,
) -> Result<Response> {
    caller.require_member()?;
    let mut tx = state.pool.begin().await?;
    let t = target(&mut tx, &caller, &name).await?;
    let item = WriteItem {
        id: parse_id(&name, &id)?,
        version: params.version,
        values: vec![],
    };
    write::delete(&mut tx, &t.object, std::slice::from_ref(&item))
        .await
        .map_err(|e| single_failure(&name, e))?;
    tx.commit().await?;
    written(&state, StatusCode::NO_CONTENT, None).await
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkOperation {
    Create,
    Update,
    Delete,
}

/// Up to 10,000 records, all written or none.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    pub operation: BulkOperation,
    /// create: record bodies; update: bodies with `id` (and optionally `version`);
    /// delete: ids, or `{"id", "version"?}` objects.
    #[schema(value_type = Vec<Object>)]
    pub records: Vec<Json_>,
}

fn bulk_item(
    t: &Target,
    op: BulkOperation,
    raw: Json_,
    n: usize,
    issues: &mut Vec<Json_>,
) -> Option<WriteItem> {
    let mut fail = |field: &str, reason: String| {
        issues.push(json!({"index": n, "field": field, "reason": reason}))
    };
    let mut body = match (op, raw) {
        (BulkOperation::Delete, Json_::String(id)) => {
            Map::from_iter([("id".to_string(), Json_::String(id))])
        }
        (_, Json_::Object(m)) => m,
        _ => {
            fail(
                "",
                "each item must be a JSON object (or, to delete, an id)".into(),
            );
            return None;
        }
    };
    let id = match op {
        BulkOperation::Create => Uuid::now_v7(),
        _ => match body
            .remove("id")
            .as_ref()
            .and_then(Json_::as_str)
            .map(Uuid::parse_str)
        {
            Some(Ok(id)) => id,
            _ => {
                fail("id", "give the record's id (a UUID)".into());
                return None;
            }
        },
    };
    let version = match version_of(&body) {
        Ok(v) => v,
        Err(i) => {
            fail(&i.field, i.reason);
            return None;
        }
    };
    let values = match op {
        BulkOperation::Delete => {
            if let Some(k) = body.keys().find(|k| *k != "version") {
                fail(k, "a delete takes only `id` and `version`".into());
                return None;
            }
            vec![]
        }
        BulkOperation::Create | BulkOperation::Update => {
            let mode = if matches!(op, BulkOperation::Create) {
                Mode::Create
            } else {
                Mode::Update
            };
            match validate(&t.object, &body, mode) {
                Ok(v) => v,
                Err(errs) => {
                    errs.into_iter().for_each(|i| fail(&i.field, i.reason));
                    return None;
                }
            }
        }
    };
    Some(WriteItem {
        id,
        version,
        values,
    })
}

#[utoipa::path(post, path = "/v1/records/{object}/bulk", tag = "records", security(("api_key" = [])), request_body = BulkRequest,
    params(("object" = String, Path, description = "the object's API name")),
    responses((status = 200, description = "all written: `{operation, count, records: [{id, version}]}`", body = Object),
        (status = 400, description = "nothing written; details list every failing item as {index, field, reason}")))]
pub async fn bulk(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<BulkRequest>,
) -> Result<Response> {
    caller.require_member()?;
    if req.records.is_empty() || req.records.len() > MAX_BULK {
        return Err(oneo_catalog::Issues::one(
            "records",
            format!("give 1 to {MAX_BULK} records; got {}", req.records.len()),
        )
        .into());
    }
    let mut tx = state.pool.begin().await?;
    let t = target(&mut tx, &caller, &name).await?;
    let count = req.records.len();
    let mut issues = Vec::new();
    let (positions, items): (Vec<usize>, Vec<WriteItem>) = req
        .records
        .into_iter()
        .enumerate()
        .filter_map(|(n, raw)| {
            bulk_item(&t, req.operation, raw, n, &mut issues).map(|item| (n, item))
        })
        .unzip();
    let fail = |items: Vec<Json_>| ApiError::BulkFailed {
        message: format!(
            "{} failure(s) in {count} records; nothing was written",
            items.len()
        ),
        items,
    };
    if !issues.is_empty() {
        // Report the well-formed items' conflicts too, so one round trip names every failure.
        let with_values = !matches!(req.operation, BulkOperation::Delete);
        for f in write::precheck(&mut tx, &t.object, &t.related, &items, with_values)
            .await
            .map_err(|e| match e {
                WriteError::Db(e) => ApiError::from(e),
                WriteError::Failed(f) => fail(f.iter().map(Failure::to_json).collect()),
            })?
        {
            let mut j = f.to_json();
            j["index"] = f.index.map_or(Json_::Null, |i| json!(positions[i]));
            issues.push(j);
        }
        issues.sort_by_key(|i| i["index"].as_u64());
        return Err(fail(issues));
    }
    let result = match req.operation {
        BulkOperation::Create => write::insert(&mut tx, &t.object, &t.related, &items).await,
        BulkOperation::Update => write::update(&mut tx, &t.object, &t.related, &items).await,
        BulkOperation::Delete => write::delete(&mut tx, &t.object, &items)
            .await
            .map(|()| items.iter().map(|i| (i.id, 0)).collect()),
    };
    let done = match result {
        Ok(done) => done,
        Err(WriteError::Failed(mut f)) => {
            f.sort_by_key(|x| x.index);
            return Err(fail(f.iter().map(Failure::to_json).collect()));
        }
        Err(WriteError::Db(e)) => return Err(e.into()),
    };
    tx.commit().await?;
    let records = if matches!(req.operation, BulkOperation::Delete) {
        Json_::from(
            done.iter()
                .map(|(id, _)| json!({"id": id}))
                .collect::<Vec<_>>(),
        )
    } else {
        write::written_json(&done)
    };
    written(
        &state,
        StatusCode::OK,
        Some(json!({"operation": req.operation, "count": count, "records": records})),
    )
    .await
}
