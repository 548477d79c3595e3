//! The oracle cases: report specs and the hand-written SQL on the relational copy (`rel`)
//! that must return the same rows.

use serde_json::{Value, json};

/// A report whose rows (in any order) must equal the oracle's.
pub struct Case {
    pub name: &'static str,
    pub spec: Value,
    pub sql: &'static str,
}

pub fn cases() -> Vec<Case> {
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
