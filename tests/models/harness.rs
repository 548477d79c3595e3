//! The test environment: a database of its own, ingest streaming into a lake in a temporary
//! folder (started before any record is written), the REST API, and the data set loaded.

use std::collections::HashMap;
use std::time::Duration;

use oneo_api::Application;
use oneo_api::config::{DatabaseConfig, HttpConfig};
use oneo_ingest::{Ingest, IngestConfig, IngestHandle};
use oneo_models::{FeatureRows, FeatureSpec, ModelKind, RawValues};
use oneo_query::{ObjectDef, QueryConfig, WorkspaceSchema, WorkspaceSession};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::common::{create_database, drop_database};

/// The generator's contacts: 3,000 deals, about 2,100 of them closed.
pub const SCALE: usize = 6000;

pub struct Env {
    pub pool: PgPool,
    pub base: String,
    pub key: String,
    pub workspace: Uuid,
    pub data: oneo_data::Dataset,
    pub ids: HashMap<&'static str, Vec<Uuid>>,
    pub ingest: IngestHandle,
    pub query: QueryConfig,
    pub http: reqwest::Client,
    pub stop: CancellationToken,
    pub db_name: String,
    pub _lake: tempfile::TempDir,
}

impl Env {
    /// Ingest runs first, so the history holds every change the loader makes (a snapshot
    /// copy would bring current state only).
    pub async fn start() -> Env {
        Self::start_with(SCALE).await
    }

    /// A workspace with a lake and no records.
    pub async fn start_empty() -> Env {
        Self::start_with(0).await
    }

    /// `scale` contacts of the data set (none: an empty workspace).
    pub async fn start_with(scale: usize) -> Env {
        let load = scale > 0;
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
        let lake = tempfile::tempdir().expect("lake dir");
        let mut cfg = IngestConfig::new(&db_url, lake.path().to_string_lossy());
        cfg.max_batch_delay = Duration::from_millis(200);
        let ingest = Ingest::new(cfg, pool.clone()).expect("ingest");
        let handle = ingest.handle();
        let stop = CancellationToken::new();
        tokio::spawn(ingest.run(stop.clone()));
        let query = QueryConfig::new(handle.lake().root().clone());
        let app = app.with_ingest(handle.clone()).with_lake(query.clone());
        let base = format!("http://{}", app.local_addr());
        tokio::spawn(app.run_until_stopped(stop.clone()));
        let mut env = Env {
            pool,
            base,
            key: created.api_key,
            workspace: created.workspace_id,
            data: if load {
                oneo_data::generate(scale, 7)
            } else {
                oneo_data::Dataset::default()
            },
            ids: HashMap::new(),
            ingest: handle,
            query,
            http: reqwest::Client::new(),
            stop,
            db_name,
            _lake: lake,
        };
        // Wait for the slot first: what the loader writes must stream, not be copied.
        env.wait_for_lake().await;
        if !load {
            return env;
        }
        let field = json!({"api_name": "post_mortem", "label": "Post-mortem", "type": "number"});
        let (status, body) = env.post("/v1/objects/deal/fields", &field).await;
        assert_eq!(status, 201, "{body}");
        let loaded = oneo_api::load::load(&env.pool, env.workspace, &env.data, &|_, _, _| {})
            .await
            .expect("load");
        env.ids = loaded.ids;
        env
    }

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

    /// Until everything committed so far is in the lake.
    pub async fn wait_for_lake(&self) {
        let mark: String =
            sqlx::query_scalar("SELECT pg_logical_emit_message(true, 'oneo.test', '')::text")
                .fetch_one(&self.pool)
                .await
                .expect("mark");
        let mark = oneo_ingest::parse_lsn(&mark).expect("lsn");
        for _ in 0..3000 {
            if self.ingest.status.acknowledged().is_some_and(|a| a >= mark) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the lake did not catch up within 300 s");
    }

    pub async fn session(&self) -> WorkspaceSession {
        let objects = oneo_api::db::schema::load_objects(&self.pool, self.workspace, None)
            .await
            .expect("objects")
            .into_iter()
            .map(|o| ObjectDef {
                id: o.id,
                fields: o.defs(),
                api_name: o.api_name,
            })
            .collect();
        let schema = WorkspaceSchema {
            workspace_id: self.workspace,
            objects,
        };
        let session = WorkspaceSession::new(&self.query, schema).expect("session");
        session.add_history().expect("history");
        session
    }

    /// The position of each deal id.
    pub fn deal_positions(&self) -> HashMap<String, usize> {
        self.ids["deal"]
            .iter()
            .enumerate()
            .map(|(i, id)| (id.to_string(), i))
            .collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop.cancel();
        drop_database(std::mem::take(&mut self.db_name));
    }
}

pub fn numbers<'a>(rows: &'a FeatureRows, name: &str) -> &'a [Option<f64>] {
    let column = rows.columns.iter().find(|c| c.name == name);
    match column.map(|c| &c.values) {
        Some(RawValues::Numbers(v)) => v,
        other => panic!("{name}: {other:?}"),
    }
}

pub fn win(fields: &[&str]) -> FeatureSpec {
    FeatureSpec {
        kind: ModelKind::WinProbability,
        horizon_days: 90,
        fields: fields.iter().map(|f| f.to_string()).collect(),
    }
}

impl Env {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, &self.key, None).await
    }

    /// Until the version's training ended; the model as it is then.
    pub async fn trained(&self, model: &str, version: i64) -> Value {
        for _ in 0..1200 {
            let (status, body) = self.get(&format!("/v1/models/{model}")).await;
            assert_eq!(status, 200, "{body}");
            let v = body["versions"]
                .as_array()
                .and_then(|vs| vs.iter().find(|v| v["version"] == version).cloned())
                .expect("the version is listed");
            if v["status"] != "training" {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("version {version} of model {model} still training after 120 s");
    }
}
