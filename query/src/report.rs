//! Report specs compiled to DataFusion plans and run: tabular, summary (ROLLUP subtotals)
//! and matrix (GROUPING SETS subtotals and totals), all computed in the engine.

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::functions::expr_fn::date_trunc;
use datafusion::functions_aggregate::expr_fn::{
    avg, count, count_distinct, grouping, max, median, min, sum,
};
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::functions_window::expr_fn::lag;
use datafusion::logical_expr::expr::WindowFunction;
use datafusion::logical_expr::{Expr, GroupingSet, SortExpr, cast, ident, lit, when};
use datafusion::logical_expr::{ExprFunctionExt, WindowFunctionDefinition};
use datafusion::prelude::DataFrame;
use datafusion::prelude::{in_subquery, not_in_subquery};
use oneo_catalog::FieldType;
use serde::Serialize;
use serde_json::Value as Json;

use crate::dates::DateContext;
use crate::error::QueryError;
use crate::filter::{combine, predicate, scalar};
use crate::matrix::{MatrixResult, shape_matrix};
use crate::path::{Paths, Resolved};
use crate::result::{ColumnInfo, Freshness, rows};
use crate::spec::{
    Aggregate, AggregateFn, Bucket, Comparison, Grouping, RelatedFilter, ReportKind, ReportSpec,
};
use crate::workspace::WorkspaceSession;

/// Rows a report returns when it names no limit, and the most it may ask for.
pub const DEFAULT_LIMIT: usize = 1_000;
pub const MAX_LIMIT: usize = 50_000;

/// A report's answer.
#[derive(Debug, Clone, Serialize)]
pub struct ReportResult {
    #[serde(rename = "type")]
    pub kind: ReportKind,
    /// Tabular: the columns. Summary: the groupings, then the aggregates.
    pub columns: Vec<ColumnInfo>,
    /// Tabular: records. Summary: one row per innermost group.
    pub rows: Vec<Vec<Json>>,
    /// Summary with several groupings: the aggregates of each outer group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtotals: Option<Vec<Subtotal>>,
    /// Summary: the aggregates over every row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totals: Option<Vec<Json>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matrix: Option<MatrixResult>,
    /// Rows (groups, for a summary; row headers, for a matrix) in the answer.
    pub row_count: usize,
    /// Whether rows beyond the limit were left out; `total` then says how many there were.
    pub truncated: bool,
    pub total: usize,
    pub freshness: Freshness,
}

/// An outer group's aggregates: the values of its groupings, outermost first.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Subtotal {
    pub groups: Vec<Json>,
    pub values: Vec<Json>,
}

/// Compiles and runs `spec` over the session's workspace.
pub async fn run_report(
    session: &WorkspaceSession,
    spec: &ReportSpec,
    dates: &DateContext,
) -> Result<ReportResult, QueryError> {
    let limit = spec.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(QueryError::spec(
            "limit",
            format!("must be from 1 to {MAX_LIMIT}"),
        ));
    }
    let mut paths = Paths::new(session.schema(), &spec.object)?;
    let mut predicates = Vec::with_capacity(spec.filters.len());
    for (i, f) in spec.filters.iter().enumerate() {
        let part = format!("filters[{i}]");
        let on = paths.resolve(&f.field, &format!("{part}.field"))?;
        predicates.push(predicate(f, &on, dates, &part)?);
    }
    let mut filter = combine(predicates, spec.filter_logic.as_deref())?;
    for (i, r) in spec.related.iter().enumerate() {
        let id = paths.resolve("id", "related")?;
        let cond = related_filter(session, &spec.object, r, id.expr, dates, i).await?;
        filter = Some(match filter {
            Some(f) => f.and(cond),
            None => cond,
        });
    }
    let result = match spec.kind {
        ReportKind::Tabular => tabular(session, spec, paths, filter, limit).await?,
        ReportKind::Summary | ReportKind::Matrix => {
            grouped(session, spec, paths, filter, limit).await?
        }
        ReportKind::Joined => {
            return Err(QueryError::spec(
                "type",
                "joined reports are not available yet; run each block as a summary report",
            ));
        }
    };
    Ok(result)
}

