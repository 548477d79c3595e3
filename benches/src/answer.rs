//! Answers compared value by value: a report's JSON answer and PostgreSQL's rows, both as
//! rows of canonical text, so that values that print differently but are equal (`12.50` and
//! `12.5`, a date and midnight of that day, `Z` and `+00:00`) compare equal, and values that
//! differ do not. The comparison harness checks Oneo against PostgreSQL with it, and the
//! oracle tests use the same forms.

use serde_json::Value;
use sqlx::PgPool;

/// One result row, by position; SQL NULL and JSON null as `None`.
pub type Row = Vec<Option<String>>;

/// One textual form for equal values: decimals to four places without trailing zeros;
/// instants, naive date-times (as UTC) and dates (as their midnight) as microseconds since
/// the epoch.
pub fn canonical(text: &str) -> String {
    if let Ok(d) = text.parse::<rust_decimal::Decimal>() {
        return d.round_dp(4).normalize().to_string();
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return t.timestamp_micros().to_string();
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return t.and_utc().timestamp_micros().to_string();
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return d
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp_micros()
            .to_string();
    }
    text.to_string()
}

/// A JSON cell as canonical text; a list as its items joined by `|`.
pub fn cell(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(canonical(s)),
        Value::Array(items) => Some(
            items
                .iter()
                .map(|i| cell(i).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("|"),
        ),
        other => Some(canonical(&other.to_string())),
    }
}

