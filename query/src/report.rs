//! Report specs compiled to DataFusion plans and run: tabular, summary (ROLLUP subtotals)
//! and matrix (GROUPING SETS subtotals and totals), all computed in the engine.

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::Column;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::expr_fn::out_ref_col;
use datafusion::prelude::{DataFrame, in_subquery, not_exists};
use oneo_catalog::FieldType;
use serde::Serialize;
use serde_json::Value as Json;

use crate::dates::DateContext;
use crate::error::QueryError;
use crate::filter::{combine, predicate};
use crate::matrix::MatrixResult;
use crate::path::Paths;
use crate::result::{ColumnInfo, Freshness, rows};
use crate::spec::{RelatedFilter, ReportKind, ReportSpec};
use crate::workspace::WorkspaceSession;

/// Rows a report returns when it names no limit, and the most it may ask for.
pub const DEFAULT_LIMIT: usize = 1_000;
pub const MAX_LIMIT: usize = 50_000;

/// A report's answer.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ReportResult {
    #[serde(rename = "type")]
    pub kind: ReportKind,
    /// Tabular: the columns. Summary: the groupings, then the aggregates.
    pub columns: Vec<ColumnInfo>,
    /// Tabular: records. Summary: one row per innermost group.
    pub rows: Vec<Vec<Json>>,
    /// Summary with several groupings: the aggregates of each outer group (when the limit
    /// leaves rows out, of the groups with rows shown).
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
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
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
    if spec.kind == ReportKind::Joined {
        return crate::joined::joined(session, spec, limit, dates).await;
    }
    let (paths, filter) = primary(session, spec, dates).await?;
    if spec.kind == ReportKind::Tabular {
        tabular(session, spec, paths, filter, limit).await
    } else {
        crate::grouped::grouped(session, spec, paths, filter, limit, dates).await
    }
}

/// The paths from a (non-joined) report's object and its filters' condition.
async fn primary<'s>(
    session: &'s WorkspaceSession,
    spec: &ReportSpec,
    dates: &DateContext,
) -> Result<(Paths<'s>, Option<Expr>), QueryError> {
    if !spec.blocks.is_empty() {
        return Err(QueryError::spec(
            "blocks",
            "only a joined report has blocks",
        ));
    }
    let mut paths = Paths::new(session, &spec.object, dates.today())?;
    let filter = conditions(
        session,
        &mut paths,
        &spec.object,
        Conditions {
            filters: &spec.filters,
            logic: spec.filter_logic.as_deref(),
            related: &spec.related,
            part: "",
        },
        dates,
    )
    .await?;
    Ok((paths, filter))
}

/// A report's (or a block's) record conditions; `part` prefixes the places errors name
/// (`blocks[1].` in a joined report).
pub(crate) struct Conditions<'s> {
    pub filters: &'s [crate::spec::Filter],
    pub logic: Option<&'s str>,
    pub related: &'s [RelatedFilter],
    pub part: &'s str,
}

/// The filters combined by their logic, ANDed with the cross-object filters.
pub(crate) async fn conditions(
    session: &WorkspaceSession,
    paths: &mut Paths<'_>,
    object: &str,
    c: Conditions<'_>,
    dates: &DateContext,
) -> Result<Option<Expr>, QueryError> {
    let mut predicates = Vec::with_capacity(c.filters.len());
    for (i, f) in c.filters.iter().enumerate() {
        let part = format!("{}filters[{i}]", c.part);
        let on = paths.resolve(&f.field, &format!("{part}.field"))?;
        predicates.push(predicate(f, &on, dates, &part)?);
    }
    let mut filter = combine(predicates, c.logic).map_err(|e| match e {
        QueryError::Spec { part, message } => {
            QueryError::spec(format!("{}{part}", c.part), message)
        }
        other => other,
    })?;
    for (i, r) in c.related.iter().enumerate() {
        let id = paths.resolve("id", "related")?;
        let part = format!("{}related[{i}]", c.part);
        let id = id.key.unwrap_or(id.expr);
        let cond = related_filter(session, object, r, id, dates, &part).await?;
        filter = Some(match filter {
            Some(f) => f.and(cond),
            None => cond,
        });
    }
    Ok(filter)
}

/// `id IN (SELECT via FROM related WHERE …)`, or for `without`
/// `NOT EXISTS (SELECT … FROM related WHERE via = id AND …)`; DataFusion turns them into a
/// semi and an anti join. Not `NOT IN`: an id is never null, so the two mean the same, but
/// `NOT IN` plans a null-aware anti join, which DataFusion always builds whole on one core
/// (`CollectLeft`) rather than partitioned.
async fn related_filter(
    session: &WorkspaceSession,
    object: &str,
    r: &RelatedFilter,
    id: Expr,
    dates: &DateContext,
    part: &str,
) -> Result<Expr, QueryError> {
    let mut paths = Paths::new(session, &r.object, dates.today())
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
    // On keys where the tables have them (the session decides for both sides alike).
    let via_value = via.key.clone().unwrap_or(via.expr.clone());
    predicates.push(via_value.clone().is_not_null());
    let mut df = paths.plan(session).await?;
    if let Some(p) = combine(predicates, None)? {
        df = df.filter(p)?;
    }
    // Unique per related filter in the plan (a dot would read as a schema).
    let alias = format!("__{}", part.replace(['.', '[', ']'], "_"));
    let sub = df.select(vec![via_value.alias("__via")])?.alias(&alias)?;
    if !r.without {
        return Ok(in_subquery(id, Arc::new(sub.into_unoptimized_plan())));
    }
    let Expr::Column(outer) = &id else {
        return Err(
            DataFusionError::Internal(format!("{part}: the record id is not a column")).into(),
        );
    };
    let ty = session
        .context()
        .table(object)
        .await?
        .schema()
        .field_with_unqualified_name(&outer.name)?
        .data_type()
        .clone();
    // The correlation sits above the alias, so it names the subquery's own column and
    // never the related object's `t0` (the outer plan's primary is `t0` too).
    let inner = Expr::Column(Column::new(Some(alias.as_str()), "__via"));
    let sub = sub.filter(inner.eq(out_ref_col(ty, outer.clone())))?;
    Ok(not_exists(Arc::new(sub.into_unoptimized_plan())))
}

