//! `churn_risk`: will a customer (a company with a won deal) go quiet, with no new won deal
//! and no activity, within the horizon?
//!
//! Training rows are each company that had won a deal by the cutoff, at each of four cutoff
//! days a horizon apart (as `lead_score`'s). A company's values are those of its latest change
//! committed by the cutoff day (its first where none was); activities count by their first
//! recorded values, through their contact's first recorded company, when dated by the cutoff;
//! a deal is won on its close date (or the day it was closed, if earlier). Scoring takes every
//! live company with a won deal, as of today.

use oneo_query::WorkspaceSchema;

use super::sql::{changes, columns, day, field_feature, ident, training_cutoffs};
use super::{FeatureQuery, FeatureSpec, Purpose, category, field_column, number, require};
use crate::error::ModelError;

const COMPANY_FIELDS: &[&str] = &["employees", "industry"];
/// The company fields that are features of their own.
pub(crate) const OWN_FIELDS: &[&str] = &["employees", "industry"];
const CONTACT_FIELDS: &[&str] = &["company"];
const DEAL_FIELDS: &[&str] = &["stage", "close_date", "amount", "company"];
const ACTIVITY_FIELDS: &[&str] = &["type", "occurred_at", "contact"];
const CUTOFFS: i64 = 4;

pub(crate) fn query(
    schema: &WorkspaceSchema,
    spec: &FeatureSpec,
    purpose: Purpose,
) -> Result<FeatureQuery, ModelError> {
    const KIND: &str = "churn_risk";
    require(schema, KIND, "company", COMPANY_FIELDS)?;
    require(schema, KIND, "contact", CONTACT_FIELDS)?;
    require(schema, KIND, "deal", DEAL_FIELDS)?;
    require(schema, KIND, "activity", ACTIVITY_FIELDS)?;
    let company = schema
        .object("company")
        .ok_or_else(|| ModelError::definition("kind", "no company"))?;
    let scoring = matches!(purpose, Purpose::Scoring { .. });
    let firms = changes(
        &ident("company")?,
        &columns(COMPANY_FIELDS, &spec.fields)?,
        scoring,
    );
    let people = changes(&ident("contact")?, &columns(CONTACT_FIELDS, &[])?, scoring);
    let deals = changes(&ident("deal")?, &columns(DEAL_FIELDS, &[])?, false);
    let activities = changes(
        &ident("activity")?,
        &columns(ACTIVITY_FIELDS, &[])?,
        scoring,
    );
    let horizon = i64::from(spec.horizon_days);
    let (cutoffs, label) = match purpose {
        Purpose::Training => (
            training_cutoffs(horizon, CUTOFFS),
            "coalesce(w.won_after, 0) = 0 AND coalesce(e.after, 0) = 0".to_string(),
        ),
        Purpose::Scoring { today } => {
            let today = today
                .signed_duration_since(chrono::NaiveDate::default())
                .num_days();
            (
                format!("SELECT CAST({today} AS INT) AS cut_day"),
                "CAST(NULL AS BOOLEAN)".to_string(),
            )
        }
    };
    let mut columns = vec![
        number("company.employees", true),
        category("company.industry"),
        number("won_deals", false),
        number("won_amount", true),
        number("days_since_last_win", false),
        number("activities", false),
        number("activities_30d", false),
        number("activities_90d", false),
        number("meetings", false),
        number("days_since_last_activity", false),
    ];
    let mut extra = String::new();
    for f in &spec.fields {
        let t = company.field(f).map(|d| d.field_type);
        columns
            .push(field_column("company", t, f).map_err(|m| ModelError::definition("fields", m))?);
        if let Some(t) = t {
            extra.push_str(&format!(
                ", {}",
                field_feature(t, &format!("o.{}", ident(f)?), "r.cut_day")
            ));
        }
    }
    let commit_day = day("o._commit_ts");
    let act_day = day("a.occurred_at");
    let close_day = "CAST(d.close_date AS INT)";
    let d_commit_day = day("d._commit_ts");
    let sql = format!(
        "WITH cutoffs AS ({cutoffs}),
         firms AS (
            SELECT f.*, row_number() OVER (PARTITION BY f.id ORDER BY f._lsn, f._seq) AS n_ FROM ({firms}) f
         ),
         people AS (
            SELECT p.id, p.company
              FROM (SELECT p.*, row_number() OVER (PARTITION BY p.id ORDER BY p._lsn, p._seq) AS n_ FROM ({people}) p) p
             WHERE p.n_ = 1 AND p.company IS NOT NULL
         ),
         acts AS (
            SELECT p.company, a.\"type\" AS kind_, {act_day} AS day_
              FROM (SELECT a.*, row_number() OVER (PARTITION BY a.id ORDER BY a._lsn, a._seq) AS n_
                      FROM ({activities}) a) a
              JOIN people p ON p.id = a.contact
             WHERE a.n_ = 1 AND a._op <> 'delete'
         ),
         wins AS (
            SELECT d.company, CAST(d.amount AS DOUBLE) AS amount_,
                   CASE WHEN {close_day} IS NOT NULL AND {close_day} < {d_commit_day} THEN {close_day} ELSE {d_commit_day} END AS won_day
              FROM (SELECT d.*, row_number() OVER (PARTITION BY d.id ORDER BY d._lsn, d._seq) AS w_
                      FROM ({deals}) d WHERE d.stage = 'closed_won' AND d._op <> 'delete') d
             WHERE d.w_ = 1 AND d.company IS NOT NULL
         ),
         history_of_wins AS (
            SELECT w.company, k.cut_day,
                   sum(CASE WHEN w.won_day <= k.cut_day THEN 1 ELSE 0 END) AS won_before,
                   sum(CASE WHEN w.won_day <= k.cut_day THEN w.amount_ ELSE 0 END) AS won_amount,
                   min(CASE WHEN w.won_day <= k.cut_day THEN k.cut_day - w.won_day END) AS since_win,
                   sum(CASE WHEN w.won_day > k.cut_day AND w.won_day <= k.cut_day + {horizon} THEN 1 ELSE 0 END) AS won_after
              FROM wins w CROSS JOIN cutoffs k
             GROUP BY w.company, k.cut_day
         ),
         at_row AS (
            SELECT h.company AS id, h.cut_day, coalesce(max(CASE WHEN {commit_day} <= h.cut_day THEN o.n_ END), 1) AS at_n
              FROM history_of_wins h JOIN firms o ON o.id = h.company
             WHERE h.won_before > 0
             GROUP BY h.company, h.cut_day
         ),
         engagement AS (
            SELECT r.id, r.cut_day,
                   sum(CASE WHEN a.day_ <= r.cut_day THEN 1 ELSE 0 END) AS total,
                   sum(CASE WHEN a.day_ <= r.cut_day AND a.day_ > r.cut_day - 30 THEN 1 ELSE 0 END) AS a30,
                   sum(CASE WHEN a.day_ <= r.cut_day AND a.day_ > r.cut_day - 90 THEN 1 ELSE 0 END) AS a90,
                   sum(CASE WHEN a.day_ <= r.cut_day AND a.kind_ = 'meeting' THEN 1 ELSE 0 END) AS meetings,
                   min(CASE WHEN a.day_ <= r.cut_day THEN r.cut_day - a.day_ END) AS since_last,
                   sum(CASE WHEN a.day_ > r.cut_day AND a.day_ <= r.cut_day + {horizon} THEN 1 ELSE 0 END) AS after
              FROM at_row r JOIN acts a ON a.company = r.id
             GROUP BY r.id, r.cut_day
         )
         SELECT r.id, {label}, r.cut_day,
                CAST(o.employees AS DOUBLE), CAST(o.industry AS VARCHAR),
                CAST(w.won_before AS DOUBLE), CAST(w.won_amount AS DOUBLE), CAST(w.since_win AS DOUBLE),
                CAST(coalesce(e.total, 0) AS DOUBLE), CAST(coalesce(e.a30, 0) AS DOUBLE),
                CAST(coalesce(e.a90, 0) AS DOUBLE), CAST(coalesce(e.meetings, 0) AS DOUBLE),
                CAST(e.since_last AS DOUBLE)
                {extra}
           FROM at_row r
           JOIN firms o ON o.id = r.id AND o.n_ = r.at_n
           JOIN history_of_wins w ON w.company = r.id AND w.cut_day = r.cut_day
           LEFT JOIN engagement e ON e.id = r.id AND e.cut_day = r.cut_day
          WHERE o._op <> 'delete'
          ORDER BY r.id, r.cut_day"
    );
    Ok(FeatureQuery { sql, columns })
}
