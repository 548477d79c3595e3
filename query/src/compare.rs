//! Percent of parent and change from previous group: window functions over a summary's
//! grouping-sets answer.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::functions_window::expr_fn::lag;
use datafusion::logical_expr::expr::WindowFunction;
use datafusion::logical_expr::{
    Expr, ExprFunctionExt, WindowFunctionDefinition, cast, ident, lit, when,
};
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
/// flags (the order `Levels::read` expects). A group's parent, at any level of the rollup,
/// is the group of its outer groupings: an innermost group's is its outer groups, an owner
/// subtotal's is the grand total. So the partition holds the flags (the level) and each key
/// only where the row is also grouped by the next key (the key is a parent's, not the row's
/// own innermost).
pub(crate) fn with_comparisons(
    df: DataFrame,
    n_keys: usize,
    compares: &[(usize, Comparison)],
) -> Result<DataFrame, QueryError> {
    let mut partition: Vec<Expr> = (0..n_keys).map(|i| ident(level(i))).collect();
    for i in 0..n_keys - 1 {
        partition.push(
            when(ident(level(i + 1)).eq(lit(0)), ident(key(i)))
                .otherwise(lit(ScalarValue::Null))?,
        );
    }
    // Within one parent the rows differ in their innermost key only (the outer ones equal,
    // the inner ones rolled up), so ordering by every key orders them by it.
    let by_keys: Vec<_> = (0..n_keys)
        .map(|i| ident(key(i)).sort(true, false))
        .collect();
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
                    .order_by(by_keys.clone())
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
