//! The oracle cases: report specs and the hand-written SQL on the relational copy (`rel`)
//! that must return the same rows.

use serde_json::{Value, json};

/// A report whose rows (in any order) must equal the oracle's.
pub struct Case {
    pub name: &'static str,
    pub spec: Value,
    pub sql: &'static str,
}

/// Formula fields the formula cases read, defined on `deal` before the cases run: (API name,
/// expression).
pub const DEAL_FORMULAS: [(&str, &str); 4] = [
    ("weighted_amount", "amount * probability / 100"),
    (
        "size_label",
        "CASE WHEN amount >= 50000 THEN 'large' ELSE 'small' END",
    ),
    ("close_year", "YEAR(close_date)"),
    // A formula reading a formula.
    ("weighted_k", "ROUND(weighted_amount / 1000, 1)"),
];

/// Rollup fields on `company`, over its deals: (API name, rollup definition).
pub fn company_rollups() -> Vec<(&'static str, Value)> {
    vec![
        (
            "deal_count",
            json!({"function": "count", "object": "deal", "via": "company"}),
        ),
        (
            "pipeline_total",
            json!({"function": "sum", "object": "deal", "via": "company", "field": "amount"}),
        ),
        (
            "last_close",
            json!({"function": "max", "object": "deal", "via": "company", "field": "close_date"}),
        ),
    ]
}

pub fn cases() -> Vec<Case> {
    let mut all = record_cases();
    all.extend(formula_cases());
    all.extend(rollup_cases());
    all.extend(more_cases());
    all
}

