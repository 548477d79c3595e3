//! Operating ingest: a table the lake can't take stops alone and says why, the status and
//! metrics endpoints show it, a resync through the API recovers it without losing its
//! history, and maintenance compacts tables while they stream.

use std::time::{Duration, Instant};

use futures::TryStreamExt;

use oneo_ingest::{Ingest, TableKind};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::CATCH_UP;
use crate::harness::{Env, cell_text};

/// Polls the status endpoint until `object`'s table is in `state`; returns that table's status.
async fn wait_for_state(env: &Env, base: &str, object: &str, state: &str) -> Value {
    let start = Instant::now();
    loop {
        let (status, body) = env.request_at(base, Method::GET, "/v1/ingest/status").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let report: Value = serde_json::from_str(&body).expect("status JSON");
        let table = report["tables"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["object"] == object))
            .cloned();
        if let Some(t) = table.filter(|t| t["state"] == state) {
            return t;
        }
        assert!(
            start.elapsed() < CATCH_UP,
            "`{object}` never became {state}: {report}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The project history's values of `column`, one per row (rows without it: none).
async fn history_values(env: &Env, column: &str) -> Vec<Option<String>> {
    let project = env.objects().await.remove("project").expect("project");
    let batches = env
        .lake_batches(&project, TableKind::History)
        .await
        .expect("history table");
    let mut out = Vec::new();
    for b in &batches {
        let Some(c) = b.column_by_name(column) else {
            continue;
        };
        out.extend((0..b.num_rows()).map(|r| cell_text(c.as_ref(), r)));
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_table_the_lake_cannot_take_stops_alone_and_a_resync_recovers_it() {
    let env = Env::new().await;
    env.call(
        Method::POST,
        "/v1/objects",
        Some(
            json!({"api_name": "project", "label": "Project", "fields": [
            {"api_name": "name", "label": "Name", "type": "text", "required": true},
            {"api_name": "score", "label": "Score", "type": "number", "scale": 1}]}),
        ),
    )
    .await;
    for (i, score) in ["1.5", "42.0"].iter().enumerate() {
        env.create("project", json!({"name": format!("P{i}"), "score": score}))
            .await;
    }
    let mut cfg = env.ingest_config();
    // Short enough that the test sees maintenance run, on tables of a few small files.
    cfg.maintenance_interval = Duration::from_secs(2);
    let ingest = Ingest::new(cfg, env.pool.clone()).expect("ingest");
    let base = env.serve_with_ingest(ingest.handle()).await;
    let stop = CancellationToken::new();
    let task = tokio::spawn(ingest.run(stop.clone()));
    env.wait_until_lake_equals_pg(CATCH_UP)
        .await
        .expect("snapshot");
    // Two changes the history has from the stream (the snapshot's rows are current state).
    env.create("project", json!({"name": "P2", "score": "7.2"}))
        .await;
    env.create("project", json!({"name": "P3", "score": "8.0"}))
        .await;
    env.wait_until_lake_equals_pg(CATCH_UP)
        .await
        .expect("streamed");

    // `score` deleted and re-created as text: the lake's column is a decimal, so the
    // project table can't take the next change. It stops; the others go on.
    env.call(Method::DELETE, "/v1/objects/project/fields/score", None)
        .await;
    env.call(
        Method::POST,
        "/v1/objects/project/fields",
        Some(json!({"api_name": "score", "label": "Score", "type": "text"})),
    )
    .await;
    env.create("project", json!({"name": "P4", "score": "high"}))
        .await;
    let failed = wait_for_state(&env, &base, "project", "failed").await;
    let error = failed["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("`score`") && error.contains("resync"),
        "the error names the column and the way out: {error}"
    );
    // Ten batches of deals, each in the lake before the next: ten small files to compact.
    for i in 0..10 {
        for j in 0..3 {
            env.create(
                "deal",
                json!({"name": format!("D{i}.{j}"), "amount": "10.00", "stage": "proposal", "close_date": "2026-12-01"}),
            )
            .await;
        }
        env.wait_until_object_equals_pg("deal", CATCH_UP)
            .await
            .expect("deals stream on while projects are stopped");
    }
    let (status, metrics) = env
        .request_at(&base, Method::GET, "/v1/ingest/metrics")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        metrics.contains("oneo_ingest_table_failed{object=\"project\"} 1")
            && metrics.contains("oneo_ingest_table_failed{object=\"deal\"} 0"),
        "{metrics}"
    );

    // Only admins resync (an analyst's key is refused and changes nothing); an admin's copies
    // the table again, with the new type.
    let analyst = env
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "analyst", "role": "analyst"})),
        )
        .await;
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/ingest/tables/project/resync"))
        .bearer_auth(analyst["api_key"].as_str().expect("key"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    wait_for_state(&env, &base, "project", "failed").await;
    let (status, body) = env
        .request_at(&base, Method::POST, "/v1/ingest/tables/project/resync")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let table: Value = serde_json::from_str(&body).expect("table status");
    assert_eq!(table["state"], "streaming", "{table}");
    assert_eq!(table["snapshot_rows"], 5, "{table}");
    env.create("project", json!({"name": "P5", "score": "low"}))
        .await;
    env.wait_until_lake_equals_pg(CATCH_UP)
        .await
        .expect("the project table is back and equal to PostgreSQL");

    // Its history lost nothing it had: the streamed decimals stay, under a column of their
    // own, and the change after the resync is there with the new type. (The change the table
    // stopped on, P4, reached the current state through the resync's copy, not the history.)
    let project = env.objects().await.remove("project").expect("project");
    let start = Instant::now();
    while env.history_counts(&project).await.0 < 3 {
        assert!(start.elapsed() < CATCH_UP, "P5's history row never came");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(env.history_counts(&project).await, (3, 3));
    let batches = env
        .lake_batches(&project, TableKind::History)
        .await
        .expect("history");
    let kept = batches[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .find(|n| n.starts_with("score_before_v"))
        .unwrap_or_else(|| panic!("the old scores' column: {:?}", batches[0].schema()));
    assert_eq!(
        history_values(&env, &kept).await,
        vec![None, Some("7.2".into()), Some("8.0".into())]
    );
    assert_eq!(
        history_values(&env, "score").await,
        vec![None, None, Some("low".into())]
    );

    // Maintenance ran while streaming: the deal table's ten small commits were
    // compacted, and the lake still equals PostgreSQL (checked above, after it ran).
    let deal = env.objects().await.remove("deal").expect("deal");
    let start = Instant::now();
    loop {
        let table = deltalake::open_table(env.lake_url(&deal, TableKind::Current))
            .await
            .expect("deal table");
        let history: Vec<_> = table.history(None).try_collect().await.expect("log");
        if history
            .iter()
            .any(|c| c.operation.as_deref() == Some("OPTIMIZE"))
        {
            break;
        }
        assert!(
            start.elapsed() < CATCH_UP,
            "the deal table was never compacted"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    env.wait_until_object_equals_pg("deal", CATCH_UP)
        .await
        .expect("deals after compaction");

    stop.cancel();
    task.await.expect("join").expect("ingest ran cleanly");
}
