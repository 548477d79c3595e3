//! Record reads and writes for workflow runs, through the same validation and write path as
//! `/v1/records`, inside the caller's transaction (so a step's write commits with its log).

use serde_json::{Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::records::{Mode, Projection, validate};
use crate::db::schema::{ObjectMeta, load_with_related};
use crate::db::write::{self, WriteError, WriteItem};

/// Why a run's read or write did not happen, in words for the run's log.
pub type Reason = String;

fn failed(e: WriteError) -> Reason {
    match e {
        WriteError::Db(e) => format!("the database refused the write: {e}"),
        WriteError::Failed(f) => f
            .iter()
            .map(|f| match &f.field {
                Some(field) if !field.is_empty() => format!("{field}: {}", f.reason),
                _ => f.reason.clone(),
            })
            .collect::<Vec<_>>()
            .join("; "),
    }
}

async fn object(
    conn: &mut PgConnection,
    workspace: Uuid,
    name: &str,
) -> Result<(ObjectMeta, std::collections::HashMap<String, ObjectMeta>), Reason> {
    load_with_related(conn, workspace, name)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("there is no object `{name}` in this workspace"))
}

/// One record as `/v1/records/{object}/{id}` shows it, formulas and rollups computed.
pub async fn read(
    conn: &mut PgConnection,
    workspace: Uuid,
    name: &str,
    id: Uuid,
) -> Result<Option<Value>, Reason> {
    let (o, related) = object(conn, workspace, name).await?;
    let p = Projection::new(&o, &related);
    let row = sqlx::query(crate::db::audited(&format!(
        "SELECT {} FROM {} r WHERE r.id = $1",
        p.select,
        o.table()
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| e.to_string())?;
    row.map(|r| p.decode(&o, &r))
        .transpose()
        .map_err(|e| e.to_string())
}

/// Creates a record of `name` (`id` given, so a retried step names the same record) or
/// updates record `id`; the record as read after the write.
pub async fn write(
    conn: &mut PgConnection,
    workspace: Uuid,
    name: &str,
    id: Uuid,
    create: bool,
    body: &Map<String, Value>,
) -> Result<Value, Reason> {
    let (o, related) = object(conn, workspace, name).await?;
    let mode = if create { Mode::Create } else { Mode::Update };
    let values = validate(&o, body, mode).map_err(|issues| {
        issues
            .iter()
            .map(|i| format!("{}: {}", i.field, i.reason))
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let item = WriteItem {
        id,
        version: None,
        values,
    };
    let items = std::slice::from_ref(&item);
    if create {
        write::insert(conn, &o, &related, items).await
    } else {
        write::update(conn, &o, &related, items).await
    }
    .map_err(failed)?;
    read(conn, workspace, name, id)
        .await?
        .ok_or_else(|| format!("the `{name}` record {id} is gone"))
}

/// Up to `limit` records of `name` whose lookup `via` points at `target`, oldest first.
pub async fn related(
    conn: &mut PgConnection,
    workspace: Uuid,
    name: &str,
    via: &str,
    target: Uuid,
    limit: i64,
) -> Result<Vec<Value>, Reason> {
    let (o, related) = object(conn, workspace, name).await?;
    let field = o
        .field(via)
        .ok_or_else(|| format!("`{name}` has no field `{via}` any more"))?;
    let p = Projection::new(&o, &related);
    // Table and column come from Oneo's own ids, never from the definition's text.
    let rows = sqlx::query(crate::db::audited(&format!(
        "SELECT {} FROM {} r WHERE r.{} = $1 ORDER BY r.id LIMIT $2",
        p.select,
        o.table(),
        field.column()
    )))
    .bind(target)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| e.to_string())?;
    rows.iter()
        .map(|r| p.decode(&o, r))
        .collect::<sqlx::Result<Vec<_>>>()
        .map_err(|e| e.to_string())
}

/// The fields of `name` as formulas read them.
pub async fn fields(
    conn: &mut PgConnection,
    workspace: Uuid,
    name: &str,
) -> Result<Vec<oneo_catalog::FieldDef>, Reason> {
    Ok(object(conn, workspace, name).await?.0.defs())
}

/// A record's JSON (as [`read`] gives it) as typed values, as formulas and triggers read
/// them; a value that no longer reads as its field is null.
pub fn typed(fields: &[oneo_catalog::FieldDef], json: &Value) -> oneo_workflows::Record {
    fields
        .iter()
        .map(|f| {
            let v = json.get(&f.api_name).unwrap_or(&Value::Null);
            (
                f.api_name.clone(),
                f.parse_value(v).unwrap_or(oneo_catalog::Value::Null),
            )
        })
        .collect()
}
