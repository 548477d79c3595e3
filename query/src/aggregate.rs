//! Aggregates resolved and compiled: which input each reads, under which condition, and the
//! DataFusion aggregate expression over the projected columns.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::functions_aggregate::expr_fn::{avg, count, count_distinct, max, median, min, sum};
use datafusion::logical_expr::{Expr, ExprFunctionExt, cast, ident, lit, when};
use oneo_catalog::FieldType;

use crate::dates::DateContext;
use crate::error::QueryError;
use crate::filter::{combine, predicate};
use crate::path::Paths;
use crate::spec::{Aggregate, AggregateFn};

/// An aggregate resolved: its output name, the expression over the projected input, and
/// the type of its values.
pub(crate) struct AggregateCol {
    pub name: String,
    pub input: Option<Expr>,
    /// Only rows meeting this count towards it.
    pub condition: Option<Expr>,
    pub function: AggregateFn,
    pub kind: String,
}

pub(crate) fn aggregate_col(
    a: &Aggregate,
    paths: &mut Paths<'_>,
    dates: &DateContext,
    part: &str,
) -> Result<AggregateCol, QueryError> {
    let mut conditions = Vec::with_capacity(a.condition.len());
    for (i, f) in a.condition.iter().enumerate() {
        let at = format!("{part}.where[{i}]");
        let on = paths.resolve(&f.field, &format!("{at}.field"))?;
        conditions.push(predicate(f, &on, dates, &at)?);
    }
    let condition = combine(conditions, None)?;
    let on = match (&a.field, a.function) {
        (None, AggregateFn::Count) => None,
        (None, f) => {
            return Err(QueryError::spec(
                format!("{part}.field"),
                format!("{} needs a field", f.as_str()),
            ));
        }
        (Some(p), _) => Some(paths.resolve(p, &format!("{part}.field"))?),
    };
    let ty = on.as_ref().map(|r| r.field.field_type);
    let numeric = |t: FieldType| t.is_decimal() || t == FieldType::Autonumber;
    let allowed = match (a.function, ty) {
        (AggregateFn::Count, _) => true,
        (AggregateFn::Sum | AggregateFn::Avg | AggregateFn::Median, Some(t)) => numeric(t),
        (AggregateFn::Min | AggregateFn::Max, Some(t)) => {
            !matches!(t, FieldType::Multiselect | FieldType::Boolean)
        }
        (AggregateFn::CountDistinct, Some(t)) => t != FieldType::Multiselect,
        (_, None) => false,
    };
    if !allowed {
        let t = ty.map_or("", FieldType::as_str);
        let wants = match a.function {
            AggregateFn::Sum | AggregateFn::Avg | AggregateFn::Median => {
                "a number, currency, percent or autonumber field"
            }
            _ => "a single-valued field other than a boolean",
        };
        return Err(QueryError::spec(
            format!("{part}.fn"),
            format!(
                "{} needs {wants}; `{}` is a {t} field",
                a.function.as_str(),
                a.field.clone().unwrap_or_default()
            ),
        ));
    }
    let kind = match (a.function, ty) {
        (AggregateFn::Count | AggregateFn::CountDistinct, _) => "integer".to_string(),
        (AggregateFn::Avg, _) => "decimal".to_string(),
        (_, Some(t)) => t.as_str().to_string(),
        (_, None) => "integer".to_string(),
    };
    let input = on.map(|r| {
        if a.function == AggregateFn::Median {
            // The median of an even count is the mean of the middle two, which needs one
            // more decimal place than its inputs; at the input's own scale the engine would
            // cut it (5401.145 shown as 5401.14).
            let scale = if r.field.field_type.is_decimal() {
                r.field.scale()
            } else {
                0
            };
            cast(r.expr, DataType::Decimal128(38, scale as i8 + 1))
        } else if a.function == AggregateFn::CountDistinct {
            // Distinct ids counted by key: an integer set, not a set of strings.
            r.key.unwrap_or(r.expr)
        } else {
            r.expr
        }
    });
    Ok(AggregateCol {
        name: a.name(),
        input,
        condition,
        function: a.function,
        kind,
    })
}

fn aggregate_expr(function: AggregateFn, input: Expr) -> Expr {
    match function {
        AggregateFn::Count => count(input),
        AggregateFn::CountDistinct => count_distinct(input),
        AggregateFn::Sum => sum(input),
        AggregateFn::Avg => avg(input),
        AggregateFn::Min => min(input),
        AggregateFn::Max => max(input),
        AggregateFn::Median => median(input),
    }
}

/// The projected input and condition columns of `aggs` (`__a<j>`, `__p<j>`).
pub(crate) fn inputs(aggs: &[AggregateCol]) -> Vec<Expr> {
    let mut out = Vec::new();
    for (j, a) in aggs.iter().enumerate() {
        if let Some(input) = &a.input {
            out.push(input.clone().alias(format!("__a{j}")));
        }
        if let Some(c) = &a.condition {
            out.push(c.clone().alias(format!("__p{j}")));
        }
    }
    out
}

/// The aggregate expressions over the columns [`inputs`] projected, each named by `name(j)`.
pub(crate) fn aggregate_exprs(
    aggs: &[AggregateCol],
    name: impl Fn(usize) -> String,
) -> Result<Vec<Expr>, QueryError> {
    let mut out = Vec::with_capacity(aggs.len());
    for (j, a) in aggs.iter().enumerate() {
        let input = a
            .input
            .as_ref()
            .map_or(lit(1), |_| ident(format!("__a{j}")));
        let condition = a.condition.as_ref().map(|_| ident(format!("__p{j}")));
        let e = match (condition, a.function) {
            // A distinct count takes the values of the rows meeting the condition (the
            // others as null, which it doesn't count). With FILTER, DataFusion 55 answered
            // one more than PostgreSQL beside an unfiltered count of the same field (the
            // oracle case "conditional count distinct" caught it).
            (Some(c), AggregateFn::CountDistinct) => aggregate_expr(
                a.function,
                when(c, input).otherwise(lit(ScalarValue::Null))?,
            ),
            // FILTER (WHERE …): a row whose condition is false or null doesn't count.
            (Some(c), _) => aggregate_expr(a.function, input).filter(c).build()?,
            (None, _) => aggregate_expr(a.function, input),
        };
        out.push(e.alias(name(j)));
    }
    Ok(out)
}

/// How an aggregate's values over disjoint groups combine into its value over their union.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Combine {
    Sum,
    Min,
    Max,
}

impl Combine {
    pub fn over(self, partial: Expr) -> Expr {
        match self {
            Self::Sum => sum(partial),
            Self::Min => min(partial),
            Self::Max => max(partial),
        }
    }
}

/// How each of `aggs` combines, when every one does exactly: counts and sums add up, minima
/// and maxima are taken again. A distinct count, an average or a median does not (the same
/// value may sit in two groups; a mean of means is not the mean).
pub(crate) fn combinations(aggs: &[AggregateCol]) -> Option<Vec<Combine>> {
    aggs.iter()
        .map(|a| match a.function {
            AggregateFn::Count | AggregateFn::Sum => Some(Combine::Sum),
            AggregateFn::Min => Some(Combine::Min),
            AggregateFn::Max => Some(Combine::Max),
            AggregateFn::CountDistinct | AggregateFn::Avg | AggregateFn::Median => None,
        })
        .collect()
}
