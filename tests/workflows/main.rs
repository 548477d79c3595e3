//! Workflows with real `oneo serve` processes, a real SMTP server and a real HTTP server: a
//! deal moved to `closed_won` through the API runs its workflow once (a follow-up activity
//! made, a mail received), other writes start none, another workspace's workflows never see
//! it, and neither a second process nor a restart that replays the stream runs it twice.
//! `durable.rs`: waits, approvals, retries and depth across restarts.

#[path = "../common/mod.rs"]
mod common;
mod crash;
mod durable;
#[path = "../schedules/harness.rs"]
#[allow(dead_code)]
mod harness;
mod support;

use std::time::Duration;

use harness::{Setup, Sink, free_port};
use reqwest::Method;
use serde_json::{Value, json};
use support::{runs, wait_all, wait_runs};

fn won_deals() -> Value {
    json!({
        "name": "Won deals",
        "trigger": {"type": "field_changed", "object": "deal", "field": "stage", "to": "closed_won",
                    "filter": "amount > 1000"},
        "steps": [
            {"key": "follow_up", "type": "create_record", "object": "activity",
             "values": {"subject": "Kick-off: {{trigger.name}}", "type": "task", "deal": "{{trigger.id}}"}},
            {"key": "tell", "type": "send_email", "to": ["sales@example.com"],
             "subject": "Won: {{trigger.name}}",
             "body": "{{trigger.name}} is won ({{trigger.amount}}). Follow-up: {{steps.follow_up.id}}"},
        ],
    })
}

