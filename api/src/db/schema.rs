//! A workspace's objects and fields as stored in `oneo.objects` / `oneo.fields`.

use chrono::{DateTime, Utc};
use oneo_catalog::{FieldDef, FieldType, SchemaView};
use serde::Serialize;
use sqlx::PgExecutor;
use uuid::Uuid;

/// An object and its fields, with the table that holds its records.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ObjectMeta {
    #[serde(skip)]
    pub id: i64,
    pub api_name: String,
    pub label: String,
    pub is_standard: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub fields: Vec<FieldMeta>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldMeta {
    #[serde(skip)]
    pub id: i64,
    #[serde(flatten)]
    pub def: FieldDef,
    pub is_standard: bool,
}

impl ObjectMeta {
    /// The record table. Built from Oneo's own numeric id, never from user text.
    pub fn table(&self) -> String {
        format!("oneo_records.o{}", self.id)
    }

    pub fn field(&self, api_name: &str) -> Option<&FieldMeta> {
        self.fields.iter().find(|f| f.def.api_name == api_name)
    }

    pub fn defs(&self) -> Vec<FieldDef> {
        self.fields.iter().map(|f| f.def.clone()).collect()
    }

    pub fn stored_fields(&self) -> impl Iterator<Item = &FieldMeta> {
        self.fields.iter().filter(|f| f.def.field_type.is_stored())
    }

    /// Other objects this one's reads and writes touch: lookup targets and rollup children.
    pub fn related_objects(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for f in &self.fields {
            let name = f
                .def
                .target
                .as_ref()
                .or(f.def.rollup.as_ref().map(|r| &r.object));
            if let Some(n) = name
                && !out.contains(n)
                && *n != self.api_name
            {
                out.push(n.clone());
            }
        }
        out
    }
}

impl FieldMeta {
    /// The column. Built from Oneo's own numeric id, never from user text.
    pub fn column(&self) -> String {
        format!("f{}", self.id)
    }

    /// The unique index's name; PostgreSQL reports it on a violation.
    pub fn unique_index(&self) -> String {
        format!("u_f{}", self.id)
    }

    pub fn foreign_key(&self) -> String {
        format!("fk_f{}", self.id)
    }

    /// The expression a unique index and a uniqueness check compare: emails ignore case.
    pub fn unique_expr(&self, alias: &str) -> String {
        if self.def.field_type == FieldType::Email {
            format!("lower({alias}{})", self.column())
        } else {
            format!("{alias}{}", self.column())
        }
    }
}

/// The PostgreSQL column type of a stored field type (`None` for computed ones).
pub fn pg_type(t: FieldType) -> Option<&'static str> {
    Some(match t {
        FieldType::Text
        | FieldType::Email
        | FieldType::Phone
        | FieldType::Url
        | FieldType::Picklist => "text",
        FieldType::Number | FieldType::Currency | FieldType::Percent => "numeric",
        FieldType::Date => "date",
        FieldType::Datetime => "timestamptz",
        FieldType::Boolean => "boolean",
        FieldType::Multiselect => "text[]",
        FieldType::Lookup => "uuid",
        FieldType::Autonumber => "bigint",
        FieldType::Formula | FieldType::Rollup => return None,
    })
}

type Row = (
    i64,
    String,
    String,
    bool,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<i64>,
    Option<sqlx::types::Json<FieldDef>>,
    Option<bool>,
);

