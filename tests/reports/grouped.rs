//! Grouped answers beyond their rows: summary subtotals and totals, matrix cells and totals,
//! summary formulas and comparisons at every level, and joined reports against their blocks.

use serde_json::{Value, json};

use crate::harness::{self, Env, Row};
use crate::sorted;

/// A summary's subtotals grouped by `owner` (its first grouping): the owner and the named
/// values, each by its index among the subtotal's values.
fn owner_subtotals(answer: &Value, values: &[(&str, usize)]) -> Vec<Row> {
    answer["subtotals"]
        .as_array()
        .expect("subtotals")
        .iter()
        .map(|s| {
            let mut row = Row::from([("owner".to_string(), harness::cell(&s["groups"][0]))]);
            for (name, i) in values {
                row.insert((*name).to_string(), harness::cell(&s["values"][*i]));
            }
            row
        })
        .collect()
}

pub async fn summary_subtotals_and_totals(env: &Env) {
    let spec = json!({"type": "summary", "object": "deal", "groupings": [{"field": "owner"}, {"field": "stage"}],
                      "aggregates": [{"fn": "sum", "field": "amount"}, {"fn": "count"}]});
    let answer = env.report(&spec).await;
    let subtotals = owner_subtotals(&answer, &[("sum_amount", 0), ("count", 1)]);
    let want = env
        .pg("SELECT owner, sum(amount) AS sum_amount, count(*) AS count FROM rel.deal GROUP BY owner")
        .await;
    assert_eq!(sorted(subtotals), sorted(want), "subtotal per owner");
    let totals = env
        .pg("SELECT sum(amount) AS sum_amount, count(*) AS count FROM rel.deal")
        .await;
    assert_eq!(harness::cell(&answer["totals"][0]), totals[0]["sum_amount"]);
    assert_eq!(harness::cell(&answer["totals"][1]), totals[0]["count"]);
}

fn dec(v: &Value) -> rust_decimal::Decimal {
    match v {
        Value::String(s) => s.parse().expect("decimal"),
        Value::Number(n) => n.to_string().parse().expect("number"),
        _ => rust_decimal::Decimal::ZERO,
    }
}

pub async fn matrix_cells_subtotals_and_totals(env: &Env) {
    let spec = json!({"type": "matrix", "object": "deal",
                      "groupings": [{"field": "owner"}],
                      "column_groupings": [{"field": "close_date", "date": "year"}, {"field": "stage"}],
                      "aggregates": [{"fn": "sum", "field": "amount"}, {"fn": "count"}]});
    let answer = env.report(&spec).await;
    let m = &answer["matrix"];
    let rows = m["row_headers"].as_array().expect("row headers");
    let cols = m["column_headers"].as_array().expect("column headers");
    assert_eq!(rows.len(), 8, "one row per owner");
    // Cells equal PostgreSQL's grouping by all three.
    let mut cells = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        for (j, c) in cols.iter().enumerate() {
            let v = &m["cells"][i][j];
            if v.is_null() {
                continue;
            }
            cells.push(Row::from([
                ("owner".to_string(), harness::cell(&r[0])),
                ("year".to_string(), harness::cell(&c[0])),
                ("stage".to_string(), harness::cell(&c[1])),
                ("sum_amount".to_string(), harness::cell(&v[0])),
                ("count".to_string(), harness::cell(&v[1])),
            ]));
        }
    }
    let want = env
        .pg("SELECT owner, date_trunc('year', close_date)::date AS year, stage, sum(amount) AS sum_amount,
                    count(*) AS count FROM rel.deal GROUP BY 1, 2, 3")
        .await;
    assert_eq!(sorted(cells), sorted(want), "matrix cells");
    // Row totals, column totals and the grand total are the sums of their cells.
    let mut grand = (rust_decimal::Decimal::ZERO, rust_decimal::Decimal::ZERO);
    for (i, _) in rows.iter().enumerate() {
        let mut sum = (rust_decimal::Decimal::ZERO, rust_decimal::Decimal::ZERO);
        for (j, _) in cols.iter().enumerate() {
            let v = &m["cells"][i][j];
            if !v.is_null() {
                sum.0 += dec(&v[0]);
                sum.1 += dec(&v[1]);
            }
        }
        assert_eq!(dec(&m["row_totals"][i][0]), sum.0, "row total {i}");
        assert_eq!(dec(&m["row_totals"][i][1]), sum.1, "row count {i}");
        grand.0 += sum.0;
        grand.1 += sum.1;
    }
    for (j, _) in cols.iter().enumerate() {
        let mut sum = rust_decimal::Decimal::ZERO;
        for (i, _) in rows.iter().enumerate() {
            let v = &m["cells"][i][j];
            if !v.is_null() {
                sum += dec(&v[0]);
            }
        }
        assert_eq!(dec(&m["column_totals"][j][0]), sum, "column total {j}");
    }
    assert_eq!(dec(&m["grand_total"][0]), grand.0);
    assert_eq!(dec(&m["grand_total"][1]), grand.1);
    // The outer column grouping (year) has subtotals per owner and year, equal to their cells.
    let subtotals = m["subtotals"].as_array().expect("subtotals");
    assert!(!subtotals.is_empty());
    for s in subtotals {
        let (row, column) = (&s["row"], &s["column"]);
        let mut sum = rust_decimal::Decimal::ZERO;
        for (i, r) in rows.iter().enumerate() {
            for (j, c) in cols.iter().enumerate() {
                let in_row = row
                    .as_array()
                    .expect("row")
                    .iter()
                    .zip(r.as_array().expect("r"))
                    .all(|(a, b)| a == b);
                let in_col = column
                    .as_array()
                    .expect("col")
                    .iter()
                    .zip(c.as_array().expect("c"))
                    .all(|(a, b)| a == b);
                let v = &m["cells"][i][j];
                if in_row && in_col && !v.is_null() {
                    sum += dec(&v[0]);
                }
            }
        }
        assert_eq!(dec(&s["values"][0]), sum, "subtotal {s}");
    }
}