/// The follow-up activities the runs made, by subject.
async fn follow_ups(s: &Setup, base: &str) -> Vec<String> {
    let (status, body) = s
        .call(
            base,
            Method::GET,
            "/v1/records/activity?filter=subject:contains:Kick-off&limit=1000",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["subject"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn deal(s: &Setup, base: &str, name: &str, amount: &str) -> String {
    let (status, body) = s
        .call(
            base,
            Method::POST,
            "/v1/records/deal",
            Some(&json!({"name": name, "stage": "proposal", "amount": amount})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().expect("id").to_string()
}

async fn set(s: &Setup, base: &str, id: &str, values: Value) {
    let (status, body) = s
        .call(
            base,
            Method::PATCH,
            &format!("/v1/records/deal/{id}"),
            Some(&values),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Until the intake slot of server `name` has acknowledged everything committed so far.
async fn intake_caught_up(s: &Setup, name: &str) {
    let lsn: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
        .fetch_one(&s.pool)
        .await
        .expect("lsn");
    let slot = format!("{}_{name}_wf", s.db_name);
    for _ in 0..1200 {
        let done: Option<bool> = sqlx::query_scalar(
            "SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = $2",
        )
        .bind(&lsn)
        .bind(&slot)
        .fetch_optional(&s.pool)
        .await
        .expect("slot")
        .flatten();
        if done == Some(true) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the intake slot {slot} did not reach {lsn}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_won_deal_runs_its_workflow_once() {
    let mut s = Setup::new(50).await;
    let port = free_port();
    let sink = Sink::start(port, &s.dir.path().join("mail"));
    let smtp = [("ONEO_SMTP_URL", format!("smtp://127.0.0.1:{port}"))];
    let (first, a) = s.serve("a", &smtp).await;
    let (status, w) = s
        .call(&a, Method::POST, "/v1/workflows", Some(&won_deals()))
        .await;
    assert_eq!(status, 201, "{w}");
    let workflow = w["id"].as_str().expect("id").to_string();
    // Another workspace has the same workflow: it must never start from this one's deals.
    let other = oneo_api::db::workspace::create_workspace(&s.pool, "Other")
        .await
        .expect("workspace");
    let resp = reqwest::Client::new()
        .post(format!("{a}/v1/workflows"))
        .bearer_auth(&other.api_key)
        .json(&won_deals())
        .send()
        .await
        .expect("create");
    assert_eq!(resp.status().as_u16(), 201);

    let big = deal(&s, &a, "Big one", "5000").await;
    set(&s, &a, &big, json!({"stage": "closed_won"})).await;
    let r = wait_all(&s, &a, "the won deal's run", |r| {
        r.len() == 1 && r[0]["status"] == "succeeded"
    })
    .await;
    let run = &r[0];
    assert_eq!(run["workflow_id"], workflow.as_str());
    assert_eq!(run["version"], 1);
    assert_eq!(run["depth"], 0);
    assert_eq!(run["trigger"]["record_id"], big.as_str());
    assert_eq!(run["trigger"]["op"], "update");
    assert_eq!(run["trigger"]["old"]["stage"], "proposal");
    assert_eq!(run["trigger"]["new"]["stage"], "closed_won");
    // Both steps logged once, with what they did.
    let steps = run["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_eq!(steps[0]["path"], "follow_up");
    assert_eq!(steps[0]["status"], "succeeded");
    let activity = steps[0]["output"]["id"]
        .as_str()
        .expect("the activity's id");
    assert_eq!(steps[0]["output"]["deal"], big.as_str());
    assert_eq!(steps[1]["path"], "tell");
    assert_eq!(steps[1]["status"], "succeeded");
    // The activity is a record like any other, made through the same write path.
    let (status, made) = s
        .call(
            &a,
            Method::GET,
            &format!("/v1/records/activity/{activity}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{made}");
    assert_eq!(made["subject"], "Kick-off: Big one");
    assert_eq!(made["type"], "task");
    // The mail arrived, once, with the trigger's values and the earlier step's output.
    let mail = sink.received();
    assert_eq!(mail.len(), 1, "one mail per run");
    assert_eq!(mail[0].meta["subject"], "Won: Big one");
    assert_eq!(mail[0].meta["rcpt_tos"], json!(["sales@example.com"]));
    let text = mail[0].meta["body"].as_str().expect("body");
    assert!(
        text.contains("Big one is won (5000") && text.contains(activity),
        "{text}"
    );

    // Writes that are no move to won, or fail the filter, start nothing; the next big win
    // does, and as the stream is ordered, once it is there the others were decided.
    set(&s, &a, &big, json!({"name": "Big one, renamed"})).await;
    let small = deal(&s, &a, "Small one", "10").await;
    set(&s, &a, &small, json!({"stage": "closed_won"})).await;
    let second = deal(&s, &a, "Second", "7000").await;
    set(&s, &a, &second, json!({"stage": "closed_won"})).await;
    let r = wait_runs(&s, &a, "the second win", 2).await;
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(r[0]["trigger"]["record_id"], second.as_str());
    let theirs = runs(&s, &a, Some(&other.api_key)).await;
    assert!(
        theirs.is_empty(),
        "another workspace's workflow started: {theirs:?}"
    );

    // A second process reads the same changes through its own slot; each change still
    // starts one run.
    let (_, b) = s.serve("b", &smtp).await;
    let third = deal(&s, &b, "Third", "9000").await;
    set(&s, &b, &third, json!({"stage": "closed_won"})).await;
    intake_caught_up(&s, "a").await;
    intake_caught_up(&s, "b").await;
    let r = runs(&s, &b, None).await;
    assert_eq!(
        r.iter()
            .filter(|x| x["trigger"]["record_id"] == third.as_str())
            .count(),
        1,
        "{r:?}"
    );

    // Killed, then a win while it is down: the restarted process replays what its slot had
    // not acknowledged, and starts nothing the other already started.
    s.kill(first);
    let fourth = deal(&s, &b, "Fourth", "9500").await;
    set(&s, &b, &fourth, json!({"stage": "closed_won"})).await;
    let (_, a) = s.serve("a", &smtp).await;
    intake_caught_up(&s, "a").await;
    intake_caught_up(&s, "b").await;
    let r = runs(&s, &a, None).await;
    assert_eq!(
        r.len(),
        4,
        "one run per win, however many processes read it: {r:?}"
    );
    let sources: std::collections::BTreeSet<&str> =
        r.iter().filter_map(|x| x["source"].as_str()).collect();
    assert_eq!(sources.len(), 4, "{r:?}");
    // Two processes drive runs from one database: each run is done once, by one of them.
    let r = wait_all(&s, &a, "every win's run", |r| {
        r.iter().all(|x| x["status"] == "succeeded")
    })
    .await;
    let mut made = follow_ups(&s, &a).await;
    made.sort();
    assert_eq!(
        made,
        [
            "Kick-off: Big one",
            "Kick-off: Fourth",
            "Kick-off: Second",
            "Kick-off: Third"
        ],
        "one follow-up per run"
    );
    let ids: std::collections::BTreeSet<String> = sink
        .received()
        .iter()
        .map(|m| {
            m.meta["message_id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(sink.received().len(), 4, "one mail per run");
    assert_eq!(ids.len(), 4, "{ids:?}");
    for run in &r {
        for step in run["steps"].as_array().expect("steps") {
            assert_eq!(step["attempt"], 1, "no step done twice: {run:#}");
        }
    }

    // A field added while the intake runs: a workflow on it sees its values.
    let (status, body) = s
        .call(&a, Method::POST, "/v1/objects/deal/fields", Some(&json!({"api_name": "tier", "label": "Tier", "type": "picklist", "options": ["gold", "silver"]})))
        .await;
    assert_eq!(status, 201, "{body}");
    let gold = json!({"name": "Gold deals",
        "trigger": {"type": "field_changed", "object": "deal", "field": "tier", "to": "gold"},
        "steps": [{"key": "note", "type": "create_record", "object": "activity", "values": {"subject": "Gold", "type": "task"}}]});
    let (status, g) = s.call(&a, Method::POST, "/v1/workflows", Some(&gold)).await;
    assert_eq!(status, 201, "{g}");
    set(&s, &a, &fourth, json!({"tier": "gold"})).await;
    let r = wait_runs(&s, &a, "the gold deal", 5).await;
    assert_eq!(r[0]["workflow_id"], g["id"], "{r:?}");
    assert_eq!(r[0]["trigger"]["new"]["tier"], "gold");
}
