//! Workflow benchmarks: trigger-to-completion latency of a three-step workflow (update,
//! condition, create) under a steady rate of triggering writes through the API, then the
//! runs/s the server finishes from a burst of triggers committed at once.
//!
//! The server runs the workflow intake (its own replication slot) and the workers, as
//! `oneo serve` does; latency runs from the moment the triggering PATCH is sent to the run's
//! `finished_at` (the same machine's clock, read by PostgreSQL).

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::percentile;

/// The load: `rate` triggering writes/s for `seconds`, then a burst of `burst` at once.
pub struct Load {
    pub rate: f64,
    pub seconds: u64,
    pub burst: usize,
}

fn workflow() -> Value {
    json!({
        "name": "Won deal follow-up",
        "trigger": {"type": "field_changed", "object": "deal", "field": "stage", "to": "closed_won"},
        "steps": [
            {"key": "certain", "type": "update_record", "values": {"probability": 100}},
            {"key": "big", "type": "condition", "when": "amount > 1000", "then": "follow_up", "else": "end"},
            {"key": "follow_up", "type": "create_record", "object": "activity",
             "values": {"subject": "Kick-off: {{trigger.name}}", "type": "task", "deal": "{{trigger.id}}"}},
        ],
    })
}

async fn deals(
    client: &reqwest::Client,
    base: &str,
    auth: &str,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let records: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"name": format!("Deal {i}"), "amount": format!("{}.00", 2000 + i % 5000), "stage": "proposal"}))
            .collect();
        let resp = client
            .post(format!("{base}/v1/records/deal/bulk"))
            .header("authorization", auth)
            .json(&json!({"operation": "create", "records": records}))
            .send()
            .await?;
        ensure!(
            resp.status().is_success(),
            "bulk create failed: {}",
            resp.text().await?
        );
        let body: Value = resp.json().await?;
        for r in body["records"].as_array().context("records")? {
            ids.push(r["id"].as_str().context("id")?.to_string());
        }
    }
    Ok(ids)
}

/// Until `n` runs of `workflow` have finished; their (record id, status, finished_at).
async fn finished(
    pool: &PgPool,
    workflow: Uuid,
    n: usize,
) -> anyhow::Result<Vec<(String, String, DateTime<Utc>)>> {
    let wait = Instant::now();
    loop {
        let rows: Vec<(String, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT trigger->>'record_id', status, finished_at FROM oneo.workflow_runs
              WHERE workflow_id = $1 AND finished_at IS NOT NULL",
        )
        .bind(workflow)
        .fetch_all(pool)
        .await?;
        if rows.len() >= n {
            return Ok(rows);
        }
        ensure!(
            wait.elapsed() < Duration::from_secs(300),
            "only {} of {n} runs finished within 5 minutes",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn bench(pool: &PgPool, base: &str, key: &str, load: Load) -> anyhow::Result<()> {
    let Load {
        rate,
        seconds,
        burst,
    } = load;
    let client = reqwest::Client::new();
    let auth = format!("Bearer {key}");
    let resp = client
        .post(format!("{base}/v1/workflows"))
        .header("authorization", &auth)
        .json(&workflow())
        .send()
        .await?;
    ensure!(
        resp.status().as_u16() == 201,
        "the workflow: {}",
        resp.text().await?
    );
    let w: Value = resp.json().await?;
    let workflow: Uuid = w["id"].as_str().context("id")?.parse()?;

    // Steady: `rate` deals moved to closed_won per second, each by one PATCH.
    let total = (rate * seconds as f64).max(1.0) as usize;
    let ids = deals(&client, base, &auth, total + burst).await?;
    const WORKERS: usize = 32;
    let start = Instant::now() + Duration::from_millis(200);
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let (client, auth, base) = (client.clone(), auth.clone(), base.to_string());
        let mine: Vec<(usize, String)> = ids[..total]
            .iter()
            .cloned()
            .enumerate()
            .skip(w)
            .step_by(WORKERS)
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut sent = Vec::with_capacity(mine.len());
            for (i, id) in mine {
                tokio::time::sleep_until((start + Duration::from_secs_f64(i as f64 / rate)).into())
                    .await;
                let at = Utc::now();
                let resp = client
                    .patch(format!("{base}/v1/records/deal/{id}"))
                    .header("authorization", &auth)
                    .json(&json!({"stage": "closed_won"}))
                    .send()
                    .await?;
                ensure!(
                    resp.status().is_success(),
                    "the write: {}",
                    resp.text().await?
                );
                sent.push((id, at));
            }
            anyhow::Ok(sent)
        }));
    }
    let mut sent: std::collections::HashMap<String, DateTime<Utc>> =
        std::collections::HashMap::new();
    for t in tasks {
        sent.extend(t.await??);
    }
    let achieved = total as f64 / start.elapsed().as_secs_f64();
    let runs = finished(pool, workflow, total).await?;
    let failed = runs.iter().filter(|(_, s, _)| s != "succeeded").count();
    ensure!(failed == 0, "{failed} runs did not succeed");
    let mut lat: Vec<Duration> = runs
        .iter()
        .filter_map(|(id, _, done)| Some((*done - *sent.get(id)?).to_std().unwrap_or_default()))
        .collect();
    // The first fifth warms connections and caches.
    lat.drain(..lat.len() / 5);
    lat.sort();
    println!(
        "trigger to completion  {achieved:.0} writes/s for {seconds} s  runs={}  p50={:.0} ms  p95={:.0} ms  max={:.0} ms",
        runs.len(),
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.95).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );

    // Burst: `burst` deals won in one bulk update (one transaction), then every run done.
    if burst > 0 {
        let records: Vec<Value> = ids[total..]
            .iter()
            .map(|id| json!({"id": id, "stage": "closed_won"}))
            .collect();
        let t = Instant::now();
        for chunk in records.chunks(1000) {
            let resp = client
                .post(format!("{base}/v1/records/deal/bulk"))
                .header("authorization", &auth)
                .json(&json!({"operation": "update", "records": chunk}))
                .send()
                .await?;
            ensure!(
                resp.status().is_success(),
                "bulk update: {}",
                resp.text().await?
            );
        }
        let committed = t.elapsed();
        finished(pool, workflow, total + burst).await?;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "throughput             {burst} runs from a burst  {:.0} runs/s  ({:.1} s from the first write, {:.1} s of it writing)",
            burst as f64 / secs,
            secs,
            committed.as_secs_f64()
        );
    }
    Ok(())
}