/// Summary formulas are computed for every level of the rollup, not only the innermost groups.
pub async fn formulas_cover_subtotals_and_totals(env: &Env) {
    let spec = json!({"type": "summary", "object": "deal", "groupings": [{"field": "owner"}, {"field": "stage"}],
                      "aggregates": [{"fn": "sum", "field": "amount", "as": "won", "where": [{"field": "stage", "op": "equals", "value": "closed_won"}]},
                                     {"fn": "sum", "field": "amount"}],
                      "formulas": [{"as": "won_share", "formula": "won / sum_amount * 100", "scale": 3}]});
    let answer = env.report(&spec).await;
    let share =
        "round(sum(amount) FILTER (WHERE stage = 'closed_won') / nullif(sum(amount), 0) * 100, 3)";
    let subtotals = owner_subtotals(&answer, &[("won_share", 2)]);
    let want = env
        .pg(&format!(
            "SELECT owner, {share} AS won_share FROM rel.deal GROUP BY owner"
        ))
        .await;
    assert!(
        want.iter().any(|r| r["won_share"].is_some()),
        "some owner won something"
    );
    assert_eq!(sorted(subtotals), sorted(want), "the formula per owner");
    let total = env
        .pg(&format!("SELECT {share} AS won_share FROM rel.deal"))
        .await;
    assert_eq!(harness::cell(&answer["totals"][2]), total[0]["won_share"]);
}

/// A joined report equals its blocks run on their own as summary reports, outer-joined on
/// their groups here: the rows, the subtotals and the totals.
pub async fn joined_equals_its_blocks_outer_joined(env: &Env) {
    let groupings = json!([{"field": "lead_source"}, {"field": "stage"}]);
    let blocks = json!([
        {"name": "open", "filters": [{"field": "stage", "op": "not_in", "value": ["closed_won", "closed_lost"]}],
         "aggregates": [{"fn": "sum", "field": "amount"}, {"fn": "avg", "field": "probability"}]},
        {"name": "big", "filters": [{"field": "amount", "op": "ge", "value": 25000}],
         "aggregates": [{"fn": "count"}, {"fn": "median", "field": "amount"}]},
    ]);
    let joined = env
        .report(
            &json!({"type": "joined", "object": "deal", "groupings": groupings, "blocks": blocks}),
        )
        .await;
    let names = harness::column_names(&joined);
    assert_eq!(
        names,
        [
            "lead_source",
            "stage",
            "open.sum_amount",
            "open.avg_probability",
            "big.count",
            "big.median_amount"
        ]
    );
    // Each block alone; then the outer join by group key, a missing side as nulls.
    type Groups = std::collections::BTreeMap<String, Vec<Value>>;
    let mut rows: Groups = Groups::new();
    let mut subtotals: Groups = Groups::new();
    let mut totals: Vec<Value> = Vec::new();
    let widths = [2, 2];
    for (b, block) in blocks.as_array().expect("blocks").iter().enumerate() {
        let alone = env
            .report(
                &json!({"type": "summary", "object": "deal", "groupings": groupings,
                            "filters": block["filters"], "aggregates": block["aggregates"]}),
            )
            .await;
        let offset: usize = widths[..b].iter().sum();
        let place = |into: &mut Groups, key: String, values: &[Value]| {
            let slot = into.entry(key).or_insert_with(|| vec![Value::Null; 4]);
            slot[offset..offset + values.len()].clone_from_slice(values);
        };
        for r in alone["rows"].as_array().expect("rows") {
            let r = r.as_array().expect("row");
            place(&mut rows, json!(r[..2]).to_string(), &r[2..]);
        }
        for s in alone["subtotals"].as_array().expect("subtotals") {
            let values = s["values"].as_array().expect("values");
            place(&mut subtotals, s["groups"].to_string(), values);
        }
        totals.extend(alone["totals"].as_array().expect("totals").iter().cloned());
    }
    let got: Groups = joined["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            let r = r.as_array().expect("row");
            (json!(r[..2]).to_string(), r[2..].to_vec())
        })
        .collect();
    assert!(
        got.len() > 10,
        "the joined report has groups: {}",
        got.len()
    );
    // The join is outer: some groups come from one block only, on either side.
    let only_big = got.values().filter(|v| v[0].is_null()).count();
    let only_open = got.values().filter(|v| v[2].is_null()).count();
    assert!(
        only_big > 0 && only_open > 0,
        "{only_big} groups only in `big`, {only_open} only in `open`"
    );
    assert_eq!(got, rows, "rows");
    let got_subtotals: Groups = joined["subtotals"]
        .as_array()
        .expect("subtotals")
        .iter()
        .map(|s| {
            (
                s["groups"].to_string(),
                s["values"].as_array().expect("values").clone(),
            )
        })
        .collect();
    assert_eq!(got_subtotals, subtotals, "subtotals");
    assert_eq!(
        joined["totals"].as_array().expect("totals"),
        &totals,
        "totals"
    );
}