fn more_cases() -> Vec<Case> {
    vec![
        // Groupings that all hang off one lookup: planned as an aggregate per deal first
        // (eager aggregation), so each aggregate here must combine exactly.
        Case {
            name: "activities per deal's company industry: counts, distinct deals, min, max, conditional count",
            spec: json!({"type": "summary", "object": "activity", "groupings": [{"field": "deal.company.industry"}],
                         "filters": [{"field": "type", "op": "not_equals", "value": "note"}],
                         "aggregates": [{"fn": "count"}, {"fn": "count_distinct", "field": "deal", "as": "deals"},
                                        {"fn": "min", "field": "occurred_at", "as": "first"},
                                        {"fn": "max", "field": "duration_minutes", "as": "longest"},
                                        {"fn": "sum", "field": "duration_minutes", "as": "minutes"},
                                        {"fn": "count", "as": "calls", "where": [{"field": "type", "op": "equals", "value": "call"}]}]}),
            sql: "SELECT c.industry AS \"deal.company.industry\", count(*) AS count, count(DISTINCT a.deal_id) AS deals,
                         min(a.occurred_at) AS first, max(a.duration_minutes) AS longest,
                         sum(a.duration_minutes) AS minutes, count(*) FILTER (WHERE a.type = 'call') AS calls
                    FROM rel.activity a LEFT JOIN rel.deal d ON d.id = a.deal_id
                    LEFT JOIN rel.company c ON c.id = d.company_id
                   WHERE a.type <> 'note' GROUP BY c.industry",
        },
        Case {
            name: "companies by open pipeline: a lookup and its name, sorted",
            spec: json!({"type": "summary", "object": "deal", "groupings": [{"field": "company"}, {"field": "company.name"}],
                         "filters": [{"field": "stage", "op": "in", "value": ["prospecting", "proposal"]}],
                         "aggregates": [{"fn": "sum", "field": "amount", "as": "pipeline"}, {"fn": "count"}],
                         "sort": [{"by": "pipeline", "desc": true}]}),
            sql: "SELECT c.id::text AS company, c.name AS \"company.name\", sum(d.amount) AS pipeline, count(*) AS count
                    FROM rel.deal d LEFT JOIN rel.company c ON c.id = d.company_id
                   WHERE d.stage IN ('prospecting', 'proposal')
                   GROUP BY c.id, c.name",
        },
        Case {
            name: "tabular: open deals without meetings, with their company and contact, sorted",
            spec: json!({"type": "tabular", "object": "deal", "columns": ["name", "amount", "company.name", "contact.email"],
                         "filters": [{"field": "stage", "op": "in", "value": ["prospecting", "negotiation"]}],
                         "related": [{"object": "activity", "via": "deal", "without": true,
                                      "filters": [{"field": "type", "op": "equals", "value": "meeting"}]}],
                         "sort": [{"by": "amount", "desc": true}, {"by": "name"}]}),
            sql: "SELECT d.name, d.amount, c.name AS \"company.name\", p.email AS \"contact.email\"
                    FROM rel.deal d LEFT JOIN rel.company c ON c.id = d.company_id LEFT JOIN rel.contact p ON p.id = d.contact_id
                   WHERE d.stage IN ('prospecting', 'negotiation')
                     AND NOT EXISTS (SELECT 1 FROM rel.activity a WHERE a.deal_id = d.id AND a.type = 'meeting')",
        },
        Case {
            name: "three groupings with a year period",
            spec: json!({"type": "summary", "object": "deal",
                         "groupings": [{"field": "lead_source"}, {"field": "stage"}, {"field": "close_date", "date": "year"}],
                         "aggregates": [{"fn": "count"}, {"fn": "count_distinct", "field": "owner"}]}),
            sql: "SELECT lead_source, stage, date_trunc('year', close_date)::date AS \"close_date:year\", count(*) AS count,
                         count(DISTINCT owner) AS count_distinct_owner FROM rel.deal GROUP BY 1, 2, 3",
        },
        Case {
            name: "days within a month range",
            spec: json!({"type": "summary", "object": "deal", "groupings": [{"field": "close_date", "date": "day"}],
                         "filters": [{"field": "close_date", "op": "between", "value": ["2026-03-01", "2026-03-31"]}],
                         "aggregates": [{"fn": "sum", "field": "amount"}]}),
            sql: "SELECT close_date AS \"close_date:day\", sum(amount) AS sum_amount FROM rel.deal
                   WHERE close_date BETWEEN '2026-03-01' AND '2026-03-31' GROUP BY 1",
        },
        Case {
            name: "date buckets (half years)",
            spec: json!({"type": "summary", "object": "deal",
                         "groupings": [{"field": "close_date", "buckets": [{"label": "before 2026", "below": "2026-01-01"},
                                                                           {"label": "2026 H1", "below": "2026-07-01"}], "other": "later"}],
                         "aggregates": [{"fn": "count"}]}),
            sql: "SELECT CASE WHEN close_date IS NULL THEN NULL WHEN close_date < '2026-01-01' THEN 'before 2026'
                              WHEN close_date < '2026-07-01' THEN '2026 H1' ELSE 'later' END AS \"close_date:buckets\",
                         count(*) AS count FROM rel.deal GROUP BY 1",
        },
        Case {
            name: "activity time span per type (min and max of a datetime)",
            spec: json!({"type": "summary", "object": "activity", "groupings": [{"field": "type"}],
                         "aggregates": [{"fn": "min", "field": "occurred_at"}, {"fn": "max", "field": "occurred_at"},
                                        {"fn": "avg", "field": "duration_minutes"}]}),
            sql: "SELECT type, min(occurred_at) AS min_occurred_at, max(occurred_at) AS max_occurred_at,
                         avg(duration_minutes) AS avg_duration_minutes FROM rel.activity GROUP BY type",
        },
        Case {
            name: "activity duration by the contact's lead source and status (one lookup, two fields)",
            spec: json!({"type": "summary", "object": "activity", "groupings": [{"field": "contact.lead_source"}, {"field": "contact.status"}],
                         "filters": [{"field": "duration_minutes", "op": "is_not_null"}],
                         "aggregates": [{"fn": "sum", "field": "duration_minutes"}, {"fn": "median", "field": "duration_minutes"}]}),
            sql: "SELECT p.lead_source AS \"contact.lead_source\", p.status AS \"contact.status\",
                         sum(a.duration_minutes) AS sum_duration_minutes,
                         percentile_cont(0.5) WITHIN GROUP (ORDER BY a.duration_minutes)::numeric AS median_duration_minutes
                    FROM rel.activity a LEFT JOIN rel.contact p ON p.id = a.contact_id
                   WHERE a.duration_minutes IS NOT NULL GROUP BY 1, 2",
        },
        Case {
            name: "contacts WITHOUT any activity, by lead source",
            spec: json!({"type": "summary", "object": "contact", "groupings": [{"field": "lead_source"}],
                         "related": [{"object": "activity", "via": "contact", "without": true}],
                         "aggregates": [{"fn": "count"}]}),
            sql: "SELECT lead_source, count(*) AS count FROM rel.contact c
                   WHERE NOT EXISTS (SELECT 1 FROM rel.activity a WHERE a.contact_id = c.id) GROUP BY lead_source",
        },
        Case {
            name: "tabular companies: numeric range, in, rollup and ordered",
            spec: json!({"type": "tabular", "object": "company", "columns": ["name", "employees", "industry", "deal_count", "pipeline_total"],
                         "filters": [{"field": "employees", "op": "between", "value": [50, 400]},
                                     {"field": "industry", "op": "in", "value": ["technology", "finance", "retail"]}],
                         "sort": [{"by": "pipeline_total", "desc": true}], "limit": 5000}),
            sql: "SELECT c.name, c.employees, c.industry, (SELECT count(*) FROM rel.deal x WHERE x.company_id = c.id) AS deal_count,
                         (SELECT coalesce(sum(amount), 0) FROM rel.deal x WHERE x.company_id = c.id) AS pipeline_total
                    FROM rel.company c WHERE c.employees BETWEEN 50 AND 400 AND c.industry IN ('technology', 'finance', 'retail')",
        },
        Case {
            name: "conditional count distinct and ROUND, ABS in a formula",
            spec: json!({"type": "summary", "object": "deal", "groupings": [{"field": "owner"}],
                         "aggregates": [{"fn": "count_distinct", "field": "company", "as": "won_companies",
                                         "where": [{"field": "stage", "op": "in", "value": ["closed_won"]}]},
                                        {"fn": "count_distinct", "field": "company", "as": "companies"},
                                        {"fn": "avg", "field": "amount", "as": "avg_lost",
                                         "where": [{"field": "stage", "op": "equals", "value": "closed_lost"}]},
                                        {"fn": "avg", "field": "amount"}],
                         "formulas": [{"as": "gap", "formula": "ROUND(ABS(avg_lost - avg_amount), 0)", "scale": 0},
                                      {"as": "won_share", "formula": "won_companies * 100 / companies", "scale": 1}]}),
            sql: "SELECT owner, count(DISTINCT company_id) FILTER (WHERE stage IN ('closed_won')) AS won_companies,
                         count(DISTINCT company_id) AS companies,
                         avg(amount) FILTER (WHERE stage = 'closed_lost') AS avg_lost, avg(amount) AS avg_amount,
                         round(abs(avg(amount) FILTER (WHERE stage = 'closed_lost') - avg(amount)), 0) AS gap,
                         round(count(DISTINCT company_id) FILTER (WHERE stage IN ('closed_won')) * 100.0
                               / nullif(count(DISTINCT company_id), 0), 1) AS won_share
                    FROM rel.deal GROUP BY owner",
        },
        Case {
            name: "joined: three blocks by quarter, one with a WITH filter",
            spec: json!({"type": "joined", "object": "deal", "groupings": [{"field": "close_date", "date": "quarter"}],
                         "blocks": [{"name": "all_deals"},
                                    {"name": "web", "filters": [{"field": "lead_source", "op": "equals", "value": "web"}],
                                     "aggregates": [{"fn": "sum", "field": "amount"}]},
                                    {"name": "met", "related": [{"object": "activity", "via": "deal",
                                                                 "filters": [{"field": "type", "op": "equals", "value": "meeting"}]}],
                                     "aggregates": [{"fn": "count"}]}],
                         "formulas": [{"as": "met_share", "formula": "met.count * 100 / all_deals.count", "scale": 2}]}),
            sql: "WITH q AS (SELECT date_trunc('quarter', close_date)::date AS k, d.* FROM rel.deal d),
                       a AS (SELECT k, count(*) AS n FROM q GROUP BY k),
                       w AS (SELECT k, sum(amount) AS s FROM q WHERE lead_source = 'web' GROUP BY k),
                       m AS (SELECT k, count(*) AS n FROM q WHERE EXISTS (SELECT 1 FROM rel.activity x WHERE x.deal_id = q.id AND x.type = 'meeting') GROUP BY k),
                       ks AS (SELECT k FROM a UNION SELECT k FROM w UNION SELECT k FROM m)
                  SELECT ks.k AS \"close_date:quarter\", a.n AS \"all_deals.count\", w.s AS \"web.sum_amount\", m.n AS \"met.count\",
                         round(m.n * 100.0 / nullif(a.n, 0), 2) AS met_share
                    FROM ks LEFT JOIN a ON a.k IS NOT DISTINCT FROM ks.k LEFT JOIN w ON w.k IS NOT DISTINCT FROM ks.k
                    LEFT JOIN m ON m.k IS NOT DISTINCT FROM ks.k",
        },
        Case {
            name: "joined: companies and contacts by country, filter logic in a block",
            spec: json!({"type": "joined", "object": "company", "groupings": [{"field": "country"}],
                         "blocks": [{"name": "companies", "aggregates": [{"fn": "sum", "field": "annual_revenue"}]},
                                    {"name": "contacts", "object": "contact", "grouping_fields": ["company.country"],
                                     "filters": [{"field": "status", "op": "equals", "value": "customer"},
                                                 {"field": "lead_source", "op": "equals", "value": "referral"},
                                                 {"field": "title", "op": "is_null"}],
                                     "filter_logic": "1 OR (2 AND NOT 3)"}]}),
            sql: "WITH c AS (SELECT country AS k, sum(annual_revenue) AS s FROM rel.company GROUP BY 1),
                       p AS (SELECT c.country AS k, count(*) AS n FROM rel.contact t LEFT JOIN rel.company c ON c.id = t.company_id
                              WHERE t.status = 'customer' OR (t.lead_source = 'referral' AND NOT (t.title IS NULL)) GROUP BY 1),
                       ks AS (SELECT k FROM c UNION SELECT k FROM p)
                  SELECT ks.k AS country, c.s AS \"companies.sum_annual_revenue\", p.n AS \"contacts.count\"
                    FROM ks LEFT JOIN c ON c.k IS NOT DISTINCT FROM ks.k LEFT JOIN p ON p.k IS NOT DISTINCT FROM ks.k",
        },
        Case {
            name: "email and phone filters, status groups",
            spec: json!({"type": "summary", "object": "contact", "groupings": [{"field": "status"}],
                         "filters": [{"field": "email", "op": "contains", "value": "@"}, {"field": "phone", "op": "is_not_null"},
                                     {"field": "first_name", "op": "starts_with", "value": "a"}],
                         "aggregates": [{"fn": "count"}, {"fn": "max", "field": "last_name"}]}),
            sql: "SELECT status, count(*) AS count, max(last_name COLLATE \"C\") AS max_last_name FROM rel.contact
                   WHERE strpos(lower(email), '@') > 0 AND phone IS NOT NULL AND starts_with(lower(first_name), 'a')
                   GROUP BY status",
        },
        Case {
            name: "pipeline per owner limited to a filtered week",
            spec: json!({"type": "summary", "object": "activity", "groupings": [{"field": "deal.owner"}, {"field": "occurred_at", "date": "week"}],
                         "filters": [{"field": "occurred_at", "op": "ge", "value": "2026-01-01T00:00:00Z"},
                                     {"field": "occurred_at", "op": "lt", "value": "2026-02-01T00:00:00Z"}],
                         "aggregates": [{"fn": "count"}, {"fn": "count_distinct", "field": "deal"}]}),
            sql: "SELECT d.owner AS \"deal.owner\", date_trunc('week', a.occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS \"occurred_at:week\",
                         count(*) AS count, count(DISTINCT a.deal_id) AS count_distinct_deal
                    FROM rel.activity a LEFT JOIN rel.deal d ON d.id = a.deal_id
                   WHERE a.occurred_at >= '2026-01-01T00:00:00Z' AND a.occurred_at < '2026-02-01T00:00:00Z' GROUP BY 1, 2",
        },
    ]
}

