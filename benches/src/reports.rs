//! `compare`: the standard CRM reports, end to end through `/v1/reports/run` on the lake,
//! against the same questions as SQL on PostgreSQL over plain typed, indexed tables (`rel`, the
//! relational copy of the same data), in one run: p50 latencies and their ratio, and every
//! answer checked equal to PostgreSQL's, value by value.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use oneo_api::Application;
use oneo_api::config::{DatabaseConfig, HttpConfig};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::percentile;
use oneo_benches::answer;

struct Standard {
    name: &'static str,
    spec: Value,
    /// The same question in SQL, with the same rows and values (subtotals included where
    /// the report has them, as ROLLUP or CUBE), columns in the order of the report's
    /// flattened answer.
    sql: &'static str,
    /// Compare only the report's `rows` (a top-N question: its subtotals and total are
    /// extras the SQL doesn't ask for).
    rows_only: bool,
}

const OPEN: [&str; 4] = ["prospecting", "qualification", "proposal", "negotiation"];

fn standard_reports() -> Vec<Standard> {
    vec![
        Standard {
            name: "pipeline by stage x owner",
            spec: json!({"type": "summary", "object": "deal", "groupings": [{"field": "stage"}, {"field": "owner"}],
                         "filters": [{"field": "stage", "op": "in", "value": OPEN}],
                         "aggregates": [{"fn": "sum", "field": "amount"}, {"fn": "count"}]}),
            sql: "SELECT stage, owner, sum(amount), count(*) FROM rel.deal
                   WHERE stage IN ('prospecting', 'qualification', 'proposal', 'negotiation')
                   GROUP BY ROLLUP (stage, owner) ORDER BY 1, 2",
            rows_only: false,
        },
        Standard {
            name: "stage x close quarter matrix",
            spec: json!({"type": "matrix", "object": "deal", "groupings": [{"field": "stage"}],
                         "column_groupings": [{"field": "close_date", "date": "quarter"}],
                         "aggregates": [{"fn": "sum", "field": "amount"}, {"fn": "count"}]}),
            sql: "SELECT stage, date_trunc('quarter', close_date)::date, sum(amount), count(*) FROM rel.deal
                   GROUP BY CUBE (stage, date_trunc('quarter', close_date)::date) ORDER BY 1, 2",
            rows_only: false,
        },
        Standard {
            name: "won rate by lead source",
            spec: json!({"type": "summary", "object": "deal",
                         "groupings": [{"field": "lead_source"},
                                       {"field": "stage", "buckets": [{"label": "won", "values": ["closed_won"]}], "other": "lost", "as": "outcome"}],
                         "filters": [{"field": "stage", "op": "in", "value": ["closed_won", "closed_lost"]}],
                         "aggregates": [{"fn": "count", "compare": "percent_of_parent"}]}),
            sql: "SELECT lead_source, outcome, n, 100.0 * n / sum(n) OVER (PARTITION BY lead_source)
                    FROM (SELECT lead_source, CASE WHEN stage = 'closed_won' THEN 'won' ELSE 'lost' END AS outcome, count(*) AS n
                            FROM rel.deal WHERE stage IN ('closed_won', 'closed_lost') GROUP BY 1, 2) g
                  UNION ALL SELECT lead_source, NULL, count(*), 100.0 * count(*) / sum(count(*)) OVER ()
                              FROM rel.deal WHERE stage IN ('closed_won', 'closed_lost') GROUP BY 1
                  UNION ALL SELECT NULL, NULL, count(*), NULL FROM rel.deal WHERE stage IN ('closed_won', 'closed_lost')",
            rows_only: false,
        },
        Standard {
            name: "activities per deal across three objects",
            spec: json!({"type": "summary", "object": "activity", "groupings": [{"field": "deal.company.industry"}],
                         "aggregates": [{"fn": "count"}, {"fn": "count_distinct", "field": "deal"}]}),
            sql: "SELECT c.industry, count(*), count(DISTINCT a.deal_id) FROM rel.activity a
                    LEFT JOIN rel.deal d ON d.id = a.deal_id LEFT JOIN rel.company c ON c.id = d.company_id
                   GROUP BY ROLLUP (c.industry) ORDER BY 1",
            rows_only: false,
        },
        Standard {
            name: "top 20 companies by open pipeline",
            spec: json!({"type": "summary", "object": "deal", "groupings": [{"field": "company"}, {"field": "company.name"}],
                         "filters": [{"field": "stage", "op": "in", "value": OPEN}],
                         "aggregates": [{"fn": "sum", "field": "amount", "as": "pipeline"}],
                         "sort": [{"by": "pipeline", "desc": true}], "limit": 20}),
            sql: "SELECT c.id, c.name, sum(d.amount) AS pipeline FROM rel.deal d LEFT JOIN rel.company c ON c.id = d.company_id
                   WHERE d.stage IN ('prospecting', 'qualification', 'proposal', 'negotiation')
                   GROUP BY c.id, c.name ORDER BY pipeline DESC NULLS LAST LIMIT 20",
            rows_only: true,
        },
        Standard {
            name: "monthly activity cohort by lead source",
            spec: json!({"type": "summary", "object": "activity",
                         "groupings": [{"field": "occurred_at", "date": "month"}, {"field": "contact.lead_source"}],
                         "aggregates": [{"fn": "count"}]}),
            sql: "SELECT date_trunc('month', a.occurred_at AT TIME ZONE 'UTC'), p.lead_source, count(*)
                    FROM rel.activity a LEFT JOIN rel.contact p ON p.id = a.contact_id
                   GROUP BY ROLLUP (1, 2) ORDER BY 1, 2",
            rows_only: false,
        },
        Standard {
            name: "open deals with no activity in 30 days",
            spec: json!({"type": "tabular", "object": "deal", "columns": ["name", "amount", "owner", "company.name"],
                         "filters": [{"field": "stage", "op": "in", "value": OPEN}],
                         "related": [{"object": "activity", "via": "deal", "without": true,
                                      "filters": [{"field": "occurred_at", "op": "equals", "value": "LAST_N_DAYS:30"}]}],
                         "sort": [{"by": "amount", "desc": true}], "limit": 1000}),
            sql: "SELECT d.name, d.amount, d.owner, c.name FROM rel.deal d LEFT JOIN rel.company c ON c.id = d.company_id
                   WHERE d.stage IN ('prospecting', 'qualification', 'proposal', 'negotiation')
                     AND NOT EXISTS (SELECT 1 FROM rel.activity a WHERE a.deal_id = d.id
                                     AND a.occurred_at >= (now() AT TIME ZONE 'UTC')::date - 29
                                     AND a.occurred_at < (now() AT TIME ZONE 'UTC')::date + 1)
                   ORDER BY d.amount DESC NULLS LAST LIMIT 1000",
            rows_only: false,
        },
        Standard {
            name: "median deal cycle by owner",
            spec: json!({"type": "summary", "object": "deal", "groupings": [{"field": "owner"}],
                         "filters": [{"field": "stage", "op": "in", "value": ["closed_won", "closed_lost"]}],
                         "aggregates": [{"fn": "median", "field": "cycle_days"}]}),
            sql: "SELECT owner, percentile_cont(0.5) WITHIN GROUP (ORDER BY close_date - opened_on) FROM rel.deal
                   WHERE stage IN ('closed_won', 'closed_lost') GROUP BY ROLLUP (owner) ORDER BY 1",
            rows_only: false,
        },
    ]
}

