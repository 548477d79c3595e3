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
        // In UTC a datetime's day is its microseconds floored to whole days.
        (Some(period), FieldType::Datetime) if utc => Some((
            utc_day(on.expr.clone()),
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

/// A UTC datetime's day (`Date32`): its microseconds floored to whole days by integer
/// arithmetic. Arrow's cast of a timestamp to a date goes through a calendar date per value,
/// which was a fifth of a monthly cohort over 5M activities.
fn utc_day(instant: Expr) -> Expr {
    const DAY: i64 = 86_400_000_000;
    let micros = cast(instant, DataType::Int64);
    // Floored, not truncated toward zero: a time before 1970 is in the day before.
    let since_midnight = ((micros.clone() % lit(DAY)) + lit(DAY)) % lit(DAY);
    let days = (micros - since_midnight) / lit(DAY);
    cast(cast(days, DataType::Int32), DataType::Date32)
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

#[cfg(test)]
mod tests {
    use chrono::{DateTime, NaiveDate};
    use datafusion::arrow::array::{AsArray, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::Date32Type;
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::prelude::SessionContext;

    use super::*;

    #[tokio::test]
    async fn a_utc_day_is_the_calendar_day() {
        let times = [
            "1969-12-31T23:59:59.999999Z",
            "1969-12-31T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "1900-03-01T12:00:00Z",
            "2026-12-04T23:59:59.999999Z",
            "2024-02-29T00:00:00.000001Z",
        ];
        let micros: Vec<i64> = times
            .iter()
            .map(|t| {
                DateTime::parse_from_rfc3339(t)
                    .expect("time")
                    .timestamp_micros()
            })
            .collect();
        let at = TimestampMicrosecondArray::from(micros).with_timezone("UTC");
        let batch =
            RecordBatch::try_from_iter([("at", std::sync::Arc::new(at) as _)]).expect("batch");
        let df = SessionContext::new().read_batch(batch).expect("read");
        let out = df
            .select(vec![utc_day(ident("at")).alias("day")])
            .expect("select")
            .collect()
            .await
            .expect("run");
        let days: Vec<NaiveDate> = out[0]
            .column(0)
            .as_primitive::<Date32Type>()
            .iter()
            .map(|d| Date32Type::to_naive_date_opt(d.expect("a day")).expect("a date"))
            .collect();
        let want: Vec<NaiveDate> = times
            .iter()
            .map(|t| t[..10].parse().expect("date"))
            .collect();
        assert_eq!(days, want);
    }
}
