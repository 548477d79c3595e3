//! Which lake table a record table feeds, and its columns: read from the catalog in
//! PostgreSQL (`oneo.objects`, `oneo.fields`), typed by `oneo_catalog::lake::arrow_type`.

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use oneo_catalog::FieldDef;
use oneo_catalog::system::{SYSTEM_OBJECTS, SystemObject, system_object};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::IngestError;

/// A stored field's lake column.
#[derive(Debug, Clone, PartialEq)]
pub struct LakeField {
    pub field_id: i64,
    /// The lake column: the field's API name.
    pub name: String,
    /// The PostgreSQL column it comes from (`f<field id>`).
    pub source: String,
    pub data_type: DataType,
}

/// One object's record table and the lake tables it feeds.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectLayout {
    pub object_id: i64,
    pub workspace_id: Uuid,
    pub api_name: String,
    /// Stored fields in the order they were defined; computed fields are not stored.
    pub fields: Vec<LakeField>,
}

/// Lake columns that are not fields.
pub mod columns {
    pub const ID: &str = "id";
    pub const CREATED_AT: &str = "created_at";
    pub const UPDATED_AT: &str = "updated_at";
    /// The commit LSN of the transaction that wrote the row (current) or change (history).
    pub const LSN: &str = "_lsn";
    pub const COMMIT_TS: &str = "_commit_ts";
    /// History only: `insert`, `update` or `delete`.
    pub const OP: &str = "_op";
    /// History only: the change's position within its transaction.
    pub const SEQ: &str = "_seq";
}

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

impl ObjectLayout {
    /// The record table in PostgreSQL, `o<object id>`.
    pub fn source_table(&self) -> String {
        format!("o{}", self.object_id)
    }

    fn field_columns(&self) -> Vec<Field> {
        self.fields
            .iter()
            .map(|f| Field::new(&f.name, f.data_type.clone(), true))
            .collect()
    }

    /// Current state: one row per live record.
    pub fn current_schema(&self) -> SchemaRef {
        let mut cols = oneo_catalog::lake::system_columns();
        cols.extend(self.field_columns());
        cols.push(Field::new(columns::LSN, DataType::Int64, false));
        cols.push(Field::new(columns::COMMIT_TS, timestamp(), false));
        Arc::new(Schema::new(cols))
    }

    /// History: one row per change, with the record's values after it (before it, for a delete).
    pub fn history_schema(&self) -> SchemaRef {
        let mut cols = vec![
            Field::new(columns::OP, DataType::Utf8, false),
            Field::new(columns::LSN, DataType::Int64, false),
            Field::new(columns::SEQ, DataType::Int64, false),
            Field::new(columns::COMMIT_TS, timestamp(), false),
        ];
        cols.extend(oneo_catalog::lake::system_columns());
        cols.extend(self.field_columns());
        Arc::new(Schema::new(cols))
    }
}

/// The object id of a record table name (`o12` → 12).
pub fn object_id_of(table: &str) -> Option<i64> {
    table.strip_prefix('o')?.parse().ok()
}

type Row = (
    i64,
    Uuid,
    String,
    Option<i64>,
    Option<String>,
    Option<serde_json::Value>,
);

/// Every object's layout (record tables only), keyed by object id.
pub async fn load_layouts(pool: &PgPool) -> Result<HashMap<i64, ObjectLayout>, IngestError> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT o.id, o.workspace_id, o.api_name, f.id, f.api_name, f.definition
           FROM oneo.objects o LEFT JOIN oneo.fields f ON f.object_id = o.id
          ORDER BY o.id, f.id",
    )
    .fetch_all(pool)
    .await?;
    let mut out: HashMap<i64, ObjectLayout> = HashMap::new();
    for (object_id, workspace_id, api_name, field_id, field_name, definition) in rows {
        let layout = out.entry(object_id).or_insert_with(|| ObjectLayout {
            object_id,
            workspace_id,
            api_name,
            fields: Vec::new(),
        });
        let (Some(field_id), Some(name), Some(definition)) = (field_id, field_name, definition)
        else {
            continue;
        };
        let def: FieldDef = serde_json::from_value(definition).map_err(|e| {
            IngestError::Catalog(format!(
                "field {field_id} has an unreadable definition: {e}"
            ))
        })?;
        if let Some(data_type) = oneo_catalog::lake::arrow_type(&def) {
            layout.fields.push(LakeField {
                field_id,
                name,
                source: format!("f{field_id}"),
                data_type,
            });
        }
    }
    Ok(out)
}