fn rollup_cases() -> Vec<Case> {
    vec![
        Case {
            name: "rollup fields aggregated by industry",
            spec: json!({"type": "summary", "object": "company", "groupings": [{"field": "industry"}],
                         "aggregates": [{"fn": "sum", "field": "deal_count"}, {"fn": "sum", "field": "pipeline_total"},
                                        {"fn": "max", "field": "last_close"}, {"fn": "min", "field": "deal_count"}]}),
            sql: "SELECT c.industry, sum((SELECT count(*) FROM rel.deal x WHERE x.company_id = c.id)) AS sum_deal_count,
                         sum((SELECT coalesce(sum(amount), 0) FROM rel.deal x WHERE x.company_id = c.id)) AS sum_pipeline_total,
                         max((SELECT max(close_date) FROM rel.deal x WHERE x.company_id = c.id)) AS max_last_close,
                         min((SELECT count(*) FROM rel.deal x WHERE x.company_id = c.id)) AS min_deal_count
                    FROM rel.company c GROUP BY c.industry",
        },
        Case {
            name: "a rollup as a filter and a column, and through a lookup",
            spec: json!({"type": "tabular", "object": "deal", "columns": ["name", "company.deal_count", "company.last_close"],
                         "filters": [{"field": "company.deal_count", "op": "ge", "value": 3},
                                     {"field": "company.pipeline_total", "op": "lt", "value": "150000"}],
                         "limit": 5000}),
            sql: "SELECT d.name, (SELECT count(*) FROM rel.deal x WHERE x.company_id = c.id) AS \"company.deal_count\",
                         (SELECT max(close_date) FROM rel.deal x WHERE x.company_id = c.id) AS \"company.last_close\"
                    FROM rel.deal d JOIN rel.company c ON c.id = d.company_id
                   WHERE (SELECT count(*) FROM rel.deal x WHERE x.company_id = c.id) >= 3
                     AND (SELECT coalesce(sum(amount), 0) FROM rel.deal x WHERE x.company_id = c.id) < 150000",
        },
        Case {
            name: "companies bucketed by their deal count",
            spec: json!({"type": "summary", "object": "company",
                         "groupings": [{"field": "deal_count", "buckets": [{"label": "none", "below": 1}, {"label": "few", "below": 4}], "other": "many"}],
                         "aggregates": [{"fn": "count"}, {"fn": "avg", "field": "pipeline_total"}]}),
            sql: "SELECT CASE WHEN n < 1 THEN 'none' WHEN n < 4 THEN 'few' ELSE 'many' END AS \"deal_count:buckets\",
                         count(*) AS count, avg(p) AS avg_pipeline_total
                    FROM (SELECT (SELECT count(*) FROM rel.deal x WHERE x.company_id = c.id) AS n,
                                 (SELECT coalesce(sum(amount), 0) FROM rel.deal x WHERE x.company_id = c.id) AS p
                            FROM rel.company c) q GROUP BY 1",
        },
    ]
}

