//! `GET /v1/records/{object}`: filters, sort and keyset (cursor) pagination.
//!
//! Query string: `filter=FIELD:OP:VALUE` (repeatable; OP one of eq, ne, lt, lte, gt, gte, in,
//! contains, is_null), `sort=-amount,name` (up to 3 fields, `-` for descending), `limit`
//! (1..=1000, default 50) and `cursor` (from the previous page). Every value is bound as a
//! parameter and cast to the column's type; the SQL text holds only Oneo's identifiers.

use base64::Engine;
use oneo_catalog::{FieldType, Issue, Issues};
use serde_json::Value as Json;

use super::schema::{ObjectMeta, pg_type};

pub const MAX_LIMIT: i64 = 1_000;
const MAX_SORT_KEYS: usize = 3;

/// A sortable or filterable column: its SQL, its type cast, and its kind.
#[derive(Debug, Clone)]
struct Col {
    name: String,
    sql: String,
    cast: &'static str,
    kind: Option<FieldType>,
}

fn column(object: &ObjectMeta, name: &str) -> Result<Col, String> {
    let system = match name {
        "id" => Some(("r.id", "uuid")),
        "version" => Some(("r.version", "bigint")),
        "created_at" => Some(("r.created_at", "timestamptz")),
        "updated_at" => Some(("r.updated_at", "timestamptz")),
        _ => None,
    };
    if let Some((sql, cast)) = system {
        return Ok(Col {
            name: name.into(),
            sql: sql.into(),
            cast,
            kind: None,
        });
    }
    let f = object
        .field(name)
        .ok_or_else(|| format!("`{}` has no field `{name}`", object.api_name))?;
    let cast = pg_type(f.def.field_type).ok_or_else(|| {
        format!(
            "`{name}` is a {} field, computed on read; filter and sort on it in a report",
            f.def.field_type.as_str()
        )
    })?;
    Ok(Col {
        name: name.into(),
        sql: format!("r.{}", f.column()),
        cast,
        kind: Some(f.def.field_type),
    })
}

/// A compiled list query: WHERE and ORDER BY clauses with their text parameters.
#[derive(Debug, Default)]
pub struct ListQuery {
    pub where_sql: Vec<String>,
    pub order_sql: String,
    pub params: Vec<Option<String>>,
    pub limit: i64,
    /// SQL for the sort keys of each row as text, to build the next cursor.
    pub key_sql: Vec<String>,
    sort_spec: String,
}

impl ListQuery {
    fn bind(&mut self, v: Option<String>) -> String {
        self.params.push(v);
        format!("${}", self.params.len())
    }

    /// The cursor after a row whose sort keys (as text) are `keys`.
    pub fn cursor_after(&self, keys: Vec<Option<String>>) -> String {
        let body = serde_json::json!({"s": self.sort_spec, "k": keys});
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(body.to_string())
    }
}

fn check_value(col: &Col, v: &str) -> Result<(), String> {
    let ok = match col.kind {
        None if col.name == "id" => uuid::Uuid::parse_str(v).is_ok(),
        None if col.name == "version" => v.parse::<i64>().is_ok(),
        None => chrono::DateTime::parse_from_rfc3339(v).is_ok(),
        Some(FieldType::Number | FieldType::Currency | FieldType::Percent) => {
            v.parse::<rust_decimal::Decimal>().is_ok()
        }
        Some(FieldType::Autonumber) => v.parse::<i64>().is_ok(),
        Some(FieldType::Date) => chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok(),
        Some(FieldType::Datetime) => chrono::DateTime::parse_from_rfc3339(v).is_ok(),
        Some(FieldType::Boolean) => matches!(v, "true" | "false"),
        Some(FieldType::Lookup) => uuid::Uuid::parse_str(v).is_ok(),
        Some(_) => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("`{v}` is not a valid value for `{}`", col.name))
    }
}

fn filter(q: &mut ListQuery, object: &ObjectMeta, spec: &str) -> Result<(), String> {
    let mut parts = spec.splitn(3, ':');
    let (Some(name), Some(op), Some(value)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("`{spec}` is not FIELD:OP:VALUE"));
    };
    let col = column(object, name)?;
    let (c, cast) = (col.sql.clone(), col.cast);
    let multi = col.kind == Some(FieldType::Multiselect);
    let sql = match op {
        "is_null" => match value {
            "true" => format!("{c} IS NULL"),
            "false" => format!("{c} IS NOT NULL"),
            _ => return Err(format!("is_null takes true or false, not `{value}`")),
        },
        "contains" if multi => format!("{} = ANY({c})", q.bind(Some(value.into()))),
        "contains"
            if col
                .kind
                .is_some_and(|k| k.is_textual() || k == FieldType::Picklist) =>
        {
            format!(
                "strpos(lower({c}), lower({})) > 0",
                q.bind(Some(value.into()))
            )
        }
        "contains" => {
            return Err(format!(
                "contains applies to text and multiselect fields, not `{name}`"
            ));
        }
        _ if multi => return Err(format!("multiselect `{name}` takes contains or is_null")),
        "in" => {
            let items: Vec<String> = if value.starts_with('[') {
                serde_json::from_str(value)
                    .map_err(|_| format!("`{value}` is not a JSON array of strings"))?
            } else {
                value.split(',').map(str::to_string).collect()
            };
            for v in &items {
                check_value(&col, v)?;
            }
            let p = q.bind(Some(serde_json::to_string(&items).unwrap_or_default()));
            format!("{c} = ANY(ARRAY(SELECT jsonb_array_elements_text({p}::jsonb))::{cast}[])")
        }
        "eq" | "ne" | "lt" | "lte" | "gt" | "gte" => {
            check_value(&col, value)?;
            let sym = match op {
                "eq" => "=",
                "ne" => "IS DISTINCT FROM",
                "lt" => "<",
                "lte" => "<=",
                "gt" => ">",
                _ => ">=",
            };
            format!("{c} {sym} {}::{cast}", q.bind(Some(value.into())))
        }
        _ => {
            return Err(format!(
                "unknown operator `{op}`; use eq, ne, lt, lte, gt, gte, in, contains or is_null"
            ));
        }
    };
    q.where_sql.push(sql);
    Ok(())
}

