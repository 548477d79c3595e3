//! Joined reports: up to five blocks, each a summary of its own object and filters, sharing
//! the report's groupings and outer-joined on them, with formulas across blocks.
//!
//! All in one plan: each block aggregates over the same grouping sets (ROLLUP of the shared
//! groupings), the blocks are stacked with each block's values in columns of their own, and
//! one more aggregate by (keys, grouping flags) lays each group's blocks side by side. That is
//! a full outer join on the groups in which a null key matches a null key, as the groups
//! themselves do.

use datafusion::common::ScalarValue;
use datafusion::functions_aggregate::expr_fn::{grouping, max};
use datafusion::logical_expr::{Expr, cast, ident, lit};
use datafusion::prelude::DataFrame;

use crate::aggregate::{aggregate_col, aggregate_exprs, inputs};
use crate::dates::DateContext;
use crate::error::QueryError;
use crate::formula::{kind_type, summary_formulas};
use crate::grouped::{
    check_unique_names, grouping_sets_expr, key, level, sort_keys, summary_answer, value,
    with_formulas,
};
use crate::groupings::{GroupKey, group_key};
use crate::levels::Levels;
use crate::path::Paths;
use crate::report::{Conditions, ReportResult, collect, conditions};
use crate::result::{ColumnInfo, Freshness};
use crate::spec::{Aggregate, AggregateFn, Block, ReportKind, ReportSpec};
use crate::workspace::WorkspaceSession;

pub const MAX_BLOCKS: usize = 5;
const MAX_GROUPINGS: usize = 3;

/// Block `b`'s value column `j` while the blocks are stacked.
fn slot(b: usize, j: usize) -> String {
    format!("__b{b}_{j}")
}

/// One block aggregated: its plan and its value columns (name, kind).
struct BlockPlan {
    df: DataFrame,
    values: Vec<(String, String)>,
}

