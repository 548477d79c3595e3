//! Fires missed while no server ran: after a restart, the latest is sent once (counting the
//! others) or logged as skipped, as the schedule says.

use reqwest::Method;
use serde_json::json;

use crate::harness::{Setup, Sink, free_port};
use crate::smtp;

#[tokio::test(flavor = "multi_thread")]
async fn fires_missed_while_no_server_ran_are_sent_once_or_skipped() {
    use chrono::Timelike;
    let mut s = Setup::new(200).await;
    let port = free_port();
    let sink = Sink::start(port, &s.dir.path().join("mail"));
    let (first, base) = s.serve("a", &[smtp(port)]).await;
    let report = s
        .save_report(
            &base,
            "Deal count",
            json!({"type": "summary", "object": "deal",
            "aggregates": [{"fn": "count"}]}),
        )
        .await;
    // Hourly, at a minute half an hour from now: the latest fire of the past hours is
    // about thirty minutes old, well past any grace for a late tick.
    let minute = (chrono::Utc::now().minute() + 30) % 60;
    let mut ids = Vec::new();
    for missed in ["send_once", "skip"] {
        let (status, created) = s
            .call(
                &base,
                Method::POST,
                "/v1/schedules",
                Some(&json!({
                    "name": format!("Hourly, {missed}"), "target": {"report": report},
                    "cron": format!("{minute} * * * *"), "formats": ["csv"],
                    "recipients": ["ops@example.com"], "missed": missed,
                })),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        ids.push(created["id"].as_str().expect("id").to_string());
    }
    // No server for three hours: what the schedules' rows say after such a stop.
    s.kill(first);
    sqlx::query("UPDATE oneo.schedules SET next_fire_at = now() - interval '3 hours'")
        .execute(&s.pool)
        .await
        .expect("back-date");
    let (_, base) = s.serve("a", &[smtp(port)]).await;

    let once = s
        .wait_for(&base, &ids[0], "the catch-up sent", |l| {
            l.first().is_some_and(|d| d["status"] == "sent")
        })
        .await;
    assert_eq!(
        once.len(),
        1,
        "three missed fires make one delivery: {once:?}"
    );
    assert_eq!(once[0]["missed"], 2, "{once:?}");
    let skipped = s
        .wait_for(&base, &ids[1], "the missed fires logged", |l| !l.is_empty())
        .await;
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0]["status"], "skipped", "{skipped:?}");
    assert_eq!(skipped[0]["missed"], 2, "{skipped:?}");
    let mail = sink.received();
    assert_eq!(mail.len(), 1, "only the catch-up is mailed");
    let body = mail[0].meta["body"].as_str().expect("body");
    assert!(body.contains("2 earlier fires missed"), "{body}");
    // Both schedules go on from now: their next fire is in the future.
    for id in &ids {
        let (_, sched) = s
            .call(&base, Method::GET, &format!("/v1/schedules/{id}"), None)
            .await;
        let next: chrono::DateTime<chrono::Utc> = sched["next_fire_at"]
            .as_str()
            .expect("next")
            .parse()
            .expect("time");
        assert!(next > chrono::Utc::now(), "{sched}");
    }
}
