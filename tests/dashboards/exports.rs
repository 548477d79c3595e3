//! A materialized dashboard's exports read back by independent readers: the PDF by
//! `pdftotext`, the workbook by calamine, the CSV by the csv crate against `/data`; and a
//! saved report's PDF.

use calamine::Reader;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::Env;
use crate::{pdftotext, widget};

/// Dashboard `id` (whose `/data` answer is `data`) over `deal_count + 1` deals.
pub async fn check(env: &Env, id: &str, data: &Value, deal_count: i64) {
    // The PDF holds every title and the metric's value.
    let pdf = reqwest::Client::new()
        .get(format!("{}/v1/dashboards/{id}/export?format=pdf", env.base))
        .bearer_auth(&env.key)
        .send()
        .await
        .expect("pdf");
    assert_eq!(pdf.status().as_u16(), 200);
    let bytes = pdf.bytes().await.expect("bytes");
    // Kept beside the screenshot, for people to look at.
    std::fs::write(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.pdf"),
        &bytes,
    )
    .expect("artifact");
    let text = pdftotext(&bytes);
    for title in [
        "Sales overview",
        "Open and closed deals",
        "Won this quarter",
        "Deals by stage",
        "Companies by industry",
        "Biggest deals",
    ] {
        assert!(text.contains(title), "the PDF lacks {title}: {text}");
    }
    let shown = oneo_dashboards::display_number(&json!(deal_count + 1));
    assert!(
        text.contains(&shown),
        "the PDF lacks the metric value {shown}: {text}"
    );

    // The workbook: a sheet per widget, named by its title, with typed cells.
    let xlsx = reqwest::Client::new()
        .get(format!(
            "{}/v1/dashboards/{id}/export?format=xlsx",
            env.base
        ))
        .bearer_auth(&env.key)
        .send()
        .await
        .expect("xlsx");
    assert_eq!(xlsx.status().as_u16(), 200);
    let mut book: calamine::Xlsx<_> = calamine::Xlsx::new(std::io::Cursor::new(
        xlsx.bytes().await.expect("bytes").to_vec(),
    ))
    .expect("a workbook");
    assert_eq!(
        book.sheet_names(),
        [
            "Open and closed deals",
            "Won this quarter",
            "Deals by stage",
            "Companies by industry",
            "Biggest deals"
        ]
    );
    let metric = book
        .worksheet_range("Open and closed deals")
        .expect("sheet");
    assert_eq!(
        metric.get_value((0, 1)),
        Some(&calamine::Data::Float((deal_count + 1) as f64))
    );
    let stages_sheet = book.worksheet_range("Deals by stage").expect("sheet");
    assert_eq!(
        stages_sheet.get_value((0, 0)),
        Some(&calamine::Data::String("stage".into()))
    );
    // The CSV: a section per widget, its title and then its table, with the rows `/data`
    // serves.
    let (status, csv_text) = env
        .send(
            Method::GET,
            &format!("/v1/dashboards/{id}/export?format=csv"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{csv_text}");
    let sections: Vec<&str> = csv_text.split("\n\n").filter(|s| !s.is_empty()).collect();
    assert_eq!(sections.len(), 5, "{csv_text}");
    let section = |title: &str| -> Vec<Vec<String>> {
        let text = sections
            .iter()
            .find(|s| s.lines().next() == Some(title))
            .unwrap_or_else(|| panic!("no section {title} in {csv_text}"));
        csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes())
            .records()
            .map(|r| r.expect("record").iter().map(str::to_string).collect())
            .collect()
    };
    assert_eq!(
        section("Open and closed deals")[1..],
        [
            vec!["value".to_string()],
            vec![(deal_count + 1).to_string()]
        ]
    );
    let stage_rows = section("Deals by stage");
    assert_eq!(stage_rows[1], ["stage", "count"]);
    let served: Vec<Vec<String>> = widget(data, "stages")["answer"]["result"]["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect()
        })
        .collect();
    assert_eq!(stage_rows[2..], served[..]);
    let (status, body) = env
        .send(
            Method::GET,
            &format!("/v1/dashboards/{id}/export?format=docx"),
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");

    // A saved report exports as PDF too, with its title and total.
    let (status, saved) = env
        .post("/v1/reports", &json!({"name": "Deals per stage", "spec": {"type": "summary", "object": "deal", "groupings": [{"field": "stage"}]}}))
        .await;
    assert_eq!(status, 201, "{saved}");
    let rid = saved["id"].as_str().expect("id");
    let pdf = reqwest::Client::new()
        .get(format!("{}/v1/reports/{rid}/export?format=pdf", env.base))
        .bearer_auth(&env.key)
        .send()
        .await
        .expect("pdf");
    let text = pdftotext(&pdf.bytes().await.expect("bytes"));
    assert!(
        text.contains("Deals per stage") && text.contains("Total"),
        "{text}"
    );
    assert!(
        text.contains(&shown),
        "the report PDF lacks the total {shown}: {text}"
    );
}