fn cells(values: &[Value]) -> Row {
    values.iter().map(cell).collect()
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// A report's answer laid flat the way SQL with ROLLUP or CUBE returns it: the detail rows,
/// then each subtotal and total with NULL for the groupings it sums over.
///
/// Tabular: its rows. Summary (with `groupings` row groupings): its rows, its subtotals, its
/// totals, each NULL where a comparison column would be (comparisons are shown for the
/// innermost groups only). Matrix: one row per filled cell (row groups, column groups,
/// aggregates), per row and column total, per subtotal, and the grand total.
pub fn flatten(answer: &Value, groupings: usize) -> Vec<Row> {
    let mut out: Vec<Row> = list(&answer["rows"])
        .iter()
        .map(|r| cells(list(r)))
        .collect();
    let width = list(&answer["columns"]).len();
    let padded = |groups: &[Value], values: &[Value], groupings: usize| -> Row {
        let mut row = cells(groups);
        row.resize(groupings, None);
        row.extend(cells(values));
        row
    };
    if let Some(totals) = answer["totals"].as_array() {
        let with_comparisons = |mut row: Row| {
            row.resize(width, None);
            row
        };
        for s in list(&answer["subtotals"]) {
            let row = padded(list(&s["groups"]), list(&s["values"]), groupings);
            out.push(with_comparisons(row));
        }
        out.push(with_comparisons(padded(&[], totals, groupings)));
    }
    let m = &answer["matrix"];
    if m.is_object() {
        let rows = list(&m["row_headers"]);
        let cols = list(&m["column_headers"]);
        let (nr, nc) = (
            rows.first().map_or(0, |r| list(r).len()),
            cols.first().map_or(0, |c| list(c).len()),
        );
        let line = |r: &[Value], c: &[Value], values: &[Value]| -> Row {
            let mut row = padded(r, &[], nr);
            row.extend(padded(c, values, nc));
            row
        };
        for (i, r) in rows.iter().enumerate() {
            for (j, c) in cols.iter().enumerate() {
                let v = &m["cells"][i][j];
                if !v.is_null() {
                    out.push(line(list(r), list(c), list(v)));
                }
            }
            out.push(line(list(r), &[], list(&m["row_totals"][i])));
        }
        for (j, c) in cols.iter().enumerate() {
            out.push(line(&[], list(c), list(&m["column_totals"][j])));
        }
        for s in list(&m["subtotals"]) {
            out.push(line(
                list(&s["row"]),
                list(&s["column"]),
                list(&s["values"]),
            ));
        }
        out.push(line(&[], &[], list(&m["grand_total"])));
    }
    out
}

/// The rows of `sql` on PostgreSQL, each column by position as canonical text.
pub async fn pg_rows(pool: &PgPool, sql: &str) -> Result<Vec<Row>, sqlx::Error> {
    // json (not jsonb) keeps the columns in order, duplicate names included, and renders
    // every type as text exactly (numerics keep every digit).
    let wrapped = format!(
        "SELECT x.n, j.value FROM (SELECT row_number() OVER () AS n, row_to_json(q) AS doc FROM ({sql}) q) x,
                json_each_text(x.doc) WITH ORDINALITY AS j(key, value, i)
          ORDER BY x.n, j.i"
    );
    let cells: Vec<(i64, Option<String>)> = sqlx::query_as(sqlx::AssertSqlSafe(wrapped))
        .fetch_all(pool)
        .await?;
    let mut rows: Vec<Row> = Vec::new();
    let mut current = 0;
    for (n, v) in cells {
        if n != current {
            rows.push(Vec::new());
            current = n;
        }
        if let Some(row) = rows.last_mut() {
            row.push(v.as_deref().map(canonical));
        }
    }
    Ok(rows)
}

/// Where two answers differ as multisets of rows: `None` when equal, else the first rows
/// only one side has.
pub fn difference(mut got: Vec<Row>, mut want: Vec<Row>) -> Option<String> {
    got.sort();
    want.sort();
    if got == want {
        return None;
    }
    let only = |a: &[Row], b: &[Row]| -> Vec<Row> {
        a.iter()
            .filter(|r| !b.contains(r))
            .take(3)
            .cloned()
            .collect()
    };
    Some(format!(
        "{} rows against {}; only in the first: {:?}; only in the second: {:?}",
        got.len(),
        want.len(),
        only(&got, &want),
        only(&want, &got)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_values_share_one_form_and_different_ones_do_not() {
        assert_eq!(canonical("12.50"), canonical("12.5"));
        assert_ne!(canonical("12.51"), canonical("12.5"));
        assert_eq!(canonical("2026-01-01"), canonical("2026-01-01T00:00:00"));
        assert_eq!(
            canonical("2026-01-01T10:00:00Z"),
            canonical("2026-01-01T10:00:00+00:00")
        );
        assert_ne!(canonical("2026-01-01"), canonical("2026-01-02"));
        assert_eq!(canonical("won"), "won");
    }

    #[test]
    fn a_matrix_flattens_like_cube() {
        let answer = json!({"type": "matrix", "columns": [], "rows": [], "matrix": {
            "row_headers": [["a"], ["b"]], "column_headers": [["x"]],
            "cells": [[["1"]], [null]], "row_totals": [["1"], ["0"]], "column_totals": [["1"]],
            "subtotals": [], "grand_total": ["1"]}});
        let s = |v: &str| Some(v.to_string());
        let want = vec![
            vec![s("a"), s("x"), s("1")],
            vec![s("a"), None, s("1")],
            vec![s("b"), None, s("0")],
            vec![None, s("x"), s("1")],
            vec![None, None, s("1")],
        ];
        assert_eq!(difference(flatten(&answer, 1), want), None);
    }

    #[test]
    fn a_summary_pads_subtotals_and_totals() {
        let answer = json!({"columns": [{"name": "stage"}, {"name": "owner"}, {"name": "n"},
                                        {"name": "n_percent_of_parent"}],
            "rows": [["won", "ann", 2, "100"]], "subtotals": [{"groups": ["won"], "values": [2]}],
            "totals": [2]});
        let s = |v: &str| Some(v.to_string());
        let got = flatten(&answer, 2);
        assert_eq!(
            got,
            vec![
                vec![s("won"), s("ann"), s("2"), s("100")],
                vec![s("won"), None, s("2"), None],
                vec![None, None, s("2"), None]
            ]
        );
        assert!(difference(got, vec![vec![s("won"), s("ann"), s("3"), s("100")]]).is_some());
    }
}