pub(crate) async fn joined(
    session: &WorkspaceSession,
    spec: &ReportSpec,
    limit: usize,
    dates: &DateContext,
) -> Result<ReportResult, QueryError> {
    check_shape(spec)?;
    let n_keys = spec.groupings.len();
    let mut keys: Vec<GroupKey> = Vec::new();
    let mut blocks = Vec::with_capacity(spec.blocks.len());
    for (b, block) in spec.blocks.iter().enumerate() {
        let (plan, block_keys) = block_plan(session, spec, b, block, dates).await?;
        if b == 0 {
            keys = block_keys;
        } else {
            for (i, (k, first)) in block_keys.iter().zip(&keys).enumerate() {
                if k.kind != first.kind {
                    return Err(QueryError::spec(
                        format!("groupings[{i}].field"),
                        format!(
                            "`{}` is a {} in block `{}` but a {} in block `{}`; a shared grouping needs one type",
                            spec.groupings[i].field,
                            k.kind,
                            block.name,
                            first.kind,
                            spec.blocks[0].name
                        ),
                    ));
                }
            }
        }
        blocks.push(plan);
    }

    // Stack the blocks: keys, flags, then every block's value columns, null outside its own.
    let mut types = Vec::new();
    for (b, p) in blocks.iter().enumerate() {
        for j in 0..p.values.len() {
            let (_, field) =
                p.df.schema()
                    .qualified_field_with_unqualified_name(&slot(b, j))?;
            types.push((b, j, field.data_type().clone()));
        }
    }
    let mut stacked: Option<DataFrame> = None;
    for (b, p) in blocks.iter().enumerate() {
        let mut cols: Vec<Expr> = (0..n_keys).map(|i| ident(key(i))).collect();
        cols.extend((0..n_keys).map(|i| ident(level(i))));
        for (c, j, ty) in &types {
            cols.push(if *c == b {
                ident(slot(*c, *j))
            } else {
                cast(lit(ScalarValue::Null), ty.clone()).alias(slot(*c, *j))
            });
        }
        let df = p.df.clone().select(cols)?;
        stacked = Some(match stacked {
            None => df,
            Some(s) => s.union(df)?,
        });
    }
    let Some(stacked) = stacked else {
        return Err(QueryError::spec("blocks", "a joined report needs a block"));
    };
    // Each (group, level) has one row per block that has it, so max() picks that block's value.
    let mut by: Vec<Expr> = (0..n_keys).map(|i| ident(key(i))).collect();
    by.extend((0..n_keys).map(|i| ident(level(i))));
    let merged: Vec<Expr> = types
        .iter()
        .enumerate()
        .map(|(v, (b, j, _))| max(ident(slot(*b, *j))).alias(value(v)))
        .collect();
    let n_values = merged.len();
    let df = stacked.aggregate(by, merged)?;
    let mut order: Vec<Expr> = (0..n_keys).map(|i| ident(key(i))).collect();
    order.extend((0..n_values).map(|v| ident(value(v))));
    order.extend((0..n_keys).map(|i| ident(level(i))));
    let df = df.select(order)?;

    let named: Vec<(String, String)> = blocks
        .iter()
        .zip(&spec.blocks)
        .flat_map(|(p, block)| {
            p.values
                .iter()
                .map(move |(n, kind)| (format!("{}.{n}", block.name), kind.clone()))
        })
        .collect();
    let operands: Vec<_> = named
        .iter()
        .enumerate()
        .map(|(v, (n, kind))| (n.clone(), kind_type(kind), ident(value(v))))
        .collect();
    let formulas = summary_formulas(&spec.formulas, &operands, dates.today(), "formulas")?;
    let mut names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
    names.extend(formulas.compiled.iter().map(|(n, _)| n.as_str()));
    check_unique_names(&keys, &names)?;
    let sort = sort_keys(spec, &keys, &names)?;
    let df = with_formulas(df, n_keys, n_values, &formulas)?;
    let batches = collect(session, df.sort(sort)?).await?;
    let n_shown = n_values + formulas.compiled.len();
    let levels = Levels::read(&batches, n_keys, n_shown, Some(limit))?;

    let mut columns: Vec<ColumnInfo> = keys
        .iter()
        .map(|k| ColumnInfo {
            name: k.name.clone(),
            kind: k.kind.clone(),
        })
        .collect();
    columns.extend(named.iter().map(|(n, kind)| ColumnInfo {
        name: n.clone(),
        kind: kind.clone(),
    }));
    columns.extend(formulas.compiled.iter().map(|(n, _)| ColumnInfo {
        name: n.clone(),
        kind: "decimal".into(),
    }));
    Ok(summary_answer(
        ReportKind::Joined,
        levels,
        n_keys,
        n_shown,
        columns,
        limit,
        Freshness::of(session),
    ))
}

/// What a joined report may hold: blocks and shared groupings, the rest inside the blocks.
fn check_shape(spec: &ReportSpec) -> Result<(), QueryError> {
    if spec.blocks.is_empty() || spec.blocks.len() > MAX_BLOCKS {
        return Err(QueryError::spec(
            "blocks",
            format!("a joined report takes 1 to {MAX_BLOCKS} blocks"),
        ));
    }
    if spec.groupings.is_empty() || spec.groupings.len() > MAX_GROUPINGS {
        return Err(QueryError::spec(
            "groupings",
            format!("a joined report takes 1 to {MAX_GROUPINGS} groupings, shared by its blocks"),
        ));
    }
    let misplaced = [
        ("columns", spec.columns.is_empty()),
        ("column_groupings", spec.column_groupings.is_empty()),
        ("aggregates", spec.aggregates.is_empty()),
        ("filters", spec.filters.is_empty()),
        ("filter_logic", spec.filter_logic.is_none()),
        ("related", spec.related.is_empty()),
    ];
    if let Some((part, _)) = misplaced.iter().find(|(_, empty)| !empty) {
        return Err(QueryError::spec(
            *part,
            format!("a joined report's {part} go in its blocks (each block has its own)"),
        ));
    }
    for (b, block) in spec.blocks.iter().enumerate() {
        let ok = block
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && block.name.len() <= 63
            && block
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ok {
            return Err(QueryError::spec(
                format!("blocks[{b}].name"),
                format!(
                    "`{}` is not a block name: lowercase letters, digits and `_`, starting with a letter, at most 63",
                    block.name
                ),
            ));
        }
        if spec.blocks[..b].iter().any(|o| o.name == block.name) {
            return Err(QueryError::spec(
                format!("blocks[{b}].name"),
                format!("two blocks are named `{}`", block.name),
            ));
        }
        for (j, a) in block.aggregates.iter().enumerate() {
            if a.compare.is_some() {
                return Err(QueryError::spec(
                    format!("blocks[{b}].aggregates[{j}].compare"),
                    "comparisons are shown in summary reports",
                ));
            }
        }
    }
    Ok(())
}

