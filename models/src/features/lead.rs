//! `lead_score`: will a contact get a won deal within the horizon?
//!
//! Training rows are each contact at each of four cutoff days, one horizon apart, ending a
//! horizon before the newest change in the deal history (so every label's window has
//! passed). A contact counts from its first commit or its first dated activity, whichever
//! is earlier. Its values are those of its latest change committed by the cutoff day (its
//! first change where none was); activities count by their first recorded values, when
//! dated by the cutoff; a deal is won on its close date (or the day it was closed, if
//! earlier); the company's size and industry are its first recorded ones. The label: a deal of the contact won in the `horizon` days after the cutoff.
//! Scoring takes every live contact as of today.

use oneo_query::WorkspaceSchema;

use super::sql::{changes, columns, day, field_feature, ident, training_cutoffs};
use super::{FeatureQuery, FeatureSpec, Purpose, category, field_column, number, require};
use crate::error::ModelError;

const CONTACT_FIELDS: &[&str] = &["title", "lead_source", "company"];
/// The contact fields that are features of their own.
pub(crate) const OWN_FIELDS: &[&str] = &["title", "lead_source"];
const COMPANY_FIELDS: &[&str] = &["employees", "industry"];
const DEAL_FIELDS: &[&str] = &["stage", "close_date", "contact"];
const ACTIVITY_FIELDS: &[&str] = &["type", "occurred_at", "contact"];
/// How many cutoffs, one horizon apart, training takes.
const CUTOFFS: i64 = 4;

