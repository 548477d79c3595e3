//! Percent of parent and change from previous group: window functions over a summary's
//! grouping-sets answer.

use datafusion::arrow::datatypes::DataType;
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::functions_window::expr_fn::lag;
use datafusion::logical_expr::expr::WindowFunction;
use datafusion::logical_expr::{Expr, ExprFunctionExt, WindowFunctionDefinition, cast, ident, lit};
use datafusion::prelude::DataFrame;

use crate::error::QueryError;
use crate::grouped::{key, level, value};
use crate::spec::{Aggregate, AggregateFn, Comparison, ReportKind};

/// The aggregates to compare with their neighbours: (aggregate index, comparison).
pub(crate) fn comparisons(
    aggregates: &[Aggregate],
    kind: ReportKind,
) -> Result<Vec<(usize, Comparison)>, QueryError> {
    let mut out = Vec::new();
    for (j, a) in aggregates.iter().enumerate() {
        let Some(c) = a.compare else { continue };
        let part = format!("aggregates[{j}].compare");
        if kind != ReportKind::Summary {
            return Err(QueryError::spec(
                part,
                "comparisons are shown in summary reports",
            ));
        }
        let additive = matches!(a.function, AggregateFn::Count | AggregateFn::Sum);
        if c == Comparison::PercentOfParent && !additive {
            return Err(QueryError::spec(
                part,
                format!(
                    "percent_of_parent needs a count or sum (parts of a {} don't add up to the whole)",
                    a.function.as_str()
                ),
            ));
        }
        out.push((j, c));
    }
    Ok(out)
}

/// Adds a window column per comparison after the aggregate values, before the grouping
/// flags (the order `Levels::read` expects). The parent of an innermost group is the same
/// values of every grouping but the last.
pub(crate) fn with_comparisons(
    df: DataFrame,
    n_keys: usize,
    compares: &[(usize, Comparison)],
) -> Result<DataFrame, QueryError> {
    let mut partition: Vec<Expr> = (0..n_keys).map(|i| ident(level(i))).collect();
    partition.extend((0..n_keys - 1).map(|i| ident(key(i))));
    // The physical planner takes only bare window functions in a window node (the
    // arithmetic over them goes in the projection after it), all with the same sort keys.
    let mut windows = Vec::with_capacity(compares.len());
    let mut shown = Vec::with_capacity(compares.len());
    for (c_idx, &(j, c)) in compares.iter().enumerate() {
        let v = ident(value(j));
        let w = ident(format!("__w{c_idx}"));
        let (window, show) = match c {
            Comparison::PercentOfParent => (
                Expr::from(WindowFunction::new(
                    WindowFunctionDefinition::AggregateUDF(sum_udaf()),
                    vec![v.clone()],
                ))
                .partition_by(partition.clone())
                .build()?,
                cast(v, DataType::Float64) * lit(100.0) / cast(w, DataType::Float64),
            ),
            Comparison::ChangeFromPrevious => (
                lag(v.clone(), Some(1), None)
                    .partition_by(partition.clone())
                    .order_by(vec![ident(key(n_keys - 1)).sort(true, false)])
                    .build()?,
                v - w,
            ),
        };
        windows.push(window.alias(format!("__w{c_idx}")));
        shown.push(show.alias(format!("__c{c_idx}")));
    }
    let n_values = df.schema().fields().len() - 2 * n_keys;
    // One window node each: a node's functions must share their sort keys.
    let mut df = df;
    for w in windows {
        df = df.window(vec![w])?;
    }
    let mut order: Vec<Expr> = (0..n_keys).map(|i| ident(key(i))).collect();
    order.extend((0..n_values).map(|j| ident(value(j))));
    order.extend(shown);
    order.extend((0..n_keys).map(|i| ident(level(i))));
    Ok(df.select(order)?)
}
