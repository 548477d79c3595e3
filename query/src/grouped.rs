//! Summary and matrix reports: one aggregate over GROUPING SETS (every prefix of the
//! groupings for a summary, every row prefix × column prefix for a matrix), its rows placed by
//! the `grouping()` flags.

use std::collections::HashSet;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::functions::expr_fn::date_trunc;
use datafusion::functions_aggregate::expr_fn::grouping;
use datafusion::logical_expr::{Expr, GroupingSet, SortExpr, cast, ident, lit};
use datafusion::prelude::DataFrame;
use oneo_catalog::FieldType;

use crate::aggregate::{aggregate_col, aggregate_exprs, combinations, inputs};
use crate::bucket::bucket_expr;
use crate::compare::{comparisons, with_comparisons};
use crate::dates::DateContext;
use crate::error::QueryError;
use crate::formula::{SummaryFormulas, kind_type, summary_formulas};
use crate::keys::KeyText;
use crate::levels::Levels;
use crate::matrix::shape_matrix;
use crate::path::{Paths, Resolved};
use crate::report::{ReportResult, Subtotal, collect};
use crate::result::{ColumnInfo, Freshness};
use crate::spec::{
    Aggregate, AggregateFn, Comparison, DatePeriod, Grouping, ReportKind, ReportSpec,
};
use crate::workspace::WorkspaceSession;

/// A grouping resolved: its output name, key expression and the type of its values.
pub(crate) struct GroupKey {
    pub name: String,
    pub expr: Expr,
    pub kind: String,
    /// `expr` is an id's key: the grouped answer turns it back into the id.
    pub interned: bool,
    /// A date period over a date (or a UTC datetime): the day, which a first aggregate can
    /// group by cheaply, and the period it falls in, made from that day afterwards. Cutting
    /// each record's date to its month is the dear part of a monthly grouping; cutting a
    /// few hundred distinct days is not.
    pub by_day: Option<(Expr, DayToPeriod)>,
}

/// Turns a day (`Date32`) into the start of its period, typed as the grouping shows it.
#[derive(Clone, Copy)]
pub(crate) struct DayToPeriod {
    period: DatePeriod,
    datetime: bool,
}

impl DayToPeriod {
    pub fn apply(self, day: Expr) -> Expr {
        let p = lit(self.period.as_str());
        if self.datetime {
            date_trunc(
                p,
                cast(day, DataType::Timestamp(TimeUnit::Microsecond, None)),
            )
        } else {
            cast(date_trunc(p, day), DataType::Date32)
        }
    }
}

/// A grouping's key; a datetime's period starts at midnight in the workspace's time zone
/// (`dates`), so a month in Auckland is Auckland's month. With `by_key`, a lookup groups by
/// its key column where it has one.
pub(crate) fn group_key(
    g: &Grouping,
    on: Resolved,
    dates: &DateContext,
    part: &str,
    by_key: bool,
) -> Result<GroupKey, QueryError> {
    let ty = on.field.field_type;
    if let Some(buckets) = &g.buckets {
        if g.date.is_some() {
            return Err(QueryError::spec(
                format!("{part}.buckets"),
                "a grouping takes buckets or a date period, not both",
            ));
        }
        return Ok(GroupKey {
            name: g.name(),
            expr: bucket_expr(buckets, g.other.as_deref(), &on, &format!("{part}.buckets"))?,
            kind: "text".into(),
            interned: false,
            by_day: None,
        });
    }
    if ty == FieldType::Multiselect {
        return Err(QueryError::spec(
            format!("{part}.field"),
            format!(
                "`{}` is a multiselect field; group by a single-valued field",
                on.path
            ),
        ));
    }
    if let (true, None, Some(k)) = (by_key, g.date, &on.key) {
        return Ok(GroupKey {
            name: g.name(),
            expr: k.clone(),
            kind: ty.as_str().to_string(),
            interned: true,
            by_day: None,
        });
    }
    let utc = dates.time_zone == chrono_tz::Tz::UTC;
    let by_day = match (g.date, ty) {
        (Some(period), FieldType::Date) => Some((
            on.expr.clone(),
            DayToPeriod {
                period,
                datetime: false,
            },
        )),
        // In UTC a datetime's day is its microseconds floored to whole days (the casts
        // relabel them as a zone-less timestamp, then cut).
        (Some(period), FieldType::Datetime) if utc => Some((
            cast(bare_utc(on.expr.clone()), DataType::Date32),
            DayToPeriod {
                period,
                datetime: true,
            },
        )),
        _ => None,
    };
    let expr = match (g.date, ty) {
        (None, _) => on.expr,
        (Some(p), FieldType::Date) => cast(date_trunc(lit(p.as_str()), on.expr), DataType::Date32),
        (Some(p), FieldType::Datetime) if utc => {
            // In UTC the wall clock is the instant: truncating the bare microseconds (the
            // casts only relabel them) skips a zone lookup per row, which was nearly half
            // of a monthly cohort over 5M activities.
            date_trunc(lit(p.as_str()), bare_utc(on.expr))
        }
        (Some(p), FieldType::Datetime) => {
            let zone =
                DataType::Timestamp(TimeUnit::Microsecond, Some(dates.time_zone.name().into()));
            date_trunc(lit(p.as_str()), cast(on.expr, zone))
        }
        (Some(_), t) => {
            return Err(QueryError::spec(
                format!("{part}.date"),
                format!(
                    "`{}` is a {} field; date periods group dates and datetimes",
                    on.path,
                    t.as_str()
                ),
            ));
        }
    };
    Ok(GroupKey {
        name: g.name(),
        expr,
        kind: ty.as_str().to_string(),
        interned: false,
        by_day,
    })
}

