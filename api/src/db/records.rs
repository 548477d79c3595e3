//! Reading records: the SELECT list for an object (stored columns and rollup subqueries),
//! decoding rows into JSON, and formulas computed on read. Also the validation of a record
//! body against the object's fields.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use oneo_catalog::formula::Formula;
use oneo_catalog::{FieldType, Issue, RollupFunction, Value};
use rust_decimal::Decimal;
use serde_json::{Map, Value as Json};
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::schema::ObjectMeta;

/// How each selected column after the four system columns is decoded.
#[derive(Debug, Clone)]
enum Column {
    Stored { field: usize },
    Rollup { field: usize, kind: FieldType },
}

/// What to select for an object and how to turn rows into JSON records.
pub struct Projection {
    pub select: String,
    columns: Vec<Column>,
    formulas: Vec<(usize, Formula)>,
}

impl Projection {
    /// `related` holds the objects that rollups read from.
    pub fn new(object: &ObjectMeta, related: &HashMap<String, ObjectMeta>) -> Self {
        let mut select = vec![
            "r.id".to_string(),
            "r.version".into(),
            "r.created_at".into(),
            "r.updated_at".into(),
        ];
        let mut columns = Vec::new();
        let mut formulas = Vec::new();
        for (i, f) in object.fields.iter().enumerate() {
            match f.def.field_type {
                FieldType::Formula => {
                    if let Some(parsed) = f
                        .def
                        .expression
                        .as_deref()
                        .and_then(|s| Formula::parse(s).ok())
                    {
                        formulas.push((i, parsed));
                    }
                }
                FieldType::Rollup => {
                    let Some(spec) = &f.def.rollup else { continue };
                    let child = if spec.object == object.api_name {
                        Some(object)
                    } else {
                        related.get(&spec.object)
                    };
                    let Some(child) = child else { continue };
                    let (Some(via), target) = (
                        child.field(&spec.via),
                        spec.field.as_deref().and_then(|n| child.field(n)),
                    ) else {
                        continue;
                    };
                    let (agg, kind) = match (spec.function, target) {
                        (RollupFunction::Count, _) => {
                            ("count(*)".to_string(), FieldType::Autonumber)
                        }
                        (RollupFunction::Sum, Some(t)) => (
                            format!("coalesce(sum(c.{}), 0)", t.column()),
                            FieldType::Number,
                        ),
                        (RollupFunction::Min, Some(t)) => {
                            (format!("min(c.{})", t.column()), t.def.field_type)
                        }
                        (RollupFunction::Max, Some(t)) => {
                            (format!("max(c.{})", t.column()), t.def.field_type)
                        }
                        _ => continue,
                    };
                    select.push(format!(
                        "(SELECT {agg} FROM {} c WHERE c.{} = r.id)",
                        child.table(),
                        via.column()
                    ));
                    columns.push(Column::Rollup { field: i, kind });
                }
                _ => {
                    select.push(format!("r.{}", f.column()));
                    columns.push(Column::Stored { field: i });
                }
            }
        }
        Self {
            select: select.join(", "),
            columns,
            formulas: order_formulas(object, formulas),
        }
    }

    /// One row as the API's record JSON: system fields, then every field by API name.
    pub fn decode(&self, object: &ObjectMeta, row: &PgRow) -> sqlx::Result<Json> {
        let mut values: HashMap<&str, Value> = HashMap::new();
        for (n, col) in self.columns.iter().enumerate() {
            let idx = n + 4;
            let (field, kind) = match col {
                Column::Stored { field } => (*field, object.fields[*field].def.field_type),
                Column::Rollup { field, kind } => (*field, *kind),
            };
            values.insert(
                &object.fields[field].def.api_name,
                decode_value(row, idx, kind)?,
            );
        }
        for (i, formula) in &self.formulas {
            let v = formula.eval(&|name| values.get(name).cloned().unwrap_or(Value::Null));
            values.insert(&object.fields[*i].def.api_name, v);
        }
        let mut out = Map::new();
        out.insert(
            "id".into(),
            Json::String(row.try_get::<Uuid, _>(0)?.to_string()),
        );
        out.insert("version".into(), Json::from(row.try_get::<i64, _>(1)?));
        out.insert(
            "created_at".into(),
            Value::Datetime(row.try_get(2)?).to_json(),
        );
        out.insert(
            "updated_at".into(),
            Value::Datetime(row.try_get(3)?).to_json(),
        );
        for f in &object.fields {
            let v = values
                .get(f.def.api_name.as_str())
                .map_or(Json::Null, |v| formula_json(v, f.def.field_type));
            out.insert(f.def.api_name.clone(), v);
        }
        Ok(Json::Object(out))
    }
}

/// Formula numbers come back normalised ("250"), stored decimals at their scale ("250.00").
fn formula_json(v: &Value, t: FieldType) -> Json {
    match (v, t) {
        (Value::Decimal(d), FieldType::Formula) => Json::String(d.normalize().to_string()),
        _ => v.to_json(),
    }
}

