//! Objects become tables and fields become columns, at definition time only. Identifiers are
//! built from Oneo's numeric ids (`o12`, `f34`); user values reach PostgreSQL only as bound
//! parameters.

use oneo_catalog::{FieldDef, FieldType, Issue, Issues};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::schema::{FieldMeta, ObjectMeta, WorkspaceSchema, pg_type};
use super::{pg_code, pg_constraint};
use crate::error::{ApiError, Result};

/// Keeps DDL from queueing forever behind a long transaction on the same table.
pub async fn limit_lock_wait(conn: &mut PgConnection) -> Result<()> {
    sqlx::query("SET LOCAL lock_timeout = '5s'")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Validates `fields` one after another (each may use the ones before it) and creates the
/// object with its table. `schema` gains the new object.
pub async fn create_object(
    conn: &mut PgConnection,
    schema: &mut WorkspaceSchema,
    workspace: Uuid,
    api_name: &str,
    label: &str,
    fields: Vec<FieldDef>,
    is_standard: bool,
) -> Result<ObjectMeta> {
    let mut issues = Vec::new();
    if let Err(e) = oneo_catalog::check_api_name(api_name) {
        issues.push(Issue::new("api_name", e));
    }
    if let Err(e) = oneo_catalog::validate_label(label) {
        issues.extend(e.0);
    }
    if oneo_catalog::system::SYSTEM_OBJECTS
        .iter()
        .any(|s| s.api_name == api_name)
    {
        issues.push(Issue::new(
            "api_name",
            format!("`{api_name}` is a system object's name (workflow runs and steps in the lake)"),
        ));
    }
    if schema.object(api_name).is_some() {
        issues.push(Issue::new(
            "api_name",
            format!("an object `{api_name}` already exists"),
        ));
    }
    let mut accepted: Vec<FieldDef> = Vec::new();
    for (i, mut def) in fields.into_iter().enumerate() {
        match def.validate(api_name, &accepted, schema) {
            Ok(()) => accepted.push(def),
            Err(e) => issues.extend(
                e.0.into_iter()
                    .map(|x| Issue::new(format!("fields[{i}].{}", x.field), x.reason)),
            ),
        }
    }
    if !issues.is_empty() {
        return Err(Issues(issues).into());
    }

    let (id, created_at, updated_at): (i64, _, _) = sqlx::query_as(
        "INSERT INTO oneo.objects (workspace_id, api_name, label, is_standard) VALUES ($1, $2, $3, $4)
         RETURNING id, created_at, updated_at",
    )
    .bind(workspace)
    .bind(api_name)
    .bind(label)
    .bind(is_standard)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| match pg_code(&e).as_deref() {
        Some("23505") => ApiError::conflict("already_exists", format!("an object `{api_name}` already exists"), vec![]),
        _ => e.into(),
    })?;
    let mut object = ObjectMeta {
        id,
        api_name: api_name.into(),
        label: label.into(),
        is_standard,
        created_at,
        updated_at,
        fields: vec![],
    };
    let table = object.table();
    for stmt in [
        format!(
            "CREATE TABLE {table} (id uuid PRIMARY KEY, version bigint NOT NULL DEFAULT 1,
             created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now())"
        ),
        // The lake needs the old row on updates and deletes.
        format!("ALTER TABLE {table} REPLICA IDENTITY FULL"),
        format!("CREATE TRIGGER touch BEFORE UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION oneo.touch_record()"),
    ] {
        sqlx::query(crate::db::audited(&stmt)).execute(&mut *conn).await?;
    }
    schema.objects.push(object.clone());
    for def in accepted {
        let field = add_field(conn, schema, &object, def, is_standard).await?;
        object.fields.push(field);
        if let Some(o) = schema.objects.iter_mut().find(|o| o.id == object.id) {
            *o = object.clone();
        }
    }
    Ok(object)
}