/// Block `b` aggregated over the shared grouping sets: keys `__k<i>`, values `__b<b>_<j>`,
/// flags `__g<i>`.
async fn block_plan(
    session: &WorkspaceSession,
    spec: &ReportSpec,
    b: usize,
    block: &Block,
    dates: &DateContext,
) -> Result<(BlockPlan, Vec<GroupKey>), QueryError> {
    let object = block.object.as_deref().unwrap_or(&spec.object);
    let bp = format!("blocks[{b}].");
    let mut paths = Paths::new(session, object, dates.today()).map_err(|e| match e {
        QueryError::Spec { message, .. } => QueryError::spec(format!("{bp}object"), message),
        other => other,
    })?;
    let filter = conditions(
        session,
        &mut paths,
        object,
        Conditions {
            filters: &block.filters,
            logic: block.filter_logic.as_deref(),
            related: &block.related,
            part: &bp,
        },
        dates,
    )
    .await?;
    let mut keys = Vec::with_capacity(spec.groupings.len());
    if !block.grouping_fields.is_empty() && block.grouping_fields.len() != spec.groupings.len() {
        return Err(QueryError::spec(
            format!("{bp}grouping_fields"),
            format!(
                "gives {} paths for {} groupings; give one per grouping, or none",
                block.grouping_fields.len(),
                spec.groupings.len()
            ),
        ));
    }
    for (i, g) in spec.groupings.iter().enumerate() {
        let (path, part) = match block.grouping_fields.get(i) {
            Some(p) => (p, format!("{bp}grouping_fields[{i}]")),
            None => (&g.field, format!("groupings[{i}].field")),
        };
        // The grouping is shared; say which block's object lacks it.
        let on = paths.resolve(path, &part).map_err(|e| match e {
            QueryError::Spec { part, message } => {
                QueryError::spec(part, format!("in block `{}`: {message}", block.name))
            }
            other => other,
        })?;
        // Blocks join on their groups' values as shown: ids, not keys.
        keys.push(group_key(g, on, dates, &format!("groupings[{i}]"), false)?);
    }
    let count = [Aggregate {
        function: AggregateFn::Count,
        field: None,
        alias: None,
        compare: None,
        condition: Vec::new(),
    }];
    let aggregates = if block.aggregates.is_empty() {
        &count[..]
    } else {
        &block.aggregates[..]
    };
    let aggs = aggregates
        .iter()
        .enumerate()
        .map(|(j, a)| aggregate_col(a, &mut paths, dates, &format!("{bp}aggregates[{j}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut df = paths.plan(session).await?;
    if let Some(f) = filter {
        df = df.filter(f)?;
    }
    let mut projection: Vec<Expr> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| k.expr.clone().alias(key(i)))
        .collect();
    projection.extend(inputs(&aggs));
    let df = df.select(projection)?;
    let group = grouping_sets_expr(keys.len(), 0);
    let mut exprs = aggregate_exprs(&aggs, |j| slot(b, j))?;
    exprs.extend((0..keys.len()).map(|i| grouping(ident(key(i))).alias(level(i))));
    let df = df.aggregate(vec![group], exprs)?;
    let values = aggs.into_iter().map(|a| (a.name, a.kind)).collect();
    Ok((BlockPlan { df, values }, keys))
}
