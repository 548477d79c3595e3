//! XLSX exports read back by an independent reader (calamine): typed cells, a summary's
//! subtotals and total, and a matrix laid out as a pivot whose totals match the answer.

use std::io::Cursor;

use calamine::{Data, DataType, Reader, Xlsx};
use serde_json::{Value, json};

use crate::harness::{self, Env, Row, column_names};
use crate::sorted;

/// Saves `spec`, runs it, and exports it as XLSX: the answer and the "Report" sheet.
async fn saved_and_exported(env: &Env, name: &str, spec: &Value) -> (Value, Xlsx<Cursor<Vec<u8>>>) {
    let http = reqwest::Client::new();
    let saved: Value = http
        .post(format!("{}/v1/reports", env.base))
        .bearer_auth(&env.key)
        .json(&json!({"name": name, "spec": spec}))
        .send()
        .await
        .expect("save")
        .json()
        .await
        .expect("json");
    let id = saved["id"].as_str().expect("id");
    let answer: Value = http
        .post(format!("{}/v1/reports/{id}/run", env.base))
        .bearer_auth(&env.key)
        .send()
        .await
        .expect("run")
        .json()
        .await
        .expect("json");
    let resp = http
        .get(format!("{}/v1/reports/{id}/export?format=xlsx", env.base))
        .bearer_auth(&env.key)
        .send()
        .await
        .expect("export");
    assert_eq!(resp.status().as_u16(), 200);
    let headers = resp.headers().clone();
    assert_eq!(
        headers["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert!(
        headers["content-disposition"]
            .to_str()
            .expect("ascii")
            .ends_with(".xlsx\""),
        "{:?}",
        headers["content-disposition"]
    );
    let bytes = resp.bytes().await.expect("body").to_vec();
    let book = Xlsx::new(Cursor::new(bytes)).expect("a workbook calamine opens");
    (answer, book)
}

fn number(v: &Value) -> f64 {
    match v {
        Value::String(s) => s.parse().expect("a decimal"),
        other => other.as_f64().expect("a number"),
    }
}

fn float_at(sheet: &calamine::Range<Data>, at: (usize, usize)) -> f64 {
    match sheet.get(at) {
        Some(Data::Float(x)) => *x,
        Some(Data::Int(x)) => *x as f64,
        other => panic!("cell {at:?} is {other:?}, not a number"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 0.005
}

pub async fn xlsx_exports_typed_cells_and_a_pivot(env: &Env) {
    let spec = json!({"type": "summary", "object": "deal", "groupings": [{"field": "stage"}, {"field": "owner"}],
                      "aggregates": [{"fn": "sum", "field": "amount"}, {"fn": "count"}, {"fn": "max", "field": "close_date"}]});
    let (answer, mut book) = saved_and_exported(env, "Pipeline (xlsx)", &spec).await;
    let sheet = book.worksheet_range("Report").expect("sheet Report");
    let names = column_names(&answer);
    let header: Vec<String> = (0..names.len())
        .map(|c| sheet.get((0, c)).map(|d| d.to_string()).unwrap_or_default())
        .collect();
    assert_eq!(header, names);
    let rows = answer["rows"].as_array().expect("rows");
    assert!(rows.len() > 3, "the export must have rows to check");
    for (i, row) in rows.iter().enumerate() {
        let r = i + 1;
        assert_eq!(
            sheet.get((r, 0)),
            Some(&Data::String(row[0].as_str().expect("stage").into()))
        );
        assert!(
            close(float_at(&sheet, (r, 2)), number(&row[2])),
            "amount in row {r}"
        );
        assert_eq!(
            float_at(&sheet, (r, 3)),
            number(&row[3]),
            "count in row {r}"
        );
        let date = sheet.get((r, 4)).and_then(|d| d.as_date());
        assert_eq!(
            date.map(|d| d.to_string()).as_deref(),
            row[4].as_str(),
            "close date in row {r} is an Excel date"
        );
    }
    let subtotals = answer["subtotals"].as_array().expect("subtotals");
    let total_row = rows.len() + subtotals.len() + 1;
    for (k, s) in subtotals.iter().enumerate() {
        let r = rows.len() + 1 + k;
        assert_eq!(
            sheet.get((r, 0)).map(|d| d.to_string()).as_deref(),
            s["groups"][0].as_str()
        );
        assert_eq!(
            float_at(&sheet, (r, 3)),
            number(&s["values"][1]),
            "subtotal count"
        );
    }
    assert_eq!(
        sheet.get((total_row, 0)),
        Some(&Data::String("Total".into()))
    );
    assert!(close(
        float_at(&sheet, (total_row, 2)),
        number(&answer["totals"][0])
    ));
    assert_eq!(
        float_at(&sheet, (total_row, 3)),
        number(&answer["totals"][1])
    );
    assert_eq!(sheet.height(), total_row + 1, "nothing below the total");

    // A matrix: stage down, close year across, (sum, count) under each year, totals right and below.
    let spec = json!({"type": "matrix", "object": "deal", "groupings": [{"field": "stage"}],
                      "column_groupings": [{"field": "close_date", "date": "year"}],
                      "aggregates": [{"fn": "sum", "field": "amount"}, {"fn": "count"}]});
    let (answer, mut book) = saved_and_exported(env, "Stage by year (xlsx)", &spec).await;
    let sheet = book.worksheet_range("Report").expect("sheet Report");
    let m = &answer["matrix"];
    let row_headers = m["row_headers"].as_array().expect("row headers");
    let col_headers = m["column_headers"].as_array().expect("column headers");
    assert!(row_headers.len() > 1 && col_headers.len() > 1, "{m}");
    // Row 0: the years; row 1: names; data from row 2; column 0: the stages.
    for (j, year) in col_headers.iter().enumerate() {
        let got = sheet
            .get((0, 1 + 2 * j))
            .and_then(|d| d.as_date())
            .map(|d| d.to_string());
        assert_eq!(got.as_deref(), year[0].as_str(), "column header {j}");
    }
    let total_col = 1 + 2 * col_headers.len();
    assert_eq!(
        sheet.get((0, total_col)),
        Some(&Data::String("Total".into()))
    );
    for (i, stage) in row_headers.iter().enumerate() {
        let r = 2 + i;
        assert_eq!(
            sheet.get((r, 0)).map(|d| d.to_string()).as_deref(),
            stage[0].as_str()
        );
        for j in 0..col_headers.len() {
            let cell = &m["cells"][i][j];
            let at = (r, 1 + 2 * j + 1);
            if cell.is_null() {
                assert!(
                    matches!(sheet.get(at), None | Some(Data::Empty)),
                    "empty cell {at:?}"
                );
            } else {
                assert_eq!(float_at(&sheet, at), number(&cell[1]), "count at {at:?}");
            }
        }
        assert_eq!(
            float_at(&sheet, (r, total_col + 1)),
            number(&m["row_totals"][i][1])
        );
    }
    let bottom = 2 + row_headers.len();
    assert_eq!(sheet.get((bottom, 0)), Some(&Data::String("Total".into())));
    let grand = float_at(&sheet, (bottom, total_col + 1));
    assert_eq!(grand, number(&m["grand_total"][1]));
    let by_column: f64 = (0..col_headers.len())
        .map(|j| float_at(&sheet, (bottom, 1 + 2 * j + 1)))
        .sum();
    assert_eq!(
        by_column, grand,
        "the column totals add up to the grand total"
    );
    assert!(close(
        float_at(&sheet, (bottom, total_col)),
        number(&m["grand_total"][0])
    ));
}

/// A tabular report's CSV export holds every row, beyond the answer's row limit, each equal
/// to PostgreSQL's.
pub async fn tabular_csv_streams_every_row(env: &Env) {
    use reqwest::Method;
    let spec = json!({"type": "tabular", "object": "activity",
                      "columns": ["id", "type", "occurred_at", "duration_minutes", "deal.amount", "deal.size_label"],
                      "filters": [{"field": "type", "op": "not_equals", "value": "note"}],
                      "sort": [{"by": "occurred_at", "desc": true}]});
    let answer = env.report(&spec).await;
    assert_eq!(
        answer["truncated"],
        json!(true),
        "the answer itself is cut at its limit"
    );
    let (status, body) = env
        .send(
            Method::POST,
            "/v1/reports",
            Some(&json!({"name": "All activities", "spec": spec})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<Value>(&body).expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (status, csv_text) = env
        .send(
            Method::GET,
            &format!("/v1/reports/{id}/export?format=csv"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{csv_text}");
    let (names, records) = harness::read_csv(&csv_text);
    assert_eq!(names, harness::column_names(&answer));
    let rows: Vec<Row> = records
        .iter()
        .map(|r| {
            names
                .iter()
                .zip(r)
                .map(|(n, v)| (n.clone(), (!v.is_empty()).then(|| harness::canonical(v))))
                .collect()
        })
        .collect();
    assert_eq!(
        rows.len(),
        answer["total"].as_u64().expect("total") as usize
    );
    assert!(
        rows.len() > oneo_query::DEFAULT_LIMIT,
        "{} rows",
        rows.len()
    );
    // In the report's order: newest first (a descending sort puts nulls first).
    let times: Vec<i64> = rows
        .iter()
        .map(|r| {
            r["occurred_at"]
                .as_ref()
                .map_or(i64::MAX, |t| t.parse().expect("micros"))
        })
        .collect();
    let bad: Vec<_> = times
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < w[1])
        .take(3)
        .collect();
    assert!(bad.is_empty(), "newest first: {bad:?} of {}", times.len());
    let want = env
        .pg("SELECT a.id::text AS id, a.type, a.occurred_at, a.duration_minutes, d.amount AS \"deal.amount\",
                    CASE WHEN d.id IS NULL THEN NULL WHEN d.amount >= 50000 THEN 'large' ELSE 'small' END AS \"deal.size_label\"
               FROM rel.activity a LEFT JOIN rel.deal d ON d.id = a.deal_id WHERE a.type <> 'note'")
        .await;
    assert_eq!(
        sorted(rows),
        sorted(want),
        "the CSV rows equal PostgreSQL's"
    );
}
