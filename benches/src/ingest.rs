//! Ingest benchmarks: backlog catch-up (changes already in the WAL → lake) and live freshness
//! (commit → visible in the lake under a steady write load through the API).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use deltalake::arrow::array::AsArray;
use deltalake::arrow::datatypes::Int64Type;
use deltalake::datafusion::prelude::SessionContext;
use oneo_ingest::layout::load_layouts;
use oneo_ingest::source::{Lsn, parse_lsn};
use oneo_ingest::{Ingest, IngestConfig, IngestHandle, TableKind, TableState};
use serde_json::json;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::percentile;

/// Ingest running in this process, as `oneo serve` runs it.
struct Running {
    handle: IngestHandle,
    stop: CancellationToken,
    task: JoinHandle<Result<(), oneo_ingest::IngestError>>,
}

impl Running {
    fn start(cfg: IngestConfig, pool: &PgPool) -> anyhow::Result<Self> {
        let ingest = Ingest::new(cfg, pool.clone())?;
        let handle = ingest.handle();
        let stop = CancellationToken::new();
        let task = tokio::spawn(ingest.run(stop.clone()));
        Ok(Self { handle, stop, task })
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await??;
        Ok(())
    }

    /// Waits until the workspace's four standard objects stream (their snapshot is in).
    async fn wait_streaming(&self, workspace: Uuid) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            let r = self.handle.status.report(workspace);
            if r.tables.len() >= 4
                && r.tables.iter().all(|t| t.state == TableState::Streaming)
                && r.pipeline.running
            {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(120) {
                bail!("ingest did not start streaming: {r:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Loads `scale` of the synthetic data set while ingest is stopped (the slot holds it all in
/// the WAL), then times a fresh ingest until every change is in the lake.
pub async fn backlog(
    pool: &PgPool,
    cfg: IngestConfig,
    workspace: Uuid,
    scale: usize,
) -> anyhow::Result<()> {
    let first = Running::start(cfg.clone(), pool)?;
    first.wait_streaming(workspace).await?;
    first.stop().await?;

    // A second slot at the same point: PostgreSQL's own pgoutput decoding of the same WAL,
    // with nothing done with its output, is the reference the figure is read against.
    let reference = format!("{}_decode_reference", cfg.slot);
    sqlx::query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')")
        .bind(&reference)
        .execute(pool)
        .await?;
    let data = tokio::task::spawn_blocking(move || oneo_data::generate(scale, 42)).await?;
    let t = Instant::now();
    let loaded = oneo_api::load::load(pool, workspace, &data, &|_, _, _| {})
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let changes = loaded.records.values().sum::<usize>() + loaded.stage_updates;
    let wal: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
        .fetch_one(pool)
        .await?;
    eprintln!(
        "backlog: {changes} changes written by the loader in {:.1} s while ingest was stopped",
        t.elapsed().as_secs_f64()
    );

    let start = Instant::now();
    let second = Running::start(cfg.clone(), pool)?;
    loop {
        let applied = second.handle.status.report(workspace).pipeline.changes;
        if applied >= changes as u64 {
            break;
        }
        if start.elapsed() > Duration::from_secs(1800) {
            bail!("ingest applied {applied} of {changes} changes in 30 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let report = second.handle.status.report(workspace);
    second.stop().await?;

    check_counts(pool, &cfg, workspace).await?;
    println!(
        "ingest backlog        {changes} changes (WAL up to {wal}) in {secs:.1} s = {:.0} changes/s  ({} batches; writing {:.1} s, reading stalled on writes {:.1} s)",
        changes as f64 / secs,
        report.pipeline.batches,
        report.pipeline.write_ms as f64 / 1e3,
        report.pipeline.stalled_ms as f64 / 1e3,
    );
    let t = Instant::now();
    let messages: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_logical_slot_get_binary_changes($1, $2::text::pg_lsn, NULL, \
         'proto_version', '1', 'publication_names', $3)",
    )
    .bind(&reference)
    .bind(&wal)
    .bind(&cfg.publication)
    .fetch_one(pool)
    .await?;
    let decode = t.elapsed().as_secs_f64();
    sqlx::query("SELECT pg_drop_replication_slot($1)")
        .bind(&reference)
        .execute(pool)
        .await?;
    println!(
        "  reference           PostgreSQL decoding the same WAL alone (pgoutput, output discarded): {decode:.1} s = {:.0} changes/s ({messages} messages)",
        changes as f64 / decode
    );
    Ok(())
}

/// Every current-state table holds as many rows as its PostgreSQL table.
async fn check_counts(pool: &PgPool, cfg: &IngestConfig, workspace: Uuid) -> anyhow::Result<()> {
    let lake = oneo_ingest::Lake::new(&cfg.lake)?;
    for layout in load_layouts(pool)
        .await?
        .values()
        .filter(|l| l.workspace_id == workspace)
    {
        let pg: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM oneo_records.{}",
            layout.source_table()
        )))
        .fetch_one(pool)
        .await?;
        let table =
            deltalake::open_table(lake.table_url(workspace, layout.object_id, TableKind::Current))
                .await?;
        let ctx = SessionContext::new();
        table.update_datafusion_session(&ctx.state())?;
        ctx.register_table("t", table.table_provider().await?)?;
        let batches = ctx.sql("SELECT count(*) FROM t").await?.collect().await?;
        let lake_rows = batches
            .first()
            .and_then(|b| b.column(0).as_primitive_opt::<Int64Type>())
            .map(|a| a.value(0))
            .context("lake count")?;
        ensure!(
            lake_rows == pg,
            "`{}`: {lake_rows} rows in the lake, {pg} in PostgreSQL",
            layout.api_name
        );
    }
    Ok(())
}

/// The write load of the freshness bench.
pub struct Load {
    /// Record writes per second.
    pub rate: f64,
    /// Records per request.
    pub batch: usize,
    pub seconds: u64,
}

/// Drives `rate` record writes/s (three creates to one update; `batch` records per request,
/// bulk when more than one) through the REST API for `seconds`
/// while ingest runs beside the server, and reports how long each write took from the moment
/// it was sent until the lake held it (the pipeline acknowledged an LSN at or past the one
/// the API returned in `Oneo-Lsn`).
pub async fn freshness(
    pool: &PgPool,
    cfg: IngestConfig,
    base: &str,
    key: &str,
    workspace: Uuid,
    load: Load,
) -> anyhow::Result<()> {
    let Load {
        rate,
        batch,
        seconds,
    } = load;
    ensure!(
        (1..=1000).contains(&batch),
        "--batch takes 1 to 1000 records per request"
    );
    // Requests per second; each carries `batch` record writes.
    let rate = rate / batch as f64;
    let running = Running::start(cfg, pool)?;
    running.wait_streaming(workspace).await?;

    // The acknowledged position, sampled every millisecond with the time it was first seen.
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let status = running.handle.status.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut seen: Vec<(Instant, Lsn)> = Vec::new();
            while !done.load(Ordering::Relaxed) {
                if let Some(lsn) = status.acknowledged()
                    && seen.last().is_none_or(|(_, l)| *l < lsn)
                {
                    seen.push((Instant::now(), lsn));
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            seen
        })
    };

    const WORKERS: usize = 32;
    let client = reqwest::Client::new();
    let start = Instant::now() + Duration::from_millis(200);
    let total = (rate * seconds as f64).max(1.0) as usize;
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let client = client.clone();
        let auth = format!("Bearer {key}");
        let base = base.to_string();
        workers.push(tokio::spawn(async move {
            let mut writes: Vec<(Instant, Lsn)> = Vec::new();
            let mut mine: Vec<(String, i64)> = Vec::new();
            let mut i = w;
            while i < total {
                tokio::time::sleep_until((start + Duration::from_secs_f64(i as f64 / rate)).into())
                    .await;
                let sent = Instant::now();
                let update = i % 4 == 3 && mine.len() >= batch;
                let deal = |n: usize| json!({
                    "name": format!("Deal {n}"), "amount": format!("{}.{:02}", 1000 + n % 90_000, n % 100),
                    "stage": "proposal", "close_date": "2026-12-31", "owner": "Ann"
                });
                let change = |k: usize| {
                    let (id, version) = &mine[(i / 4 * batch + k) % mine.len()];
                    json!({"id": id, "version": version, "stage": "negotiation", "amount": format!("{}.00", 1000 + (i + k) % 9000)})
                };
                let req = match (batch, update) {
                    (1, true) => {
                        let mut c = change(0);
                        let id = c.as_object_mut().and_then(|o| o.remove("id")).unwrap_or_default();
                        client.patch(format!("{base}/v1/records/deal/{}", id.as_str().unwrap_or_default())).json(&c)
                    }
                    (1, false) => client.post(format!("{base}/v1/records/deal")).json(&deal(i)),
                    (_, true) => client.post(format!("{base}/v1/records/deal/bulk")).json(&json!({
                        "operation": "update", "records": (0..batch).map(change).collect::<Vec<_>>()
                    })),
                    (_, false) => client.post(format!("{base}/v1/records/deal/bulk")).json(&json!({
                        "operation": "create", "records": (0..batch).map(|k| deal(i * batch + k)).collect::<Vec<_>>()
                    })),
                };
                let resp = req.header("authorization", &auth).send().await?;
                let status = resp.status();
                let lsn = resp
                    .headers()
                    .get("oneo-lsn")
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_lsn);
                let body: serde_json::Value = resp.json().await?;
                ensure!(status.is_success(), "write failed with {status}: {body}");
                let lsn = lsn.context("a write without an Oneo-Lsn header")?;
                let written = if batch == 1 {
                    vec![body.clone()]
                } else {
                    body["records"].as_array().cloned().unwrap_or_default()
                };
                for r in &written {
                    let (Some(id), Some(version)) = (r["id"].as_str(), r["version"].as_i64()) else {
                        bail!("a write answered without id and version: {r}");
                    };
                    match mine.iter_mut().find(|(m, _)| m == id) {
                        Some(entry) => entry.1 = version,
                        None => mine.push((id.to_string(), version)),
                    }
                }
                writes.push((sent, lsn));
                i += WORKERS;
            }
            anyhow::Ok(writes)
        }));
    }
    let mut writes = Vec::with_capacity(total);
    for w in workers {
        writes.extend(w.await??);
    }
    let achieved = (writes.len() * batch) as f64 / start.elapsed().as_secs_f64();
    // Let the last writes arrive (a heartbeat moves the acknowledgement past an idle end).
    let last = writes.iter().map(|(_, l)| *l).max().unwrap_or(0);
    let wait = Instant::now();
    while running
        .handle
        .status
        .acknowledged()
        .is_none_or(|a| a < last)
    {
        ensure!(
            wait.elapsed() < Duration::from_secs(60),
            "the lake did not catch up within a minute"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done.store(true, Ordering::Relaxed);
    let seen = sampler.await?;
    running.stop().await?;

    // The first fifth is warm-up (connections, caches, the first Delta files).
    writes.sort_by_key(|(t, _)| *t);
    let measured = &writes[writes.len() / 5..];
    let mut lat: Vec<Duration> = measured
        .iter()
        .map(|(sent, lsn)| {
            let i = seen.partition_point(|(_, a)| a < lsn);
            seen.get(i)
                .map_or(Duration::MAX, |(at, _)| at.saturating_duration_since(*sent))
        })
        .collect();
    lat.sort();
    println!(
        "ingest freshness      {:.0} record writes/s through the API ({batch} per request) for {seconds} s (target {:.0}), {} requests measured: commit-to-visible p50={:.0} ms  p95={:.0} ms  p99={:.0} ms  max={:.0} ms",
        achieved,
        rate * batch as f64,
        lat.len(),
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.95).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat[lat.len() - 1].as_secs_f64() * 1e3,
    );
    Ok(())
}
