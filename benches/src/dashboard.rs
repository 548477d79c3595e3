//! `dashboard`: the demo's ten-widget "Sales overview" over the data set at `--scale`, through
//! the server with the lake: the time a full refresh takes (every widget recomputed), the
//! time a refresh takes after one deal changed (the deal widgets only), and the latency of
//! `/v1/dashboards/{id}/data` while every widget is current (no query runs).

use std::time::{Duration, Instant};

use anyhow::ensure;
use oneo_api::Application;
use oneo_api::config::{DatabaseConfig, HttpConfig};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::percentile;
use crate::reports::{ensure_loaded, ingest_until_caught_up};

/// The dashboard `oneo demo` materializes.
const DEMO_DASHBOARD: &str = include_str!("../../src/demo_dashboard.json");

pub struct Size {
    pub scale: usize,
    /// Timed forced refreshes.
    pub refreshes: usize,
    /// Timed opens of the data endpoint.
    pub opens: usize,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Loads the data set, lets ingest catch up, creates the dashboard (its first computation is
/// timed too), then times forced refreshes, a refresh after one write, and opens.
pub async fn bench(
    pool: &PgPool,
    db: &DatabaseConfig,
    cfg: oneo_ingest::IngestConfig,
    workspace: Uuid,
    key: &str,
    api: &str,
    size: Size,
) -> anyhow::Result<()> {
    ensure_loaded(pool, workspace, api, key, size.scale, "dashboard").await?;
    let (handle, stop, task) = ingest_until_caught_up(pool, cfg, "dashboard").await?;
    let http = HttpConfig {
        http_addr: "127.0.0.1:0".parse()?,
        request_timeout_secs: 600,
    };
    let app = Application::build(db, &http)
        .await?
        .with_ingest(handle.clone())
        .with_lake(oneo_query::QueryConfig::new(handle.lake().root().clone()));
    let base = format!("http://{}", app.local_addr());
    let server = tokio::spawn(app.run_until_stopped(stop.clone()));
    let client = reqwest::Client::new();
    let send = |req: reqwest::RequestBuilder| async {
        let resp = req.bearer_auth(key).send().await?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await?;
        ensure!(status < 300, "{status}: {body}");
        anyhow::Ok(body)
    };

    let spec: Value = serde_json::from_str(DEMO_DASHBOARD)?;
    let widgets = spec["widgets"].as_array().map_or(0, Vec::len);
    let t = Instant::now();
    let created = send(client.post(format!("{base}/v1/dashboards")).json(&spec)).await?;
    let first = t.elapsed();
    let id = created["id"].as_str().unwrap_or_default().to_string();
    let errors: Vec<&Value> = created["widgets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| !w["answer"]["error"].is_null())
        .collect();
    ensure!(errors.is_empty(), "widgets failed: {errors:?}");

    let mut full = Vec::with_capacity(size.refreshes);
    for _ in 0..size.refreshes {
        let t = Instant::now();
        send(client.post(format!("{base}/v1/dashboards/{id}/refresh?force=true"))).await?;
        full.push(t.elapsed());
    }
    full.sort();

    // One deal changes: only the widgets over deals are recomputed.
    let page = send(client.get(format!("{base}/v1/records/deal?limit=1"))).await?;
    let deal = page["records"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    send(
        client
            .patch(format!("{base}/v1/records/deal/{deal}"))
            .json(&json!({"amount": "4242.00"})),
    )
    .await?;
    let mark: String =
        sqlx::query_scalar("SELECT pg_logical_emit_message(true, 'oneo.bench', '')::text")
            .fetch_one(pool)
            .await?;
    let mark = oneo_ingest::parse_lsn(&mark).unwrap_or(u64::MAX);
    while handle.status.acknowledged().is_none_or(|a| a < mark) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t = Instant::now();
    let after_write = send(client.post(format!("{base}/v1/dashboards/{id}/refresh"))).await?;
    let incremental = t.elapsed();
    let recomputed = after_write["widgets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| w["recomputed"] == true)
        .count();

    let mut opens = Vec::with_capacity(size.opens);
    for i in 0..=size.opens {
        let t = Instant::now();
        let data = send(client.get(format!("{base}/v1/dashboards/{id}/data"))).await?;
        let took = t.elapsed();
        let all_current = data["widgets"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|w| w["current"] == true && w["recomputed"] == false);
        ensure!(
            all_current,
            "an open found a widget not current or recomputed it: {data}"
        );
        // The first open warms the connection; only the rest are timed.
        if i > 0 {
            opens.push(took);
        }
    }
    opens.sort();

    println!(
        "dashboard \"{}\" ({widgets} widgets), scale {}",
        spec["name"].as_str().unwrap_or_default(),
        size.scale
    );
    println!("  first computation (create)    {:>9.1} ms", ms(first));
    println!(
        "  full refresh (force)          p50 {:>9.1} ms  max {:>9.1} ms  (n={})",
        ms(percentile(&full, 0.5)),
        ms(full[full.len() - 1]),
        full.len()
    );
    println!(
        "  refresh after one deal write  {:>9.1} ms  ({recomputed} of {widgets} widgets recomputed)",
        ms(incremental)
    );
    println!(
        "  open /data, all current       p50 {:>7.2} ms  p95 {:>7.2} ms  p99 {:>7.2} ms  (n={})",
        ms(percentile(&opens, 0.5)),
        ms(percentile(&opens, 0.95)),
        ms(percentile(&opens, 0.99)),
        opens.len()
    );
    stop.cancel();
    server.await??;
    drop(task.await);
    Ok(())
}
