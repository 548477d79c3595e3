//! Writing records, one or ten thousand at a time, in the caller's transaction.
//!
//! PostgreSQL enforces required (NOT NULL), unique (unique indexes), lookups (foreign keys)
//! and versions. The checks here run first only so a bulk request can name *every* failing
//! item; a write that races past them is still stopped by the constraint and reported.

use std::collections::{BTreeMap, HashMap};

use oneo_catalog::{FieldType, Value};
use serde_json::{Map, Value as Json, json};
use sqlx::PgConnection;
use sqlx::postgres::PgDatabaseError;
use uuid::Uuid;

use super::records::{Values, column_json};
use super::schema::{FieldMeta, ObjectMeta, pg_type};

/// One record to write: its id (new or existing), the version it was read at, its values.
#[derive(Debug, Clone)]
pub struct WriteItem {
    pub id: Uuid,
    pub version: Option<i64>,
    pub values: Values,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Invalid,
    Duplicate,
    NotFound,
    Stale,
    Referenced,
}

/// Why one item (or, for a race caught by a constraint, the request) failed.
#[derive(Debug, Clone)]
pub struct Failure {
    pub index: Option<usize>,
    pub field: Option<String>,
    pub reason: String,
    pub kind: Kind,
    pub current_version: Option<i64>,
}

