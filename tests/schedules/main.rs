//! Scheduled deliveries end to end, with real processes: `oneo serve` over one database, a
//! real SMTP server (aiosmtpd) receiving the mail, `pdftotext` and calamine reading the files.

#[path = "../common/mod.rs"]
mod common;
mod harness;
mod missed;

use std::collections::BTreeSet;
use std::io::Cursor;
use std::process::Command;

use calamine::{Reader, Xlsx};
use harness::{Setup, Sink, answer_table, free_port, read_csv};
use reqwest::Method;
use serde_json::{Value, json};

fn smtp(port: u16) -> (&'static str, String) {
    ("ONEO_SMTP_URL", format!("smtp://127.0.0.1:{port}"))
}

fn pdf_text(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("delivery.pdf");
    std::fs::write(&path, bytes).expect("write");
    let out = Command::new("pdftotext")
        .args([path.to_str().expect("utf-8"), "-"])
        .output()
        .expect("pdftotext (poppler-utils)");
    assert!(out.status.success(), "pdftotext refused the PDF");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_mails_the_report_as_csv_pdf_and_xlsx_and_logs_it() {
    let mut s = Setup::new(200).await;
    let port = free_port();
    let sink = Sink::start(port, &s.dir.path().join("mail"));
    let (_, base) = s.serve("a", &[smtp(port)]).await;
    let report = s
        .save_report(
            &base,
            "Deals by stage",
            json!({"type": "summary", "object": "deal", "groupings": [{"field": "stage"}],
                   "aggregates": [{"fn": "count"}, {"fn": "sum", "field": "amount"}]}),
        )
        .await;

    // Wrong definitions are refused field by field, and nothing is created.
    let (status, body) = s
        .call(&base, Method::POST, "/v1/schedules", Some(&json!({
            "name": "Broken", "target": {"report": report}, "cron": "every monday",
            "time_zone": "Mars/Olympus", "formats": ["pdf", "docx"], "recipients": ["ann@example.com"],
        })))
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = s
        .call(
            &base,
            Method::POST,
            "/v1/schedules",
            Some(&json!({
                "name": "Broken", "target": {"report": report}, "cron": "every monday",
                "time_zone": "Mars/Olympus", "formats": ["pdf"], "recipients": ["not an address"],
            })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let fields: BTreeSet<&str> = body["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from(["cron", "time_zone", "recipients[0]"]),
        "{body}"
    );
    let unknown = uuid::Uuid::now_v7();
    let (status, body) = s
        .call(
            &base,
            Method::POST,
            "/v1/schedules",
            Some(&json!({
                "name": "Nowhere", "target": {"dashboard": unknown}, "cron": "0 8 * * MON",
                "formats": ["pdf"], "recipients": ["ann@example.com"],
            })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["details"][0]["field"], "target.dashboard",
        "{body}"
    );
    let (_, listed) = s.call(&base, Method::GET, "/v1/schedules", None).await;
    assert_eq!(listed, json!([]), "refused schedules were not created");

    // A Monday-morning schedule in Berlin: its next fire is 07:00 UTC (winter).
    let (status, created) = s
        .call(
            &base,
            Method::POST,
            "/v1/schedules",
            Some(&json!({
                "name": "Monday pipeline", "target": {"report": report}, "cron": "0 8 * * MON",
                "time_zone": "Europe/Berlin", "formats": ["csv", "pdf", "xlsx"],
                "recipients": ["ann@example.com", "bob@example.com"],
            })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_string();
    let next = created["next_fire_at"].as_str().expect("a next fire");
    assert!(next.ends_with("T07:00:00Z"), "{next}");

    // Send now: the mail arrives, with the files, to both recipients.
    let (status, delivery) = s
        .call(
            &base,
            Method::POST,
            &format!("/v1/schedules/{id}/run"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{delivery}");
    assert_eq!(delivery["status"], "sent", "{delivery}");
    let mail = sink.received();
    assert_eq!(mail.len(), 1, "one message per delivery");
    let m = &mail[0];
    let rcpt: BTreeSet<&str> = m.meta["rcpt_tos"]
        .as_array()
        .expect("rcpt")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(rcpt, BTreeSet::from(["ann@example.com", "bob@example.com"]));
    let subject = m.meta["subject"].as_str().expect("subject");
    assert!(
        subject.starts_with("Monday pipeline: Deals by stage"),
        "{subject}"
    );
    let delivery_id = delivery["id"].as_str().expect("id");
    assert!(
        m.meta["message_id"]
            .as_str()
            .is_some_and(|mid| mid.contains(delivery_id)),
        "{}",
        m.meta
    );
    let names: BTreeSet<&str> = m.meta["attachments"]
        .as_array()
        .expect("attachments")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "Deals_by_stage.csv",
            "Deals_by_stage.pdf",
            "Deals_by_stage.xlsx"
        ])
    );

    // The CSV holds the report's rows; the PDF its title and totals; the XLSX opens.
    let (status, answer) = s
        .call(
            &base,
            Method::POST,
            &format!("/v1/reports/{report}/run"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        read_csv(&m.attachment("Deals_by_stage.csv")),
        answer_table(&answer)
    );
    let text = pdf_text(&m.attachment("Deals_by_stage.pdf"));
    assert!(text.contains("Deals by stage"), "{text}");
    let count_total = oneo_dashboards::display_number(&answer["totals"][0]);
    let sum_total = oneo_dashboards::display_number(&answer["totals"][1]);
    assert!(
        text.contains(&count_total) && text.contains(&sum_total),
        "the PDF shows the totals {count_total} and {sum_total}:\n{text}"
    );
    let mut book = Xlsx::new(Cursor::new(m.attachment("Deals_by_stage.xlsx"))).expect("an XLSX");
    let sheet = book.sheet_names()[0].clone();
    let range = book.worksheet_range(&sheet).expect("a sheet");
    assert!(range.height() > answer["rows"].as_array().expect("rows").len());
    let body = m.meta["body"].as_str().expect("body");
    assert!(
        body.contains("Totals:") && body.contains(&count_total),
        "{body}"
    );

    // The log: recipients, formats, sizes as received, the LSN the numbers reflect.
    let log = s.deliveries(&base, &id).await;
    assert_eq!(log.len(), 1, "{log:?}");
    let d = &log[0];
    assert_eq!(d["status"], "sent");
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["manual"], true);
    assert_eq!(
        d["recipients"],
        json!(["ann@example.com", "bob@example.com"])
    );
    assert_eq!(d["formats"], json!(["csv", "pdf", "xlsx"]));
    assert_eq!(d["lsn"], answer["freshness"]["lsn"], "{d}");
    for f in d["files"].as_array().expect("files") {
        let name = f["name"].as_str().expect("name");
        assert_eq!(f["linked"], false);
        assert_eq!(
            f["bytes"].as_u64(),
            Some(m.attachment(name).len() as u64),
            "{name}"
        );
    }

    // A condition that does not hold: the delivery is skipped, with the reason; no mail.
    let empty = s
        .save_report(
            &base,
            "Lost giants",
            json!({"type": "tabular", "object": "deal", "columns": ["name"],
                   "filters": [{"field": "amount", "op": "gt", "value": 1e15}]}),
        )
        .await;
    let (status, quiet) = s
        .call(&base, Method::POST, "/v1/schedules", Some(&json!({
            "name": "Only when there are some", "target": {"report": empty}, "cron": "@daily",
            "formats": ["csv"], "recipients": ["ann@example.com"], "condition": {"when": "has_rows"},
        })))
        .await;
    assert_eq!(status, 201, "{quiet}");
    let quiet = quiet["id"].as_str().expect("id");
    let (_, skipped) = s
        .call(
            &base,
            Method::POST,
            &format!("/v1/schedules/{quiet}/run"),
            None,
        )
        .await;
    assert_eq!(skipped["status"], "skipped", "{skipped}");
    assert!(
        skipped["error"]
            .as_str()
            .is_some_and(|e| e.contains("no rows")),
        "{skipped}"
    );
    assert_eq!(sink.received().len(), 1, "a skipped delivery sends nothing");

    // Another workspace sees none of it and can't schedule this one's report.
    let other = oneo_api::db::workspace::create_workspace(&s.pool, "Other")
        .await
        .expect("workspace");
    let other_call = |method: Method, path: String, body: Option<Value>| {
        let base = base.clone();
        let key = other.api_key.clone();
        async move {
            let mut req = reqwest::Client::new()
                .request(method, format!("{base}{path}"))
                .bearer_auth(key);
            if let Some(b) = body {
                req = req.json(&b);
            }
            let resp = req.send().await.expect("request");
            (
                resp.status().as_u16(),
                resp.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, _) = other_call(Method::GET, format!("/v1/schedules/{id}"), None).await;
    assert_eq!(status, 404);
    let (status, _) = other_call(Method::POST, format!("/v1/schedules/{id}/run"), None).await;
    assert_eq!(status, 404);
    let (_, log) = other_call(Method::GET, "/v1/deliveries".into(), None).await;
    assert_eq!(log, json!([]));
    let (status, body) = other_call(
        Method::POST,
        "/v1/schedules".into(),
        Some(json!({
            "name": "Theirs", "target": {"report": report}, "cron": "@daily",
            "formats": ["csv"], "recipients": ["eve@example.com"],
        })),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"][0]["field"], "target.report");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_servers_deliver_each_fire_exactly_once() {
    let mut s = Setup::new(200).await;
    let port = free_port();
    let sink = Sink::start(port, &s.dir.path().join("mail"));
    let (_, a) = s.serve("a", &[smtp(port)]).await;
    let (_, b) = s.serve("b", &[smtp(port)]).await;
    let report = s
        .save_report(
            &a,
            "Open deals",
            json!({"type": "tabular", "object": "deal",
            "columns": ["name", "amount"], "sort": [{"by": "name"}], "limit": 20}),
        )
        .await;
    let schedule = json!({"name": "Every second", "target": {"report": report},
        "cron": "* * * * * *", "formats": ["csv"], "recipients": ["ops@example.com"]});
    let (status, created) = s
        .call(&a, Method::POST, "/v1/schedules", Some(&schedule))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_string();
    // Both servers race for every fire for a while; then the schedule is paused.
    s.wait_for(&b, &id, "eight fires claimed", |log| log.len() >= 8)
        .await;
    let mut paused = schedule.clone();
    paused["enabled"] = json!(false);
    let (status, body) = s
        .call(
            &b,
            Method::PUT,
            &format!("/v1/schedules/{id}"),
            Some(&paused),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["next_fire_at"], Value::Null);
    let log = s
        .wait_for(&a, &id, "every fire sent", |log| {
            log.iter().all(|d| d["status"] == "sent")
        })
        .await;

    // For the closing note, not asserted: how long after its fire each mail was accepted.
    let mut lag_ms: Vec<i64> = log
        .iter()
        .filter_map(|d| {
            let at = |v: &Value| v.as_str()?.parse::<chrono::DateTime<chrono::Utc>>().ok();
            Some((at(&d["attempt_log"][0]["at"])? - at(&d["fire_at"])?).num_milliseconds())
        })
        .collect();
    lag_ms.sort_unstable();
    eprintln!(
        "fire to sent: n={} p50={} ms max={} ms",
        lag_ms.len(),
        lag_ms.get(lag_ms.len() / 2).copied().unwrap_or_default(),
        lag_ms.last().copied().unwrap_or_default()
    );
    let fires: BTreeSet<&str> = log.iter().filter_map(|d| d["fire_at"].as_str()).collect();
    assert_eq!(
        fires.len(),
        log.len(),
        "no fire has two deliveries: {log:?}"
    );
    assert!(
        log.iter()
            .all(|d| d["attempts"] == 1 && d["manual"] == false),
        "{log:?}"
    );
    let mail = sink.received();
    let ids: Vec<String> = mail
        .iter()
        .map(|m| {
            m.meta["message_id"]
                .as_str()
                .expect("message id")
                .to_string()
        })
        .collect();
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(
        ids.len(),
        log.len(),
        "one message per fire, no more: {ids:?}"
    );
    assert_eq!(distinct.len(), ids.len(), "no message sent twice: {ids:?}");
    for d in &log {
        let did = d["id"].as_str().expect("id");
        assert!(
            ids.iter().any(|m| m.contains(did)),
            "delivery {did} has its message"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_smtp_outage_retries_then_fails_and_a_restart_loses_no_fire() {
    let mut s = Setup::new(200).await;
    // Nothing listens here until the outage ends.
    let port = free_port();
    let retry = |attempts: &str| {
        vec![
            smtp(port),
            ("ONEO_DELIVERY_MAX_ATTEMPTS", attempts.to_string()),
            ("ONEO_DELIVERY_RETRY_MS", "200".to_string()),
        ]
    };
    let (first, base) = s.serve("a", &retry("3")).await;
    let report = s
        .save_report(
            &base,
            "All deals",
            json!({"type": "tabular", "object": "deal",
            "columns": ["name", "amount", "stage"], "sort": [{"by": "name"}]}),
        )
        .await;
    let (_, weekly) = s
        .call(
            &base,
            Method::POST,
            "/v1/schedules",
            Some(&json!({
                "name": "Weekly", "target": {"report": report}, "cron": "0 8 * * MON",
                "formats": ["csv"], "recipients": ["ops@example.com"],
            })),
        )
        .await;
    let weekly = weekly["id"].as_str().expect("id").to_string();
    let (status, tried) = s
        .call(
            &base,
            Method::POST,
            &format!("/v1/schedules/{weekly}/run"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{tried}");
    assert_eq!(tried["status"], "retrying", "{tried}");
    assert!(
        tried["error"].as_str().is_some_and(|e| e.contains("SMTP")),
        "{tried}"
    );
    // Three attempts, backing off, then failed for good, each attempt in the log.
    let log = s
        .wait_for(&base, &weekly, "the delivery failed", |l| {
            l.first().is_some_and(|d| d["status"] == "failed")
        })
        .await;
    let d = &log[0];
    assert_eq!(d["attempts"], 3, "{d}");
    let attempts = d["attempt_log"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 3, "{d}");
    assert!(
        attempts
            .iter()
            .all(|a| a["error"].as_str().is_some_and(|e| e.contains("SMTP"))),
        "{d}"
    );
    assert!(d["finished_at"].is_string(), "{d}");

    // A schedule fires while mail is down; the server dies mid-retry.
    s.kill(first);
    let (second, base) = s.serve("a", &retry("50")).await;
    let schedule = json!({"name": "Every second", "target": {"report": report},
        "cron": "* * * * * *", "formats": ["csv"], "recipients": ["ops@example.com"]});
    let (_, every) = s
        .call(&base, Method::POST, "/v1/schedules", Some(&schedule))
        .await;
    let every = every["id"].as_str().expect("id").to_string();
    s.wait_for(&base, &every, "two fires retrying", |l| {
        l.len() >= 2 && l.iter().all(|d| d["status"] == "retrying")
    })
    .await;
    let mut paused = schedule.clone();
    paused["enabled"] = json!(false);
    let (status, body) = s
        .call(
            &base,
            Method::PUT,
            &format!("/v1/schedules/{every}"),
            Some(&paused),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    s.kill(second);
    let before = s.deliveries_in_db(&every).await;
    assert!(
        before
            .iter()
            .all(|(_, st)| st == "retrying" || st == "pending"),
        "{before:?}"
    );

    // Mail comes back, and so does the server (attachments over 1 KiB go as links).
    let sink = Sink::start(port, &s.dir.path().join("mail"));
    let mut env = retry("50");
    env.push(("ONEO_DELIVERY_ATTACHMENT_LIMIT_KB", "1".to_string()));
    let (_, base) = s.serve("a", &env).await;
    let log = s
        .wait_for(&base, &every, "every fire sent after the restart", |l| {
            l.len() == before.len() && l.iter().all(|d| d["status"] == "sent")
        })
        .await;
    assert!(
        log.iter().all(|d| d["attempts"].as_u64() >= Some(2)),
        "{log:?}"
    );
    let mail = sink.received();
    assert_eq!(mail.len(), before.len(), "each fire arrives once");
    for (id, _) in &before {
        assert!(
            mail.iter().any(|m| m.meta["message_id"]
                .as_str()
                .is_some_and(|mid| mid.contains(id.as_str()))),
            "fire {id} was lost"
        );
    }

    // Too large to attach: a signed link, opened without a key; a forged one is refused.
    let body = mail[0].meta["body"].as_str().expect("body");
    let link = body
        .split_whitespace()
        .find(|w| w.contains("/deliveries/files/"))
        .unwrap_or_else(|| panic!("no download link in:\n{body}"));
    assert!(
        mail[0].meta["attachments"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
    let resp = reqwest::get(link).await.expect("download");
    assert_eq!(resp.status().as_u16(), 200);
    let csv = resp.bytes().await.expect("bytes");
    let (status, answer) = s
        .call(
            &base,
            Method::POST,
            &format!("/v1/reports/{report}/run"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        read_csv(&csv),
        answer_table(&answer),
        "the linked CSV is the report"
    );
    let forged = format!("{}x", &link[..link.len() - 1]);
    let status = reqwest::get(&forged)
        .await
        .expect("download")
        .status()
        .as_u16();
    assert_eq!(status, 401, "{forged}");
}