/// Records an already validated field and adds its column, index and constraints.
pub async fn add_field(
    conn: &mut PgConnection,
    schema: &WorkspaceSchema,
    object: &ObjectMeta,
    def: FieldDef,
    is_standard: bool,
) -> Result<FieldMeta> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO oneo.fields (object_id, workspace_id, api_name, field_type, definition, is_standard)
         SELECT $1, workspace_id, $2, $3, $4, $5 FROM oneo.objects WHERE id = $1 RETURNING id",
    )
    .bind(object.id)
    .bind(&def.api_name)
    .bind(def.field_type.as_str())
    .bind(sqlx::types::Json(&def))
    .bind(is_standard)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| match pg_code(&e).as_deref() {
        Some("23505") => ApiError::conflict(
            "already_exists",
            format!("object `{}` already has a field `{}`", object.api_name, def.api_name),
            vec![],
        ),
        _ => e.into(),
    })?;
    let field = FieldMeta {
        id,
        def,
        is_standard,
    };
    let (table, col) = (object.table(), field.column());
    let t = field.def.field_type;
    match t {
        FieldType::Formula | FieldType::Rollup => {}
        FieldType::Autonumber => {
            // Identity numbers existing records too; values are never reused, gaps are fine.
            sqlx::query(crate::db::audited(&format!(
                "ALTER TABLE {table} ADD COLUMN {col} bigint GENERATED ALWAYS AS IDENTITY"
            )))
            .execute(&mut *conn)
            .await?;
        }
        _ => {
            let default = field
                .def
                .default
                .as_ref()
                .map(|d| field.def.parse_value(d))
                .transpose()
                .map_err(|r| ApiError::Validation(Issues::one("default", r)))?;
            let default_text = default.and_then(|v| v.to_sql_text_for_column());
            sqlx::query("SELECT oneo.add_field_column($1::regclass, $2, $3, $4, $5)")
                .bind(&table)
                .bind(&col)
                .bind(pg_type(t).unwrap_or("text"))
                .bind(field.def.required)
                .bind(default_text)
                .execute(&mut *conn)
                .await
                .map_err(|e| match pg_code(&e).as_deref() {
                    Some("23502") => ApiError::Validation(Issues::one(
                        "required",
                        format!("`{}` already has records; a required field added to it needs a `default` for them", object.api_name),
                    )),
                    _ => e.into(),
                })?;
        }
    }
    if t == FieldType::Lookup {
        let target_name = field.def.target.as_deref().unwrap_or_default();
        let target = if target_name == object.api_name {
            Some(object)
        } else {
            schema.object(target_name)
        };
        let target = target.ok_or_else(|| {
            ApiError::Validation(Issues::one(
                "target",
                format!("there is no object `{target_name}`"),
            ))
        })?;
        // A required lookup can't be emptied, so deleting its target is refused instead.
        let on_delete = if field.def.required {
            "RESTRICT"
        } else {
            "SET NULL"
        };
        sqlx::query(crate::db::audited(&format!(
            "ALTER TABLE {table} ADD CONSTRAINT {} FOREIGN KEY ({col}) REFERENCES {} (id) ON DELETE {on_delete}",
            field.foreign_key(),
            target.table()
        )))
        .execute(&mut *conn)
        .await?;
        sqlx::query(crate::db::audited(&format!(
            "CREATE INDEX i_{col} ON {table} ({col})"
        )))
        .execute(&mut *conn)
        .await?;
    }
    if field.def.unique {
        create_unique_index(conn, object, &field).await?;
    }
    Ok(field)
}

pub async fn create_unique_index(
    conn: &mut PgConnection,
    object: &ObjectMeta,
    field: &FieldMeta,
) -> Result<()> {
    sqlx::query(crate::db::audited(&format!(
        "CREATE UNIQUE INDEX {} ON {} ({})",
        field.unique_index(),
        object.table(),
        field.unique_expr("")
    )))
    .execute(&mut *conn)
    .await
    .map_err(|e| match pg_code(&e).as_deref() {
        Some("23505") => ApiError::conflict(
            "duplicate_values",
            format!(
                "records of `{}` already share values of `{}`, so it can't be unique",
                object.api_name, field.def.api_name
            ),
            vec![json!({"field": field.def.api_name})],
        ),
        _ => e.into(),
    })?;
    Ok(())
}