/// `id IN (SELECT via FROM related WHERE …)`, or `NOT IN` for `without`; DataFusion turns
/// it into a semi (anti) join.
async fn related_filter(
    session: &WorkspaceSession,
    object: &str,
    r: &RelatedFilter,
    id: Expr,
    dates: &DateContext,
    i: usize,
) -> Result<Expr, QueryError> {
    let part = format!("related[{i}]");
    let mut paths = Paths::new(session.schema(), &r.object)
        .map_err(|e| QueryError::spec(format!("{part}.object"), e.to_string()))?;
    let via = paths.resolve(&r.via, &format!("{part}.via"))?;
    if via.field.field_type != FieldType::Lookup || via.field.target.as_deref() != Some(object) {
        return Err(QueryError::spec(
            format!("{part}.via"),
            format!(
                "`{}` on `{}` is not a lookup to `{object}`",
                r.via, r.object
            ),
        ));
    }
    let mut predicates = Vec::with_capacity(r.filters.len() + 1);
    for (j, f) in r.filters.iter().enumerate() {
        let fpart = format!("{part}.filters[{j}]");
        let on = paths.resolve(&f.field, &format!("{fpart}.field"))?;
        predicates.push(predicate(f, &on, dates, &fpart)?);
    }
    // NOT IN over a null would keep nothing: only related records that point somewhere.
    predicates.push(via.expr.clone().is_not_null());
    let mut df = paths.plan(session).await?;
    if let Some(p) = combine(predicates, None)? {
        df = df.filter(p)?;
    }
    let sub = df
        .select(vec![via.expr.alias("__via")])?
        .alias(&format!("__related{i}"))?
        .into_unoptimized_plan();
    Ok(if r.without {
        not_in_subquery(id, std::sync::Arc::new(sub))
    } else {
        in_subquery(id, std::sync::Arc::new(sub))
    })
}

