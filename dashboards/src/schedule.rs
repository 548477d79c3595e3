//! A delivery schedule's definition: what is sent (a saved report or a dashboard), when (a
//! cron expression read in an IANA time zone, parsed by `croner`), as which files, to whom,
//! and on which condition. The fires it computes are instants in UTC, so a schedule at
//! 08:00 Europe/Berlin fires at 07:00 UTC in winter and 06:00 UTC in summer.
//!
//! ```
//! use oneo_dashboards::ScheduleSpec;
//!
//! let spec: ScheduleSpec = serde_json::from_value(serde_json::json!({
//!     "name": "Monday pipeline",
//!     "target": {"dashboard": "0190f0a4-5f5e-7c3a-9a1e-3f6b2c9d8e71"},
//!     "cron": "0 8 * * MON", "time_zone": "Europe/Berlin",
//!     "formats": ["pdf", "csv"], "recipients": ["ann@example.com"],
//! })).unwrap();
//! let when = spec.when().unwrap();
//! let after = "2026-12-07T12:00:00Z".parse().unwrap();
//! assert_eq!(when.next_after(after).unwrap().to_rfc3339(), "2026-12-14T07:00:00+00:00");
//! ```

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use oneo_catalog::{Issue, Issues};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Most recipients one schedule sends to.
pub const MAX_RECIPIENTS: usize = 50;

/// What a schedule delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    /// A saved report (`/v1/reports/{id}`).
    Report(Uuid),
    /// A dashboard (`/v1/dashboards/{id}`).
    Dashboard(Uuid),
}

/// A file attached to a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Pdf,
    Csv,
    Xlsx,
}

/// When a fire is sent at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "when", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// Every fire.
    #[default]
    Always,
    /// Only when the report (or any widget's report) has rows.
    HasRows,
    /// Only when a metric's value is above (`above`) or below (`below`) a threshold: the
    /// report's first aggregate total, or the dashboard widget named by `widget`.
    Crosses {
        #[serde(default)]
        widget: Option<String>,
        #[serde(default)]
        above: Option<f64>,
        #[serde(default)]
        below: Option<f64>,
    },
}

/// A fire missed while no server ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    /// The latest missed fire is sent once at startup; its delivery counts the older ones.
    #[default]
    SendOnce,
    /// The latest missed fire is logged as skipped (counting the older ones); nothing is sent.
    Skip,
}

/// A schedule as `/v1/schedules` takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    pub name: String,
    pub target: Target,
    /// Five fields (minute hour day-of-month month day-of-week), or six with seconds first;
    /// `@daily` and friends too.
    pub cron: String,
    /// An IANA zone name; the cron expression is read in it. UTC unless given.
    #[serde(default = "utc")]
    pub time_zone: String,
    pub formats: Vec<Format>,
    pub recipients: Vec<String>,
    #[serde(default)]
    pub condition: Condition,
    #[serde(default)]
    pub missed: Missed,
    /// Paused schedules keep their state and do not fire.
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn utc() -> String {
    "UTC".into()
}

fn enabled() -> bool {
    true
}

/// A parsed cron expression and its zone: the instants a schedule fires at.
#[derive(Debug, Clone)]
pub struct FireTimes {
    cron: Cron,
    zone: Tz,
}

impl FireTimes {
    /// The first fire strictly after `after`; `None` for an expression that never fires
    /// again (`0 0 30 2 *`).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.zone);
        let next = self.cron.find_next_occurrence(&local, false).ok()?;
        Some(next.with_timezone(&Utc))
    }

    /// The latest fire in `(after, until]`, and how many fires that range holds: what a
    /// server that was down from `after` to `until` missed.
    pub fn missed(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> (Option<DateTime<Utc>>, usize) {
        let (mut latest, mut count) = (None, 0);
        let mut at = after;
        while let Some(next) = self.next_after(at).filter(|n| *n <= until) {
            latest = Some(next);
            count += 1;
            at = next;
        }
        (latest, count)
    }
}

/// What a scheduler does with a schedule whose next fire is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// The fire this claim delivers (or logs as skipped): the latest one due.
    pub fire_at: DateTime<Utc>,
    /// Earlier due fires folded into it.
    pub folded: usize,
    /// Whether it is sent (`false`: missed while no server ran, and the schedule skips those).
    pub send: bool,
    /// The schedule's next fire after this claim.
    pub next: Option<DateTime<Utc>>,
}

