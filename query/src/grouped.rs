//! Summary and matrix reports: an aggregate over GROUPING SETS (every prefix of the
//! groupings for a summary, every row prefix × column prefix for a matrix), its rows placed by
//! the `grouping()` flags. Where every aggregate combines exactly, the grouping sets roll up
//! the finest groups, made by a first aggregate (or per lookup, see [`crate::eager`]).

use std::collections::HashSet;

use datafusion::functions_aggregate::expr_fn::grouping;
use datafusion::logical_expr::{Expr, GroupingSet, SortExpr, ident};
use datafusion::prelude::DataFrame;

use crate::aggregate::{
    AggregateCol, Combine, aggregate_col, aggregate_exprs, combinations, inputs,
};
use crate::compare::{comparisons, with_comparisons};
use crate::dates::DateContext;
use crate::error::QueryError;
use crate::formula::{SummaryFormulas, kind_type, summary_formulas};
use crate::groupings::{GroupKey, group_key, periods_from_days, with_ids};
use crate::levels::Levels;
use crate::matrix::shape_matrix;
use crate::path::Paths;
use crate::report::{ReportResult, Subtotal, collect};
use crate::result::{ColumnInfo, Freshness};
use crate::spec::{Aggregate, AggregateFn, Comparison, ReportKind, ReportSpec};
use crate::workspace::WorkspaceSession;

pub(crate) fn key(i: usize) -> String {
    format!("__k{i}")
}

pub(crate) fn value(j: usize) -> String {
    format!("__v{j}")
}

pub(crate) fn level(i: usize) -> String {
    format!("__g{i}")
}

