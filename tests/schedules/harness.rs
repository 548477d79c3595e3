//! Real processes for the delivery tests: `oneo serve` (as many as a test wants, over one
//! database) and an SMTP server (aiosmtpd, `tests/smtp_sink.py`) that keeps what it receives.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::{create_database, drop_database};

/// A port nothing listens on (yet).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A database with a workspace and a small data set, and the servers a test starts on it.
pub struct Setup {
    pub pool: PgPool,
    pub url: String,
    pub db_name: String,
    pub key: String,
    pub dir: tempfile::TempDir,
    servers: Vec<Child>,
}

impl Setup {
    pub async fn new(scale: usize) -> Self {
        let (db_name, url) = create_database().await;
        let pool = PgPool::connect(&url).await.expect("connect");
        oneo_api::db::migrate(&pool).await.expect("migrate");
        let created = oneo_api::db::workspace::create_workspace(&pool, "Acme")
            .await
            .expect("workspace");
        let data = oneo_data::generate(scale, 7);
        oneo_api::load::load(&pool, created.workspace_id, &data, &|_, _, _| {})
            .await
            .expect("load");
        Self {
            pool,
            url,
            db_name,
            key: created.api_key,
            dir: tempfile::tempdir().expect("dir"),
            servers: Vec::new(),
        }
    }

    /// Starts `oneo serve` with its own lake and slot named `name` (a second start of the
    /// same name reuses them: a restart) and `env`; its REST base URL once it listens and
    /// its lake holds everything committed so far.
    pub async fn serve(&mut self, name: &str, env: &[(&str, String)]) -> (usize, String) {
        let lake = self.dir.path().join(format!("lake-{name}"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_oneo"));
        cmd.arg("serve")
            .env("DATABASE_URL", &self.url)
            .env("ONEO_HTTP_ADDR", "127.0.0.1:0")
            .env("ONEO_FLIGHT_ADDR", "127.0.0.1:0")
            .env("ONEO_LAKE_URL", &lake)
            .env("ONEO_INGEST_SLOT", format!("{}_{name}", self.db_name))
            .env("ONEO_DASHBOARDS_DIR", self.dir.path().join("no-dashboards"))
            .env("ONEO_INGEST_BATCH_MS", "200")
            .env("ONEO_COLUMN_CACHE_MB", "64")
            .env("ONEO_SCHEDULER_TICK_MS", "100")
            .env("NO_COLOR", "1")
            .env(
                "RUST_LOG",
                "warn,oneo::serve=info,buoyant_kernel=off,deltalake_core=error,pg_walstream=error",
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn oneo serve");
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[server] {line}");
                if tx.send(line).is_err() {
                    // Keep draining so the server never blocks on a full pipe.
                    continue;
                }
            }
        });
        let base = loop {
            match rx.recv_timeout(Duration::from_secs(120)) {
                Ok(line) if line.contains("REST API listening") => {
                    let addr = line
                        .split("addr=")
                        .nth(1)
                        .and_then(|r| r.split_whitespace().next())
                        .expect("an address");
                    break format!("http://{addr}");
                }
                Ok(_) => {}
                Err(e) => panic!("oneo serve did not start listening: {e}"),
            }
        };
        self.servers.push(child);
        // Everything committed so far in this server's lake: a mark, and a report that waits
        // for it.
        let mark: String =
            sqlx::query_scalar("SELECT pg_logical_emit_message(true, 'oneo.test', '')::text")
                .fetch_one(&self.pool)
                .await
                .expect("mark");
        let spec = json!({"type": "summary", "object": "deal", "aggregates": [{"fn": "count"}]});
        let (status, body) = self
            .call(
                &base,
                reqwest::Method::POST,
                &format!("/v1/reports/run?min_lsn={mark}&wait_ms=120000"),
                Some(&spec),
            )
            .await;
        assert_eq!(status, 200, "the lake of {name} did not catch up: {body}");
        (self.servers.len() - 1, base)
    }

    /// Kills server `i` at once (no graceful stop: a crash).
    pub fn kill(&mut self, i: usize) {
        let _ = self.servers[i].kill();
        let _ = self.servers[i].wait();
    }

    /// A request with the workspace's key: status and JSON body.
    pub async fn call(
        &self,
        base: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .request(method, format!("{base}{path}"))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Saves a report; its id.
    pub async fn save_report(&self, base: &str, name: &str, spec: Value) -> String {
        let (status, body) = self
            .call(
                base,
                reqwest::Method::POST,
                "/v1/reports",
                Some(&json!({"name": name, "spec": spec})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("id").to_string()
    }

    /// The delivery log as `/v1/deliveries` answers it.
    pub async fn deliveries(&self, base: &str, schedule: &str) -> Vec<Value> {
        let (status, body) = self
            .call(
                base,
                reqwest::Method::GET,
                &format!("/v1/deliveries?schedule={schedule}&limit=500"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body.as_array().expect("a list").clone()
    }

    /// Polls the log until `done` holds (up to two minutes); the log then.
    pub async fn wait_for(
        &self,
        base: &str,
        schedule: &str,
        what: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        for _ in 0..1200 {
            let log = self.deliveries(base, schedule).await;
            if done(&log) {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{what}: not within 120 s; the log: {:#}",
            Value::from(self.deliveries(base, schedule).await)
        );
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            self.kill(i);
        }
        drop_database(self.db_name.clone());
    }
}

/// An SMTP server on a port of the test's choosing, keeping each message in a folder.
pub struct Sink {
    child: Child,
    pub dir: PathBuf,
}

/// One received message: its envelope and headers (`message.json`) and its folder.
pub struct Received {
    pub meta: Value,
    pub dir: PathBuf,
}

impl Received {
    pub fn attachment(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(name)).unwrap_or_else(|e| panic!("attachment {name}: {e}"))
    }
}

impl Sink {
    pub fn start(port: u16, dir: &Path) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_sink.py");
        let mut child = Command::new("python3")
            .args([script, &port.to_string(), &dir.to_string_lossy()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with aiosmtpd (pip install aiosmtpd)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the sink's first line");
        assert_eq!(line.trim(), "ready", "the SMTP sink did not start");
        Self {
            child,
            dir: dir.to_path_buf(),
        }
    }

    /// Every whole message received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.is_dir()
                            && !p
                                .file_name()
                                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                    })
                    .collect()
            })
            .unwrap_or_default();
        dirs.sort();
        dirs.into_iter()
            .map(|dir| {
                let text = std::fs::read_to_string(dir.join("message.json")).expect("message.json");
                Received {
                    meta: serde_json::from_str(&text).expect("json"),
                    dir,
                }
            })
            .collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CSV file's header and records, as text.
pub fn read_csv(bytes: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(bytes);
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

/// A report answer's columns and rows as the CSV writes them (text; null empty).
pub fn answer_table(answer: &Value) -> (Vec<String>, Vec<Vec<String>>) {
    let names = answer["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c["name"].as_str().expect("name").to_string())
        .collect();
    let rows = answer["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|v| match v {
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect();
    (names, rows)
}

impl Setup {
    /// A schedule's deliveries as PostgreSQL holds them: (id, status).
    pub async fn deliveries_in_db(&self, schedule: &str) -> Vec<(String, String)> {
        let id: uuid::Uuid = schedule.parse().expect("uuid");
        sqlx::query_as::<_, (uuid::Uuid, String)>(
            "SELECT id, status FROM oneo.deliveries WHERE schedule_id = $1 ORDER BY fire_at",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .expect("deliveries")
        .into_iter()
        .map(|(id, s)| (id.to_string(), s))
        .collect()
    }
}