fn formula_cases() -> Vec<Case> {
    vec![
        Case {
            name: "formula fields as a grouping and in aggregates",
            spec: json!({"type": "summary", "object": "deal", "groupings": [{"field": "size_label"}],
                         "aggregates": [{"fn": "sum", "field": "weighted_amount"}, {"fn": "max", "field": "weighted_k"},
                                        {"fn": "count_distinct", "field": "close_year"}]}),
            sql: "SELECT CASE WHEN d.amount >= 50000 THEN 'large' ELSE 'small' END AS size_label,
                        sum(round(d.amount * d.probability / 100, 2)) AS sum_weighted_amount,
                        max(round(round(d.amount * d.probability / 100, 2) / 1000, 1)) AS max_weighted_k,
                        count(DISTINCT extract(year FROM d.close_date)) AS count_distinct_close_year
                   FROM rel.deal d GROUP BY 1",
        },
        Case {
            name: "formula fields in a filter and as tabular columns",
            spec: json!({"type": "tabular", "object": "deal", "columns": ["name", "weighted_amount", "close_year", "size_label"],
                         "filters": [{"field": "weighted_amount", "op": "gt", "value": "20000"},
                                     {"field": "close_year", "op": "ge", "value": 2025}],
                         "limit": 5000}),
            sql: "SELECT d.name, round(d.amount * d.probability / 100, 2) AS weighted_amount, extract(year FROM d.close_date) AS close_year,
                        CASE WHEN d.amount >= 50000 THEN 'large' ELSE 'small' END AS size_label
                   FROM rel.deal d WHERE round(d.amount * d.probability / 100, 2) > 20000 AND extract(year FROM d.close_date) >= 2025",
        },
        Case {
            name: "a formula field through a lookup",
            spec: json!({"type": "summary", "object": "activity", "groupings": [{"field": "deal.size_label"}],
                         "aggregates": [{"fn": "count"}, {"fn": "avg", "field": "deal.weighted_amount"}]}),
            sql: "SELECT CASE WHEN d.id IS NULL THEN NULL WHEN d.amount >= 50000 THEN 'large' ELSE 'small' END AS \"deal.size_label\",
                        count(*) AS count, avg(round(d.amount * d.probability / 100, 2)) AS \"avg_deal.weighted_amount\"
                   FROM rel.activity a LEFT JOIN rel.deal d ON d.id = a.deal_id GROUP BY 1",
        },
        Case {
            name: "summary formula over conditional aggregates (won rate)",
            spec: json!({"type": "summary", "object": "deal", "groupings": [{"field": "lead_source"}],
                         "aggregates": [{"fn": "sum", "field": "amount", "as": "won_amount",
                                         "where": [{"field": "stage", "op": "equals", "value": "closed_won"}]},
                                        {"fn": "sum", "field": "amount"},
                                        {"fn": "count", "as": "won", "where": [{"field": "stage", "op": "equals", "value": "closed_won"},
                                                                             {"field": "amount", "op": "ge", "value": 1000}]}],
                         "formulas": [{"as": "won_rate", "formula": "won_amount / sum_amount * 100"},
                                      {"as": "avg_won", "formula": "COALESCE(won_amount, 0) / won", "scale": 4}]}),
            sql: "SELECT lead_source, sum(amount) FILTER (WHERE stage = 'closed_won') AS won_amount, sum(amount) AS sum_amount,
                         count(*) FILTER (WHERE stage = 'closed_won' AND amount >= 1000) AS won,
                         round(sum(amount) FILTER (WHERE stage = 'closed_won') / nullif(sum(amount), 0) * 100, 2) AS won_rate,
                         round(coalesce(sum(amount) FILTER (WHERE stage = 'closed_won'), 0)
                               / nullif(count(*) FILTER (WHERE stage = 'closed_won' AND amount >= 1000), 0), 4) AS avg_won
                    FROM rel.deal GROUP BY lead_source",
        },
        Case {
            name: "a summary formula reading a formula, with IF",
            spec: json!({"type": "summary", "object": "deal", "groupings": [{"field": "owner"}, {"field": "stage"}],
                         "aggregates": [{"fn": "count"}, {"fn": "avg", "field": "probability"}],
                         "formulas": [{"as": "doubled", "formula": "per_deal * 2"},
                                      {"as": "per_deal", "formula": "IF(count > 20, avg_probability, 0)", "scale": 3}]}),
            sql: "SELECT owner, stage, count(*) AS count, avg(probability) AS avg_probability,
                         round(round(CASE WHEN count(*) > 20 THEN avg(probability) ELSE 0 END, 3) * 2, 2) AS doubled,
                         round(CASE WHEN count(*) > 20 THEN avg(probability) ELSE 0 END, 3) AS per_deal
                    FROM rel.deal GROUP BY owner, stage",
        },
        Case {
            name: "joined: contacts, won and lost deals by lead source, with a cross-block formula",
            spec: json!({"type": "joined", "object": "deal", "groupings": [{"field": "lead_source"}],
                         "blocks": [{"name": "contacts", "object": "contact"},
                                    {"name": "won", "filters": [{"field": "stage", "op": "equals", "value": "closed_won"}],
                                     "aggregates": [{"fn": "sum", "field": "amount"}, {"fn": "count"}]},
                                    {"name": "lost", "filters": [{"field": "stage", "op": "equals", "value": "closed_lost"},
                                                                 {"field": "amount", "op": "gt", "value": 90000}]}],
                         "formulas": [{"as": "won_per_contact", "formula": "won.sum_amount / contacts.count"}]}),
            sql: "WITH c AS (SELECT lead_source, count(*) AS n FROM rel.contact GROUP BY 1),
                       w AS (SELECT lead_source, sum(amount) AS s, count(*) AS n FROM rel.deal WHERE stage = 'closed_won' GROUP BY 1),
                       l AS (SELECT lead_source, count(*) AS n FROM rel.deal WHERE stage = 'closed_lost' AND amount > 90000 GROUP BY 1),
                       k AS (SELECT lead_source FROM c UNION SELECT lead_source FROM w UNION SELECT lead_source FROM l)
                  SELECT k.lead_source,
                         c.n AS \"contacts.count\", w.s AS \"won.sum_amount\", w.n AS \"won.count\", l.n AS \"lost.count\",
                         round(w.s / nullif(c.n, 0), 2) AS won_per_contact
                    FROM k LEFT JOIN c ON c.lead_source IS NOT DISTINCT FROM k.lead_source
                    LEFT JOIN w ON w.lead_source IS NOT DISTINCT FROM k.lead_source
                    LEFT JOIN l ON l.lead_source IS NOT DISTINCT FROM k.lead_source",
        },
        Case {
            name: "joined across objects by different paths to one field, two groupings",
            spec: json!({"type": "joined", "object": "deal",
                         "groupings": [{"field": "company.industry"}, {"field": "close_date", "date": "year", "as": "year"}],
                         "blocks": [{"name": "deals", "aggregates": [{"fn": "sum", "field": "amount"}]},
                                    {"name": "calls", "object": "activity", "grouping_fields": ["deal.company.industry", "deal.close_date"],
                                     "filters": [{"field": "type", "op": "equals", "value": "call"}],
                                     "aggregates": [{"fn": "count"}, {"fn": "median", "field": "duration_minutes"}]}]}),
            sql: "WITH d AS (SELECT c.industry, date_trunc('year', d.close_date)::date AS y, sum(d.amount) AS s
                               FROM rel.deal d LEFT JOIN rel.company c ON c.id = d.company_id GROUP BY 1, 2),
                       a AS (SELECT c.industry, date_trunc('year', d.close_date)::date AS y, count(*) AS n,
                                    percentile_cont(0.5) WITHIN GROUP (ORDER BY a.duration_minutes)::numeric AS m
                               FROM rel.activity a LEFT JOIN rel.deal d ON d.id = a.deal_id
                               LEFT JOIN rel.company c ON c.id = d.company_id WHERE a.type = 'call' GROUP BY 1, 2),
                       k AS (SELECT industry, y FROM d UNION SELECT industry, y FROM a)
                  SELECT k.industry AS \"company.industry\", k.y AS year,
                         d.s AS \"deals.sum_amount\", a.n AS \"calls.count\", a.m AS \"calls.median_duration_minutes\"
                    FROM k LEFT JOIN d ON d.industry IS NOT DISTINCT FROM k.industry AND d.y IS NOT DISTINCT FROM k.y
                    LEFT JOIN a ON a.industry IS NOT DISTINCT FROM k.industry AND a.y IS NOT DISTINCT FROM k.y",
        },
    ]
}

