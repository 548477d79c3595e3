//! Oneo's benchmark harness, each measurement against a fresh database on the local
//! PostgreSQL (dropped afterwards) and a server on a free loopback port:
//!
//! - `cargo run -p oneo-benches --release -- api`: single-record create latency (sequential
//!   requests, p50/p99) and bulk create throughput (1,000-record requests) over real HTTP.
//! - `… -- ingest-backlog --scale 140000`: about a million changes already in the WAL, then
//!   the time ingest takes to put them all in the lake (changes/s).
//! - `… -- ingest-freshness --rate 2000 --seconds 30`: a steady write load through the API
//!   with ingest beside the server; p50/p95 from a write's request to its being in the lake.
//! - `… -- compare --scale 100000 --runs 10`: the standard CRM reports through
//!   `/v1/reports/run` and as SQL on PostgreSQL over the relational copy, in one run; answers
//!   checked equal value by value, then p50s and ratios.
//! - `… -- flight-stream --rows 10000000 --runs 3`: a ten-column result streamed over Flight
//!   SQL from the lake against `COPY … TO STDOUT (FORMAT binary)` of the same rows; rows/s, MB/s.
//! - `… -- dashboard --scale 1000000`: the demo's ten-widget dashboard over the data set: a
//!   full refresh's time, a refresh after one write, and `/data` latency while all is current.
//! - `… -- workflows --rate 500 --seconds 20 --burst 5000`: a three-step workflow (update,
//!   condition, create) started by deals won through the API: trigger-to-completion p50/p95
//!   at a steady rate, then runs/s from a burst committed at once.
//! - `… -- models --rows 500000 --features 23`: training time on a synthetic matrix (about 30
//!   model columns), batch scoring rows/s with and without factors, single-record p99.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::{Parser, Subcommand};
use oneo_api::Application;
use oneo_api::config::{DatabaseConfig, HttpConfig};
use serde_json::{Value, json};