/// Formulas that read other formulas are evaluated after them.
fn order_formulas(object: &ObjectMeta, formulas: Vec<(usize, Formula)>) -> Vec<(usize, Formula)> {
    let mut done: Vec<(usize, Formula)> = Vec::new();
    let mut pending = formulas;
    while !pending.is_empty() {
        let before = pending.len();
        let (ready, rest): (Vec<_>, Vec<_>) = pending.into_iter().partition(|(_, f)| {
            f.field_names().iter().all(|n| {
                let is_pending_formula = object.field(n).is_some_and(|x| {
                    x.def.field_type == FieldType::Formula
                        && !done
                            .iter()
                            .any(|(j, _)| object.fields[*j].def.api_name == *n)
                });
                !is_pending_formula
            })
        });
        done.extend(ready);
        pending = rest;
        if pending.len() == before {
            // A cycle can't be defined (it is refused), but never loop on a broken catalog.
            break;
        }
    }
    done
}

fn decode_value(row: &PgRow, idx: usize, t: FieldType) -> sqlx::Result<Value> {
    Ok(match t {
        FieldType::Text
        | FieldType::Email
        | FieldType::Phone
        | FieldType::Url
        | FieldType::Picklist => row
            .try_get::<Option<String>, _>(idx)?
            .map_or(Value::Null, Value::Text),
        FieldType::Number | FieldType::Currency | FieldType::Percent => row
            .try_get::<Option<Decimal>, _>(idx)?
            .map_or(Value::Null, Value::Decimal),
        FieldType::Date => row
            .try_get::<Option<NaiveDate>, _>(idx)?
            .map_or(Value::Null, Value::Date),
        FieldType::Datetime => row
            .try_get::<Option<DateTime<Utc>>, _>(idx)?
            .map_or(Value::Null, Value::Datetime),
        FieldType::Boolean => row
            .try_get::<Option<bool>, _>(idx)?
            .map_or(Value::Null, Value::Boolean),
        FieldType::Multiselect => row
            .try_get::<Option<Vec<String>>, _>(idx)?
            .map_or(Value::Null, Value::List),
        FieldType::Lookup => row
            .try_get::<Option<Uuid>, _>(idx)?
            .map_or(Value::Null, Value::Id),
        FieldType::Autonumber => row
            .try_get::<Option<i64>, _>(idx)?
            .map_or(Value::Null, Value::Integer),
        FieldType::Formula | FieldType::Rollup => Value::Null,
    })
}

/// A validated record body: `(field index, value)` for each field given.
pub type Values = Vec<(usize, Value)>;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Create,
    Update,
}

/// Checks a record body against the object's fields: unknown and read-only keys, each value's
/// type and constraints, and required fields. On create, omitted fields with a default get it.
pub fn validate(
    object: &ObjectMeta,
    body: &Map<String, Json>,
    mode: Mode,
) -> Result<Values, Vec<Issue>> {
    let mut issues = Vec::new();
    let mut out: Values = Vec::new();
    for (key, raw) in body {
        if matches!(key.as_str(), "id" | "created_at" | "updated_at")
            || (key == "version" && mode == Mode::Create)
        {
            issues.push(Issue::new(key, "is set by Oneo; leave it out"));
            continue;
        }
        if key == "version" {
            continue;
        }
        let Some(i) = object.fields.iter().position(|f| &f.def.api_name == key) else {
            let known: Vec<&str> = object
                .stored_fields()
                .map(|f| f.def.api_name.as_str())
                .collect();
            issues.push(Issue::new(
                key,
                format!(
                    "`{}` has no field `{key}`; its fields are: {}",
                    object.api_name,
                    known.join(", ")
                ),
            ));
            continue;
        };
        let def = &object.fields[i].def;
        match def.parse_value(raw) {
            Ok(Value::Null) if def.required => {
                issues.push(Issue::new(key, "is required and can't be null"))
            }
            Ok(v) => out.push((i, v)),
            Err(reason) => issues.push(Issue::new(key, reason)),
        }
    }
    if mode == Mode::Create {
        for (i, f) in object.fields.iter().enumerate() {
            if body.contains_key(&f.def.api_name) || !f.def.field_type.is_stored() {
                continue;
            }
            match f.def.default.as_ref().map(|d| f.def.parse_value(d)) {
                Some(Ok(v)) if !v.is_null() => out.push((i, v)),
                _ if f.def.required => issues.push(Issue::new(&f.def.api_name, "is required")),
                _ => {}
            }
        }
    }
    if issues.is_empty() {
        Ok(out)
    } else {
        Err(issues)
    }
}

/// The value as a key of the JSON object `jsonb_populate_recordset` turns into a row.
pub fn column_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::List(items) => Json::from(items.clone()),
        Value::Boolean(b) => Json::Bool(*b),
        other => other.to_sql_text().map_or(Json::Null, Json::String),
    }
}