fn record_cases() -> Vec<Case> {
    vec![
        Case {
            name: "pipeline by stage",
            spec: json!({"type": "summary", "object": "deal", "groupings": [{"field": "stage"}],
                         "aggregates": [{"fn": "count"}, {"fn": "sum", "field": "amount"}]}),
            sql: "SELECT stage, count(*) AS count, sum(amount) AS sum_amount FROM rel.deal GROUP BY stage",
        },
        Case {
            name: "amount statistics by owner and stage",
            spec: json!({"type": "summary", "object": "deal", "groupings": [{"field": "owner"}, {"field": "stage"}],
                         "aggregates": [{"fn": "avg", "field": "amount"}, {"fn": "min", "field": "amount"},
                                        {"fn": "max", "field": "amount"}, {"fn": "max", "field": "close_date"}]}),
            sql: "SELECT owner, stage, avg(amount) AS avg_amount, min(amount) AS min_amount, max(amount) AS max_amount,
                         max(close_date) AS max_close_date FROM rel.deal GROUP BY owner, stage",
        },
        Case {
            name: "median deal size by lead source",
            spec: json!({"type": "summary", "object": "deal", "groupings": [{"field": "lead_source"}],
                         "aggregates": [{"fn": "median", "field": "probability"}, {"fn": "count_distinct", "field": "company"}]}),
            sql: "SELECT lead_source, percentile_cont(0.5) WITHIN GROUP (ORDER BY probability)::numeric AS median_probability,
                         count(DISTINCT company_id) AS count_distinct_company FROM rel.deal GROUP BY lead_source",
        },
        Case {
            // An even count's median is the mean of the middle two: half a cent is kept.
            name: "median won amount by owner (exact, one more decimal place)",
            spec: json!({"type": "summary", "object": "deal", "groupings": [{"field": "owner"}],
                         "filters": [{"field": "stage", "op": "equals", "value": "closed_won"}],
                         "aggregates": [{"fn": "median", "field": "amount"}]}),
            sql: "SELECT owner, percentile_cont(0.5) WITHIN GROUP (ORDER BY amount)::numeric AS median_amount
                    FROM rel.deal WHERE stage = 'closed_won' GROUP BY owner",
        },
        Case {
            name: "pipeline by the company's industry (one lookup)",
            spec: json!({"type": "summary", "object": "deal", "groupings": [{"field": "company.industry"}],
                         "aggregates": [{"fn": "sum", "field": "amount", "as": "pipeline"}]}),
            sql: "SELECT c.industry AS \"company.industry\", sum(d.amount) AS pipeline
                    FROM rel.deal d LEFT JOIN rel.company c ON c.id = d.company_id GROUP BY c.industry",
        },
        Case {
            name: "activities by the deal's company's industry (two lookups)",
            spec: json!({"type": "summary", "object": "activity",
                         "groupings": [{"field": "deal.company.industry"}, {"field": "type"}],
                         "aggregates": [{"fn": "count"}, {"fn": "sum", "field": "duration_minutes"}]}),
            sql: "SELECT c.industry AS \"deal.company.industry\", a.type, count(*) AS count,
                         sum(a.duration_minutes) AS sum_duration_minutes
                    FROM rel.activity a LEFT JOIN rel.deal d ON d.id = a.deal_id
                    LEFT JOIN rel.company c ON c.id = d.company_id GROUP BY c.industry, a.type",
        },
        Case {
            name: "deals by close quarter",
            spec: json!({"type": "summary", "object": "deal", "groupings": [{"field": "close_date", "date": "quarter"}],
                         "aggregates": [{"fn": "count"}]}),
            sql: "SELECT date_trunc('quarter', close_date)::date AS \"close_date:quarter\", count(*) AS count
                    FROM rel.deal GROUP BY 1",
        },
        Case {
            name: "activities by month and week",
            spec: json!({"type": "summary", "object": "activity",
                         "groupings": [{"field": "occurred_at", "date": "month"}, {"field": "occurred_at", "date": "week", "as": "week"}],
                         "aggregates": [{"fn": "count"}]}),
            sql: "SELECT date_trunc('month', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS \"occurred_at:month\",
                         date_trunc('week', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS week, count(*) AS count
                    FROM rel.activity GROUP BY 1, 2",
        },
        Case {
            name: "closed deals above 10,000 (in, ge)",
            spec: json!({"type": "summary", "object": "deal", "groupings": [{"field": "stage"}],
                         "filters": [{"field": "stage", "op": "in", "value": ["closed_won", "closed_lost"]},
                                     {"field": "amount", "op": "ge", "value": "10000"}],
                         "aggregates": [{"fn": "count"}]}),
            sql: "SELECT stage, count(*) AS count FROM rel.deal
                   WHERE stage IN ('closed_won', 'closed_lost') AND amount >= 10000 GROUP BY stage",
        },
        Case {
            name: "filter logic 1 AND (2 OR NOT 3)",
            spec: json!({"type": "summary", "object": "deal", "groupings": [{"field": "lead_source"}],
                         "filters": [{"field": "stage", "op": "equals", "value": "closed_won"},
                                     {"field": "lead_source", "op": "equals", "value": "web"},
                                     {"field": "amount", "op": "lt", "value": 25000}],
                         "filter_logic": "1 AND (2 OR NOT 3)",
                         "aggregates": [{"fn": "count"}, {"fn": "sum", "field": "amount"}]}),
            sql: "SELECT lead_source, count(*) AS count, sum(amount) AS sum_amount FROM rel.deal
                   WHERE stage = 'closed_won' AND (lead_source = 'web' OR NOT (amount < 25000)) GROUP BY lead_source",
        },
        Case {
            name: "not_in, not_equals, between, gt, le",
            spec: json!({"type": "summary", "object": "deal", "groupings": [{"field": "owner"}],
                         "filters": [{"field": "stage", "op": "not_in", "value": ["prospecting"]},
                                     {"field": "lead_source", "op": "not_equals", "value": "other"},
                                     {"field": "amount", "op": "between", "value": [5000, "60000.50"]},
                                     {"field": "close_date", "op": "gt", "value": "2025-03-01"},
                                     {"field": "probability", "op": "le", "value": 90}],
                         "aggregates": [{"fn": "count"}]}),
            sql: "SELECT owner, count(*) AS count FROM rel.deal
                   WHERE stage NOT IN ('prospecting') AND lead_source <> 'other' AND amount BETWEEN 5000 AND 60000.50
                     AND close_date > '2025-03-01' AND probability <= 90 GROUP BY owner",
        },
        Case {
            name: "text filters are case-insensitive (contains, starts_with)",
            spec: json!({"type": "summary", "object": "company", "groupings": [{"field": "country"}],
                         "filters": [{"field": "name", "op": "contains", "value": "AN"},
                                     {"field": "domain", "op": "starts_with", "value": "B"}],
                         "filter_logic": "1 OR 2",
                         "aggregates": [{"fn": "count"}]}),
            sql: "SELECT country, count(*) AS count FROM rel.company
                   WHERE strpos(lower(name), 'an') > 0 OR starts_with(lower(domain), 'b') GROUP BY country",
        },
        Case {
            name: "is_null and is_not_null through a lookup",
            spec: json!({"type": "summary", "object": "contact", "groupings": [{"field": "status"}],
                         "filters": [{"field": "company", "op": "is_not_null"}, {"field": "company.country", "op": "is_not_null"},
                                     {"field": "phone", "op": "is_null"}],
                         "filter_logic": "(1 AND 2) OR 3",
                         "aggregates": [{"fn": "count"}]}),
            sql: "SELECT t.status, count(*) AS count FROM rel.contact t LEFT JOIN rel.company c ON c.id = t.company_id
                   WHERE (t.company_id IS NOT NULL AND c.country IS NOT NULL) OR t.phone IS NULL GROUP BY t.status",
        },
        Case {
            name: "relative dates (LAST_N_DAYS, THIS_YEAR, LAST_QUARTER)",
            spec: json!({"type": "summary", "object": "deal", "groupings": [{"field": "stage"}],
                         "filters": [{"field": "close_date", "op": "equals", "value": "LAST_N_DAYS:400"},
                                     {"field": "created_at", "op": "equals", "value": "THIS_YEAR"},
                                     {"field": "close_date", "op": "not_equals", "value": "LAST_QUARTER"}],
                         "aggregates": [{"fn": "count"}]}),
            sql: "SELECT stage, count(*) AS count FROM rel.deal
                   WHERE close_date >= (now() AT TIME ZONE 'UTC')::date - 399 AND close_date < (now() AT TIME ZONE 'UTC')::date + 1
                     AND NOT (close_date >= date_trunc('quarter', now() AT TIME ZONE 'UTC')::date - interval '3 months'
                              AND close_date < date_trunc('quarter', now() AT TIME ZONE 'UTC')::date)
                   GROUP BY stage",
        },
        Case {
            name: "tabular with a lookup column, filtered",
            spec: json!({"type": "tabular", "object": "deal", "columns": ["id", "name", "amount", "close_date", "company.name", "contact.email"],
                         "filters": [{"field": "owner", "op": "equals", "value": "Ana Ortiz"},
                                     {"field": "stage", "op": "equals", "value": "negotiation"}]}),
            sql: "SELECT d.id::text AS id, d.name, d.amount, d.close_date, c.name AS \"company.name\", p.email AS \"contact.email\"
                    FROM rel.deal d LEFT JOIN rel.company c ON c.id = d.company_id LEFT JOIN rel.contact p ON p.id = d.contact_id
                   WHERE d.owner = 'Ana Ortiz' AND d.stage = 'negotiation'",
        },
        Case {
            name: "percent of parent group and change from the previous group",
            spec: json!({"type": "summary", "object": "deal", "groupings": [{"field": "owner"}, {"field": "stage"}],
                         "aggregates": [{"fn": "sum", "field": "amount", "compare": "percent_of_parent"},
                                        {"fn": "count", "compare": "change_from_previous"}]}),
            sql: "SELECT owner, stage, sum(amount) AS sum_amount, count(*) AS count,
                         100.0 * sum(amount) / sum(sum(amount)) OVER (PARTITION BY owner) AS \"sum_amount:percent_of_parent\",
                         count(*) - lag(count(*)) OVER (PARTITION BY owner ORDER BY stage COLLATE \"C\") AS \"count:change_from_previous\"
                    FROM rel.deal GROUP BY owner, stage",
        },
        Case {
            name: "bucket fields: amount ranges and stages mapped to buckets",
            spec: json!({"type": "summary", "object": "deal",
                         "groupings": [{"field": "amount", "buckets": [{"label": "small", "below": 10000}, {"label": "medium", "below": "50000.00"}], "other": "large"},
                                       {"field": "stage", "buckets": [{"label": "open", "values": ["prospecting", "qualification", "proposal", "negotiation"]},
                                                                      {"label": "won", "values": ["closed_won"]}], "as": "state"}],
                         "aggregates": [{"fn": "count"}, {"fn": "sum", "field": "amount"}]}),
            sql: "SELECT CASE WHEN amount IS NULL THEN NULL WHEN amount < 10000 THEN 'small' WHEN amount < 50000 THEN 'medium' ELSE 'large' END AS \"amount:buckets\",
                         CASE WHEN stage IN ('prospecting', 'qualification', 'proposal', 'negotiation') THEN 'open'
                              WHEN stage = 'closed_won' THEN 'won' ELSE 'Other' END AS state,
                         count(*) AS count, sum(amount) AS sum_amount FROM rel.deal GROUP BY 1, 2",
        },
        Case {
            name: "companies WITH won deals and WITHOUT contacts from events",
            spec: json!({"type": "summary", "object": "company", "groupings": [{"field": "industry"}],
                         "filters": [{"field": "employees", "op": "gt", "value": 10}],
                         "related": [{"object": "deal", "via": "company", "filters": [{"field": "stage", "op": "equals", "value": "closed_won"}]},
                                     {"object": "contact", "via": "company", "without": true,
                                      "filters": [{"field": "lead_source", "op": "equals", "value": "event"}]}],
                         "aggregates": [{"fn": "count"}]}),
            sql: "SELECT industry, count(*) AS count FROM rel.company c
                   WHERE employees > 10
                     AND EXISTS (SELECT 1 FROM rel.deal d WHERE d.company_id = c.id AND d.stage = 'closed_won')
                     AND NOT EXISTS (SELECT 1 FROM rel.contact p WHERE p.company_id = c.id AND p.lead_source = 'event')
                   GROUP BY industry",
        },
    ]
}