impl FireTimes {
    /// The claim of a schedule whose first unclaimed fire is `next_fire` (due: at or before
    /// `now`). A fire older than `grace` was missed while no server ran; `missed` says what
    /// then happens. A fire within `grace` is on time and sent, whatever the policy.
    pub fn due(
        &self,
        next_fire: DateTime<Utc>,
        now: DateTime<Utc>,
        grace: chrono::Duration,
        missed: Missed,
    ) -> Due {
        let before = next_fire - chrono::Duration::microseconds(1);
        let (latest, count) = self.missed(before, now);
        let fire_at = latest.unwrap_or(next_fire);
        let on_time = now - fire_at <= grace;
        Due {
            fire_at,
            folded: count.saturating_sub(1),
            send: on_time || missed == Missed::SendOnce,
            next: self.next_after(now.max(fire_at)),
        }
    }
}

impl ScheduleSpec {
    /// The cron expression in its zone, or the issue with either.
    pub fn when(&self) -> Result<FireTimes, Issues> {
        let mut issues = Vec::new();
        let cron = Cron::from_str(self.cron.trim()).map_err(|e| {
            issues.push(Issue::new(
                "cron",
                format!(
                    "`{}` is not a cron expression ({e}); use five fields (minute hour day-of-month month day-of-week, e.g. `0 8 * * MON`), six with seconds first, or @daily/@weekly/@monthly",
                    self.cron
                ),
            ))
        });
        let zone = Tz::from_str(self.time_zone.trim()).map_err(|_| {
            issues.push(Issue::new(
                "time_zone",
                format!(
                    "`{}` is not an IANA time zone name such as Europe/Berlin or UTC",
                    self.time_zone
                ),
            ))
        });
        match (cron, zone) {
            (Ok(cron), Ok(zone)) => Ok(FireTimes { cron, zone }),
            _ => Err(Issues(issues)),
        }
    }

