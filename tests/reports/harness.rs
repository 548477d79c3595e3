//! The synthetic data set loaded into a database of its own (as Oneo records and as a plain
//! relational copy in schema `rel`), ingested into a lake in a temporary folder, and the REST
//! API and Flight SQL serving that lake on loopback ports.

use std::collections::BTreeMap;
use std::time::Duration;

use oneo_api::Application;
use oneo_api::config::{DatabaseConfig, FlightConfig, HttpConfig};
use oneo_api::flight::StreamGauge;
use oneo_ingest::{Ingest, IngestConfig, IngestHandle};
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::common::{create_database, drop_database};

/// A result row: column name → canonical text (null as `None`).
pub type Row = BTreeMap<String, Option<String>>;

pub struct Env {
    pub pool: PgPool,
    pub base: String,
    pub key: String,
    pub ingest: IngestHandle,
    /// Flight SQL's address, and how many results it is streaming (read by the Flight tests).
    #[allow(dead_code)]
    pub flight: std::net::SocketAddr,
    #[allow(dead_code)]
    pub flight_streams: StreamGauge,
    _lake_dir: tempfile::TempDir,
    http: reqwest::Client,
    stop: CancellationToken,
    db_name: String,
}

impl Env {
    /// Scale `scale` of the data set, in the lake and in `rel`, served.
    pub async fn with_data(scale: usize) -> Self {
        let (db_name, db_url) = create_database().await;
        let db = DatabaseConfig {
            database_url: db_url.clone(),
            db_max_connections: 10,
        };
        let http = HttpConfig {
            http_addr: "127.0.0.1:0".parse().expect("addr"),
            request_timeout_secs: 120,
        };
        let app = Application::build(&db, &http).await.expect("server");
        let pool = app.pool().clone();
        let created = oneo_api::db::workspace::create_workspace(&pool, "Acme")
            .await
            .expect("workspace");
        let data = oneo_data::generate(scale, 7);
        let loaded = oneo_api::load::load(&pool, created.workspace_id, &data, &|_, _, _| {})
            .await
            .expect("load");
        oneo_api::relational::write_relational_copy(&pool, "rel", &data, &loaded)
            .await
            .expect("relational copy");

        let lake_dir = tempfile::tempdir().expect("lake dir");
        let mut cfg = IngestConfig::new(&db_url, lake_dir.path().to_string_lossy());
        cfg.max_batch_delay = Duration::from_millis(200);
        cfg.heartbeat_interval = Duration::from_secs(1);
        let ingest = Ingest::new(cfg, pool.clone()).expect("ingest");
        let handle = ingest.handle();
        let stop = CancellationToken::new();
        tokio::spawn(ingest.run(stop.clone()));
        let query = oneo_query::QueryConfig::new(handle.lake().root().clone());
        let app = app.with_ingest(handle.clone()).with_lake(query);
        let base = format!("http://{}", app.local_addr());
        let flight = app
            .flight_server(&FlightConfig {
                flight_addr: "127.0.0.1:0".parse().expect("addr"),
                flight_tls_cert: None,
                flight_tls_key: None,
            })
            .await
            .expect("flight server");
        let (flight_addr, flight_streams) = (flight.local_addr(), flight.streams());
        tokio::spawn(flight.run_until_stopped(stop.clone()));
        tokio::spawn(app.run_until_stopped(stop.clone()));
        let env = Self {
            pool,
            base,
            key: created.api_key,
            ingest: handle,
            flight: flight_addr,
            flight_streams,
            _lake_dir: lake_dir,
            http: reqwest::Client::new(),
            stop,
            db_name,
        };
        env.wait_for_lake().await;
        env
    }

    /// Until everything committed so far is in the lake (a logical message marks "so far").
    pub async fn wait_for_lake(&self) {
        let mark: String =
            sqlx::query_scalar("SELECT pg_logical_emit_message(true, 'oneo.test', '')::text")
                .fetch_one(&self.pool)
                .await
                .expect("mark");
        let mark = oneo_ingest::parse_lsn(&mark).expect("lsn");
        for _ in 0..1200 {
            if self.ingest.status.acknowledged().is_some_and(|a| a >= mark) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the lake did not catch up within 120 s");
    }

    /// POSTs `body` to `path`; the status and JSON answer.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Any request with this workspace's key: the status and the body as text.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, String) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("request");
        (
            resp.status().as_u16(),
            resp.text().await.unwrap_or_default(),
        )
    }

    /// Runs a report that must succeed.
    pub async fn report(&self, spec: &Value) -> Value {
        let (status, body) = self.post("/v1/reports/run", spec).await;
        assert_eq!(status, 200, "report {spec}: {body}");
        body
    }

    /// The rows of a SQL query on PostgreSQL, each column as canonical text by its name.
    pub async fn pg(&self, sql: &str) -> Vec<Row> {
        // jsonb_each_text renders every type as text exactly (numerics keep every digit).
        let wrapped = format!(
            "SELECT x.n, j.key, j.value FROM (SELECT row_number() OVER () AS n, to_jsonb(q) AS doc FROM ({sql}) q) x, jsonb_each_text(x.doc) j"
        );
        let cells: Vec<(i64, String, Option<String>)> =
            sqlx::query_as(sqlx::AssertSqlSafe(wrapped))
                .fetch_all(&self.pool)
                .await
                .unwrap_or_else(|e| panic!("oracle SQL failed: {e}\n{sql}"));
        let mut rows: BTreeMap<i64, Row> = BTreeMap::new();
        for (n, k, v) in cells {
            rows.entry(n)
                .or_default()
                .insert(k, v.map(|v| canonical(&v)));
        }
        rows.into_values().collect()
    }
}

pub use oneo_benches::answer::{canonical, cell};

/// A report's column names, in order.
pub fn column_names(answer: &Value) -> Vec<String> {
    answer["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c["name"].as_str().expect("name").to_string())
        .collect()
}

/// A CSV file's header and records, as text.
pub fn read_csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    let records = reader
        .records()
        .map(|r| r.expect("record").iter().map(String::from).collect())
        .collect();
    (header, records)
}

/// A report's `rows` keyed by its column names.
pub fn report_rows(answer: &Value) -> Vec<Row> {
    let names = column_names(answer);
    answer["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            names
                .iter()
                .zip(r.as_array().expect("row"))
                .map(|(n, v)| (n.clone(), cell(v)))
                .collect()
        })
        .collect()
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop.cancel();
        drop_database(self.db_name.clone());
    }
}
