//! Runs that outlive their server: a 2 s wait across a kill, retries with backoff against a
//! real HTTP server, an approval that pauses a run until a permitted key decides, and a
//! workflow that fires itself, cut at its depth.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::Setup;
use crate::support::{Counter, attempts, create_workflow, hook, wait_all, wait_run};

fn at(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not an instant: {v}"))
}

const FAST: [(&str, &str); 1] = [("ONEO_WORKFLOW_TICK_MS", "100")];

fn env() -> Vec<(&'static str, String)> {
    FAST.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn waits_retries_and_approvals_survive_restarts() {
    let mut s = Setup::new(20).await;
    let (counter, calls) = Counter::start().await;
    let (first, a) = s.serve("a", &env()).await;

    // A 2 s wait, then a call that fails twice (503) and is retried with backoff, then a
    // record made from the call's answer.
    let (_, path) = create_workflow(&s, &a, json!({
        "name": "Wait and call",
        "trigger": {"type": "webhook", "fields": [{"name": "n", "type": "number", "required": true}]},
        "steps": [
            {"key": "pause", "type": "wait", "seconds": 2},
            {"key": "call", "type": "http_request", "url": format!("{calls}/calls?fail=2"),
             "body": {"n": "{{trigger.n}}"},
             "on_error": {"do": "retry", "max_attempts": 4, "backoff_ms": 200}},
            {"key": "note", "type": "create_record", "object": "activity",
             "values": {"subject": "hook {{trigger.n}} {{steps.call.body.ticket}}", "type": "note"}},
        ],
    }))
    .await;
    let run = hook(&a, &path, json!({"n": 7})).await;
    let waiting = wait_run(&s, &a, &run, &["waiting"]).await;
    assert_eq!(waiting["waiting"]["kind"], "wait", "{waiting:#}");
    // Killed while the run waits: the wait is a row, not a timer in the dead process.
    s.kill(first);
    let (_, a) = s.serve("a", &env()).await;
    let done = wait_run(&s, &a, &run, &["succeeded", "failed"]).await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    let pause = attempts(&done, "pause");
    assert_eq!(pause.len(), 1, "{done:#}");
    let slept = at(&pause[0]["output"]["woke_at"]) - at(&pause[0]["started_at"]);
    assert!(
        slept >= chrono::Duration::seconds(2),
        "woke after {slept} (before its 2 s): {done:#}"
    );
    eprintln!(
        "the 2 s wait woke after {} ms, across a restart",
        slept.num_milliseconds()
    );
    let call = attempts(&done, "call");
    let states: Vec<&str> = call
        .iter()
        .map(|c| c["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(states, ["failed", "failed", "succeeded"], "{done:#}");
    assert!(
        call[0]["error"].as_str().unwrap_or("").contains("503"),
        "{done:#}"
    );
    // The backoff doubles: 200 ms, then 400 ms.
    let gap = at(&call[2]["started_at"]) - at(&call[1]["started_at"]);
    assert!(
        gap >= chrono::Duration::milliseconds(400),
        "{gap}: {done:#}"
    );
    let key = format!("{run}:call");
    assert_eq!(counter.calls().get(&key), Some(&3), "{:?}", counter.calls());
    let note = &attempts(&done, "note")[0]["output"];
    assert_eq!(note["subject"], "hook 7.00 T-3");
    let (status, body) = s
        .call(
            &a,
            Method::GET,
            "/v1/records/activity?filter=subject:eq:hook 7.00 T-3",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["records"].as_array().map(Vec::len), Some(1), "{body}");

    // The run and its steps are in the lake: SQL answers "attempts by step and outcome",
    // and a summary report counts runs by status.
    let lsn: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
        .fetch_one(&s.pool)
        .await
        .expect("lsn");
    let sql = format!(
        "SELECT path, status, count(*) AS n FROM crm.workflow_step WHERE run_id = '{run}'
          GROUP BY path, status ORDER BY path, status"
    );
    let (status, body) = s
        .call(
            &a,
            Method::POST,
            "/v1/sql",
            Some(&json!({"sql": sql, "min_lsn": lsn, "wait_ms": 60000})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["rows"],
        json!([
            ["call", "failed", 2],
            ["call", "succeeded", 1],
            ["note", "succeeded", 1],
            ["pause", "succeeded", 1]
        ]),
        "{body}"
    );
    let (status, body) = s
        .call(
            &a,
            Method::POST,
            &format!("/v1/reports/run?min_lsn={lsn}&wait_ms=60000"),
            Some(&json!({
            "type": "summary", "object": "workflow_run", "groupings": [{"field": "status"}],
            "aggregates": [{"fn": "count"}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, rows) = crate::harness::answer_table(&body);
    assert_eq!(
        rows,
        [["succeeded", "1"]],
        "one run so far, succeeded: {body}"
    );

    // An approval pauses the run until a key of the approval's role decides.
    let (_, path) = create_workflow(&s, &a, json!({
        "name": "Big discount",
        "trigger": {"type": "webhook", "fields": [{"name": "n", "type": "number", "required": true}]},
        "steps": [
            {"key": "ask", "type": "approval", "role": "admin"},
            {"key": "grant", "type": "create_record", "object": "activity",
             "values": {"subject": "approved {{trigger.n}} by {{steps.ask.by}}", "type": "note"}},
        ],
    }))
    .await;
    let (status, member) = s
        .call(
            &a,
            Method::POST,
            "/v1/api-keys",
            Some(&json!({"name": "rep", "role": "member"})),
        )
        .await;
    assert_eq!(status, 201, "{member}");
    let member = member["api_key"].as_str().expect("key").to_string();
    let asked = hook(&a, &path, json!({"n": 1})).await;
    let paused = wait_run(&s, &a, &asked, &["waiting"]).await;
    assert_eq!(paused["waiting"]["kind"], "approval", "{paused:#}");
    let decide = |key: String, run: String, verdict: &'static str| {
        let a = a.clone();
        async move {
            let resp = reqwest::Client::new()
                .post(format!("{a}/v1/workflow-runs/{run}/{verdict}"))
                .bearer_auth(key)
                .json(&json!({"comment": "ok by me"}))
                .send()
                .await
                .expect("decide");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // Another workspace neither sees nor decides this run, nor reads it in its lake.
    let other = oneo_api::db::workspace::create_workspace(&s.pool, "Other")
        .await
        .expect("workspace");
    let (status, _) = decide(other.api_key.clone(), asked.clone(), "approve").await;
    assert_eq!(status, 404, "another workspace's run is no run");
    let resp = reqwest::Client::new()
        .get(format!("{a}/v1/workflow-runs/{asked}"))
        .bearer_auth(&other.api_key)
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status().as_u16(), 404);
    let resp = reqwest::Client::new()
        .post(format!("{a}/v1/sql"))
        .bearer_auth(&other.api_key)
        .json(&json!({"sql": "SELECT count(*) AS n FROM crm.workflow_run"}))
        .send()
        .await
        .expect("sql");
    let theirs: Value = resp.json().await.expect("json");
    assert_eq!(theirs["rows"], json!([[0]]), "{theirs}");
    let (status, body) = decide(member.clone(), asked.clone(), "approve").await;
    assert_eq!(
        status, 403,
        "a member may not decide an admin's approval: {body}"
    );
    let still = wait_run(&s, &a, &asked, &["waiting"]).await;
    assert!(still["waiting"]["decision"].is_null(), "{still:#}");
    let (status, body) = decide(s.key.clone(), asked.clone(), "approve").await;
    assert_eq!(status, 200, "{body}");
    let granted = wait_run(&s, &a, &asked, &["succeeded", "failed"]).await;
    assert_eq!(granted["status"], "succeeded", "{granted:#}");
    let grant = &attempts(&granted, "grant")[0]["output"];
    assert!(
        grant["subject"]
            .as_str()
            .unwrap_or("")
            .starts_with("approved 1.00 by "),
        "{grant}"
    );
    let (status, _) = decide(s.key.clone(), asked.clone(), "reject").await;
    assert_eq!(status, 409, "a finished run takes no decision");
    let refused = hook(&a, &path, json!({"n": 2})).await;
    wait_run(&s, &a, &refused, &["waiting"]).await;
    let (status, _) = decide(s.key.clone(), refused.clone(), "reject").await;
    assert_eq!(status, 200);
    let rejected = wait_run(&s, &a, &refused, &["succeeded", "failed"]).await;
    assert_eq!(rejected["status"], "failed");
    assert!(
        rejected["error"]
            .as_str()
            .unwrap_or("")
            .contains("rejected"),
        "{rejected:#}"
    );
    assert!(attempts(&rejected, "grant").is_empty(), "{rejected:#}");

    // A workflow whose own write fires it again: each run one deeper, the one past
    // max_depth cut with the reason.
    let (echo, _) = create_workflow(&s, &a, json!({
        "name": "Echo",
        "trigger": {"type": "record_created", "object": "activity", "filter": "subject = 'echo'"},
        "max_depth": 2,
        "steps": [{"key": "again", "type": "create_record", "object": "activity",
                   "values": {"subject": "echo", "type": "note"}}],
    }))
    .await;
    let (status, body) = s
        .call(
            &a,
            Method::POST,
            "/v1/records/activity",
            Some(&json!({"subject": "echo", "type": "note"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let chain = wait_all(&s, &a, "the echo chain", |r| {
        r.iter()
            .any(|x| x["workflow_id"] == echo.as_str() && x["status"] == "cut")
    })
    .await;
    let mut mine: Vec<&Value> = chain
        .iter()
        .filter(|x| x["workflow_id"] == echo.as_str())
        .collect();
    mine.sort_by_key(|x| x["depth"].as_i64());
    let shape: Vec<(i64, &str)> = mine
        .iter()
        .map(|x| {
            (
                x["depth"].as_i64().unwrap_or(-1),
                x["status"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            (0, "succeeded"),
            (1, "succeeded"),
            (2, "succeeded"),
            (3, "cut")
        ],
        "{mine:#?}"
    );
    let cut = mine[3];
    assert!(
        cut["error"].as_str().unwrap_or("").contains("max_depth 2"),
        "{cut:#}"
    );
    assert_eq!(cut["parent_run"], mine[2]["id"]);
    let (_, body) = s
        .call(
            &a,
            Method::GET,
            "/v1/records/activity?filter=subject:eq:echo&limit=100",
            None,
        )
        .await;
    assert_eq!(
        body["records"].as_array().map(Vec::len),
        Some(4),
        "the first and three runs' echoes"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn schedules_and_record_times_start_runs() {
    let mut s = Setup::new(20).await;
    let (_, a) = s.serve("a", &env()).await;
    // Every second, in a zone: one run per fire, each fire once.
    let (ticks, _) = create_workflow(
        &s,
        &a,
        json!({
            "name": "Every second",
            "trigger": {"type": "schedule", "cron": "* * * * * *", "time_zone": "Europe/Paris"},
            "steps": [{"key": "mark", "type": "create_record", "object": "activity",
                       "values": {"subject": "tick", "type": "note"}}],
        }),
    )
    .await;
    let runs = wait_all(&s, &a, "three fires", |r| {
        r.iter()
            .filter(|x| x["workflow_id"] == ticks.as_str() && x["status"] == "succeeded")
            .count()
            >= 3
    })
    .await;
    let (status, _) = s
        .call(
            &a,
            Method::POST,
            &format!("/v1/workflows/{ticks}/disable"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let fires: std::collections::BTreeSet<&str> = runs
        .iter()
        .filter(|x| x["workflow_id"] == ticks.as_str())
        .map(|x| x["source"].as_str().unwrap_or(""))
        .collect();
    assert!(
        fires.iter().all(|f| f.starts_with("schedule/")),
        "{fires:?}"
    );
    assert_eq!(
        fires.len(),
        runs.iter()
            .filter(|x| x["workflow_id"] == ticks.as_str())
            .count(),
        "a fire started two runs"
    );

    // Relative to a record's datetime: an activity due 2 s from now runs then; one already
    // past when the workflow was saved, or a day ahead, does not.
    let (due, _) = create_workflow(&s, &a, json!({
        "name": "When it happens",
        "trigger": {"type": "time_based", "object": "activity", "field": "occurred_at", "offset_minutes": 0,
                    "filter": "type = 'meeting'"},
        "steps": [{"key": "flag", "type": "update_record", "values": {"subject": "{{trigger.subject}} (due)"}}],
    }))
    .await;
    let when = |secs: i64| (Utc::now() + chrono::Duration::seconds(secs)).to_rfc3339();
    let mut ids = vec![];
    for (subject, kind, at) in [
        ("soon", "meeting", when(2)),
        ("past", "meeting", when(-60)),
        ("later", "meeting", when(86_400)),
        ("a call", "call", when(2)),
    ] {
        let (status, body) = s
            .call(
                &a,
                Method::POST,
                "/v1/records/activity",
                Some(&json!({"subject": subject, "type": kind, "occurred_at": at})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().expect("id").to_string());
    }
    let runs = wait_all(&s, &a, "the due activity's run", |r| {
        r.iter()
            .any(|x| x["workflow_id"] == due.as_str() && x["status"] == "succeeded")
    })
    .await;
    let mine: Vec<&Value> = runs
        .iter()
        .filter(|x| x["workflow_id"] == due.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "{mine:#?}");
    assert_eq!(mine[0]["trigger"]["record_id"], ids[0].as_str());
    let (_, soon) = s
        .call(
            &a,
            Method::GET,
            &format!("/v1/records/activity/{}", ids[0]),
            None,
        )
        .await;
    assert_eq!(soon["subject"], "soon (due)");
    let fired = at(&mine[0]["created_at"]);
    assert!(
        fired >= at(&mine[0]["trigger"]["due_at"]),
        "started before it was due: {mine:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_condition_branches_and_a_loop_walks_related_records_within_its_bound() {
    let mut s = Setup::new(20).await;
    let (_, a) = s.serve("a", &env()).await;
    let (lost, _) = create_workflow(&s, &a, json!({
        "name": "Lost deals",
        "trigger": {"type": "field_changed", "object": "deal", "field": "stage", "to": "closed_lost"},
        "steps": [
            {"key": "big", "type": "condition", "when": "amount > 1000", "then": "each", "else": "end"},
            {"key": "each", "type": "loop", "object": "activity", "via": "deal", "max": 2,
             "steps": [{"key": "mark", "type": "update_record", "object": "activity",
                        "record": "{{item.id}}", "values": {"subject": "lost: {{item.subject}}"}}]},
            {"key": "done", "type": "create_record", "object": "activity",
             "values": {"subject": "looked at {{steps.each.count}}", "type": "note"}},
        ],
    }))
    .await;
    let deal = |name: &'static str, amount: &'static str| {
        let (s, a) = (&s, a.clone());
        async move {
            let (status, d) = s
                .call(
                    &a,
                    Method::POST,
                    "/v1/records/deal",
                    Some(&json!({"name": name, "stage": "proposal", "amount": amount})),
                )
                .await;
            assert_eq!(status, 201, "{d}");
            let id = d["id"].as_str().expect("id").to_string();
            for n in 0..3 {
                let (status, body) = s
                    .call(
                        &a,
                        Method::POST,
                        "/v1/records/activity",
                        Some(
                            &json!({"subject": format!("{name} {n}"), "type": "call", "deal": id}),
                        ),
                    )
                    .await;
                assert_eq!(status, 201, "{body}");
            }
            let (status, body) = s
                .call(
                    &a,
                    Method::PATCH,
                    &format!("/v1/records/deal/{id}"),
                    Some(&json!({"stage": "closed_lost"})),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            id
        }
    };
    let big = deal("Big", "5000").await;
    let small = deal("Small", "10").await;
    let runs = wait_all(&s, &a, "both lost deals' runs", |r| {
        r.iter()
            .filter(|x| x["workflow_id"] == lost.as_str() && terminal(x))
            .count()
            == 2
    })
    .await;
    let run_of = |id: &str| {
        runs.iter()
            .find(|x| x["trigger"]["record_id"] == id)
            .unwrap_or_else(|| panic!("no run for {id}: {runs:#?}"))
    };
    let big_run = run_of(&big);
    assert_eq!(big_run["status"], "succeeded", "{big_run:#}");
    let paths: Vec<&str> = big_run["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|x| x["path"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        paths,
        ["big", "each", "each[0].mark", "each[1].mark", "done"],
        "{big_run:#}"
    );
    let small_run = run_of(&small);
    assert_eq!(small_run["status"], "succeeded");
    assert_eq!(attempts(small_run, "big")[0]["output"]["result"], false);
    assert_eq!(
        small_run["steps"].as_array().map(Vec::len),
        Some(1),
        "the else branch ends it"
    );
    // The loop touched two of the big deal's three activities (its bound), oldest first.
    let (_, body) = s
        .call(
            &a,
            Method::GET,
            &format!("/v1/records/activity?filter=deal:eq:{big}&sort=id&limit=10"),
            None,
        )
        .await;
    let subjects: Vec<&str> = body["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["subject"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(subjects, ["lost: Big 0", "lost: Big 1", "Big 2"], "{body}");
    let (_, body) = s
        .call(
            &a,
            Method::GET,
            "/v1/records/activity?filter=subject:eq:looked at 2",
            None,
        )
        .await;
    assert_eq!(body["records"].as_array().map(Vec::len), Some(1), "{body}");
}

fn terminal(r: &Value) -> bool {
    r["status"] == "succeeded" || r["status"] == "failed"
}
