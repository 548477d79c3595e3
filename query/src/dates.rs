//! Relative dates (`TODAY`, `LAST_N_DAYS:30`, `THIS_FISCAL_QUARTER`, …) as half-open ranges
//! of calendar days in the workspace's time zone.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

/// What relative dates are relative to.
#[derive(Debug, Clone, Copy)]
pub struct DateContext {
    pub now: DateTime<Utc>,
    pub time_zone: Tz,
    /// The month (1–12) the workspace's fiscal year starts in.
    pub fiscal_year_start_month: u32,
}

impl DateContext {
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            now,
            time_zone: Tz::UTC,
            fiscal_year_start_month: 1,
        }
    }

    pub fn today(&self) -> NaiveDate {
        self.now.with_timezone(&self.time_zone).date_naive()
    }

    /// The instant a local calendar day starts (the earliest one, across a DST change).
    pub fn day_start(&self, day: NaiveDate) -> DateTime<Utc> {
        let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
        match self.time_zone.from_local_datetime(&midnight) {
            chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
                t.with_timezone(&Utc)
            }
            // Midnight skipped by a DST change: the day starts an hour later.
            chrono::LocalResult::None => self
                .time_zone
                .from_local_datetime(&(midnight + chrono::Duration::hours(1)))
                .earliest()
                .map_or_else(|| midnight.and_utc(), |t| t.with_timezone(&Utc)),
        }
    }
}

/// Days from `start` (included) to `end` (excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRange {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

/// The words a relative date may be, for error messages.
pub const RELATIVE_DATES: &str = "TODAY, YESTERDAY, TOMORROW, THIS_/LAST_/NEXT_ + WEEK, MONTH, \
QUARTER, YEAR, FISCAL_QUARTER or FISCAL_YEAR, LAST_N_DAYS:n, NEXT_N_DAYS:n";

/// Resolves a relative date; `Ok(None)` when `text` is not one (it may be a plain date).
pub fn relative_range(text: &str, ctx: &DateContext) -> Result<Option<DayRange>, String> {
    let today = ctx.today();
    let day = |d: NaiveDate| DayRange {
        start: d,
        end: d + Days::new(1),
    };
    if let Some(n) = text.strip_prefix("LAST_N_DAYS:") {
        let n = count(n)?;
        return Ok(Some(DayRange {
            start: today - Days::new(n - 1),
            end: today + Days::new(1),
        }));
    }
    if let Some(n) = text.strip_prefix("NEXT_N_DAYS:") {
        let n = count(n)?;
        return Ok(Some(DayRange {
            start: today + Days::new(1),
            end: today + Days::new(n + 1),
        }));
    }
    let range = match text {
        "TODAY" => day(today),
        "YESTERDAY" => day(today - Days::new(1)),
        "TOMORROW" => day(today + Days::new(1)),
        _ => {
            let Some((which, unit)) = text.split_once('_') else {
                return Ok(None);
            };
            let shift: i32 = match which {
                "THIS" => 0,
                "LAST" => -1,
                "NEXT" => 1,
                _ => return Ok(None),
            };
            let (start, months) = match unit {
                "WEEK" => {
                    let monday =
                        today - Days::new(u64::from(today.weekday().num_days_from_monday()));
                    let start = shift_days(monday, 7 * i64::from(shift));
                    return Ok(Some(DayRange {
                        start,
                        end: start + Days::new(7),
                    }));
                }
                "MONTH" => (first_of_month(today), 1),
                "QUARTER" => (quarter_start(today, 1), 3),
                "YEAR" => (quarter_start_year(today, 1), 12),
                "FISCAL_QUARTER" => (quarter_start(today, ctx.fiscal_year_start_month), 3),
                "FISCAL_YEAR" => (quarter_start_year(today, ctx.fiscal_year_start_month), 12),
                _ => return Ok(None),
            };
            let start = shift_months(start, shift * months);
            DayRange {
                start,
                end: shift_months(start, months),
            }
        }
    };
    Ok(Some(range))
}

fn count(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(n) if (1..=36_500).contains(&n) => Ok(n),
        _ => Err(format!("`{text}` is not a number of days from 1 to 36500")),
    }
}