impl Failure {
    fn new(
        index: Option<usize>,
        field: Option<&str>,
        kind: Kind,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            index,
            field: field.map(str::to_string),
            reason: reason.into(),
            kind,
            current_version: None,
        }
    }

    pub fn to_json(&self) -> Json {
        let mut m = Map::new();
        m.insert("index".into(), self.index.map_or(Json::Null, Json::from));
        m.insert(
            "field".into(),
            self.field.clone().map_or(Json::Null, Json::String),
        );
        m.insert("reason".into(), Json::String(self.reason.clone()));
        if let Some(v) = self.current_version {
            m.insert("current_version".into(), Json::from(v));
        }
        Json::Object(m)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{} item(s) failed", .0.len())]
    Failed(Vec<Failure>),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

type WriteResult<T> = Result<T, WriteError>;

fn text_key(f: &FieldMeta, v: &Value) -> Option<String> {
    let t = v.to_sql_text()?;
    Some(if f.def.field_type == FieldType::Email {
        t.to_lowercase()
    } else {
        t
    })
}

/// Unique values must differ within the batch and from other records already stored.
async fn check_unique(
    conn: &mut PgConnection,
    object: &ObjectMeta,
    items: &[WriteItem],
    out: &mut Vec<Failure>,
) -> WriteResult<()> {
    for (fi, f) in object
        .fields
        .iter()
        .enumerate()
        .filter(|(_, f)| f.def.unique)
    {
        let (mut vals, mut idxs, mut seen) = (Vec::new(), Vec::new(), HashMap::new());
        for (n, item) in items.iter().enumerate() {
            let Some(key) = item
                .values
                .iter()
                .find(|(i, _)| *i == fi)
                .and_then(|(_, v)| text_key(f, v))
            else {
                continue;
            };
            if let Some(first) = seen.insert(key.clone(), n) {
                out.push(Failure::new(
                    Some(n),
                    Some(&f.def.api_name),
                    Kind::Duplicate,
                    format!("has the same value as item {first}; values must be unique"),
                ));
                continue;
            }
            vals.push(key);
            idxs.push(n);
        }
        if vals.is_empty() {
            continue;
        }
        let cast = if f.def.field_type == FieldType::Email {
            "v.val".to_string()
        } else {
            format!("v.val::{}", pg_type(f.def.field_type).unwrap_or("text"))
        };
        let sql = format!(
            "SELECT v.ord, t.id FROM unnest($1::text[]) WITH ORDINALITY AS v(val, ord) JOIN {} t ON {} = {cast}",
            object.table(),
            f.unique_expr("t.")
        );
        let rows: Vec<(i64, Uuid)> = sqlx::query_as(crate::db::audited(&sql))
            .bind(&vals)
            .fetch_all(&mut *conn)
            .await?;
        for (ord, holder) in rows {
            let n = idxs[usize::try_from(ord - 1).unwrap_or_default()];
            if items[n].id != holder {
                out.push(Failure::new(
                    Some(n),
                    Some(&f.def.api_name),
                    Kind::Duplicate,
                    "another record already has this value; values must be unique",
                ));
            }
        }
    }
    Ok(())
}

/// Lookups must point at existing records of their target object (in this workspace, since
/// the target table is this workspace's).
async fn check_lookups(
    conn: &mut PgConnection,
    object: &ObjectMeta,
    related: &HashMap<String, ObjectMeta>,
    items: &[WriteItem],
    out: &mut Vec<Failure>,
) -> WriteResult<()> {
    for (fi, f) in object
        .fields
        .iter()
        .enumerate()
        .filter(|(_, f)| f.def.field_type == FieldType::Lookup)
    {
        let target_name = f.def.target.clone().unwrap_or_default();
        let target = if target_name == object.api_name {
            Some(object)
        } else {
            related.get(&target_name)
        };
        let Some(target) = target else { continue };
        let (mut ids, mut idxs) = (Vec::new(), Vec::new());
        for (n, item) in items.iter().enumerate() {
            if let Some((_, Value::Id(id))) = item.values.iter().find(|(i, _)| *i == fi) {
                ids.push(*id);
                idxs.push(n);
            }
        }
        if ids.is_empty() {
            continue;
        }
        let sql = format!(
            "SELECT v.ord FROM unnest($1::uuid[]) WITH ORDINALITY AS v(val, ord) WHERE NOT EXISTS (SELECT 1 FROM {} x WHERE x.id = v.val)",
            target.table()
        );
        let missing: Vec<i64> = sqlx::query_scalar(crate::db::audited(&sql))
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?;
        for ord in missing {
            let k = usize::try_from(ord - 1).unwrap_or_default();
            out.push(Failure::new(
                Some(idxs[k]),
                Some(&f.def.api_name),
                Kind::Invalid,
                format!("there is no {target_name} record with id {}", ids[k]),
            ));
        }
    }
    Ok(())
}

fn duplicate_ids(items: &[WriteItem], out: &mut Vec<Failure>) {
    let mut seen = HashMap::new();
    for (n, item) in items.iter().enumerate() {
        if let Some(first) = seen.insert(item.id, n) {
            out.push(Failure::new(
                Some(n),
                Some("id"),
                Kind::Invalid,
                format!("record {} is also item {first}", item.id),
            ));
        }
    }
}

/// Maps a constraint PostgreSQL enforced to the field it guards.
fn constraint_failure(object: &ObjectMeta, e: sqlx::Error) -> WriteError {
    let Some(pg) = e
        .as_database_error()
        .and_then(|d| d.try_downcast_ref::<PgDatabaseError>())
    else {
        return WriteError::Db(e);
    };
    let by_name = |name: Option<&str>, prefix: &str| {
        name.and_then(|n| n.strip_prefix(prefix))
            .and_then(|id| object.fields.iter().find(|f| f.id.to_string() == id))
            .map(|f| f.def.api_name.clone())
    };
    let failure = match pg.code() {
        "23505" => by_name(pg.constraint(), "u_f").map(|f| {
            Failure::new(
                None,
                Some(&f),
                Kind::Duplicate,
                "another record already has this value; values must be unique",
            )
        }),
        "23503"
            if pg.constraint().is_some_and(|c| c.starts_with("fk_f"))
                && pg
                    .table()
                    .is_some_and(|t| format!("oneo_records.{t}") == object.table()) =>
        {
            by_name(pg.constraint(), "fk_f").map(|f| {
                Failure::new(
                    None,
                    Some(&f),
                    Kind::Invalid,
                    "the referenced record does not exist",
                )
            })
        }
        "23503" => Some(Failure::new(
            None,
            None,
            Kind::Referenced,
            "a required lookup on another record points here; change or delete that record first",
        )),
        "23502" => by_name(pg.column(), "f")
            .map(|f| Failure::new(None, Some(&f), Kind::Invalid, "is required")),
        _ => None,
    };
    match failure {
        Some(f) => WriteError::Failed(vec![f]),
        None => WriteError::Db(e),
    }
}

fn row_json(object: &ObjectMeta, item: &WriteItem, with_version: bool) -> Json {
    let mut m = Map::new();
    m.insert("id".into(), Json::String(item.id.to_string()));
    if with_version {
        m.insert(
            "version".into(),
            item.version.map_or(Json::Null, Json::from),
        );
    }
    for (i, v) in &item.values {
        m.insert(object.fields[*i].column(), column_json(v));
    }
    Json::Object(m)
}

fn column_list(object: &ObjectMeta, fields: &[usize]) -> String {
    fields
        .iter()
        .map(|i| format!(", {}", object.fields[*i].column()))
        .collect()
}

/// The checks a write would run before touching rows (duplicate ids, unique values, lookup
/// targets), for reporting every failing item of a bulk request whose other items already
/// failed validation. Writes nothing.
pub async fn precheck(
    conn: &mut PgConnection,
    object: &ObjectMeta,
    related: &HashMap<String, ObjectMeta>,
    items: &[WriteItem],
    with_values: bool,
) -> WriteResult<Vec<Failure>> {
    let mut failures = Vec::new();
    duplicate_ids(items, &mut failures);
    if with_values {
        check_unique(conn, object, items, &mut failures).await?;
        check_lookups(conn, object, related, items, &mut failures).await?;
    }
    Ok(failures)
}

/// Inserts all items or none; returns `(id, version)` in item order.
pub async fn insert(
    conn: &mut PgConnection,
    object: &ObjectMeta,
    related: &HashMap<String, ObjectMeta>,
    items: &[WriteItem],
) -> WriteResult<Vec<(Uuid, i64)>> {
    let mut failures = Vec::new();
    check_unique(conn, object, items, &mut failures).await?;
    check_lookups(conn, object, related, items, &mut failures).await?;
    if !failures.is_empty() {
        return Err(WriteError::Failed(failures));
    }
    let mut fields: Vec<usize> = items
        .iter()
        .flat_map(|it| it.values.iter().map(|(i, _)| *i))
        .collect();
    fields.sort_unstable();
    fields.dedup();
    let cols = column_list(object, &fields);
    let rows = Json::Array(items.iter().map(|it| row_json(object, it, false)).collect());
    let t = object.table();
    let sql = format!(
        "INSERT INTO {t} (id{cols}) SELECT id{cols} FROM jsonb_populate_recordset(NULL::{t}, $1)"
    );
    sqlx::query(crate::db::audited(&sql))
        .bind(rows)
        .execute(&mut *conn)
        .await
        .map_err(|e| constraint_failure(object, e))?;
    Ok(items.iter().map(|it| (it.id, 1)).collect())
}

/// Updates all items or none; an item with a version updates only if the record is still at
/// that version. Returns the new `(id, version)` in item order.
pub async fn update(
    conn: &mut PgConnection,
    object: &ObjectMeta,
    related: &HashMap<String, ObjectMeta>,
    items: &[WriteItem],
) -> WriteResult<Vec<(Uuid, i64)>> {
    let mut failures = Vec::new();
    duplicate_ids(items, &mut failures);
    for (n, item) in items.iter().enumerate() {
        if item.values.is_empty() {
            failures.push(Failure::new(
                Some(n),
                None,
                Kind::Invalid,
                "give at least one field to change",
            ));
        }
    }
    check_unique(conn, object, items, &mut failures).await?;
    check_lookups(conn, object, related, items, &mut failures).await?;
    if !failures.is_empty() {
        return Err(WriteError::Failed(failures));
    }
    // Items changing the same set of fields share one statement.
    let mut groups: BTreeMap<Vec<usize>, Vec<usize>> = BTreeMap::new();
    for (n, item) in items.iter().enumerate() {
        let mut key: Vec<usize> = item.values.iter().map(|(i, _)| *i).collect();
        key.sort_unstable();
        groups.entry(key).or_default().push(n);
    }
    let t = object.table();
    let mut versions: HashMap<Uuid, i64> = HashMap::new();
    for (fields, members) in groups {
        let set = fields
            .iter()
            .map(|i| format!("{c} = s.{c}", c = object.fields[*i].column()))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = Json::Array(
            members
                .iter()
                .map(|n| row_json(object, &items[*n], true))
                .collect(),
        );
        let sql = format!(
            "UPDATE {t} AS t SET {set} FROM jsonb_populate_recordset(NULL::{t}, $1) AS s
             WHERE t.id = s.id AND (s.version IS NULL OR t.version = s.version) RETURNING t.id, t.version"
        );
        let done: Vec<(Uuid, i64)> = sqlx::query_as(crate::db::audited(&sql))
            .bind(rows)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| constraint_failure(object, e))?;
        versions.extend(done);
    }
    let missing: Vec<Uuid> = items
        .iter()
        .filter(|it| !versions.contains_key(&it.id))
        .map(|it| it.id)
        .collect();
    if !missing.is_empty() {
        return Err(WriteError::Failed(
            explain_missing(conn, object, items, &missing).await?,
        ));
    }
    Ok(items.iter().map(|it| (it.id, versions[&it.id])).collect())
}

