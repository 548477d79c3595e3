//! `oneo demo`: a running platform from an empty PostgreSQL.
//!
//! It creates the database if needed, migrates, creates (or reuses) the "Demo" workspace,
//! loads the sample data into a new one, starts ingest and waits until the lake holds every
//! change, mints a fresh admin key, and serves. Models and dashboards join here as those
//! capabilities land.
//!
//! It runs on `DATABASE_URL` (default: `oneo_demo` on the local server) when a PostgreSQL with
//! `wal_level=logical` answers there; otherwise on an embedded cluster in `./data/pg` made
//! from the machine's PostgreSQL binaries, which it starts and stops itself.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use oneo_api::Application;
use oneo_api::config::{DatabaseConfig, FlightConfig, HttpConfig, LakeConfig};
use sqlx::ConnectOptions;
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;

use crate::embedded::EmbeddedPostgres;
use crate::shutdown::shutdown_token;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/oneo_demo";
/// Where the embedded cluster lives when the demo needs one.
const EMBEDDED_DIR: &str = "data/pg";

/// The demo workspace's id, creating it with the standard objects on first run.
async fn demo_workspace(pool: &PgPool) -> anyhow::Result<(String, bool)> {
    let existing: Option<String> = sqlx::query_scalar(
        "SELECT id::text FROM oneo.workspaces WHERE name = 'Demo' ORDER BY created_at LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    if let Some(id) = existing {
        return Ok((id, false));
    }
    let created = oneo_api::db::workspace::create_workspace(pool, "Demo")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((created.workspace_id.to_string(), true))
}

/// What answers at the demo's URL.
enum Probe {
    /// A server with logical decoding: the demo runs there.
    Ready,
    /// A server whose `wal_level` is not `logical` (the value it has).
    NotLogical(String),
    /// Nothing (connection refused or no answer in time).
    Nothing(String),
}

/// Asks the server at `url` (its `postgres` database, as the demo's may not exist yet).
async fn probe(url: &str) -> anyhow::Result<Probe> {
    let opts: PgConnectOptions = url
        .parse()
        .context("DATABASE_URL is not a PostgreSQL URL")?;
    let admin = opts.database("postgres");
    let mut conn = match tokio::time::timeout(Duration::from_secs(5), admin.connect()).await {
        Err(_) => return Ok(Probe::Nothing("no answer within 5 s".into())),
        Ok(Err(sqlx::Error::Io(e))) => return Ok(Probe::Nothing(e.to_string())),
        // A server answered but refused us (password, role): that is for the user to fix,
        // not to hide behind another database.
        Ok(Err(e)) => return Err(e).with_context(|| format!("connecting to {url}")),
        Ok(Ok(conn)) => conn,
    };
    let level: String = sqlx::query_scalar("SHOW wal_level")
        .fetch_one(&mut conn)
        .await?;
    Ok(if level == "logical" {
        Probe::Ready
    } else {
        Probe::NotLogical(level)
    })
}

/// The database the demo runs on: `DATABASE_URL` (or the default) when a server with logical
/// decoding answers there, else the embedded cluster in `./data/pg`, which it then owns.
async fn choose_database() -> anyhow::Result<(String, Option<EmbeddedPostgres>)> {
    let explicit = std::env::var("DATABASE_URL").ok();
    let url = explicit.clone().unwrap_or_else(|| DEFAULT_URL.to_string());
    let why = match probe(&url).await? {
        Probe::Ready => return Ok((url, None)),
        Probe::NotLogical(level) => format!(
            "the PostgreSQL at {url} runs with wal_level={level}, and ingest needs logical \
             (to use it: ALTER SYSTEM SET wal_level = 'logical', then restart it)"
        ),
        Probe::Nothing(e) => format!("no PostgreSQL answers at {url} ({e})"),
    };
    eprintln!("{why}; running on an embedded PostgreSQL instead");
    let cluster =
        tokio::task::spawn_blocking(|| EmbeddedPostgres::start(Path::new(EMBEDDED_DIR))).await??;
    let name = explicit
        .and_then(|u| u.parse::<PgConnectOptions>().ok())
        .and_then(|o| o.get_database().map(str::to_string))
        .unwrap_or_else(|| "oneo_demo".to_string());
    Ok((cluster.url(&name), Some(cluster)))
}

/// Creates the database named in `url` when the server has none by that name.
async fn ensure_database(url: &str) -> anyhow::Result<()> {
    let opts: PgConnectOptions = url
        .parse()
        .context("DATABASE_URL is not a PostgreSQL URL")?;
    let name = opts.get_database().unwrap_or("postgres").to_string();
    let mut admin = opts
        .clone()
        .database("postgres")
        .connect()
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        // CREATE DATABASE takes no parameters; the name is quoted by PostgreSQL itself.
        let stmt: String = sqlx::query_scalar("SELECT format('CREATE DATABASE %I', $1::text)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
        sqlx::query(sqlx::AssertSqlSafe(stmt))
            .execute(&mut admin)
            .await?;
        eprintln!("created database {name}");
    }
    Ok(())
}

/// The report the demo suggests: open pipeline by stage, with subtotals.
const DEMO_REPORT: &str = r#"{"type": "summary", "object": "deal", "groupings": [{"field": "stage"}, {"field": "company.industry"}], "aggregates": [{"fn": "sum", "field": "amount"}, {"fn": "count"}], "sort": [{"by": "sum_amount", "desc": true}]}"#;

