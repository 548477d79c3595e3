//! Eager aggregation: a grouped report whose groupings all hang off one lookup of the
//! primary (`deal.company.industry` from activities, or `company` and `company.name` from
//! deals) aggregates the primary's rows per value of that lookup first, then joins the
//! lookup's records to those partial groups, then finishes the aggregate.
//!
//! Five million activities become at most one row per deal before any join: the joins see
//! groups, not records. The answer is the same because every grouping is a function of the
//! lookup (it is the lookup, or a field reached through it), so each partial group lies
//! wholly inside one final group, and each aggregate offered here combines exactly:
//! counts are summed, sums summed, minima and maxima taken again, and a distinct count of
//! the lookup itself is the number of partial groups with a value.

use datafusion::common::Column;
use datafusion::functions_aggregate::expr_fn::{count, max, min, sum};
use datafusion::logical_expr::{Expr, ExprFunctionExt, ident, lit, when};
use datafusion::prelude::DataFrame;

use crate::aggregate::{AggregateCol, Combine};
use crate::error::QueryError;
use crate::grouped::{key, value};
use crate::groupings::GroupKey;
use crate::keys::key_column;
use crate::path::{Paths, ROOT};
use crate::spec::AggregateFn;
use crate::workspace::WorkspaceSession;

/// The grouped report's input, aggregated early: one row per partial group with the
/// grouping keys (`__k<i>`) and partial values (`__a<j>`), the aggregates that finish
/// them (named `__v<j>`), and how those finished values combine further.
pub(crate) struct Eager {
    pub input: DataFrame,
    pub aggregates: Vec<Expr>,
    pub combine: Vec<Combine>,
    /// The lookup is itself a grouping, so each partial group already is one of the finest
    /// groups: `input` then holds the finished values (`__v<j>`) instead, and `aggregates`
    /// need not run.
    pub finished: bool,
}

/// How a partial value is finished.
#[derive(Clone, Copy)]
enum Finish {
    Sum,
    Min,
    Max,
    /// Count the partial groups whose lookup has a value.
    CountKeys,
}

/// The eager plan for these keys and aggregates, when it gives the same answer (see the
/// module docs); `None` plans the report the ordinary way.
pub(crate) async fn plan(
    session: &WorkspaceSession,
    paths: &Paths<'_>,
    filter: Option<&Expr>,
    keys: &[GroupKey],
    aggs: &[AggregateCol],
) -> Result<Option<Eager>, QueryError> {
    if !paths.is_keyed() {
        return Ok(None);
    }
    let Some(lookup) = paths.single_lookup() else {
        return Ok(None);
    };
    let lookup_key = Expr::Column(Column::new(Some(ROOT), key_column(lookup)));
    if !filter.is_none_or(Paths::reads_only_root) {
        return Ok(None);
    }
    let joined_only = |e: &Expr| {
        *e == lookup_key
            || e.column_refs()
                .iter()
                .all(|c| c.relation.as_ref().is_none_or(|r| r.table() != ROOT))
    };
    if !keys.iter().all(|k| joined_only(&k.expr)) {
        return Ok(None);
    }
    let mut partials = Vec::with_capacity(aggs.len());
    let mut finishes = Vec::with_capacity(aggs.len());
    for (j, a) in aggs.iter().enumerate() {
        let condition = a.condition.clone();
        if !condition.as_ref().is_none_or(Paths::reads_only_root)
            || !a.input.as_ref().is_none_or(Paths::reads_only_root)
        {
            return Ok(None);
        }
        let input = a.input.clone().unwrap_or(lit(1));
        let (partial, finish) = match a.function {
            AggregateFn::Count => (count(input), Finish::Sum),
            AggregateFn::Sum => (sum(input), Finish::Sum),
            AggregateFn::Min => (min(input), Finish::Min),
            AggregateFn::Max => (max(input), Finish::Max),
            AggregateFn::CountDistinct if condition.is_none() && input == lookup_key => {
                finishes.push(Finish::CountKeys);
                continue;
            }
            _ => return Ok(None),
        };
        let partial = match condition {
            Some(c) => partial.filter(c).build()?,
            None => partial,
        };
        partials.push(partial.alias(format!("__a{j}")));
        finishes.push(finish);
    }

    let mut root = paths.root_table(session).await?;
    if let Some(f) = filter {
        root = root.filter(f.clone())?;
    }
    let per_lookup = root
        .aggregate(vec![lookup_key.clone().alias(key_column(lookup))], partials)?
        .alias(ROOT)?;
    let joined = paths.plan_on(session, per_lookup).await?;
    let mut projection: Vec<Expr> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| k.expr.clone().alias(key(i)))
        .collect();
    let mut aggregates = Vec::with_capacity(aggs.len());
    let combine = finishes
        .iter()
        .map(|f| match f {
            Finish::Min => Combine::Min,
            Finish::Max => Combine::Max,
            // A partial group's lookup lies in one final group: their counts add up.
            Finish::Sum | Finish::CountKeys => Combine::Sum,
        })
        .collect();
    let finished = keys.iter().any(|k| k.expr == lookup_key);
    for (j, finish) in finishes.into_iter().enumerate() {
        let partial = format!("__a{j}");
        let own = Expr::Column(Column::new(Some(ROOT), &partial));
        if finished {
            // One partial group per lookup value: its value is already the finished one
            // (a distinct count of the lookup is 1 where it has a value, else 0).
            let done = match finish {
                Finish::CountKeys => {
                    when(lookup_key.clone().is_null(), lit(0i64)).otherwise(lit(1i64))?
                }
                _ => own,
            };
            projection.push(done.alias(value(j)));
            continue;
        }
        let done = match finish {
            Finish::CountKeys => {
                projection.push(lookup_key.clone().alias(&partial));
                count(ident(partial))
            }
            f => {
                projection.push(own.alias(&partial));
                match f {
                    Finish::Min => min(ident(partial)),
                    Finish::Max => max(ident(partial)),
                    _ => sum(ident(partial)),
                }
            }
        };
        aggregates.push(done.alias(value(j)));
    }
    Ok(Some(Eager {
        input: joined.select(projection)?,
        aggregates,
        combine,
        finished,
    }))
}
