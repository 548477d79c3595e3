//! `win_probability`: will a deal end `closed_won`?
//!
//! A training row is a deal's first change into a closed stage (its outcome), with the
//! values of the deal's change just before it. Its cutoff day is the close date (or the
//! commit day, if earlier or unset). Activities count when committed before the outcome,
//! linked to the deal by their own latest change before it, and dated on or before the cutoff
//! day. Scoring takes each open deal's latest values, cut off today.

use oneo_query::WorkspaceSchema;

use super::sql::{changes, columns, day, field_feature, ident};
use super::{FeatureQuery, FeatureSpec, Purpose, category, field_column, number, require};
use crate::error::ModelError;

const CLOSED: &str = "('closed_won', 'closed_lost')";

/// The standard fields the built-in features read.
const DEAL_FIELDS: &[&str] = &["stage", "amount", "lead_source", "owner", "close_date"];
/// The deal fields that are features of their own (a model can't add them again).
pub(crate) const OWN_FIELDS: &[&str] = &["stage", "amount", "lead_source", "owner"];
const ACTIVITY_FIELDS: &[&str] = &["type", "occurred_at", "deal"];

pub(crate) fn query(
    schema: &WorkspaceSchema,
    spec: &FeatureSpec,
    purpose: Purpose,
) -> Result<FeatureQuery, ModelError> {
    require(schema, "win_probability", "deal", DEAL_FIELDS)?;
    require(schema, "win_probability", "activity", ACTIVITY_FIELDS)?;
    let deal = schema
        .object("deal")
        .ok_or_else(|| ModelError::definition("kind", "no deal"))?;
    let deal_cols = columns(DEAL_FIELDS, &spec.fields)?;
    let act_cols = columns(ACTIVITY_FIELDS, &[])?;
    let scoring = matches!(purpose, Purpose::Scoring { .. });
    let deals = changes(&ident("deal")?, &deal_cols, scoring);
    let activities = changes(&ident("activity")?, &act_cols, scoring);
    let points = match purpose {
        Purpose::Training => {
            let commit_day = day("o._commit_ts");
            let close_day = "CAST(o.close_date AS INT)";
            format!(
                "SELECT o.id, o.n_ - 1 AS at_n, o._lsn AS cut_lsn, o.stage = 'closed_won' AS label,
                        CASE WHEN {close_day} IS NOT NULL AND {close_day} < {commit_day} THEN {close_day} ELSE {commit_day} END AS cut_day
                   FROM ordered o
                   JOIN (SELECT id, min(n_) AS first_n FROM ordered WHERE stage IN {CLOSED} AND _op <> 'delete' GROUP BY id) f
                     ON o.id = f.id AND o.n_ = f.first_n
                  WHERE o.n_ > 1"
            )
        }
        Purpose::Scoring { today } => {
            let today = today
                .signed_duration_since(chrono::NaiveDate::default())
                .num_days();
            format!(
                "SELECT o.id, o.n_ AS at_n, CAST(9223372036854775807 AS BIGINT) AS cut_lsn,
                        CAST(NULL AS BOOLEAN) AS label, CAST({today} AS INT) AS cut_day
                   FROM ordered o
                   JOIN (SELECT id, max(n_) AS last_n FROM ordered GROUP BY id) l
                     ON o.id = l.id AND o.n_ = l.last_n
                  WHERE o._op <> 'delete' AND (o.stage IS NULL OR o.stage NOT IN {CLOSED})"
            )
        }
    };
    let mut columns = vec![
        number("deal.amount", true),
        category("deal.stage"),
        category("deal.lead_source"),
        category("deal.owner"),
        number("activities", false),
        number("activities_30d", false),
        number("activities_90d", false),
        number("meetings", false),
        number("days_since_last_activity", false),
        number("stage_changes", false),
        number("days_in_stage", false),
    ];
    let mut extra = String::new();
    for f in &spec.fields {
        let t = deal.field(f).map(|d| d.field_type);
        columns.push(field_column("deal", t, f).map_err(|m| ModelError::definition("fields", m))?);
        if let Some(t) = t {
            extra.push_str(&format!(
                ", {}",
                field_feature(t, &format!("o.{}", ident(f)?), "c.cut_day")
            ));
        }
    }
    let act_day = day("a.occurred_at");
    let commit_day = day("o._commit_ts");
    let sql = format!(
        "WITH ordered AS (
            SELECT d.*, row_number() OVER (PARTITION BY d.id ORDER BY d._lsn, d._seq) AS n_ FROM ({deals}) d
         ),
         closing AS ({points}),
         stages AS (
            SELECT c.id, count(DISTINCT o.stage) - 1 AS stage_changes,
                   min(CASE WHEN o.stage = cur.stage THEN {commit_day} END) AS since_day
              FROM closing c
              JOIN ordered cur ON cur.id = c.id AND cur.n_ = c.at_n
              JOIN ordered o ON o.id = c.id AND o.n_ <= c.at_n
             GROUP BY c.id
         ),
         acts AS (
            SELECT c.id, c.cut_day, a._op AS op_, a.\"type\" AS kind_, {act_day} AS day_,
                   row_number() OVER (PARTITION BY c.id, a.id ORDER BY a._lsn DESC, a._seq DESC) AS r_
              FROM closing c JOIN ({activities}) a ON a.deal = c.id AND a._lsn < c.cut_lsn
         ),
         engagement AS (
            SELECT id, count(*) AS total,
                   sum(CASE WHEN day_ > cut_day - 30 THEN 1 ELSE 0 END) AS a30,
                   sum(CASE WHEN day_ > cut_day - 90 THEN 1 ELSE 0 END) AS a90,
                   sum(CASE WHEN kind_ = 'meeting' THEN 1 ELSE 0 END) AS meetings,
                   min(cut_day - day_) AS since_last
              FROM acts WHERE r_ = 1 AND op_ <> 'delete' AND day_ <= cut_day
             GROUP BY id
         )
         SELECT c.id, c.label, c.cut_day,
                CAST(o.amount AS DOUBLE), CAST(o.stage AS VARCHAR), CAST(o.lead_source AS VARCHAR), CAST(o.owner AS VARCHAR),
                CAST(coalesce(e.total, 0) AS DOUBLE), CAST(coalesce(e.a30, 0) AS DOUBLE),
                CAST(coalesce(e.a90, 0) AS DOUBLE), CAST(coalesce(e.meetings, 0) AS DOUBLE),
                CAST(e.since_last AS DOUBLE), CAST(s.stage_changes AS DOUBLE),
                CAST(CASE WHEN c.cut_day > s.since_day THEN c.cut_day - s.since_day ELSE 0 END AS DOUBLE)
                {extra}
           FROM closing c
           JOIN ordered o ON o.id = c.id AND o.n_ = c.at_n
           LEFT JOIN engagement e ON e.id = c.id
           LEFT JOIN stages s ON s.id = c.id
          ORDER BY c.id"
    );
    Ok(FeatureQuery { sql, columns })
}