pub async fn run(
    http: HttpConfig,
    flight: FlightConfig,
    lake: LakeConfig,
    (delivery, workflows): (
        oneo_api::config::DeliveryConfig,
        oneo_api::config::WorkflowConfig,
    ),
    scale: usize,
    seed: u64,
) -> anyhow::Result<()> {
    let (url, embedded) = choose_database().await?;
    ensure_database(&url).await?;
    let db = DatabaseConfig {
        database_url: url.clone(),
        db_max_connections: 20,
    };
    let app = Application::build(&db, &http).await?;
    // Before loading anything: ingest can't run without logical decoding.
    oneo_ingest::check_wal_level(app.pool()).await?;
    let (workspace, created) = demo_workspace(app.pool()).await?;
    let ws_id = workspace.parse().context("workspace id")?;
    let shutdown = shutdown_token();
    let (app, ingest) = crate::serve::start_ingest(app, &db, &lake, &shutdown)?;
    let app = app
        .with_workflows(workflows, &delivery)?
        .with_deliveries(delivery)?;
    crate::serve::wait_for_lake(&app, &ingest, &shutdown).await?;
    if created {
        // Loaded while ingest streams, so the lake's history holds every change (a deal's
        // stages one by one), which the models learn from point in time.
        eprintln!("loading sample data: {scale} contacts (seed {seed})");
        crate::generate::run(app.pool(), ws_id, scale, seed, None).await?;
        crate::serve::wait_for_lake(&app, &ingest, &shutdown).await?;
    }
    eprintln!("training and deploying the sample models");
    let models = app
        .ensure_demo_models(ws_id)
        .await
        .map_err(|e| anyhow::anyhow!("the sample models: {e}"))?;
    let flight = app.flight_server(&flight).await?;
    let mut conn = app.pool().acquire().await?;
    let (_, key) =
        oneo_api::db::workspace::create_key(&mut conn, ws_id, "demo", oneo_api::auth::Role::Admin)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    drop(conn);
    let base = format!("http://{}", app.local_addr());
    eprintln!("materializing the sample dashboard");
    let spec: serde_json::Value = serde_json::from_str(include_str!("demo_dashboard.json"))?;
    let dashboard = app
        .ensure_dashboard(ws_id, spec)
        .await
        .map_err(|e| anyhow::anyhow!("the sample dashboard: {e}"))?;
    println!("Oneo demo is running.");
    println!(
        "  workspace: {workspace}{}",
        if created { " (new)" } else { " (reused)" }
    );
    println!("  API key:   {key}");
    println!("  REST:      {base}/v1   (OpenAPI: {base}/openapi.json)");
    println!("  try:       curl -s -H 'Authorization: Bearer {key}' {base}/v1/objects");
    println!(
        "  lake:      {} (ingest: curl -s -H 'Authorization: Bearer {key}' {base}/v1/ingest/status)",
        ingest.handle.lake().root()
    );
    println!(
        "  report:    curl -s -H 'Authorization: Bearer {key}' -H 'content-type: application/json' {base}/v1/reports/run \\\n               -d '{DEMO_REPORT}'"
    );
    println!(
        "  SQL:       curl -s -H 'Authorization: Bearer {key}' -H 'content-type: application/json' {base}/v1/sql \\\n               -d '{{\"sql\": \"SELECT stage, count(*) FROM crm.deal GROUP BY stage\"}}'"
    );
    let scheme = if flight.uses_tls() {
        "grpc+tls"
    } else {
        "grpc"
    };
    println!(
        "  Flight SQL: {scheme}://{}   (any user name, the API key as password; or `authorization: Bearer <key>`)",
        flight.local_addr()
    );
    println!(
        "  e.g.:      python3 -c \"import adbc_driver_flightsql.dbapi as f; c = f.connect('{scheme}://{}', db_kwargs={{'username': 'demo', 'password': '{key}'}}, autocommit=True); cur = c.cursor(); cur.execute('SELECT stage, count(*) FROM crm.deal GROUP BY stage'); print(cur.fetch_arrow_table())\"",
        flight.local_addr()
    );
    println!("  dashboard: {base}/dashboards/{dashboard}?key={key}");
    println!(
        "             (data: curl -s -H 'Authorization: Bearer {key}' {base}/v1/dashboards/{dashboard}/data; PDF: .../export?format=pdf)"
    );
    for (model, outcome) in &models {
        match outcome {
            Ok(_) => println!(
                "  model:     {} ({}, version {}): curl -s -H 'Authorization: Bearer {key}' {base}/v1/models/{}",
                model.name,
                model.kind,
                model.deployed.unwrap_or_default(),
                model.id
            ),
            Err(why) => println!(
                "  model:     {} ({}) not deployed: {why}",
                model.name, model.kind
            ),
        }
    }
    println!(
        "  scores:    SELECT model, record_id, score FROM oneo.scores ORDER BY score DESC LIMIT 10   (/v1/sql, Flight SQL; one record: {base}/v1/scores/deal/<id>)"
    );
    println!("Ctrl-C stops it.");
    crate::serve::serve(app, Some(flight), Some(ingest), shutdown).await?;
    if let Some(cluster) = embedded {
        tokio::task::spawn_blocking(move || cluster.stop()).await??;
    }
    Ok(())
}
