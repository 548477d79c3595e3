//! Filters to predicates: each value parsed by its field's type (so `stage = "wonn"` is an
//! error naming the allowed values), relative dates turned into ranges, and the filter logic
//! (`"1 AND (2 OR 3)"`) combining them.

use chrono::NaiveDate;
use datafusion::common::ScalarValue;
use datafusion::functions::expr_fn::{lower, starts_with, strpos};
use datafusion::functions_nested::expr_fn::array_has;
use datafusion::logical_expr::{Expr, lit};
use oneo_catalog::{FieldDef, FieldType, Value};
use serde_json::Value as Json;

use crate::dates::{DateContext, DayRange, RELATIVE_DATES, relative_range};
use crate::error::QueryError;
use crate::path::Resolved;
use crate::spec::{Filter, FilterOp};

/// The predicate of one filter on its resolved field.
pub fn predicate(
    f: &Filter,
    on: &Resolved,
    dates: &DateContext,
    part: &str,
) -> Result<Expr, QueryError> {
    let e = on.expr.clone();
    let field = &on.field;
    let vpart = format!("{part}.value");
    let one = |v: &Json| scalar(field, v, &vpart);
    let ty = field.field_type;
    let relative = match (&f.value, ty) {
        (Json::String(s), FieldType::Date | FieldType::Datetime) => {
            relative_range(s, dates).map_err(|m| QueryError::spec(&vpart, m))?
        }
        _ => None,
    };
    if let Some(r) = relative {
        let (start, end) = bounds(field, r, dates);
        return Ok(match f.op {
            FilterOp::Equals => e.clone().gt_eq(start).and(e.lt(end)),
            FilterOp::NotEquals => e.clone().lt(start).or(e.gt_eq(end)),
            FilterOp::Lt => e.lt(start),
            FilterOp::Le => e.lt(end),
            FilterOp::Gt => e.gt_eq(end),
            FilterOp::Ge => e.gt_eq(start),
            op => {
                return Err(QueryError::spec(
                    &vpart,
                    format!(
                        "a relative date works with equals, not_equals, lt, le, gt and ge, not {}",
                        op.as_str()
                    ),
                ));
            }
        });
    }
    Ok(match f.op {
        FilterOp::IsNull | FilterOp::IsNotNull => {
            if !f.value.is_null() {
                return Err(QueryError::spec(
                    &vpart,
                    format!("{} takes no value", f.op.as_str()),
                ));
            }
            if f.op == FilterOp::IsNull {
                e.is_null()
            } else {
                e.is_not_null()
            }
        }
        FilterOp::Contains | FilterOp::StartsWith => {
            let Json::String(text) = &f.value else {
                return Err(QueryError::spec(&vpart, "must be a string"));
            };
            match ty {
                FieldType::Multiselect if f.op == FilterOp::Contains => {
                    array_has(e, one(&f.value)?)
                }
                t if t.is_textual() || t == FieldType::Picklist => {
                    // Case-insensitive, as analysts expect from a report filter.
                    let needle = lit(text.to_lowercase());
                    if f.op == FilterOp::Contains {
                        strpos(lower(e), needle).gt(lit(0))
                    } else {
                        starts_with(lower(e), needle)
                    }
                }
                t => {
                    return Err(QueryError::spec(
                        part,
                        format!(
                            "{} works on text fields (and contains on multiselect), not on `{}`, a {} field",
                            f.op.as_str(),
                            on.path,
                            t.as_str()
                        ),
                    ));
                }
            }
        }
        FilterOp::In | FilterOp::NotIn | FilterOp::Between => {
            let Json::Array(items) = &f.value else {
                return Err(QueryError::spec(
                    &vpart,
                    format!("{} takes an array", f.op.as_str()),
                ));
            };
            if f.op == FilterOp::Between && items.len() != 2 {
                return Err(QueryError::spec(&vpart, "between takes [low, high]"));
            }
            if items.is_empty() {
                return Err(QueryError::spec(&vpart, "needs at least one value"));
            }
            let values = items.iter().map(one).collect::<Result<Vec<_>, _>>()?;
            ordered(ty, f.op, part, &on.path)?;
            match f.op {
                FilterOp::Between => e.between(values[0].clone(), values[1].clone()),
                FilterOp::In => e.in_list(values, false),
                _ => e.in_list(values, true),
            }
        }
        op => {
            if ty == FieldType::Multiselect {
                return Err(QueryError::spec(
                    part,
                    format!(
                        "`{}` is a multiselect field: filter it with contains",
                        on.path
                    ),
                ));
            }
            ordered(ty, op, part, &on.path)?;
            let v = one(&f.value)?;
            match op {
                FilterOp::Equals => e.eq(v),
                FilterOp::NotEquals => e.not_eq(v),
                FilterOp::Lt => e.lt(v),
                FilterOp::Le => e.lt_eq(v),
                FilterOp::Gt => e.gt(v),
                _ => e.gt_eq(v),
            }
        }
    })
}