async fn tabular(
    session: &WorkspaceSession,
    spec: &ReportSpec,
    paths: Paths<'_>,
    filter: Option<Expr>,
    limit: usize,
) -> Result<ReportResult, QueryError> {
    // Counting a cut answer needs only the filter's joins: a lookup's left join adds no
    // rows (ids are unique, a rollup is one row per parent), so the columns' joins would
    // only make the count dearer.
    let mut counted = paths.clone().plan(session).await?;
    if let Some(f) = &filter {
        counted = counted.filter(f.clone())?;
    }
    let (df, columns) = tabular_plan(session, spec, paths, filter, Some(limit + 1)).await?;
    let (out, truncated, total) = limited(session, df, counted, limit).await?;
    Ok(ReportResult {
        kind: ReportKind::Tabular,
        columns,
        row_count: out.len(),
        rows: out,
        subtotals: None,
        totals: None,
        matrix: None,
        truncated,
        total,
        freshness: Freshness::of(session),
    })
}

/// Every row of a tabular report (up to its own `limit`, when it names one), as a stream of
/// batches in the report's order, with its columns: for exports, which must neither hold
/// the answer in memory nor cut it at the answer's row limit.
pub async fn stream_tabular(
    session: &WorkspaceSession,
    spec: &ReportSpec,
    dates: &DateContext,
) -> Result<
    (
        Vec<ColumnInfo>,
        datafusion::execution::SendableRecordBatchStream,
    ),
    QueryError,
> {
    if spec.kind != ReportKind::Tabular {
        return Err(QueryError::spec(
            "type",
            "only a tabular report streams its rows; run the others",
        ));
    }
    let (paths, filter) = primary(session, spec, dates).await?;
    let (df, columns) = tabular_plan(session, spec, paths, filter, spec.limit).await?;
    Ok((columns, crate::sql::execute_stream(session, df).await?))
}

/// A tabular report's plan: its filters, order and columns, and at most `cut` rows.
async fn tabular_plan(
    session: &WorkspaceSession,
    spec: &ReportSpec,
    mut paths: Paths<'_>,
    filter: Option<Expr>,
    cut: Option<usize>,
) -> Result<(DataFrame, Vec<ColumnInfo>), QueryError> {
    if spec.columns.is_empty() {
        return Err(QueryError::spec(
            "columns",
            "a tabular report needs at least one column",
        ));
    }
    let only_summary = [
        ("groupings", spec.groupings.is_empty()),
        ("formulas", spec.formulas.is_empty()),
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
    let root_only = filter.as_ref().is_none_or(Paths::reads_only_root)
        && order.iter().all(|o| Paths::reads_only_root(&o.expr));
    let df = match cut {
        // Cut first, join after: a lookup's columns are then fetched for the rows shown,
        // not for every record that passed the filter (a join keeps the rows it is given,
        // not their order, so they are sorted again).
        Some(n) if root_only && paths.has_joins() => {
            let mut root = paths.root_table(session).await?;
            if let Some(f) = filter {
                root = root.filter(f)?;
            }
            if !order.is_empty() {
                root = root.sort(order.clone())?;
            }
            let df = paths.plan_on(session, root.limit(0, Some(n))?).await?;
            if order.is_empty() {
                df
            } else {
                df.sort(order)?
            }
        }
        _ => {
            let mut df = paths.plan(session).await?;
            if let Some(f) = filter {
                df = df.filter(f)?;
            }
            if !order.is_empty() {
                df = df.sort(order)?;
            }
            match cut {
                Some(n) => df.limit(0, Some(n))?,
                None => df,
            }
        }
    };
    let df = df.select(
        columns
            .iter()
            .map(|c| c.expr.clone().alias(&c.path))
            .collect::<Vec<_>>(),
    )?;
    let info = columns
        .iter()
        .map(|c| ColumnInfo {
            name: c.path.clone(),
            kind: c.field.field_type.as_str().to_string(),
        })
        .collect();
    Ok((df, info))
}

/// At most `limit` rows of `df`, whether there were more, and how many there were in all
/// (counted only when cut, on `counted`: a plan with the same number of rows).
pub(crate) async fn limited(
    session: &WorkspaceSession,
    df: DataFrame,
    counted: DataFrame,
    limit: usize,
) -> Result<(Vec<Vec<Json>>, bool, usize), QueryError> {
    let batches = collect(session, df.clone().limit(0, Some(limit + 1))?).await?;
    let mut out = rows(&batches);
    let truncated = out.len() > limit;
    out.truncate(limit);
    let total = if truncated {
        timed(session, counted.count()).await?
    } else {
        out.len()
    };
    Ok((out, truncated, total))
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
