//! Bucket fields: values mapped to named buckets (ranges of numbers and dates, sets of
//! picklist and text values) with a CASE expression.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, lit, when};
use oneo_catalog::FieldType;
use serde_json::Value as Json;

use crate::error::QueryError;
use crate::filter::scalar;
use crate::path::Resolved;
use crate::spec::Bucket;

/// A bucket field: each value mapped to the label of its bucket; a null stays null.
pub(crate) fn bucket_expr(
    buckets: &[Bucket],
    other: Option<&str>,
    on: &Resolved,
    part: &str,
) -> Result<Expr, QueryError> {
    if buckets.is_empty() {
        return Err(QueryError::spec(part, "needs at least one bucket"));
    }
    let ty = on.field.field_type;
    let ranged = ty.is_decimal()
        || matches!(
            ty,
            FieldType::Autonumber | FieldType::Date | FieldType::Datetime
        );
    let listed = ty.is_textual() || ty == FieldType::Picklist;
    let e = on.expr.clone();
    let mut case = when(e.clone().is_null(), lit(ScalarValue::Utf8(None)));
    let mut seen: Vec<&str> = Vec::new();
    for (i, b) in buckets.iter().enumerate() {
        let bpart = format!("{part}[{i}]");
        let cond = if ranged {
            let (Some(below), true) = (&b.below, b.values.is_empty()) else {
                return Err(QueryError::spec(
                    bpart,
                    format!(
                        "`{}` is a {} field: each bucket takes `below` (a bound), not `values`",
                        on.path,
                        ty.as_str()
                    ),
                ));
            };
            e.clone()
                .lt(scalar(&on.field, below, &format!("{bpart}.below"))?)
        } else if listed {
            if b.values.is_empty() || b.below.is_some() {
                return Err(QueryError::spec(
                    bpart,
                    format!(
                        "`{}` is a {} field: each bucket takes `values`, not `below`",
                        on.path,
                        ty.as_str()
                    ),
                ));
            }
            let mut list = Vec::with_capacity(b.values.len());
            for (j, v) in b.values.iter().enumerate() {
                if seen.contains(&v.as_str()) {
                    return Err(QueryError::spec(
                        format!("{bpart}.values[{j}]"),
                        format!("`{v}` is already in an earlier bucket"),
                    ));
                }
                seen.push(v);
                list.push(scalar(
                    &on.field,
                    &Json::String(v.clone()),
                    &format!("{bpart}.values[{j}]"),
                )?);
            }
            e.clone().in_list(list, false)
        } else {
            return Err(QueryError::spec(
                part,
                format!(
                    "`{}` is a {} field; buckets group numbers, dates, picklists and text",
                    on.path,
                    ty.as_str()
                ),
            ));
        };
        case = case.when(cond, lit(b.label.clone()));
    }
    Ok(case.otherwise(lit(other.unwrap_or("Other").to_string()))?)
}