    /// Everything that can be checked without the database, each issue naming its field.
    pub fn validate(&self) -> Result<FireTimes, Issues> {
        let mut issues = Vec::new();
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            issues.push(Issue::new("name", "must be 1 to 200 characters"));
        }
        let when = self.when().map_err(|e| issues.extend(e.0)).ok();
        if self.formats.is_empty() {
            issues.push(Issue::new("formats", "name at least one of pdf, csv, xlsx"));
        }
        let mut formats = self.formats.clone();
        formats.sort();
        formats.dedup();
        if formats.len() != self.formats.len() {
            issues.push(Issue::new("formats", "a format is named twice"));
        }
        if self.recipients.is_empty() || self.recipients.len() > MAX_RECIPIENTS {
            issues.push(Issue::new(
                "recipients",
                format!("a schedule sends to 1 to {MAX_RECIPIENTS} email addresses"),
            ));
        }
        for (i, r) in self.recipients.iter().enumerate() {
            if !email_address::EmailAddress::is_valid(r.trim()) {
                issues.push(Issue::new(
                    format!("recipients[{i}]"),
                    format!("`{r}` is not an email address"),
                ));
            }
        }
        if let Condition::Crosses {
            widget,
            above,
            below,
        } = &self.condition
        {
            if above.is_none() == below.is_none() {
                issues.push(Issue::new(
                    "condition",
                    "a `crosses` condition takes exactly one of `above` or `below`",
                ));
            }
            if above.or(*below).is_some_and(|v| !v.is_finite()) {
                issues.push(Issue::new(
                    "condition",
                    "the threshold must be a finite number",
                ));
            }
            match (self.target, widget) {
                (Target::Dashboard(_), None) => issues.push(Issue::new(
                    "condition.widget",
                    "name the dashboard widget (its key) whose value is compared",
                )),
                (Target::Report(_), Some(_)) => issues.push(Issue::new(
                    "condition.widget",
                    "a report has no widgets; leave `widget` out",
                )),
                _ => {}
            }
        }
        match (when, issues.is_empty()) {
            (Some(when), true) => Ok(when),
            _ => Err(Issues(issues)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(extra: serde_json::Value) -> ScheduleSpec {
        let mut base = json!({
            "name": "Weekly", "target": {"report": Uuid::nil()}, "cron": "0 8 * * *",
            "formats": ["csv"], "recipients": ["ann@example.com"],
        });
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        serde_json::from_value(base).expect("a schedule")
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("an instant")
    }

    fn fields(e: Issues) -> Vec<String> {
        e.0.into_iter().map(|i| i.field).collect()
    }

    #[test]
    fn fires_follow_the_zone_across_daylight_saving() {
        let when = spec(json!({"time_zone": "Europe/Berlin"}))
            .validate()
            .expect("valid");
        // Winter: 08:00 in Berlin is 07:00 UTC; summer: 06:00 UTC.
        assert_eq!(
            when.next_after(at("2026-12-07T07:30:00Z")),
            Some(at("2026-12-08T07:00:00Z"))
        );
        assert_eq!(
            when.next_after(at("2026-07-01T00:00:00Z")),
            Some(at("2026-07-01T06:00:00Z"))
        );
        // The night clocks go forward (29 March 2026), the fire is still at 08:00 local.
        assert_eq!(
            when.next_after(at("2026-03-28T12:00:00Z")),
            Some(at("2026-03-29T06:00:00Z"))
        );
        // A fire is strictly after the instant given, so the same fire is never found twice.
        assert_eq!(
            when.next_after(at("2026-12-08T07:00:00Z")),
            Some(at("2026-12-09T07:00:00Z"))
        );
    }

    #[test]
    fn missed_fires_are_counted_and_the_latest_named() {
        let when = spec(json!({})).validate().expect("valid");
        let (latest, count) = when.missed(at("2026-12-01T09:00:00Z"), at("2026-12-04T08:30:00Z"));
        assert_eq!((latest, count), (Some(at("2026-12-04T08:00:00Z")), 3));
        assert_eq!(
            when.missed(at("2026-12-04T08:00:00Z"), at("2026-12-04T09:00:00Z")),
            (None, 0)
        );
    }

    #[test]
    fn bad_definitions_name_each_field() {
        let e = spec(json!({"cron": "61 * * * *", "time_zone": "Mars/Olympus",
                            "formats": [], "recipients": ["ann@example.com", "not-an-address"]}))
        .validate()
        .expect_err("invalid");
        assert_eq!(fields(e), ["cron", "time_zone", "formats", "recipients[1]"]);
        let e = spec(
            json!({"condition": {"when": "crosses", "above": 1.0, "below": 2.0, "widget": "x"}}),
        )
        .validate()
        .expect_err("invalid");
        assert_eq!(fields(e), ["condition", "condition.widget"]);
        let e = spec(json!({"target": {"dashboard": Uuid::nil()}, "condition": {"when": "crosses", "above": 10.0}}))
            .validate()
            .expect_err("invalid");
        assert_eq!(fields(e), ["condition.widget"]);
        assert!(serde_json::from_value::<ScheduleSpec>(json!({"name": "x"})).is_err());
    }

    #[test]
    fn defaults_are_utc_always_and_send_once() {
        let s = spec(json!({}));
        assert_eq!(
            (s.time_zone.as_str(), &s.condition, s.missed, s.enabled),
            ("UTC", &Condition::Always, Missed::SendOnce, true)
        );
        let when = s.validate().expect("valid");
        assert_eq!(
            when.next_after(at("2026-12-07T07:59:59Z")),
            Some(at("2026-12-07T08:00:00Z"))
        );
    }

    #[test]
    fn a_due_fire_is_sent_once_and_missed_ones_fold_into_it() {
        let hourly = spec(json!({"cron": "0 * * * *"})).when().expect("valid");
        let grace = chrono::Duration::seconds(60);
        // On time: the 09:00 fire claimed at 09:00:00.4.
        let d = hourly.due(
            at("2026-12-07T09:00:00Z"),
            at("2026-12-07T09:00:00.4Z"),
            grace,
            Missed::Skip,
        );
        assert_eq!(
            (d.fire_at, d.folded, d.send),
            (at("2026-12-07T09:00:00Z"), 0, true)
        );
        assert_eq!(d.next, Some(at("2026-12-07T10:00:00Z")));
        // Down from 09:30 to 12:20: 10:00, 11:00 and 12:00 were missed; 12:00 stands for all.
        let d = hourly.due(
            at("2026-12-07T10:00:00Z"),
            at("2026-12-07T12:20:00Z"),
            grace,
            Missed::SendOnce,
        );
        assert_eq!(
            (d.fire_at, d.folded, d.send),
            (at("2026-12-07T12:00:00Z"), 2, true)
        );
        assert_eq!(d.next, Some(at("2026-12-07T13:00:00Z")));
        let d = hourly.due(
            at("2026-12-07T10:00:00Z"),
            at("2026-12-07T12:20:00Z"),
            grace,
            Missed::Skip,
        );
        assert!(
            !d.send,
            "a schedule that skips missed fires sends none of them"
        );
    }
}