/// How big a comparison is: the data set's scale, timed runs per report, and the server's
/// column cache in bytes (0: none).
pub struct Size {
    pub scale: usize,
    pub runs: usize,
    pub column_cache: usize,
    /// Most memory one query may hold, in bytes.
    pub query_memory: usize,
    /// Only the reports whose name contains this.
    pub only: Option<String>,
}

/// Loads the data set (and its relational copy), lets ingest catch up, then times each
/// report `runs` times both ways after one untimed warm-up run each, and checks the answers
/// equal; any that differ fail the run after the table is printed.
pub async fn compare(
    pool: &PgPool,
    db: &DatabaseConfig,
    cfg: oneo_ingest::IngestConfig,
    workspace: Uuid,
    api: &str,
    key: &str,
    size: Size,
) -> anyhow::Result<()> {
    let Size {
        scale,
        runs,
        column_cache,
        query_memory,
        only,
    } = size;
    ensure_loaded(pool, workspace, api, key, scale, "reports").await?;

    let (handle, stop, task) = ingest_until_caught_up(pool, cfg, "reports").await?;
    // The lake as ingest left it: one file per table per batch, not yet compacted.

    let http = HttpConfig {
        http_addr: "127.0.0.1:0".parse()?,
        request_timeout_secs: 120,
    };
    let app = Application::build(db, &http)
        .await?
        .with_ingest(handle.clone())
        .with_lake({
            let mut cfg = oneo_query::QueryConfig::new(handle.lake().root().clone())
                .with_column_cache(column_cache);
            cfg.memory_limit_bytes = query_memory;
            cfg
        });
    let base = format!("http://{}", app.local_addr());
    let server = tokio::spawn(app.run_until_stopped(stop.clone()));
    let client = reqwest::Client::new();

    println!(
        "{:<44} {:>12} {:>14} {:>8}  answers",
        "report", "Oneo p50", "PostgreSQL p50", "ratio"
    );
    let mut differences = Vec::new();
    let mut log_ratio = 0.0;
    let reports: Vec<Standard> = standard_reports()
        .into_iter()
        .filter(|r| only.as_deref().is_none_or(|o| r.name.contains(o)))
        .collect();
    for r in &reports {
        let mut oneo = Vec::with_capacity(runs);
        let mut answer = Value::Null;
        for i in 0..=runs {
            let t = Instant::now();
            let resp = client
                .post(format!("{base}/v1/reports/run"))
                .bearer_auth(key)
                .json(&r.spec)
                .send()
                .await?;
            let status = resp.status().as_u16();
            answer = resp.json().await?;
            ensure!(status == 200, "{}: {status} {answer}", r.name);
            if i > 0 {
                oneo.push(t.elapsed());
            }
        }
        let mut pg = Vec::with_capacity(runs);
        for i in 0..=runs {
            let t = Instant::now();
            sqlx::query(sqlx::AssertSqlSafe(r.sql))
                .fetch_all(pool)
                .await?;
            if i > 0 {
                pg.push(t.elapsed());
            }
        }
        // Checked outside the timed runs: the check's own query renders every value as text.
        let want = answer::pg_rows(pool, r.sql).await?;
        let groupings = r.spec["groupings"].as_array().map_or(0, Vec::len);
        let got = if r.rows_only {
            answer::flatten(&json!({"rows": answer["rows"]}), 0)
        } else {
            answer::flatten(&answer, groupings)
        };
        let verdict = match answer::difference(got, want) {
            None => "equal",
            Some(d) => {
                differences.push(format!("{}: Oneo against PostgreSQL: {d}", r.name));
                "DIFFER"
            }
        };
        oneo.sort();
        pg.sort();
        let (o, p) = (percentile(&oneo, 0.5), percentile(&pg, 0.5));
        let ratio = p.as_secs_f64() / o.as_secs_f64();
        log_ratio += ratio.ln();
        println!(
            "{:<44} {:>9.1} ms {:>11.1} ms {:>7.1}x  {verdict}",
            r.name,
            o.as_secs_f64() * 1e3,
            p.as_secs_f64() * 1e3,
            ratio
        );
    }
    println!(
        "geometric mean speed-up over PostgreSQL: {:.2}x ({} reports, {runs} runs each, scale {scale}, column cache {} MiB, query memory {} MiB)",
        (log_ratio / reports.len() as f64).exp(),
        reports.len(),
        column_cache >> 20,
        query_memory >> 20
    );
    stop.cancel();
    server.await??;
    drop(task.await);
    ensure!(differences.is_empty(), "{}", differences.join("\n"));
    Ok(())
}