/// Builds the query from the raw query string pairs.
pub fn compile(object: &ObjectMeta, pairs: &[(String, String)]) -> Result<ListQuery, Issues> {
    let mut q = ListQuery {
        limit: 50,
        ..Default::default()
    };
    let mut issues = Vec::new();
    let mut sort = "id".to_string();
    let mut cursor = None;
    for (k, v) in pairs {
        match k.as_str() {
            "filter" => {
                if let Err(e) = filter(&mut q, object, v) {
                    issues.push(Issue::new(format!("filter={v}"), e));
                }
            }
            "sort" => sort = v.clone(),
            "limit" => match v.parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => q.limit = n,
                _ => issues.push(Issue::new(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_LIMIT}"),
                )),
            },
            "cursor" => cursor = Some(v.clone()),
            other => issues.push(Issue::new(
                other,
                "unknown parameter; use filter, sort, limit or cursor",
            )),
        }
    }
    let mut keys: Vec<(Col, bool)> = Vec::new();
    for part in sort.split(',').filter(|s| !s.is_empty()) {
        let (name, desc) = part.strip_prefix('-').map_or((part, false), |n| (n, true));
        match column(object, name) {
            Ok(c) if c.kind == Some(FieldType::Multiselect) => issues.push(Issue::new(
                "sort",
                format!("can't sort on multiselect `{name}`"),
            )),
            Ok(c) => keys.push((c, desc)),
            Err(e) => issues.push(Issue::new("sort", e)),
        }
    }
    if keys.len() > MAX_SORT_KEYS {
        issues.push(Issue::new(
            "sort",
            format!("at most {MAX_SORT_KEYS} fields"),
        ));
    }
    if !issues.is_empty() {
        return Err(Issues(issues));
    }
    // The id breaks ties, so every row has one place in the order and pages never overlap.
    if keys.last().is_none_or(|(c, _)| c.name != "id") {
        keys.push((
            column(object, "id").map_err(|e| Issues::one("sort", e))?,
            false,
        ));
    }
    q.sort_spec = keys
        .iter()
        .map(|(c, d)| format!("{}{}", if *d { "-" } else { "" }, c.name))
        .collect::<Vec<_>>()
        .join(",");
    q.order_sql = keys
        .iter()
        .map(|(c, d)| format!("{}{}", c.sql, if *d { " DESC" } else { "" }))
        .collect::<Vec<_>>()
        .join(", ");
    q.key_sql = keys
        .iter()
        .map(|(c, _)| format!("{}::text", c.sql))
        .collect();
    if let Some(cur) = cursor {
        let values =
            decode_cursor(&cur, &q.sort_spec, keys.len()).map_err(|e| Issues::one("cursor", e))?;
        let after = after_clause(&mut q, &keys, &values);
        q.where_sql.push(after);
    }
    Ok(q)
}

fn decode_cursor(cur: &str, spec: &str, n: usize) -> Result<Vec<Option<String>>, String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cur)
        .map_err(|_| "not a cursor from this API".to_string())?;
    let body: Json =
        serde_json::from_slice(&bytes).map_err(|_| "not a cursor from this API".to_string())?;
    if body["s"] != spec {
        return Err("the cursor belongs to a different sort; start again without it".into());
    }
    let keys: Vec<Option<String>> = serde_json::from_value(body["k"].clone())
        .map_err(|_| "not a cursor from this API".to_string())?;
    if keys.len() != n {
        return Err("not a cursor from this API".into());
    }
    Ok(keys)
}

/// Rows strictly after the cursor in the sort order. PostgreSQL puts nulls last ascending and
/// first descending; the clause follows that.
fn after_clause(q: &mut ListQuery, keys: &[(Col, bool)], values: &[Option<String>]) -> String {
    let mut ors = Vec::new();
    for i in 0..keys.len() {
        let mut ands = Vec::new();
        for j in 0..i {
            let (c, _) = &keys[j];
            ands.push(match &values[j] {
                None => format!("{} IS NULL", c.sql),
                Some(v) => format!("{} = {}::{}", c.sql, q.bind(Some(v.clone())), c.cast),
            });
        }
        let (c, desc) = &keys[i];
        let beyond = match (&values[i], desc) {
            (None, false) => "false".to_string(),
            (None, true) => format!("{} IS NOT NULL", c.sql),
            (Some(v), false) => format!(
                "({} > {p}::{cast} OR {} IS NULL)",
                c.sql,
                c.sql,
                p = q.bind(Some(v.clone())),
                cast = c.cast
            ),
            (Some(v), true) => format!("{} < {}::{}", c.sql, q.bind(Some(v.clone())), c.cast),
        };
        ands.push(beyond);
        ors.push(format!("({})", ands.join(" AND ")));
    }
    format!("({})", ors.join(" OR "))
}