/// An outer group's percent of its parent (the grand total) and its change from the previous
/// outer group, on the subtotal rows.
pub async fn comparisons_cover_subtotals(env: &Env) {
    let spec = json!({"type": "summary", "object": "deal", "groupings": [{"field": "owner"}, {"field": "stage"}],
                      "aggregates": [{"fn": "sum", "field": "amount", "compare": "percent_of_parent"},
                                     {"fn": "count", "compare": "change_from_previous"}]});
    let answer = env.report(&spec).await;
    let subtotals = owner_subtotals(&answer, &[("share", 2), ("change", 3)]);
    let want = env
        .pg(
            "SELECT owner, 100.0 * sum(amount) / sum(sum(amount)) OVER () AS share,
                    count(*) - lag(count(*)) OVER (ORDER BY owner COLLATE \"C\") AS change
               FROM rel.deal GROUP BY owner",
        )
        .await;
    assert!(want.len() > 2, "several owners");
    // Shares are floating point (as for innermost groups): compare to 4 places.
    assert_eq!(sorted(subtotals), sorted(want), "owner subtotals compared");
    assert_eq!(
        answer["totals"].as_array().map(Vec::len),
        Some(2),
        "the total has no comparisons"
    );
}

/// Distinct counts beside counts, sums and maxima, across a lookup: every group, subtotal and
/// the total equal PostgreSQL's ROLLUP, including the group whose key is null (activities
/// without a deal), which must not be taken for a subtotal.
pub async fn distinct_counts_cover_subtotals(env: &Env) {
    let spec = json!({"type": "summary", "object": "activity",
                      "groupings": [{"field": "deal.owner"}, {"field": "type"}],
                      "aggregates": [{"fn": "count"}, {"fn": "count_distinct", "field": "deal"},
                                     {"fn": "sum", "field": "duration_minutes"},
                                     {"fn": "max", "field": "duration_minutes"},
                                     {"fn": "count_distinct", "field": "deal", "as": "deals_again"}],
                      "limit": 10000});
    let answer = env.report(&spec).await;
    let got = oneo_benches::answer::flatten(&answer, 2);
    let want = oneo_benches::answer::pg_rows(
        &env.pool,
        "SELECT d.owner, a.type, count(*), count(DISTINCT a.deal_id), sum(a.duration_minutes),
                max(a.duration_minutes), count(DISTINCT a.deal_id)
           FROM rel.activity a LEFT JOIN rel.deal d ON d.id = a.deal_id GROUP BY ROLLUP (1, 2)",
    )
    .await
    .expect("oracle SQL");
    assert!(
        got.iter().any(|r| r[0].is_none() && r[1].is_some()),
        "the data set has activities without a deal: a null owner group"
    );
    if let Some(d) = oneo_benches::answer::difference(got, want) {
        panic!("distinct counts with subtotals differ from PostgreSQL: {d}");
    }
}
