//! Streaming a large result to a client: the same rows over Flight SQL from the lake and as
//! `COPY (…) TO STDOUT (FORMAT binary)` from PostgreSQL, in one run; rows/s and MB/s each.
//!
//! The rows are an `event` object of ten columns, filled in PostgreSQL by one
//! `INSERT … SELECT` per million rows (not through the API: this measures reading, and
//! `api` measures writing) and then ingested into the lake. Flight SQL is timed twice: with
//! tonic's default client, and with a client that accepts 1 MiB HTTP/2 frames (fewer frames,
//! reads and writes for the same bytes; each gRPC client chooses its own).

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use arrow_flight::decode::DecodedPayload;
use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::TryStreamExt;
use oneo_api::Application;
use oneo_api::config::{DatabaseConfig, FlightConfig, HttpConfig};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

const CHUNK: usize = 1_000_000;

/// The object the bench streams: ten columns with the system ones.
fn event_object() -> serde_json::Value {
    json!({"api_name": "event", "label": "Event", "fields": [
        {"api_name": "name", "label": "Name", "type": "text"},
        {"api_name": "amount", "label": "Amount", "type": "currency"},
        {"api_name": "quantity", "label": "Quantity", "type": "number"},
        {"api_name": "happened_on", "label": "Happened on", "type": "date"},
        {"api_name": "channel", "label": "Channel", "type": "picklist", "options": ["web", "email", "phone", "event"]},
        {"api_name": "done", "label": "Done", "type": "boolean"},
        {"api_name": "email", "label": "Email", "type": "email"}
    ]})
}

/// How much to stream, and how often.
pub struct Size {
    pub rows: usize,
    pub runs: usize,
}

