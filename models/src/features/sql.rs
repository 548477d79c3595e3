//! Pieces of the feature queries. Only catalog API names (checked to be plain identifiers)
//! and numbers Oneo computed go into the text; no user value is ever part of it.

use oneo_catalog::FieldType;

use crate::error::ModelError;

/// `name` as a quoted SQL identifier, refused unless it is a plain API name.
pub fn ident(name: &str) -> Result<String, ModelError> {
    oneo_catalog::check_api_name(name).map_err(|m| ModelError::definition("fields", m))?;
    Ok(format!("\"{name}\""))
}

/// The day (days since 1970-01-01) of a date or timestamp expression.
pub fn day(expr: &str) -> String {
    format!("CAST(CAST({expr} AS DATE) AS INT)")
}

/// A field's value as a feature column: numbers as doubles, booleans as 0/1, dates and
/// times as their age in days at `cut_day`, picklists and text as strings.
pub fn field_feature(t: FieldType, column: &str, cut_day: &str) -> String {
    match t {
        FieldType::Boolean => {
            format!("CASE WHEN {column} THEN 1.0 WHEN NOT {column} THEN 0.0 END")
        }
        FieldType::Date | FieldType::Datetime => {
            format!("CAST({cut_day} - {} AS DOUBLE)", day(column))
        }
        FieldType::Picklist | FieldType::Text => format!("CAST({column} AS VARCHAR)"),
        _ => format!("CAST({column} AS DOUBLE)"),
    }
}

/// A history table's rows as `(_op, _lsn, _seq, _commit_ts, <columns>)`; when scoring, with
/// the current rows of records the history lacks (copied from a snapshot, never changed
/// since) as one change each.
/// `object` and `columns` are quoted identifiers ([`ident`]).
pub fn changes(object: &str, columns: &[String], with_current: bool) -> String {
    let list = columns.join(", ");
    let history = format!("SELECT _op, _lsn, _seq, _commit_ts, {list} FROM history.{object}");
    if !with_current {
        return history;
    }
    format!(
        "{history} UNION ALL SELECT 'insert', CAST(0 AS BIGINT), CAST(0 AS BIGINT), updated_at, {list} \
         FROM crm.{object} WHERE id NOT IN (SELECT id FROM history.{object})"
    )
}

/// `object`'s `id` and `fields`, then `extra` (the model's own added fields), each once, as
/// quoted identifiers.
pub fn columns(fields: &[&str], extra: &[String]) -> Result<Vec<String>, ModelError> {
    let mut out = vec!["\"id\"".to_string()];
    for f in fields
        .iter()
        .map(|f| f.to_string())
        .chain(extra.iter().cloned())
    {
        let q = ident(&f)?;
        if !out.contains(&q) {
            out.push(q);
        }
    }
    Ok(out)
}

/// Training's cutoff days: `count` of them, `horizon` days apart, the newest a horizon before
/// the newest deal change (so every label's window has passed).
pub fn training_cutoffs(horizon: i64, count: i64) -> String {
    format!(
        "SELECT CAST(r.today - {horizon} * k.k AS INT) AS cut_day
           FROM (SELECT max({}) AS today FROM history.\"deal\") r
          CROSS JOIN (VALUES {}) AS k(k)",
        day("_commit_ts"),
        (1..=count)
            .map(|k| format!("({k})"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}