/// Order comparisons need an ordered type.
fn ordered(ty: FieldType, op: FilterOp, part: &str, path: &str) -> Result<(), QueryError> {
    let comparison = matches!(
        op,
        FilterOp::Lt | FilterOp::Le | FilterOp::Gt | FilterOp::Ge | FilterOp::Between
    );
    let orderable = ty.is_decimal()
        || ty.is_textual()
        || matches!(
            ty,
            FieldType::Date | FieldType::Datetime | FieldType::Autonumber
        );
    if comparison && !orderable {
        return Err(QueryError::spec(
            part,
            format!(
                "{} needs an ordered field; `{path}` is a {} field",
                op.as_str(),
                ty.as_str()
            ),
        ));
    }
    Ok(())
}

/// A relative range's bounds in the column's type.
fn bounds(field: &FieldDef, r: DayRange, dates: &DateContext) -> (Expr, Expr) {
    match field.field_type {
        FieldType::Date => (lit(date32(r.start)), lit(date32(r.end))),
        _ => {
            let ts = |d| {
                ScalarValue::TimestampMicrosecond(
                    Some(dates.day_start(d).timestamp_micros()),
                    Some("UTC".into()),
                )
            };
            (lit(ts(r.start)), lit(ts(r.end)))
        }
    }
}

fn date32(d: NaiveDate) -> ScalarValue {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    ScalarValue::Date32(i32::try_from((d - epoch).num_days()).ok())
}

/// A JSON value as a literal of the field's lake type, validated as the API validates writes.
pub(crate) fn scalar(field: &FieldDef, v: &Json, part: &str) -> Result<Expr, QueryError> {
    if v.is_null() {
        return Err(QueryError::spec(
            part,
            "null is not a value to compare with; use is_null or is_not_null",
        ));
    }
    // A filter value is compared with, not stored: the bounds and lengths of writes don't apply.
    let mut loose = field.clone();
    loose.min = None;
    loose.max = None;
    loose.pattern = None;
    loose.max_length = None;
    let value = if field.field_type == FieldType::Multiselect {
        // One option, to look for in the list.
        match v {
            Json::String(s) if field.options.as_ref().is_none_or(|o| o.contains(s)) => {
                Value::Text(s.clone())
            }
            _ => {
                return Err(QueryError::spec(
                    part,
                    format!(
                        "must be one of the options of `{}`: {}",
                        field.api_name,
                        field.options.clone().unwrap_or_default().join(", ")
                    ),
                ));
            }
        }
    } else {
        loose.parse_value(v).map_err(|reason| {
            let hint = if matches!(field.field_type, FieldType::Date | FieldType::Datetime) {
                format!(" (or a relative date: {RELATIVE_DATES})")
            } else {
                String::new()
            };
            QueryError::spec(part, format!("{reason}{hint}"))
        })?
    };
    Ok(lit(match value {
        Value::Null => ScalarValue::Null,
        Value::Text(s) => ScalarValue::Utf8(Some(s)),
        Value::Id(id) => ScalarValue::Utf8(Some(id.to_string())),
        Value::Decimal(d) => {
            let scale = field.scale();
            let mut d = d;
            d.rescale(scale);
            ScalarValue::Decimal128(
                Some(d.mantissa()),
                oneo_catalog::lake::DECIMAL_PRECISION,
                i8::try_from(scale).unwrap_or(10),
            )
        }
        Value::Integer(i) => ScalarValue::Int64(Some(i)),
        Value::Date(d) => date32(d),
        Value::Datetime(t) => {
            ScalarValue::TimestampMicrosecond(Some(t.timestamp_micros()), Some("UTC".into()))
        }
        Value::Boolean(b) => ScalarValue::Boolean(Some(b)),
        Value::List(items) => ScalarValue::Utf8(Some(items.join(","))),
    }))
}