/// Loads the data set at `scale` (and its relational copy) into the workspace, unless a kept
/// database holds it already; the deal cycle fields are added first, as an admin would.
pub(crate) async fn ensure_loaded(
    pool: &PgPool,
    workspace: Uuid,
    api: &str,
    key: &str,
    scale: usize,
    bench: &str,
) -> anyhow::Result<()> {
    // A kept database (`--keep`) may hold the data set already: the relational copy is
    // written last, so its presence means the load finished.
    let copied: bool = sqlx::query_scalar("SELECT to_regclass('rel.contact') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    let loaded_contacts: Option<i64> = if copied {
        Some(
            sqlx::query_scalar("SELECT count(*) FROM rel.contact")
                .fetch_one(pool)
                .await?,
        )
    } else {
        None
    };
    match loaded_contacts {
        Some(n) if n == scale as i64 => {
            eprintln!("{bench}: scale {scale} already loaded; waiting for the lake");
        }
        Some(n) => bail!(
            "the kept database holds the data set at scale {n}, not {scale}: run with that scale or another --keep name"
        ),
        None => {
            // The deal cycle needs the day a deal opened: not a standard field, so the bench
            // adds it (and the cycle as a formula) the way a workspace admin would.
            let client = reqwest::Client::new();
            for field in [
                json!({"api_name": "opened_on", "label": "Opened on", "type": "date"}),
                json!({"api_name": "cycle_days", "label": "Cycle (days)", "type": "formula",
                       "expression": "DAYS_BETWEEN(opened_on, close_date)"}),
            ] {
                let resp = client
                    .post(format!("{api}/v1/objects/deal/fields"))
                    .bearer_auth(key)
                    .json(&field)
                    .send()
                    .await?;
                let status = resp.status().as_u16();
                ensure!(
                    status == 201,
                    "adding {field}: {status} {}",
                    resp.text().await?
                );
            }
            let data = tokio::task::spawn_blocking(move || oneo_data::generate(scale, 42)).await?;
            let t = Instant::now();
            let loaded = oneo_api::load::load(pool, workspace, &data, &|_, _, _| {})
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            oneo_api::relational::write_relational_copy(pool, "rel", &data, &loaded)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!(
                "{bench}: scale {scale} loaded in {:.1} s; waiting for the lake",
                t.elapsed().as_secs_f64()
            );
        }
    }

    Ok(())
}

/// Starts ingest and waits until the lake holds everything committed so far; the running
/// pipeline, its stop token and its task.
pub(crate) async fn ingest_until_caught_up(
    pool: &PgPool,
    cfg: oneo_ingest::IngestConfig,
    bench: &str,
) -> anyhow::Result<(
    oneo_ingest::IngestHandle,
    CancellationToken,
    tokio::task::JoinHandle<Result<(), oneo_ingest::IngestError>>,
)> {
    let ingest = oneo_ingest::Ingest::new(cfg, pool.clone())?;
    let handle = ingest.handle();
    let stop = CancellationToken::new();
    let task = tokio::spawn(ingest.run(stop.clone()));
    let mark: String =
        sqlx::query_scalar("SELECT pg_logical_emit_message(true, 'oneo.bench', '')::text")
            .fetch_one(pool)
            .await?;
    let mark = oneo_ingest::parse_lsn(&mark).unwrap_or(u64::MAX);
    let t = Instant::now();
    while handle.status.acknowledged().is_none_or(|a| a < mark) {
        if t.elapsed() > Duration::from_secs(3600) {
            bail!("the lake did not catch up within an hour");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "{bench}: lake caught up in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok((handle, stop, task))
}