/// Applies a change of `required` / `unique` to the column; `fill` is written into empty
/// values first when a field becomes required.
pub async fn change_constraints(
    conn: &mut PgConnection,
    object: &ObjectMeta,
    old: &FieldMeta,
    new: &FieldMeta,
) -> Result<()> {
    let (table, col) = (object.table(), new.column());
    if !new.def.field_type.is_stored() || new.def.field_type == FieldType::Autonumber {
        return Ok(());
    }
    if new.def.required && !old.def.required {
        if let Some(fill) = new
            .def
            .default
            .as_ref()
            .and_then(|d| new.def.parse_value(d).ok())
            .and_then(|v| v.to_sql_text_for_column())
        {
            let ty = pg_type(new.def.field_type).unwrap_or("text");
            sqlx::query(crate::db::audited(&format!(
                "UPDATE {table} SET {col} = $1::{ty} WHERE {col} IS NULL"
            )))
            .bind(fill)
            .execute(&mut *conn)
            .await?;
        }
        sqlx::query(crate::db::audited(&format!("ALTER TABLE {table} ALTER COLUMN {col} SET NOT NULL")))
            .execute(&mut *conn)
            .await
            .map_err(|e| match pg_code(&e).as_deref() {
                Some("23502") => ApiError::conflict(
                    "missing_values",
                    format!("some `{}` records have no `{}`; give a `default` to fill them, or fill them first", object.api_name, new.def.api_name),
                    vec![json!({"field": new.def.api_name})],
                ),
                _ => e.into(),
            })?;
    } else if !new.def.required && old.def.required {
        sqlx::query(crate::db::audited(&format!(
            "ALTER TABLE {table} ALTER COLUMN {col} DROP NOT NULL"
        )))
        .execute(&mut *conn)
        .await?;
    }
    if new.def.unique && !old.def.unique {
        create_unique_index(conn, object, new).await?;
    } else if !new.def.unique && old.def.unique {
        sqlx::query(crate::db::audited(&format!(
            "DROP INDEX oneo_records.{}",
            old.unique_index()
        )))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn drop_field(
    conn: &mut PgConnection,
    object: &ObjectMeta,
    field: &FieldMeta,
) -> Result<()> {
    if field.def.field_type.is_stored() {
        // Dropping a column is a catalog change in PostgreSQL: instant, whatever the table size.
        sqlx::query(crate::db::audited(&format!(
            "ALTER TABLE {} DROP COLUMN {}",
            object.table(),
            field.column()
        )))
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("DELETE FROM oneo.fields WHERE id = $1")
        .bind(field.id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn drop_object(conn: &mut PgConnection, object: &ObjectMeta) -> Result<()> {
    sqlx::query(crate::db::audited(&format!(
        "DROP TABLE {}",
        object.table()
    )))
    .execute(&mut *conn)
    .await
    .map_err(|e| match (pg_code(&e).as_deref(), pg_constraint(&e)) {
        (Some("2BP01"), _) => ApiError::conflict(
            "has_dependents",
            format!("other objects still point to `{}`", object.api_name),
            vec![],
        ),
        _ => e.into(),
    })?;
    sqlx::query("DELETE FROM oneo.objects WHERE id = $1")
        .bind(object.id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The text PostgreSQL reads back into a column of the field's type (arrays as `{a,b}`).
trait ColumnText {
    fn to_sql_text_for_column(&self) -> Option<String>;
}

impl ColumnText for oneo_catalog::Value {
    fn to_sql_text_for_column(&self) -> Option<String> {
        match self {
            oneo_catalog::Value::List(items) => Some(format!(
                "{{{}}}",
                items
                    .iter()
                    .map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
                    .collect::<Vec<_>>()
                    .join(",")
            )),
            other => other.to_sql_text(),
        }
    }
}