fn first_of_month(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

fn shift_days(d: NaiveDate, days: i64) -> NaiveDate {
    d.checked_add_signed(chrono::Duration::days(days))
        .unwrap_or(d)
}

fn shift_months(d: NaiveDate, months: i32) -> NaiveDate {
    let m = Months::new(months.unsigned_abs());
    if months >= 0 {
        d.checked_add_months(m)
    } else {
        d.checked_sub_months(m)
    }
    .unwrap_or(d)
}

/// The first day of the quarter holding `d`, for years starting in `start_month`.
fn quarter_start(d: NaiveDate, start_month: u32) -> NaiveDate {
    let year_start = quarter_start_year(d, start_month);
    let months_in = (d.month() + 12 - start_month) % 12;
    shift_months(year_start, i32::try_from(months_in / 3 * 3).unwrap_or(0))
}

/// The first day of the (fiscal) year holding `d`.
fn quarter_start_year(d: NaiveDate, start_month: u32) -> NaiveDate {
    let year = if d.month() >= start_month {
        d.year()
    } else {
        d.year() - 1
    };
    NaiveDate::from_ymd_opt(year, start_month, 1).unwrap_or(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(today: &str, fiscal: u32) -> DateContext {
        let d: NaiveDate = today.parse().unwrap();
        DateContext {
            now: d.and_hms_opt(12, 0, 0).unwrap().and_utc(),
            time_zone: Tz::UTC,
            fiscal_year_start_month: fiscal,
        }
    }

    fn range(text: &str, c: &DateContext) -> (String, String) {
        let r = relative_range(text, c).unwrap().unwrap();
        (r.start.to_string(), r.end.to_string())
    }

    fn pair(a: &str, b: &str) -> (String, String) {
        (a.into(), b.into())
    }

    #[test]
    fn calendar_periods() {
        let c = ctx("2026-11-23", 1); // a Monday
        assert_eq!(range("TODAY", &c), pair("2026-11-23", "2026-11-24"));
        assert_eq!(range("THIS_WEEK", &c), pair("2026-11-23", "2026-11-30"));
        assert_eq!(range("LAST_WEEK", &c), pair("2026-11-16", "2026-11-23"));
        assert_eq!(range("THIS_MONTH", &c), pair("2026-11-01", "2026-12-01"));
        assert_eq!(range("NEXT_MONTH", &c), pair("2026-12-01", "2027-01-01"));
        assert_eq!(range("THIS_QUARTER", &c), pair("2026-10-01", "2027-01-01"));
        assert_eq!(range("LAST_QUARTER", &c), pair("2026-07-01", "2026-10-01"));
        assert_eq!(range("LAST_YEAR", &c), pair("2025-01-01", "2026-01-01"));
        assert_eq!(
            range("LAST_N_DAYS:30", &c),
            pair("2026-10-25", "2026-11-24")
        );
        assert_eq!(range("NEXT_N_DAYS:7", &c), pair("2026-11-24", "2026-12-01"));
    }

    #[test]
    fn fiscal_periods_follow_the_start_month() {
        let c = ctx("2026-11-23", 2); // fiscal years start in February
        assert_eq!(
            range("THIS_FISCAL_YEAR", &c),
            pair("2026-02-01", "2027-02-01")
        );
        assert_eq!(
            range("LAST_FISCAL_YEAR", &c),
            pair("2025-02-01", "2026-02-01")
        );
        assert_eq!(
            range("THIS_FISCAL_QUARTER", &c),
            pair("2026-11-01", "2027-02-01")
        );
        let jan = ctx("2026-01-15", 2);
        assert_eq!(
            range("THIS_FISCAL_YEAR", &jan),
            pair("2025-02-01", "2026-02-01")
        );
        assert_eq!(
            range("THIS_FISCAL_QUARTER", &jan),
            pair("2025-11-01", "2026-02-01")
        );
    }

    #[test]
    fn other_text_is_not_relative_and_bad_counts_are_refused() {
        let c = ctx("2026-11-23", 1);
        assert_eq!(relative_range("2026-01-01", &c), Ok(None));
        assert_eq!(relative_range("THIS_DECADE", &c), Ok(None));
        assert!(relative_range("LAST_N_DAYS:0", &c).is_err());
        assert!(relative_range("LAST_N_DAYS:x", &c).is_err());
    }
}
