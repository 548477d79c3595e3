//! Groupings resolved to the keys a grouped report aggregates by: date periods (by day
//! where a first aggregate can), buckets, and lookups by their key, shown as ids again after
//! the aggregate.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::functions::expr_fn::date_trunc;
use datafusion::logical_expr::{Expr, cast, ident, lit};
use datafusion::prelude::DataFrame;
use oneo_catalog::FieldType;

use crate::bucket::bucket_expr;
use crate::dates::DateContext;
use crate::error::QueryError;
use crate::grouped::key;
use crate::keys::KeyText;
use crate::path::Resolved;
use crate::spec::{DatePeriod, Grouping};
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
pub(crate) fn periods_from_days(df: DataFrame, keys: &[GroupKey]) -> Result<DataFrame, QueryError> {
    map_keys(df, keys, |k, column| {
        k.by_day
            .as_ref()
            .map(|(_, to_period)| to_period.apply(column))
    })
}

/// `df` with each grouping by key (`keys[i].interned`) shown as its id again: done on the
/// groups, after the aggregate, so only one id per group is made.
pub(crate) fn with_ids(
    df: DataFrame,
    keys: &[GroupKey],
    session: &WorkspaceSession,
) -> Result<DataFrame, QueryError> {
    let Some(interner) = session.keys() else {
        return Ok(df);
    };
    map_keys(df, keys, |k, column| {
        k.interned.then(|| KeyText::call(interner, column))
    })
}

/// `df` with each grouping column (`__k<i>`) for which `rewrite` gives an expression over
/// it replaced by that expression, under the same name; every other column as it was.
fn map_keys(
    df: DataFrame,
    keys: &[GroupKey],
    rewrite: impl Fn(&GroupKey, Expr) -> Option<Expr>,
) -> Result<DataFrame, QueryError> {
    let rewritten: Vec<(String, Expr)> = keys
        .iter()
        .enumerate()
        .filter_map(|(i, k)| rewrite(k, ident(key(i))).map(|e| (key(i), e)))
        .collect();
    if rewritten.is_empty() {
        return Ok(df);
    }
    let out: Vec<Expr> = df
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let name = f.name();
            match rewritten.iter().find(|(k, _)| k == name) {
                Some((_, e)) => e.clone().alias(name),
                None => ident(name),
            }
        })
        .collect();
    Ok(df.select(out)?)
}