/// Combines the filters' predicates by `logic`, or ANDs them all.
pub fn combine(predicates: Vec<Expr>, logic: Option<&str>) -> Result<Option<Expr>, QueryError> {
    let Some(logic) = logic.filter(|l| !l.trim().is_empty()) else {
        return Ok(predicates.into_iter().reduce(Expr::and));
    };
    let tokens = tokenize(logic)?;
    let mut p = LogicParser {
        tokens: &tokens,
        pos: 0,
        predicates: &predicates,
        used: vec![false; predicates.len()],
    };
    let expr = p.or()?;
    if p.pos != tokens.len() {
        return Err(logic_error(format!(
            "unexpected `{}`",
            tokens[p.pos].text()
        )));
    }
    if let Some(n) = p.used.iter().position(|u| !u) {
        return Err(logic_error(format!("filter {} is not used", n + 1)));
    }
    Ok(Some(expr))
}

fn logic_error(message: String) -> QueryError {
    QueryError::spec("filter_logic", message)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Num(usize),
    And,
    Or,
    Not,
    Open,
    Close,
}

impl Token {
    fn text(&self) -> String {
        match self {
            Token::Num(n) => n.to_string(),
            Token::And => "AND".into(),
            Token::Or => "OR".into(),
            Token::Not => "NOT".into(),
            Token::Open => "(".into(),
            Token::Close => ")".into(),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, QueryError> {
    let spaced = text.replace('(', " ( ").replace(')', " ) ");
    spaced
        .split_whitespace()
        .map(|w| match w.to_ascii_uppercase().as_str() {
            "AND" => Ok(Token::And),
            "OR" => Ok(Token::Or),
            "NOT" => Ok(Token::Not),
            "(" => Ok(Token::Open),
            ")" => Ok(Token::Close),
            n => n.parse().map(Token::Num).map_err(|_| {
                logic_error(format!(
                    "`{w}` is not a filter number, AND, OR, NOT or a parenthesis"
                ))
            }),
        })
        .collect()
}

/// `or := and (OR and)*`, `and := not (AND not)*`, `not := NOT not | atom`.
struct LogicParser<'a> {
    tokens: &'a [Token],
    pos: usize,
    predicates: &'a [Expr],
    used: Vec<bool>,
}

impl LogicParser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn or(&mut self) -> Result<Expr, QueryError> {
        let mut e = self.and()?;
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            e = e.or(self.and()?);
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, QueryError> {
        let mut e = self.not()?;
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            e = e.and(self.not()?);
        }
        Ok(e)
    }

    fn not(&mut self) -> Result<Expr, QueryError> {
        if self.peek() == Some(&Token::Not) {
            self.pos += 1;
            return Ok(!self.not()?);
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Expr, QueryError> {
        let token = self.peek().cloned();
        self.pos += 1;
        match token {
            Some(Token::Num(n)) if n >= 1 && n <= self.predicates.len() => {
                self.used[n - 1] = true;
                Ok(self.predicates[n - 1].clone())
            }
            Some(Token::Num(n)) => Err(logic_error(format!(
                "there is no filter {n} (filters are numbered 1 to {})",
                self.predicates.len()
            ))),
            Some(Token::Open) => {
                let e = self.or()?;
                if self.peek() != Some(&Token::Close) {
                    return Err(logic_error("a `(` is not closed".into()));
                }
                self.pos += 1;
                Ok(e)
            }
            Some(t) => Err(logic_error(format!(
                "expected a filter number, found `{}`",
                t.text()
            ))),
            None => Err(logic_error("ends too early".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::col;

    fn preds(n: usize) -> Vec<Expr> {
        (1..=n).map(|i| col(format!("c{i}")).eq(lit(1))).collect()
    }

    #[test]
    fn logic_combines_by_number_with_precedence() {
        let p = preds(3);
        let got = combine(p.clone(), Some("1 AND (2 OR 3)")).unwrap().unwrap();
        let want = p[0].clone().and(p[1].clone().or(p[2].clone()));
        assert_eq!(got, want);
        let got = combine(p.clone(), Some("1 or 2 and not 3"))
            .unwrap()
            .unwrap();
        let want = p[0].clone().or(p[1].clone().and(!p[2].clone()));
        assert_eq!(got, want);
        assert_eq!(
            combine(p.clone(), None).unwrap().unwrap(),
            p[0].clone().and(p[1].clone()).and(p[2].clone())
        );
    }

    #[test]
    fn bad_logic_names_the_problem() {
        let msg = |l: &str| combine(preds(3), Some(l)).unwrap_err().to_string();
        assert!(msg("1 AND 4 AND 2 AND 3").contains("there is no filter 4"));
        assert!(msg("1 AND 2").contains("filter 3 is not used"));
        assert!(msg("(1 AND 2 OR 3").contains("not closed"));
        assert!(msg("1 AND 2 XOR 3").contains("`XOR`"));
        assert!(msg("1 AND").contains("ends too early"));
    }
}
