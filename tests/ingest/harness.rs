//! A database of its own, the REST API on a loopback port, a lake in a temporary folder, and
//! the means to compare the lake with PostgreSQL value by value.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use deltalake::arrow::array::{Array, AsArray, RecordBatch};
use deltalake::arrow::datatypes::{DataType, TimestampMicrosecondType};
use deltalake::arrow::util::display::array_value_to_string;
use deltalake::datafusion::prelude::SessionContext;
use oneo_api::Application;
use oneo_api::config::{DatabaseConfig, HttpConfig};
use oneo_ingest::layout::{ObjectLayout, load_layouts};
use oneo_ingest::{IngestConfig, IngestHandle, Lake, TableKind};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::common::{create_database, drop_database};

/// Rows keyed by id; each a column → canonical text map.
pub type Rows = BTreeMap<String, BTreeMap<String, Option<String>>>;

pub struct Env {
    pub db_url: String,
    pub pool: PgPool,
    pub lake_dir: tempfile::TempDir,
    pub base: String,
    pub key: String,
    pub workspace: Uuid,
    http: reqwest::Client,
    server: CancellationToken,
    db_name: String,
}

impl Env {
    pub async fn new() -> Self {
        let (db_name, db_url) = create_database().await;
        let db = DatabaseConfig {
            database_url: db_url.clone(),
            db_max_connections: 10,
        };
        let http = HttpConfig {
            http_addr: "127.0.0.1:0".parse().expect("addr"),
            request_timeout_secs: 60,
        };
        let app = Application::build(&db, &http).await.expect("server");
        let base = format!("http://{}", app.local_addr());
        let server = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(server.clone()));
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect(&db_url)
            .await
            .expect("connect");
        let created = oneo_api::db::workspace::create_workspace(&pool, "Acme")
            .await
            .expect("workspace");
        Self {
            db_url,
            pool,
            lake_dir: tempfile::tempdir().expect("lake dir"),
            base,
            key: created.api_key,
            workspace: created.workspace_id,
            http: reqwest::Client::new(),
            server,
            db_name,
        }
    }

    /// Ingest settings for tests: short batches and heartbeats so the lake catches up quickly.
    pub fn ingest_config(&self) -> IngestConfig {
        let mut cfg = IngestConfig::new(&self.db_url, self.lake_dir.path().to_string_lossy());
        cfg.max_batch_delay = Duration::from_millis(300);
        cfg.heartbeat_interval = Duration::from_secs(1);
        cfg
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {path}: {status} {body}");
        body
    }

    /// A second REST server on this database with `ingest` beside it, as `oneo serve` runs
    /// them (the ingest endpoints answer 503 without it); its base URL. It stops with `self`.
    pub async fn serve_with_ingest(&self, ingest: IngestHandle) -> String {
        let db = DatabaseConfig {
            database_url: self.db_url.clone(),
            db_max_connections: 5,
        };
        let http = HttpConfig {
            http_addr: "127.0.0.1:0".parse().expect("addr"),
            request_timeout_secs: 60,
        };
        let app = Application::build(&db, &http)
            .await
            .expect("server")
            .with_ingest(ingest);
        let base = format!("http://{}", app.local_addr());
        tokio::spawn(app.run_until_stopped(self.server.clone()));
        base
    }

    /// A request to `base` with this workspace's key: the status and the body as text.
    pub async fn request_at(
        &self,
        base: &str,
        method: reqwest::Method,
        path: &str,
    ) -> (reqwest::StatusCode, String) {
        let resp = self
            .http
            .request(method, format!("{base}{path}"))
            .bearer_auth(&self.key)
            .send()
            .await
            .expect("request");
        let status = resp.status();
        (status, resp.text().await.expect("body"))
    }

    pub async fn create(&self, object: &str, record: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            &format!("/v1/records/{object}"),
            Some(record),
        )
        .await
    }

    pub async fn bulk_create(&self, object: &str, records: Vec<Value>) {
        self.call(
            reqwest::Method::POST,
            &format!("/v1/records/{object}/bulk"),
            Some(json!({"operation": "create", "records": records})),
        )
        .await;
    }

    pub async fn layouts(&self) -> HashMap<i64, ObjectLayout> {
        load_layouts(&self.pool).await.expect("layouts")
    }

    /// The workspace's objects by API name.
    pub async fn objects(&self) -> HashMap<String, ObjectLayout> {
        self.layouts()
            .await
            .into_values()
            .filter(|l| l.workspace_id == self.workspace)
            .map(|l| (l.api_name.clone(), l))
            .collect()
    }

    /// A table straight from PostgreSQL, each value in the same canonical text as `lake_rows`.
    pub async fn pg_rows(&self, layout: &ObjectLayout) -> Rows {
        let micros = |c: &str| format!("(extract(epoch FROM {c}) * 1000000)::bigint::text");
        let mut exprs = vec![
            ("id".to_string(), "id::text".to_string()),
            ("created_at".into(), micros("created_at")),
            ("updated_at".into(), micros("updated_at")),
        ];
        for f in &layout.fields {
            let c = &f.source;
            let e = match &f.data_type {
                DataType::Decimal128(_, s) => format!("round({c}, {s})::text"),
                DataType::Timestamp(..) => micros(c),
                DataType::List(_) => format!("array_to_string({c}, '|')"),
                _ => format!("{c}::text"),
            };
            exprs.push((f.name.clone(), e));
        }
        let select: Vec<String> = exprs.iter().map(|(_, e)| e.clone()).collect();
        // Every identifier here is built from Oneo's numeric ids.
        let sql = format!(
            "SELECT {} FROM oneo_records.{}",
            select.join(", "),
            layout.source_table()
        );
        let rows: Vec<sqlx::postgres::PgRow> = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await
            .expect("pg rows");
        let mut out = Rows::new();
        for row in rows {
            use sqlx::Row;
            let mut cols = BTreeMap::new();
            for (i, (name, _)) in exprs.iter().enumerate() {
                cols.insert(name.clone(), row.get::<Option<String>, _>(i));
            }
            let id = cols["id"].clone().expect("id");
            out.insert(id, cols);
        }
        out
    }

    pub fn lake_url(&self, layout: &ObjectLayout, kind: TableKind) -> url::Url {
        Lake::new(&self.lake_dir.path().to_string_lossy())
            .expect("lake")
            .table_url(self.workspace, layout.object_id, kind)
    }

    /// Every row of a lake table through DataFusion; `None` while the table doesn't exist.
    pub async fn lake_batches(
        &self,
        layout: &ObjectLayout,
        kind: TableKind,
    ) -> Option<Vec<RecordBatch>> {
        let table = deltalake::open_table(self.lake_url(layout, kind))
            .await
            .ok()?;
        let ctx = SessionContext::new();
        table.update_datafusion_session(&ctx.state()).ok()?;
        let provider = table.table_provider().await.ok()?;
        ctx.register_table("t", provider).ok()?;
        ctx.sql("SELECT * FROM t").await.ok()?.collect().await.ok()
    }

    /// The current-state table, in the canonical text of `pg_rows`, for the layout's columns.
    pub async fn lake_rows(&self, layout: &ObjectLayout) -> Option<Rows> {
        let batches = self.lake_batches(layout, TableKind::Current).await?;
        let mut names = vec!["id".to_string(), "created_at".into(), "updated_at".into()];
        names.extend(layout.fields.iter().map(|f| f.name.clone()));
        let mut out = Rows::new();
        for b in batches {
            for r in 0..b.num_rows() {
                let mut cols = BTreeMap::new();
                for n in &names {
                    let v = b.column_by_name(n).and_then(|c| cell_text(c.as_ref(), r));
                    cols.insert(n.clone(), v);
                }
                let id = cols["id"].clone().expect("id");
                out.insert(id, cols);
            }
        }
        Some(out)
    }

    /// History rows, and how many distinct (`_lsn`, `_seq`) pairs they have.
    pub async fn history_counts(&self, layout: &ObjectLayout) -> (usize, usize) {
        let Some(batches) = self.lake_batches(layout, TableKind::History).await else {
            return (0, 0);
        };
        let mut keys = std::collections::HashSet::new();
        let mut n = 0;
        for b in batches {
            let lsn = b.column_by_name("_lsn").expect("_lsn");
            let seq = b.column_by_name("_seq").expect("_seq");
            for r in 0..b.num_rows() {
                n += 1;
                keys.insert((cell_text(lsn.as_ref(), r), cell_text(seq.as_ref(), r)));
            }
        }
        (n, keys.len())
    }

    /// Waits until every object's lake table equals PostgreSQL; on timeout, says what differs.
    pub async fn wait_until_lake_equals_pg(&self, timeout: Duration) -> Result<(), String> {
        self.wait_until_equal(None, timeout).await
    }

    /// Waits until one object's lake table equals PostgreSQL.
    pub async fn wait_until_object_equals_pg(
        &self,
        object: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        self.wait_until_equal(Some(object), timeout).await
    }

    async fn wait_until_equal(&self, only: Option<&str>, timeout: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            let mut diff = None;
            let objects = self.objects().await;
            let layouts = objects
                .values()
                .filter(|l| only.is_none_or(|o| l.api_name == o));
            for layout in layouts {
                let pg = self.pg_rows(layout).await;
                let lake = self.lake_rows(layout).await.unwrap_or_default();
                if pg != lake {
                    diff = Some(describe_diff(&layout.api_name, &pg, &lake));
                    break;
                }
            }
            match diff {
                None => return Ok(()),
                Some(d) if start.elapsed() > timeout => return Err(d),
                Some(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// Row changes PostgreSQL decoded for a table since `slot` was created (an independent
    /// test_decoding slot, read without consuming).
    pub async fn decoded_changes(&self, slot: &str, layout: &ObjectLayout) -> usize {
        let prefix = format!("table oneo_records.{}:", layout.source_table());
        let lines: Vec<String> =
            sqlx::query_scalar("SELECT data FROM pg_logical_slot_peek_changes($1, NULL, NULL)")
                .bind(slot)
                .fetch_all(&self.pool)
                .await
                .expect("peek changes");
        lines.iter().filter(|l| l.starts_with(&prefix)).count()
    }
}

fn describe_diff(object: &str, pg: &Rows, lake: &Rows) -> String {
    let missing = pg.keys().filter(|k| !lake.contains_key(*k)).count();
    let extra = lake.keys().filter(|k| !pg.contains_key(*k)).count();
    let differing: Vec<String> = pg
        .iter()
        .filter_map(|(id, row)| {
            let l = lake.get(id)?;
            (l != row).then(|| format!("{id}: pg {row:?} lake {l:?}"))
        })
        .take(2)
        .collect();
    format!(
        "`{object}`: {} rows in PostgreSQL, {} in the lake; {missing} missing, {extra} extra; {differing:?}",
        pg.len(),
        lake.len()
    )
}

/// A value as canonical text: timestamps as microseconds, lists joined by `|`.
pub fn cell_text(col: &dyn Array, row: usize) -> Option<String> {
    if col.is_null(row) {
        return None;
    }
    Some(match col.data_type() {
        DataType::Timestamp(..) => col
            .as_primitive::<TimestampMicrosecondType>()
            .value(row)
            .to_string(),
        DataType::List(_) => {
            let items = col.as_list::<i32>().value(row);
            (0..items.len())
                .filter_map(|i| cell_text(items.as_ref(), i))
                .collect::<Vec<_>>()
                .join("|")
        }
        _ => array_value_to_string(col, row).ok()?,
    })
}

impl Drop for Env {
    fn drop(&mut self) {
        self.server.cancel();
        drop_database(self.db_name.clone());
    }
}