async fn tabular(
    session: &WorkspaceSession,
    spec: &ReportSpec,
    mut paths: Paths<'_>,
    filter: Option<Expr>,
    limit: usize,
) -> Result<ReportResult, QueryError> {
    if spec.columns.is_empty() {
        return Err(QueryError::spec(
            "columns",
            "a tabular report needs at least one column",
        ));
    }
    let only_summary = [
        ("groupings", spec.groupings.is_empty()),
        ("column_groupings", spec.column_groupings.is_empty()),
        ("aggregates", spec.aggregates.is_empty()),
    ];
    if let Some((part, _)) = only_summary.iter().find(|(_, empty)| !empty) {
        return Err(QueryError::spec(
            *part,
            "a tabular report has no groupings or aggregates; use a summary or matrix report",
        ));
    }
    let columns = spec
        .columns
        .iter()
        .enumerate()
        .map(|(i, p)| paths.resolve(p, &format!("columns[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut order = Vec::with_capacity(spec.sort.len());
    for (i, s) in spec.sort.iter().enumerate() {
        let on = paths.resolve(&s.by, &format!("sort[{i}].by"))?;
        order.push(on.expr.sort(!s.desc, s.desc));
    }
    let mut df = paths.plan(session).await?;
    if let Some(f) = filter {
        df = df.filter(f)?;
    }
    if !order.is_empty() {
        df = df.sort(order)?;
    }
    let df = df.select(
        columns
            .iter()
            .map(|c| c.expr.clone().alias(&c.path))
            .collect::<Vec<_>>(),
    )?;
    let batches = collect(session, df.clone().limit(0, Some(limit + 1))?).await?;
    let mut out = rows(&batches);
    let truncated = out.len() > limit;
    out.truncate(limit);
    let total = if truncated {
        timed(session, df.count()).await?
    } else {
        out.len()
    };
    Ok(ReportResult {
        kind: ReportKind::Tabular,
        columns: columns
            .iter()
            .map(|c| ColumnInfo {
                name: c.path.clone(),
                kind: c.field.field_type.as_str().to_string(),
            })
            .collect(),
        row_count: out.len(),
        rows: out,
        subtotals: None,
        totals: None,
        matrix: None,
        truncated,
        total,
        freshness: freshness(session),
    })
}

/// A grouping resolved: its output name, key expression and the type of its values.
pub(crate) struct GroupKey {
    pub name: String,
    pub expr: Expr,
    pub kind: String,
}

fn group_key(g: &Grouping, on: Resolved, part: &str) -> Result<GroupKey, QueryError> {
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
    let expr = match (g.date, ty) {
        (None, _) => on.expr,
        (Some(p), FieldType::Date) => cast(date_trunc(lit(p.as_str()), on.expr), DataType::Date32),
        (Some(p), FieldType::Datetime) => date_trunc(lit(p.as_str()), on.expr),
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
    })
}

/// A bucket field: each value mapped to the label of its bucket; a null stays null.
fn bucket_expr(
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

/// An aggregate resolved: its output name, the expression over the projected input, and
/// the type of its values.
struct AggregateCol {
    name: String,
    input: Option<Expr>,
    function: AggregateFn,
    kind: String,
}

fn aggregate_col(
    a: &Aggregate,
    paths: &mut Paths<'_>,
    part: &str,
) -> Result<AggregateCol, QueryError> {
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
    Ok(AggregateCol {
        name: a.name(),
        input: on.map(|r| r.expr),
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

fn key(i: usize) -> String {
    format!("__k{i}")
}

fn value(j: usize) -> String {
    format!("__v{j}")
}

fn level(i: usize) -> String {
    format!("__g{i}")
}

async fn grouped(
    session: &WorkspaceSession,
    spec: &ReportSpec,
    mut paths: Paths<'_>,
    filter: Option<Expr>,
    limit: usize,
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
            keys.push(group_key(g, on, &part)?);
        }
    }
    let default_count = [Aggregate {
        function: AggregateFn::Count,
        field: None,
        alias: None,
        compare: None,
    }];
    let aggregates = if spec.aggregates.is_empty() {
        &default_count[..]
    } else {
        &spec.aggregates[..]
    };
    let aggs = aggregates
        .iter()
        .enumerate()
        .map(|(j, a)| aggregate_col(a, &mut paths, &format!("aggregates[{j}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let compares = comparisons(aggregates, spec.kind)?;
    check_unique_names(&keys, &aggs)?;
    let order = sort_keys(spec, &keys, &aggs)?;

    let mut df = paths.plan(session).await?;
    if let Some(f) = filter {
        df = df.filter(f)?;
    }
    // Project keys and inputs to plain columns first, so grouping sets group plain columns.
    let mut projection: Vec<Expr> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| k.expr.clone().alias(key(i)))
        .collect();
    for (j, a) in aggs.iter().enumerate() {
        if let Some(input) = &a.input {
            projection.push(input.clone().alias(format!("__a{j}")));
        }
    }
    let df = df.select(projection)?;
    let n_rows = spec.groupings.len();
    let sets = grouping_sets(n_rows, keys.len() - n_rows);
    let group = Expr::GroupingSet(GroupingSet::GroupingSets(
        sets.iter()
            .map(|s| s.iter().map(|&i| ident(key(i))).collect())
            .collect(),
    ));
    let mut agg_exprs: Vec<Expr> = aggs
        .iter()
        .enumerate()
        .map(|(j, a)| {
            let input = a
                .input
                .as_ref()
                .map_or(lit(1), |_| ident(format!("__a{j}")));
            aggregate_expr(a.function, input).alias(value(j))
        })
        .collect();
    for i in 0..keys.len() {
        agg_exprs.push(grouping(ident(key(i))).alias(level(i)));
    }
    let mut df = df.aggregate(vec![group], agg_exprs)?;
    if !compares.is_empty() {
        df = with_comparisons(df, keys.len(), &compares)?;
    }
    let batches = collect(session, df.sort(order)?).await?;
    let levels = Levels::read(&batches, keys.len(), aggs.len() + compares.len())?;
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
    columns.extend(compares.iter().map(|&(j, c)| ColumnInfo {
        name: format!("{}:{}", aggs[j].name, c.as_str()),
        kind: match c {
            Comparison::PercentOfParent => "percent".into(),
            Comparison::ChangeFromPrevious => aggs[j].kind.clone(),
        },
    }));
    let freshness = freshness(session);
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
    let mut detail = Vec::new();
    let mut subtotals = Vec::new();
    let mut totals = None;
    for row in levels.rows {
        if row.grouped == keys.len() {
            let mut r = row.keys;
            r.extend(row.values);
            detail.push(r);
        } else if row.grouped == 0 {
            // Comparisons are shown for the innermost groups only.
            totals = Some(row.values[..aggs.len()].to_vec());
        } else {
            subtotals.push(Subtotal {
                groups: row.keys[..row.grouped].to_vec(),
                values: row.values[..aggs.len()].to_vec(),
            });
        }
    }
    let total = detail.len();
    let truncated = total > limit;
    detail.truncate(limit);
    Ok(ReportResult {
        kind: ReportKind::Summary,
        columns,
        row_count: detail.len(),
        rows: detail,
        subtotals: (keys.len() > 1).then_some(subtotals),
        totals: Some(totals.unwrap_or_default()),
        matrix: None,
        truncated,
        total,
        freshness,
    })
}

/// The aggregates to compare with their neighbours: (aggregate index, comparison).
fn comparisons(
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
fn with_comparisons(
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

fn kind_name(k: ReportKind) -> &'static str {
    match k {
        ReportKind::Tabular => "tabular",
        ReportKind::Summary => "summary",
        ReportKind::Matrix => "matrix",
        ReportKind::Joined => "joined",
    }
}

/// Summary (no column keys): every prefix of the groupings (ROLLUP). Matrix: every prefix of
/// the row groupings with every prefix of the column groupings.
fn grouping_sets(n_rows: usize, n_cols: usize) -> Vec<Vec<usize>> {
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

fn check_unique_names(keys: &[GroupKey], aggs: &[AggregateCol]) -> Result<(), QueryError> {
    let mut seen = std::collections::HashSet::new();
    for name in keys
        .iter()
        .map(|k| &k.name)
        .chain(aggs.iter().map(|a| &a.name))
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
fn sort_keys(
    spec: &ReportSpec,
    keys: &[GroupKey],
    aggs: &[AggregateCol],
) -> Result<Vec<SortExpr>, QueryError> {
    let mut order = Vec::new();
    for (i, s) in spec.sort.iter().enumerate() {
        let column = if let Some(k) = keys.iter().position(|k| k.name == s.by) {
            key(k)
        } else if let Some(j) = aggs.iter().position(|a| a.name == s.by) {
            value(j)
        } else {
            let names: Vec<&str> = keys
                .iter()
                .map(|k| k.name.as_str())
                .chain(aggs.iter().map(|a| a.name.as_str()))
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

/// One row of a grouping-sets answer: which keys it is grouped by (a prefix count per
/// side is enough to place it) and its values.
pub(crate) struct LevelRow {
    /// Flags per key: whether the row is grouped by it (not rolled up).
    pub by: Vec<bool>,
    /// How many keys it is grouped by.
    pub grouped: usize,
    pub keys: Vec<Json>,
    pub values: Vec<Json>,
}

pub(crate) struct Levels {
    pub rows: Vec<LevelRow>,
}

impl Levels {
    fn read(batches: &[RecordBatch], n_keys: usize, n_values: usize) -> Result<Self, QueryError> {
        let mut out = Vec::new();
        for row in rows(batches) {
            if row.len() != n_keys * 2 + n_values {
                return Err(QueryError::Engine(
                    datafusion::error::DataFusionError::Internal(
                        "grouping sets answered an unexpected shape".into(),
                    ),
                ));
            }
            let by: Vec<bool> = row[n_keys + n_values..]
                .iter()
                .map(|g| g.as_i64() == Some(0))
                .collect();
            out.push(LevelRow {
                grouped: by.iter().filter(|b| **b).count(),
                by,
                keys: row[..n_keys].to_vec(),
                values: row[n_keys..n_keys + n_values].to_vec(),
            });
        }
        Ok(Self { rows: out })
    }
}

fn freshness(session: &WorkspaceSession) -> Freshness {
    Freshness {
        lsn: session.applied_lsn().map(crate::format_lsn),
        lag_ms: None,
    }
}

/// Runs a plan to completion within the session's time limit.
pub async fn collect(
    session: &WorkspaceSession,
    df: DataFrame,
) -> Result<Vec<RecordBatch>, QueryError> {
    timed(session, df.collect()).await
}

pub(crate) async fn timed<T>(
    session: &WorkspaceSession,
    work: impl Future<Output = datafusion::error::Result<T>>,
) -> Result<T, QueryError> {
    let limit = session.timeout();
    match tokio::time::timeout(limit, work).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(QueryError::Timeout(limit.as_secs())),
    }
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