pub(crate) async fn grouped(
    session: &WorkspaceSession,
    spec: &ReportSpec,
    mut paths: Paths<'_>,
    filter: Option<Expr>,
    limit: usize,
    dates: &DateContext,
) -> Result<ReportResult, QueryError> {
    let matrix = spec.kind == ReportKind::Matrix;
    // A summary without groupings is one row: its aggregates over every record (a
    // dashboard's metric). A matrix needs rows to place its cells in.
    let (min_rows, max_rows, max_cols) = if matrix { (1, 2, 2) } else { (0, 3, 0) };
    if spec.groupings.len() < min_rows || spec.groupings.len() > max_rows {
        return Err(QueryError::spec(
            "groupings",
            format!(
                "a {} report takes {min_rows} to {max_rows} groupings",
                kind_name(spec.kind)
            ),
        ));
    }
    if (matrix && spec.column_groupings.is_empty()) || spec.column_groupings.len() > max_cols {
        let message = if matrix {
            "a matrix report takes 1 or 2 column groupings".to_string()
        } else {
            "only a matrix report has column groupings".to_string()
        };
        return Err(QueryError::spec("column_groupings", message));
    }
    if !spec.columns.is_empty() {
        return Err(QueryError::spec(
            "columns",
            "a grouped report shows its groupings and aggregates; columns are for tabular reports",
        ));
    }
    let mut keys = Vec::new();
    for (part, list) in [
        ("groupings", &spec.groupings),
        ("column_groupings", &spec.column_groupings),
    ] {
        for (i, g) in list.iter().enumerate() {
            let part = format!("{part}[{i}]");
            let on = paths.resolve(&g.field, &format!("{part}.field"))?;
            keys.push(group_key(g, on, dates, &part, true)?);
        }
    }
    let default_count = [Aggregate {
        function: AggregateFn::Count,
        field: None,
        alias: None,
        compare: None,
        condition: Vec::new(),
    }];
    let aggregates = if spec.aggregates.is_empty() {
        &default_count[..]
    } else {
        &spec.aggregates[..]
    };
    let aggs = aggregates
        .iter()
        .enumerate()
        .map(|(j, a)| aggregate_col(a, &mut paths, dates, &format!("aggregates[{j}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let compares = comparisons(aggregates, spec.kind)?;
    if keys.is_empty() && !compares.is_empty() {
        return Err(QueryError::spec(
            "aggregates",
            "a comparison needs groups to compare; this summary has no groupings",
        ));
    }
    let operands: Vec<_> = aggs
        .iter()
        .enumerate()
        .map(|(j, a)| (a.name.clone(), kind_type(&a.kind), ident(value(j))))
        .collect();
    let formulas = summary_formulas(&spec.formulas, &operands, dates.today(), "formulas")?;
    let mut values: Vec<&str> = aggs.iter().map(|a| a.name.as_str()).collect();
    values.extend(formulas.compiled.iter().map(|(n, _)| n.as_str()));
    check_unique_names(&keys, &values)?;
    let order = sort_keys(spec, &keys, &values)?;

    // `by_day`: the input groups date periods by day (the eager input has its periods).
    let (df, mut agg_exprs) = match grouping_input(session, &paths, filter, &keys, &aggs).await? {
        Input::Records(df, aggregates) => (df, aggregates),
        Input::Finest(df, combine) => {
            let rolled = combine
                .iter()
                .enumerate()
                .map(|(j, c)| c.over(ident(value(j))).alias(value(j)))
                .collect();
            (df, rolled)
        }
    };
    let n_rows = spec.groupings.len();
    let group = if keys.is_empty() {
        Vec::new()
    } else {
        vec![grouping_sets_expr(n_rows, keys.len() - n_rows)]
    };
    for i in 0..keys.len() {
        agg_exprs.push(grouping(ident(key(i))).alias(level(i)));
    }
    let df = df.aggregate(group, agg_exprs)?;
    let mut df = with_formulas(df, keys.len(), aggs.len(), &formulas)?;
    if !compares.is_empty() {
        df = with_comparisons(df, keys.len(), &compares)?;
    }
    let df = with_ids(df, &keys, session)?;
    // Without groupings there is one row and nothing to order by.
    let df = if order.is_empty() {
        df
    } else {
        df.sort(order)?
    };
    let batches = collect(session, df).await?;
    let n_values = aggs.len() + formulas.compiled.len();
    // A summary turns only the rows it shows into JSON; a matrix places every cell.
    let shown = (!matrix).then_some(limit);
    let levels = Levels::read(&batches, keys.len(), n_values + compares.len(), shown)?;
    let mut columns: Vec<ColumnInfo> = keys
        .iter()
        .map(|k| ColumnInfo {
            name: k.name.clone(),
            kind: k.kind.clone(),
        })
        .collect();
    columns.extend(aggs.iter().map(|a| ColumnInfo {
        name: a.name.clone(),
        kind: a.kind.clone(),
    }));
    columns.extend(formulas.compiled.iter().map(|(n, _)| ColumnInfo {
        name: n.clone(),
        kind: "decimal".into(),
    }));
    columns.extend(compares.iter().map(|&(j, c)| ColumnInfo {
        name: format!("{}:{}", aggs[j].name, c.as_str()),
        kind: match c {
            Comparison::PercentOfParent => "percent".into(),
            Comparison::ChangeFromPrevious => aggs[j].kind.clone(),
        },
    }));
    let freshness = Freshness::of(session);
    if matrix {
        let shaped = shape_matrix(levels, n_rows, keys.len() - n_rows, limit);
        return Ok(ReportResult {
            kind: ReportKind::Matrix,
            columns,
            row_count: shaped.row_headers.len(),
            truncated: shaped.truncated,
            total: shaped.total_rows,
            rows: Vec::new(),
            subtotals: None,
            totals: None,
            matrix: Some(shaped),
            freshness,
        });
    }
    Ok(summary_answer(
        ReportKind::Summary,
        levels,
        keys.len(),
        n_values,
        columns,
        limit,
        freshness,
    ))
}

/// What a grouped report's grouping sets aggregate.
enum Input {
    /// The filtered records' keys and inputs (`__k<i>`, `__a<j>`), with the report's
    /// aggregates over them.
    Records(DataFrame, Vec<Expr>),
    /// The finest groups, one row per combination of every grouping, with their finished
    /// values (`__v<j>`), and how those combine into the subtotals: the grouping sets then
    /// roll up those few groups instead of hashing every record once per set.
    Finest(DataFrame, Vec<Combine>),
}

async fn grouping_input(
    session: &WorkspaceSession,
    paths: &Paths<'_>,
    filter: Option<Expr>,
    keys: &[GroupKey],
    aggs: &[AggregateCol],
) -> Result<Input, QueryError> {
    let by_keys = || (0..keys.len()).map(|i| ident(key(i))).collect::<Vec<_>>();
    if let Some(eager) = crate::eager::plan(session, paths, filter.as_ref(), keys, aggs).await? {
        let finest = if eager.finished {
            eager.input
        } else {
            eager.input.aggregate(by_keys(), eager.aggregates)?
        };
        return Ok(Input::Finest(finest, eager.combine));
    }
    let mut df = paths.plan(session).await?;
    if let Some(f) = filter {
        df = df.filter(f)?;
    }
    let combine = combinations(aggs);
    // Keys and inputs projected to plain columns first, so the aggregates group plain
    // columns; a first aggregate groups date periods by day.
    let mut projection: Vec<Expr> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| match (&k.by_day, &combine) {
            (Some((day, _)), Some(_)) => day.clone().alias(key(i)),
            _ => k.expr.clone().alias(key(i)),
        })
        .collect();
    projection.extend(inputs(aggs));
    let df = df.select(projection)?;
    let aggregates = aggregate_exprs(aggs, value)?;
    Ok(match combine {
        Some(combine) => {
            let finest = df.aggregate(by_keys(), aggregates)?;
            Input::Finest(periods_from_days(finest, keys)?, combine)
        }
        None => Input::Records(df, aggregates),
    })
}

/// A summary-shaped answer from grouping-sets rows read for `limit` (`Levels::read` keeps
/// only the shown groups' subtotals when it cuts): the innermost groups as rows (cut at
/// `limit`) and the outer groups as subtotals, with every value (comparisons included), and
/// the empty grouping as the totals, with its first `n_values` (a grand total has no parent
/// or neighbour to compare with).
pub(crate) fn summary_answer(
    kind: ReportKind,
    levels: Levels,
    n_keys: usize,
    n_values: usize,
    columns: Vec<ColumnInfo>,
    limit: usize,
    freshness: Freshness,
) -> ReportResult {
    let mut detail = Vec::new();
    let mut subtotals = Vec::new();
    let mut totals = None;
    let total = levels.detail_rows;
    for row in levels.rows {
        if n_keys == 0 {
            // No groupings: the one row is the total too.
            totals = Some(row.values[..n_values].to_vec());
        }
        if row.grouped == n_keys {
            let mut r = row.keys;
            r.extend(row.values);
            detail.push(r);
        } else if row.grouped == 0 {
            totals = Some(row.values[..n_values].to_vec());
        } else {
            subtotals.push(Subtotal {
                groups: row.keys[..row.grouped].to_vec(),
                values: row.values,
            });
        }
    }
    let truncated = total > limit;
    detail.truncate(limit);
    ReportResult {
        kind,
        columns,
        row_count: detail.len(),
        rows: detail,
        subtotals: (n_keys > 1).then_some(subtotals),
        totals: Some(totals.unwrap_or_default()),
        matrix: None,
        truncated,
        total,
        freshness,
    }
}

/// Adds the formula columns after the aggregate values (`__v<n_aggs + k>`), before the
/// grouping flags: keys, values, formulas, flags.
pub(crate) fn with_formulas(
    df: DataFrame,
    n_keys: usize,
    n_aggs: usize,
    formulas: &SummaryFormulas,
) -> Result<DataFrame, QueryError> {
    if formulas.compiled.is_empty() {
        return Ok(df);
    }
    let mut out: Vec<Expr> = (0..n_keys).map(|i| ident(key(i))).collect();
    out.extend((0..n_aggs).map(|j| ident(value(j))));
    out.extend(
        formulas
            .compiled
            .iter()
            .enumerate()
            .map(|(k, (_, e))| e.clone().alias(value(n_aggs + k))),
    );
    out.extend((0..n_keys).map(|i| ident(level(i))));
    Ok(df.select(out)?)
}

fn kind_name(k: ReportKind) -> &'static str {
    match k {
        ReportKind::Tabular => "tabular",
        ReportKind::Summary => "summary",
        ReportKind::Matrix => "matrix",
        ReportKind::Joined => "joined",
    }
}

/// [`grouping_sets`] over the projected key columns (`__k<i>`), as one group-by expression.
pub(crate) fn grouping_sets_expr(n_rows: usize, n_cols: usize) -> Expr {
    Expr::GroupingSet(GroupingSet::GroupingSets(
        grouping_sets(n_rows, n_cols)
            .iter()
            .map(|s| s.iter().map(|&i| ident(key(i))).collect())
            .collect(),
    ))
}

/// Summary (no column keys): every prefix of the groupings (ROLLUP). Matrix: every prefix of
/// the row groupings with every prefix of the column groupings.
pub(crate) fn grouping_sets(n_rows: usize, n_cols: usize) -> Vec<Vec<usize>> {
    let mut sets = Vec::new();
    for r in (0..=n_rows).rev() {
        for c in (0..=n_cols).rev() {
            let mut s: Vec<usize> = (0..r).collect();
            s.extend(n_rows..n_rows + c);
            sets.push(s);
        }
    }
    sets
}

pub(crate) fn check_unique_names(keys: &[GroupKey], values: &[&str]) -> Result<(), QueryError> {
    let mut seen = HashSet::new();
    for name in keys
        .iter()
        .map(|k| k.name.as_str())
        .chain(values.iter().copied())
    {
        if !seen.insert(name) {
            return Err(QueryError::spec(
                "aggregates",
                format!("two output columns are named `{name}`; give one an `as`"),
            ));
        }
    }
    Ok(())
}

/// The spec's sort (by output names), then the groupings in order so that the answer is
/// deterministic.
pub(crate) fn sort_keys(
    spec: &ReportSpec,
    keys: &[GroupKey],
    values: &[&str],
) -> Result<Vec<SortExpr>, QueryError> {
    let mut order = Vec::new();
    for (i, s) in spec.sort.iter().enumerate() {
        let column = if let Some(k) = keys.iter().position(|k| k.name == s.by) {
            key(k)
        } else if let Some(j) = values.iter().position(|v| *v == s.by) {
            value(j)
        } else {
            let names: Vec<&str> = keys
                .iter()
                .map(|k| k.name.as_str())
                .chain(values.iter().copied())
                .collect();
            return Err(QueryError::spec(
                format!("sort[{i}].by"),
                format!(
                    "`{}` is not an output column (they are: {})",
                    s.by,
                    names.join(", ")
                ),
            ));
        };
        order.push(ident(column).sort(!s.desc, s.desc));
    }
    for i in 0..keys.len() {
        order.push(ident(key(i)).sort(true, false));
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_sets_cover_every_prefix_pair() {
        assert_eq!(grouping_sets(2, 0), vec![vec![0, 1], vec![0], vec![]]);
        assert_eq!(
            grouping_sets(1, 2),
            vec![
                vec![0, 1, 2],
                vec![0, 1],
                vec![0],
                vec![1, 2],
                vec![1],
                vec![]
            ]
        );
    }
}