/// A UTC datetime's microseconds as a zone-less timestamp: the same wall clock.
fn bare_utc(instant: Expr) -> Expr {
    cast(
        cast(instant, DataType::Int64),
        DataType::Timestamp(TimeUnit::Microsecond, None),
    )
}

/// `df` (the first aggregate's groups) with each grouping of a date period grouped by day
/// turned into its period.
fn periods_from_days(df: DataFrame, keys: &[GroupKey]) -> Result<DataFrame, QueryError> {
    if keys.iter().all(|k| k.by_day.is_none()) {
        return Ok(df);
    }
    let out: Vec<Expr> = df
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let name = f.name();
            let by_day = keys
                .iter()
                .enumerate()
                .find_map(|(i, k)| k.by_day.as_ref().filter(|_| key(i) == *name));
            match by_day {
                Some((_, to_period)) => to_period.apply(ident(name)).alias(name),
                None => ident(name),
            }
        })
        .collect();
    Ok(df.select(out)?)
}

/// `df` with each grouping by key (`keys[i].interned`) shown as its id again: done on the
/// groups, after the aggregate, so only one id per group is made.
fn with_ids(
    df: DataFrame,
    keys: &[GroupKey],
    session: &WorkspaceSession,
) -> Result<DataFrame, QueryError> {
    let Some(interner) = session.keys() else {
        return Ok(df);
    };
    if !keys.iter().any(|k| k.interned) {
        return Ok(df);
    }
    let out: Vec<Expr> = df
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let name = f.name();
            match keys
                .iter()
                .enumerate()
                .find(|(i, k)| k.interned && key(*i) == *name)
            {
                Some(_) => KeyText::call(interner, ident(name)).alias(name),
                None => ident(name),
            }
        })
        .collect();
    Ok(df.select(out)?)
}

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
    let (max_rows, max_cols) = if matrix { (2, 2) } else { (3, 0) };
    if spec.groupings.is_empty() || spec.groupings.len() > max_rows {
        return Err(QueryError::spec(
            "groupings",
            format!(
                "a {} report takes 1 to {max_rows} groupings",
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
    let (df, first, combine, by_day) =
        match crate::eager::plan(session, &paths, filter.as_ref(), &keys, &aggs).await? {
            // Already the finest groups: straight to the grouping sets.
            Some(eager) if eager.finished => (eager.input, Vec::new(), Some(eager.combine), false),
            Some(eager) => (eager.input, eager.aggregates, Some(eager.combine), false),
            None => {
                let mut df = paths.plan(session).await?;
                if let Some(f) = filter {
                    df = df.filter(f)?;
                }
                let combine = combinations(&aggs);
                // Project keys and inputs to plain columns first, so grouping sets group
                // plain columns; a first aggregate groups date periods by day.
                let mut projection: Vec<Expr> = keys
                    .iter()
                    .enumerate()
                    .map(|(i, k)| match (&k.by_day, &combine) {
                        (Some((day, _)), Some(_)) => day.clone().alias(key(i)),
                        _ => k.expr.clone().alias(key(i)),
                    })
                    .collect();
                projection.extend(inputs(&aggs));
                let first = aggregate_exprs(&aggs, value)?;
                let by_day = combine.is_some();
                (df.select(projection)?, first, combine, by_day)
            }
        };
    let (df, mut agg_exprs) = match combine {
        // The finest groups first, in one pass over the records; the grouping sets then roll
        // up those few groups, instead of hashing every record once per set.
        Some(combine) => {
            let finest = if first.is_empty() {
                df
            } else {
                df.aggregate((0..keys.len()).map(|i| ident(key(i))).collect(), first)?
            };
            let finest = if by_day {
                periods_from_days(finest, &keys)?
            } else {
                finest
            };
            let rolled = combine
                .iter()
                .enumerate()
                .map(|(j, c)| c.over(ident(value(j))).alias(value(j)))
                .collect();
            (finest, rolled)
        }
        None => (df, first),
    };
    let n_rows = spec.groupings.len();
    let group = grouping_sets_expr(n_rows, keys.len() - n_rows);
    for i in 0..keys.len() {
        agg_exprs.push(grouping(ident(key(i))).alias(level(i)));
    }
    let df = df.aggregate(vec![group], agg_exprs)?;
    let mut df = with_formulas(df, keys.len(), aggs.len(), &formulas)?;
    if !compares.is_empty() {
        df = with_comparisons(df, keys.len(), &compares)?;
    }
    let df = with_ids(df, &keys, session)?;
    let batches = collect(session, df.sort(order)?).await?;
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