pub async fn stream(
    pool: &PgPool,
    db: &DatabaseConfig,
    cfg: oneo_ingest::IngestConfig,
    base: &str,
    workspace: Uuid,
    key: &str,
    Size { rows, runs }: Size,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{base}/v1/objects"))
        .bearer_auth(key)
        .json(&event_object())
        .send()
        .await?;
    ensure!(
        resp.status().as_u16() == 201,
        "object: {}",
        resp.text().await?
    );
    let objects = oneo_api::db::schema::load_objects(pool, workspace, None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let event = objects
        .iter()
        .find(|o| o.api_name == "event")
        .context("the event object")?;
    let col =
        |name: &str| -> anyhow::Result<String> { Ok(event.field(name).context("field")?.column()) };
    let table = event.table();
    let insert = format!(
        "INSERT INTO {table} (id, {name}, {amount}, {quantity}, {day}, {channel}, {done}, {email})
         SELECT gen_random_uuid(), 'event ' || i, (i % 100000) / 100.0, i % 977, DATE '2024-01-01' + (i % 1000)::int,
                (ARRAY['web','email','phone','event'])[1 + (i % 4)::int], i % 3 = 0, 'user' || (i % 50000) || '@example.com'
           FROM generate_series($1::bigint, $2::bigint) AS i",
        name = col("name")?,
        amount = col("amount")?,
        quantity = col("quantity")?,
        day = col("happened_on")?,
        channel = col("channel")?,
        done = col("done")?,
        email = col("email")?,
    );
    let t = Instant::now();
    let mut from = 1usize;
    while from <= rows {
        let to = (from + CHUNK - 1).min(rows);
        sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
            .bind(from as i64)
            .bind(to as i64)
            .execute(pool)
            .await?;
        eprintln!("flight-stream: {to} of {rows} rows written");
        from = to + 1;
    }
    eprintln!(
        "flight-stream: {rows} rows in PostgreSQL in {:.1} s; ingesting",
        t.elapsed().as_secs_f64()
    );

    let (handle, stop, task) =
        crate::reports::ingest_until_caught_up(pool, cfg, "flight-stream").await?;

    let http_cfg = HttpConfig {
        http_addr: "127.0.0.1:0".parse()?,
        request_timeout_secs: 600,
    };
    let mut query = oneo_query::QueryConfig::new(handle.lake().root().clone());
    query.timeout = Duration::from_secs(600);
    let app = Application::build(db, &http_cfg).await?.with_lake(query);
    let flight = app
        .flight_server(&FlightConfig {
            flight_addr: "127.0.0.1:0".parse()?,
            flight_tls_cert: None,
            flight_tls_key: None,
        })
        .await?;
    let addr = flight.local_addr();
    let server = tokio::spawn(flight.run_until_stopped(stop.clone()));

    let columns =
        "id, created_at, updated_at, name, amount, quantity, happened_on, channel, done, email";
    let pg_columns = format!(
        "id, created_at, updated_at, {}, {}, {}, {}, {}, {}, {}",
        col("name")?,
        col("amount")?,
        col("quantity")?,
        col("happened_on")?,
        col("channel")?,
        col("done")?,
        col("email")?
    );
    println!(
        "{:<28} {:>12} {:>12} {:>10} {:>10}",
        "stream", "rows", "seconds", "Mrows/s", "MB/s"
    );
    let mut best_flight = f64::MAX;
    let mut best_large_frames = f64::MAX;
    let mut best_pg = f64::MAX;
    let sql = format!("SELECT {columns} FROM crm.event");
    for _ in 0..runs {
        let (n, bytes, secs) = flight_run(addr, key, &sql, None).await?;
        ensure!(n == rows, "Flight SQL streamed {n} rows, not {rows}");
        report("Flight SQL (lake)", n, bytes, secs);
        best_flight = best_flight.min(secs);

        let (n, bytes, secs) = flight_run(addr, key, &sql, Some(LARGE_FRAME)).await?;
        ensure!(n == rows, "Flight SQL streamed {n} rows, not {rows}");
        report("  client with 1 MiB frames", n, bytes, secs);
        best_large_frames = best_large_frames.min(secs);

        let (bytes, secs) = copy_run(
            pool,
            &format!("COPY (SELECT {pg_columns} FROM {table}) TO STDOUT (FORMAT binary)"),
        )
        .await?;
        report("PostgreSQL COPY binary", rows, bytes, secs);
        best_pg = best_pg.min(secs);
    }
    println!(
        "best of {runs}: Flight SQL {:.2} s, COPY {:.2} s: Flight SQL is {:.1}x PostgreSQL",
        best_flight,
        best_pg,
        best_pg / best_flight
    );
    println!(
        "best of {runs}, a client accepting 1 MiB HTTP/2 frames: Flight SQL {:.2} s: {:.1}x PostgreSQL",
        best_large_frames,
        best_pg / best_large_frames
    );
    stop.cancel();
    drop(server.await?);
    drop(task.await?);
    Ok(())
}

fn report(name: &str, rows: usize, bytes: usize, secs: f64) {
    println!(
        "{name:<28} {rows:>12} {secs:>12.2} {:>10.2} {:>10.1}",
        rows as f64 / secs / 1e6,
        bytes as f64 / secs / 1e6
    );
}

/// The HTTP/2 frame size a client may accept (SETTINGS_MAX_FRAME_SIZE; the default is
/// 16 KiB): the server then sends a 2 MiB message in 2 frames rather than 128.
const LARGE_FRAME: u32 = 1 << 20;

/// Rows, bytes on the wire (IPC headers and bodies) and seconds for one streamed query.
async fn flight_run(
    addr: std::net::SocketAddr,
    key: &str,
    sql: &str,
    max_frame: Option<u32>,
) -> anyhow::Result<(usize, usize, f64)> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))?
        .max_frame_size(max_frame)
        .connect()
        .await?;
    let mut client = FlightSqlServiceClient::new(channel);
    client.set_token(key.to_string());
    let t = Instant::now();
    let info = client.execute(sql.to_string(), None).await?;
    let (mut rows, mut bytes) = (0, 0);
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.context("ticket")?;
        let mut stream = client.do_get(ticket).await?.into_inner();
        // Decoded into record batches, as a client would.
        while let Some(data) = stream.try_next().await? {
            bytes += data.inner.data_header.len() + data.inner.data_body.len();
            if let DecodedPayload::RecordBatch(batch) = &data.payload {
                rows += batch.num_rows();
            }
        }
    }
    Ok((rows, bytes, t.elapsed().as_secs_f64()))
}

/// Bytes and seconds for one `COPY … TO STDOUT`.
async fn copy_run(pool: &PgPool, copy: &str) -> anyhow::Result<(usize, f64)> {
    let mut conn = pool.acquire().await?;
    let t = Instant::now();
    let mut out = conn.copy_out_raw(copy).await?;
    let mut bytes = 0;
    while let Some(chunk) = out.try_next().await? {
        bytes += chunk.len();
    }
    Ok((bytes, t.elapsed().as_secs_f64()))
}