/// Loads objects of a workspace with their fields; all of them when `names` is `None`.
pub async fn load_objects<'e>(
    db: impl PgExecutor<'e>,
    workspace: Uuid,
    names: Option<&[String]>,
) -> sqlx::Result<Vec<ObjectMeta>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT o.id, o.api_name, o.label, o.is_standard, o.created_at, o.updated_at, f.id, f.definition, f.is_standard
         FROM oneo.objects o LEFT JOIN oneo.fields f ON f.object_id = o.id
         WHERE o.workspace_id = $1 AND ($2::text[] IS NULL OR o.api_name = ANY($2))
         ORDER BY o.id, f.id",
    )
    .bind(workspace)
    .bind(names)
    .fetch_all(db)
    .await?;
    let mut out: Vec<ObjectMeta> = Vec::new();
    for (oid, api_name, label, is_standard, created_at, updated_at, fid, def, fstd) in rows {
        if out.last().is_none_or(|o| o.id != oid) {
            out.push(ObjectMeta {
                id: oid,
                api_name,
                label,
                is_standard,
                created_at,
                updated_at,
                fields: vec![],
            });
        }
        if let (Some(id), Some(def), Some(is_standard), Some(obj)) =
            (fid, def, fstd, out.last_mut())
        {
            obj.fields.push(FieldMeta {
                id,
                def: def.0,
                is_standard,
            });
        }
    }
    Ok(out)
}

pub async fn load_object<'e>(
    db: impl PgExecutor<'e>,
    workspace: Uuid,
    name: &str,
) -> sqlx::Result<Option<ObjectMeta>> {
    Ok(load_objects(db, workspace, Some(&[name.to_string()]))
        .await?
        .pop())
}

/// An object with the objects its lookups and rollups touch, keyed by API name: what a record
/// read or write needs.
pub async fn load_with_related(
    conn: &mut sqlx::PgConnection,
    workspace: Uuid,
    name: &str,
) -> sqlx::Result<Option<(ObjectMeta, std::collections::HashMap<String, ObjectMeta>)>> {
    let Some(object) = load_object(&mut *conn, workspace, name).await? else {
        return Ok(None);
    };
    let names = object.related_objects();
    let related = if names.is_empty() {
        Default::default()
    } else {
        load_objects(&mut *conn, workspace, Some(&names))
            .await?
            .into_iter()
            .map(|o| (o.api_name.clone(), o))
            .collect()
    };
    Ok(Some((object, related)))
}

/// A whole workspace's schema, for checking definitions and dependencies.
pub struct WorkspaceSchema {
    pub objects: Vec<ObjectMeta>,
}

impl WorkspaceSchema {
    pub async fn load<'e>(db: impl PgExecutor<'e>, workspace: Uuid) -> sqlx::Result<Self> {
        Ok(Self {
            objects: load_objects(db, workspace, None).await?,
        })
    }

    pub fn object(&self, name: &str) -> Option<&ObjectMeta> {
        self.objects.iter().find(|o| o.api_name == name)
    }

    /// Fields elsewhere that would break if `object.field` went away (or the whole object,
    /// when `field` is `None`), as `object.field (kind)`.
    pub fn dependents(&self, object: &str, field: Option<&str>) -> Vec<String> {
        let mut out = Vec::new();
        for o in &self.objects {
            for f in &o.fields {
                let d = &f.def;
                let me = |name: &str| field.is_none_or(|x| x == name);
                let kind = if o.api_name == object && field.is_some_and(|x| x == d.api_name) {
                    None
                } else if d.field_type == FieldType::Lookup
                    && d.target.as_deref() == Some(object)
                    && field.is_none()
                    && o.api_name != object
                {
                    Some("lookup")
                } else if d.rollup.as_ref().is_some_and(|r| {
                    r.object == object
                        && (me(&r.via) || r.field.as_deref().is_some_and(me))
                        && !(field.is_none() && o.api_name == object)
                }) {
                    Some("rollup")
                } else if o.api_name == object
                    && field.is_some_and(|x| d.formula_operands().iter().any(|n| n == x))
                {
                    Some("formula")
                } else {
                    None
                };
                if let Some(kind) = kind {
                    out.push(format!("{}.{} ({kind})", o.api_name, d.api_name));
                }
            }
        }
        out
    }
}

impl SchemaView for WorkspaceSchema {
    fn fields_of(&self, object: &str) -> Option<Vec<FieldDef>> {
        self.object(object).map(ObjectMeta::defs)
    }
}