/// Deletes all items or none.
pub async fn delete(
    conn: &mut PgConnection,
    object: &ObjectMeta,
    items: &[WriteItem],
) -> WriteResult<()> {
    let mut failures = Vec::new();
    duplicate_ids(items, &mut failures);
    if !failures.is_empty() {
        return Err(WriteError::Failed(failures));
    }
    let ids: Vec<Uuid> = items.iter().map(|it| it.id).collect();
    let versions: Vec<Option<i64>> = items.iter().map(|it| it.version).collect();
    let sql = format!(
        "DELETE FROM {} t USING unnest($1::uuid[], $2::bigint[]) AS s(id, version)
         WHERE t.id = s.id AND (s.version IS NULL OR t.version = s.version) RETURNING t.id",
        object.table()
    );
    let done: Vec<Uuid> = sqlx::query_scalar(crate::db::audited(&sql))
        .bind(&ids)
        .bind(&versions)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| constraint_failure(object, e))?;
    let missing: Vec<Uuid> = ids
        .iter()
        .filter(|id| !done.contains(id))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(WriteError::Failed(
            explain_missing(conn, object, items, &missing).await?,
        ));
    }
    Ok(())
}

/// Tells "no such record" from "changed since you read it".
async fn explain_missing(
    conn: &mut PgConnection,
    object: &ObjectMeta,
    items: &[WriteItem],
    missing: &[Uuid],
) -> WriteResult<Vec<Failure>> {
    let current: Vec<(Uuid, i64)> = sqlx::query_as(crate::db::audited(&format!(
        "SELECT id, version FROM {} WHERE id = ANY($1)",
        object.table()
    )))
    .bind(missing)
    .fetch_all(&mut *conn)
    .await?;
    let current: HashMap<Uuid, i64> = current.into_iter().collect();
    Ok(items
        .iter()
        .enumerate()
        .filter(|(_, it)| missing.contains(&it.id))
        .map(|(n, it)| match current.get(&it.id) {
            Some(v) => Failure {
                current_version: Some(*v),
                ..Failure::new(
                    Some(n),
                    Some("version"),
                    Kind::Stale,
                    format!(
                        "record {} was changed: you sent version {}, it is now at version {v}",
                        it.id,
                        it.version.unwrap_or_default()
                    ),
                )
            },
            None => Failure::new(
                Some(n),
                Some("id"),
                Kind::NotFound,
                format!("there is no `{}` record with id {}", object.api_name, it.id),
            ),
        })
        .collect())
}

/// A JSON summary of written records for bulk responses.
pub fn written_json(done: &[(Uuid, i64)]) -> Json {
    Json::Array(
        done.iter()
            .map(|(id, v)| json!({"id": id, "version": v}))
            .collect(),
    )
}