mod dashboard;
mod flight;
mod ingest;
mod models;
mod reports;
mod workflows;
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Cli {
    /// PostgreSQL server (without a database name); a bench database is created on it.
    #[arg(
        long,
        env = "ONEO_BENCH_PG",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    pg: String,
    /// Keep the bench database (`oneo_bench_<NAME>`) and its lake (in the system's temporary
    /// folder) afterwards, and reuse them when they exist: `compare --scale 1000000` loads
    /// for many minutes once, and later runs start from the loaded data and the lake.
    #[arg(long, value_name = "NAME", value_parser = keep_name)]
    keep: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Single-record create latency and bulk create throughput.
    Api {
        /// Sequential single-record creates to time.
        #[arg(long, default_value_t = 2_000)]
        single: usize,
        /// Bulk requests of `--batch` records each.
        #[arg(long, default_value_t = 30)]
        bulk_requests: usize,
        #[arg(long, default_value_t = 1_000)]
        batch: usize,
    },
    /// Backlog catch-up: the synthetic data set at `--scale` (≈7.5 changes per unit) is
    /// written while ingest is stopped, then ingest is timed until the lake holds it all.
    IngestBacklog {
        #[arg(long, default_value_t = 140_000)]
        scale: usize,
    },
    /// Live freshness: `--rate` writes/s through the API for `--seconds`, ingest running.
    IngestFreshness {
        /// Record writes per second.
        #[arg(long, default_value_t = 2_000.0)]
        rate: f64,
        /// Records per request (more than one: bulk creates and updates).
        #[arg(long, default_value_t = 1)]
        batch: usize,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
    },
    /// A large result streamed over Flight SQL against PostgreSQL's binary COPY.
    FlightStream {
        /// Rows in the streamed result (ten columns).
        #[arg(long, default_value_t = 10_000_000)]
        rows: usize,
        /// Timed runs each way; the best is compared.
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// The demo dashboard over the data set: full refresh, refresh after a write, and opens.
    Dashboard {
        /// Contacts in the data set (companies, deals and activities in proportion).
        #[arg(long, default_value_t = 100_000)]
        scale: usize,
        /// Timed forced refreshes (every widget recomputed).
        #[arg(long, default_value_t = 5)]
        refreshes: usize,
        /// Timed opens of the data endpoint.
        #[arg(long, default_value_t = 500)]
        opens: usize,
    },
    /// Model training and scoring speed on a synthetic matrix (no database).
    Models {
        /// Labelled rows to train on (80 % train, 20 % validate).
        #[arg(long, default_value_t = 500_000)]
        rows: usize,
        /// Numeric features beside one 8-valued category.
        #[arg(long, default_value_t = 23)]
        features: usize,
        /// Rows scored in the batch measurements.
        #[arg(long, default_value_t = 1_000_000)]
        score_rows: usize,
    },
    /// A three-step workflow's trigger-to-completion latency and throughput.
    Workflows {
        /// Triggering writes (deals moved to closed_won) per second.
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Deals won in one bulk update afterwards, for throughput (0: none).
        #[arg(long, default_value_t = 2_000)]
        burst: usize,
        /// Workers driving runs (as `ONEO_WORKFLOW_WORKERS`).
        #[arg(long, default_value_t = 4)]
        workers: usize,
    },
    /// The standard CRM reports on the lake against the same SQL on PostgreSQL: answers
    /// checked equal, p50 latencies and ratios.
    #[command(alias = "reports")]
    Compare {
        /// Contacts in the data set (companies, deals and activities in proportion).
        #[arg(long, default_value_t = 100_000)]
        scale: usize,
        /// Timed runs per report, after one warm-up run.
        #[arg(long, default_value_t = 10)]
        runs: usize,
        /// The server's column cache (MiB), as `ONEO_COLUMN_CACHE_MB`; 0 reads every scan
        /// from the lake's files.
        #[arg(long, default_value_t = 4096)]
        column_cache_mb: usize,
        /// Most memory one query may hold (MiB), as `ONEO_QUERY_MEMORY_MB`.
        #[arg(long, default_value_t = 1024)]
        query_memory_mb: usize,
        /// Only the reports whose name contains this (for profiling one of them).
        #[arg(long)]
        only: Option<String>,
    },
}

/// A `--keep` name: it becomes part of a database name, so letters, digits and `_` only.
fn keep_name(name: &str) -> Result<String, String> {
    if !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        Ok(name.to_string())
    } else {
        Err("1 to 40 lowercase letters, digits or `_`".into())
    }
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn api_bench(
    base: &str,
    key: &str,
    single: usize,
    bulk_requests: usize,
    batch: usize,
) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let auth = format!("Bearer {key}");
    let deal = |i: usize| json!({"name": format!("Deal {i}"), "amount": format!("{}.{:02}", 1000 + i * 7 % 90_000, i % 100), "stage": "proposal", "close_date": "2026-12-31", "probability": 40, "owner": "Ann"});

    // The first WARM_UP requests warm the connection pool and the server's caches; only the
    // rest are timed.
    const WARM_UP: usize = 100;
    let mut lat = Vec::with_capacity(single);
    for i in 0..WARM_UP + single {
        let t = Instant::now();
        let r = client
            .post(format!("{base}/v1/records/deal"))
            .header("authorization", &auth)
            .json(&deal(i))
            .send()
            .await?;
        let status = r.status().as_u16();
        let body = r.text().await?;
        if i >= WARM_UP {
            lat.push(t.elapsed());
        }
        ensure!(status == 201, "create failed with {status}: {body}");
    }
    lat.sort();
    println!(
        "single-record create  n={single}  p50={:.2} ms  p99={:.2} ms  max={:.2} ms",
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat[lat.len() - 1].as_secs_f64() * 1e3
    );

    let bodies: Vec<Value> = (0..bulk_requests)
        .map(|r| json!({"operation": "create", "records": (0..batch).map(|i| {
            let n = r * batch + i;
            json!({"name": format!("Company {n}"), "domain": format!("c{n}.example.com"), "industry": "technology", "employees": n % 5000, "annual_revenue": format!("{}.00", n * 13 % 10_000_000), "country": "DE"})
        }).collect::<Vec<_>>()}))
        .collect();
    let t = Instant::now();
    for body in &bodies {
        let r = client
            .post(format!("{base}/v1/records/company/bulk"))
            .header("authorization", &auth)
            .json(body)
            .send()
            .await?;
        let status = r.status().as_u16();
        let text = r.text().await?;
        ensure!(
            status == 200,
            "bulk failed with {status}: {}",
            &text[..text.len().min(300)]
        );
    }
    let secs = t.elapsed().as_secs_f64();
    let total = bulk_requests * batch;
    println!(
        "bulk create           {bulk_requests} requests x {batch} records  {:.0} records/s  ({:.1} ms per request)",
        total as f64 / secs,
        secs * 1e3 / bulk_requests as f64
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Models {
        rows,
        features,
        score_rows,
    } = cli.command
    {
        return models::bench(rows, features, score_rows);
    }
    let db_name = match &cli.keep {
        Some(name) => format!("oneo_bench_{name}"),
        None => format!("oneo_bench_{}", uuid::Uuid::new_v4().simple()),
    };
    let mut admin = PgConnection::connect(&format!("{}/postgres", cli.pg))
        .await
        .context("connecting to PostgreSQL")?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&db_name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
            .execute(&mut admin)
            .await?;
    }
    let result = async {
        let db = DatabaseConfig {
            database_url: format!("{}/{db_name}", cli.pg),
            db_max_connections: 20,
        };
        let http = HttpConfig {
            http_addr: "127.0.0.1:0".parse()?,
            request_timeout_secs: 60,
        };
        let mut app = Application::build(&db, &http).await?;
        if let Command::Workflows { workers, .. } = &cli.command {
            // As `oneo serve` runs them: the intake on a slot of its own, and the workers.
            app = app
                .with_workflow_intake(oneo_api::workflow_intake::IntakeConfig {
                    database_url: db.database_url.clone(),
                    slot: format!("{db_name}_wf"),
                    publication: "oneo_changes".into(),
                })
                .with_workflows(
                    oneo_api::config::WorkflowConfig {
                        workflow_workers: *workers,
                        ..Default::default()
                    },
                    &oneo_api::config::DeliveryConfig::default(),
                )?;
        }
        let created = bench_workspace(app.pool()).await?;
        let base = format!("http://{}", app.local_addr());
        let pool = app.pool().clone();
        let app_pool = &pool;
        let stop = CancellationToken::new();
        let server = tokio::spawn(app.run_until_stopped(stop.clone()));
        let lake = match &cli.keep {
            Some(name) => Lake::Kept(std::env::temp_dir().join(format!("oneo-bench-{name}"))),
            None => Lake::Temporary(tempfile::tempdir()?),
        };
        let ingest_cfg =
            oneo_ingest::IngestConfig::new(&db.database_url, lake.path().to_string_lossy());
        let outcome = match cli.command {
            // Run above, before any database.
            Command::Models { .. } => Ok(()),
            Command::Api {
                single,
                bulk_requests,
                batch,
            } => api_bench(&base, &created.api_key, single, bulk_requests, batch).await,
            Command::Compare {
                scale,
                runs,
                column_cache_mb,
                query_memory_mb,
                only,
            } => {
                reports::compare(
                    app_pool,
                    &db,
                    ingest_cfg,
                    created.workspace_id,
                    &base,
                    &created.api_key,
                    reports::Size {
                        scale,
                        runs,
                        column_cache: column_cache_mb << 20,
                        query_memory: query_memory_mb << 20,
                        only,
                    },
                )
                .await
            }
            Command::Dashboard {
                scale,
                refreshes,
                opens,
            } => {
                dashboard::bench(
                    app_pool,
                    &db,
                    ingest_cfg,
                    created.workspace_id,
                    &created.api_key,
                    &base,
                    dashboard::Size {
                        scale,
                        refreshes,
                        opens,
                    },
                )
                .await
            }
            Command::FlightStream { rows, runs } => {
                flight::stream(
                    app_pool,
                    &db,
                    ingest_cfg,
                    &base,
                    created.workspace_id,
                    &created.api_key,
                    flight::Size { rows, runs },
                )
                .await
            }
            Command::Workflows {
                rate,
                seconds,
                burst,
                ..
            } => {
                workflows::bench(
                    app_pool,
                    &base,
                    &created.api_key,
                    workflows::Load {
                        rate,
                        seconds,
                        burst,
                    },
                )
                .await
            }
            Command::IngestBacklog { scale } => {
                ingest::backlog(app_pool, ingest_cfg, created.workspace_id, scale).await
            }
            Command::IngestFreshness {
                rate,
                batch,
                seconds,
            } => {
                ingest::freshness(
                    app_pool,
                    ingest_cfg,
                    &base,
                    &created.api_key,
                    created.workspace_id,
                    ingest::Load {
                        rate,
                        batch,
                        seconds,
                    },
                )
                .await
            }
        };
        stop.cancel();
        server.await??;
        outcome
    }
    .await;
    if cli.keep.is_some() {
        eprintln!("kept the database {db_name} and its lake for the next run");
        return result;
    }
    // An ingest bench leaves its replication slot; the database can't be dropped under it.
    sqlx::query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active")
        .bind(&db_name)
        .execute(&mut admin)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    result
}

/// Where the bench's lake lives: a folder dropped afterwards, or one kept with the database.
enum Lake {
    Temporary(tempfile::TempDir),
    Kept(std::path::PathBuf),
}

impl Lake {
    fn path(&self) -> &std::path::Path {
        match self {
            Lake::Temporary(dir) => dir.path(),
            Lake::Kept(path) => path,
        }
    }
}

/// The workspace "Bench" with a fresh admin key: created in a new database, reused (with a
/// new key) in a kept one.
async fn bench_workspace(
    pool: &sqlx::PgPool,
) -> anyhow::Result<oneo_api::db::workspace::CreatedWorkspace> {
    let existing: Option<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM oneo.workspaces WHERE name = 'Bench' ORDER BY id LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    let Some(workspace_id) = existing else {
        return oneo_api::db::workspace::create_workspace(pool, "Bench")
            .await
            .map_err(|e| anyhow::anyhow!("{e}"));
    };
    let mut conn = pool.acquire().await?;
    let (_, api_key) = oneo_api::db::workspace::create_key(
        &mut conn,
        workspace_id,
        "bench",
        oneo_api::auth::Role::Admin,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(oneo_api::db::workspace::CreatedWorkspace {
        workspace_id,
        api_key,
    })
}