/// Every table the lake holds: each object's ([`load_layouts`]) and each workspace's system
/// objects (workflow runs and steps).
pub async fn load_lake_layouts(pool: &PgPool) -> Result<HashMap<i64, ObjectLayout>, IngestError> {
    let mut out = load_layouts(pool).await?;
    let workspaces: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM oneo.workspaces")
        .fetch_all(pool)
        .await?;
    for ws in workspaces {
        for system in &SYSTEM_OBJECTS {
            let layout = system_layout(system, ws);
            out.insert(layout.object_id, layout);
        }
    }
    Ok(out)
}

/// A system object's table in one workspace's lake: its columns are the PostgreSQL table's,
/// by name.
pub fn system_layout(system: &SystemObject, workspace_id: Uuid) -> ObjectLayout {
    ObjectLayout {
        object_id: system.object_id(workspace_id),
        workspace_id,
        api_name: system.api_name.to_string(),
        fields: system
            .fields()
            .into_iter()
            .enumerate()
            .filter_map(|(i, def)| {
                Some(LakeField {
                    field_id: -(i as i64) - 1,
                    data_type: oneo_catalog::lake::arrow_type(&def)?,
                    source: def.api_name.clone(),
                    name: def.api_name,
                })
            })
            .collect(),
    }
}

impl ObjectLayout {
    /// A system object's (runs, steps), not a record table's: it is never copied from a
    /// snapshot, and its columns are fixed.
    pub fn is_system(&self) -> bool {
        self.object_id < 0
    }

    /// Whether a row of this table carries a field column (`f<id>`) the layout lacks: a field
    /// added since the layout was read. The catalog row that announced it may not have been
    /// visible yet when the layout was reloaded (logical decoding can send a commit before
    /// other sessions see it), so a row's own columns are the reliable sign.
    pub fn lacks_columns_of(&self, tuple: &crate::source::Tuple) -> bool {
        !self.is_system()
            && tuple
                .columns()
                .any(|c| c.starts_with('f') && !self.fields.iter().any(|f| f.source == c))
    }
}

/// The lake table a change of `oneo.<table>` feeds, for system objects: by the row's
/// `workspace_id`.
pub fn system_object_id(table: &str, row: &crate::source::RowChange) -> Option<i64> {
    let system = system_object(table)?;
    let tuple = row.new.as_ref().or(row.old.as_ref())?;
    match tuple.get("workspace_id") {
        crate::source::Cell::Text(ws) => Uuid::parse_str(ws).ok().map(|ws| system.object_id(ws)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_table_names_map_to_object_ids() {
        assert_eq!(object_id_of("o12"), Some(12));
        assert_eq!(object_id_of("objects"), None);
        assert_eq!(object_id_of("x12"), None);
    }

    #[test]
    fn a_row_with_a_field_column_the_layout_lacks_marks_it_stale() {
        let layout = ObjectLayout {
            object_id: 1,
            workspace_id: Uuid::nil(),
            api_name: "deal".into(),
            fields: vec![LakeField {
                field_id: 7,
                name: "amount".into(),
                source: "f7".into(),
                data_type: DataType::Decimal128(38, 2),
            }],
        };
        let known = crate::source::test_tuple(&[("id", Some("x")), ("f7", Some("1"))]);
        let added =
            crate::source::test_tuple(&[("id", Some("x")), ("f7", None), ("f9", Some("gold"))]);
        assert!(!layout.lacks_columns_of(&known));
        assert!(layout.lacks_columns_of(&added));
    }

    #[test]
    fn schemas_put_system_columns_around_fields() {
        let layout = ObjectLayout {
            object_id: 1,
            workspace_id: Uuid::nil(),
            api_name: "deal".into(),
            fields: vec![LakeField {
                field_id: 7,
                name: "amount".into(),
                source: "f7".into(),
                data_type: DataType::Decimal128(38, 2),
            }],
        };
        let names =
            |s: SchemaRef| -> Vec<String> { s.fields().iter().map(|f| f.name().clone()).collect() };
        assert_eq!(
            names(layout.current_schema()),
            [
                "id",
                "created_at",
                "updated_at",
                "amount",
                "_lsn",
                "_commit_ts"
            ]
        );
        assert_eq!(
            names(layout.history_schema()),
            [
                "_op",
                "_lsn",
                "_seq",
                "_commit_ts",
                "id",
                "created_at",
                "updated_at",
                "amount"
            ]
        );
    }
}