pub(crate) fn query(
    schema: &WorkspaceSchema,
    spec: &FeatureSpec,
    purpose: Purpose,
) -> Result<FeatureQuery, ModelError> {
    const KIND: &str = "lead_score";
    require(schema, KIND, "contact", CONTACT_FIELDS)?;
    require(schema, KIND, "company", COMPANY_FIELDS)?;
    require(schema, KIND, "deal", DEAL_FIELDS)?;
    require(schema, KIND, "activity", ACTIVITY_FIELDS)?;
    let contact = schema
        .object("contact")
        .ok_or_else(|| ModelError::definition("kind", "no contact"))?;
    let scoring = matches!(purpose, Purpose::Scoring { .. });
    let people = changes(
        &ident("contact")?,
        &columns(CONTACT_FIELDS, &spec.fields)?,
        scoring,
    );
    let companies = changes(&ident("company")?, &columns(COMPANY_FIELDS, &[])?, scoring);
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
            "coalesce(oc.won_after, 0) > 0".to_string(),
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
        category("contact.title"),
        category("contact.lead_source"),
        number("company.employees", true),
        category("company.industry"),
        number("activities", false),
        number("activities_30d", false),
        number("activities_90d", false),
        number("meetings", false),
        number("days_since_last_activity", false),
        number("won_deals", false),
    ];
    let mut extra = String::new();
    for f in &spec.fields {
        let t = contact.field(f).map(|d| d.field_type);
        columns
            .push(field_column("contact", t, f).map_err(|m| ModelError::definition("fields", m))?);
        if let Some(t) = t {
            extra.push_str(&format!(
                ", {}",
                field_feature(t, &format!("o.{}", ident(f)?), "r.cut_day")
            ));
        }
    }
    let commit_day = day("_commit_ts");
    let o_commit_day = day("o._commit_ts");
    let act_day = day("a.occurred_at");
    let close_day = "CAST(d.close_date AS INT)";
    let d_commit_day = day("d._commit_ts");
    let sql = format!(
        "WITH cutoffs AS ({cutoffs}),
         people AS (
            SELECT p.*, row_number() OVER (PARTITION BY p.id ORDER BY p._lsn, p._seq) AS n_ FROM ({people}) p
         ),
         acts AS (
            SELECT a.contact, a.\"type\" AS kind_, {act_day} AS day_
              FROM (SELECT a.*, row_number() OVER (PARTITION BY a.id ORDER BY a._lsn, a._seq) AS n_
                      FROM ({activities}) a) a
             WHERE a.n_ = 1 AND a.contact IS NOT NULL AND a._op <> 'delete'
         ),
         first_act AS (SELECT contact, min(day_) AS first_day FROM acts GROUP BY contact),
         born AS (SELECT id, min({commit_day}) AS born_day FROM people GROUP BY id),
         points AS (
            SELECT b.id, k.cut_day
              FROM born b LEFT JOIN first_act f ON f.contact = b.id CROSS JOIN cutoffs k
             WHERE CASE WHEN f.first_day IS NOT NULL AND f.first_day < b.born_day THEN f.first_day ELSE b.born_day END <= k.cut_day
         ),
         at_row AS (
            SELECT p.id, p.cut_day, coalesce(max(CASE WHEN {o_commit_day} <= p.cut_day THEN o.n_ END), 1) AS at_n
              FROM points p JOIN people o ON o.id = p.id
             GROUP BY p.id, p.cut_day
         ),
         wins AS (
            SELECT d.contact, CASE WHEN {close_day} IS NOT NULL AND {close_day} < {d_commit_day} THEN {close_day} ELSE {d_commit_day} END AS won_day
              FROM (SELECT d.*, row_number() OVER (PARTITION BY d.id ORDER BY d._lsn, d._seq) AS w_
                      FROM ({deals}) d WHERE d.stage = 'closed_won' AND d._op <> 'delete') d
             WHERE d.w_ = 1 AND d.contact IS NOT NULL
         ),
         outcome AS (
            SELECT r.id, r.cut_day,
                   sum(CASE WHEN w.won_day <= r.cut_day THEN 1 ELSE 0 END) AS won_before,
                   sum(CASE WHEN w.won_day > r.cut_day AND w.won_day <= r.cut_day + {horizon} THEN 1 ELSE 0 END) AS won_after
              FROM at_row r JOIN wins w ON w.contact = r.id
             GROUP BY r.id, r.cut_day
         ),
         engagement AS (
            SELECT r.id, r.cut_day, count(*) AS total,
                   sum(CASE WHEN a.day_ > r.cut_day - 30 THEN 1 ELSE 0 END) AS a30,
                   sum(CASE WHEN a.day_ > r.cut_day - 90 THEN 1 ELSE 0 END) AS a90,
                   sum(CASE WHEN a.kind_ = 'meeting' THEN 1 ELSE 0 END) AS meetings,
                   min(r.cut_day - a.day_) AS since_last
              FROM at_row r JOIN acts a ON a.contact = r.id AND a.day_ <= r.cut_day
             GROUP BY r.id, r.cut_day
         ),
         firms AS (
            SELECT c.id, c.employees, c.industry
              FROM (SELECT c.*, row_number() OVER (PARTITION BY c.id ORDER BY c._lsn, c._seq) AS n_
                      FROM ({companies}) c) c
             WHERE c.n_ = 1
         )
         SELECT r.id, {label}, r.cut_day,
                CAST(o.title AS VARCHAR), CAST(o.lead_source AS VARCHAR),
                CAST(co.employees AS DOUBLE), CAST(co.industry AS VARCHAR),
                CAST(coalesce(e.total, 0) AS DOUBLE), CAST(coalesce(e.a30, 0) AS DOUBLE),
                CAST(coalesce(e.a90, 0) AS DOUBLE), CAST(coalesce(e.meetings, 0) AS DOUBLE),
                CAST(e.since_last AS DOUBLE), CAST(coalesce(oc.won_before, 0) AS DOUBLE)
                {extra}
           FROM at_row r
           JOIN people o ON o.id = r.id AND o.n_ = r.at_n
           LEFT JOIN outcome oc ON oc.id = r.id AND oc.cut_day = r.cut_day
           LEFT JOIN engagement e ON e.id = r.id AND e.cut_day = r.cut_day
           LEFT JOIN firms co ON co.id = o.company
          WHERE o._op <> 'delete'
          ORDER BY r.id, r.cut_day"
    );
    Ok(FeatureQuery { sql, columns })
}
