//! `oneo demo` as a newcomer runs it: the real binary, in a folder of its own, until it says
//! it is serving; then the REST API answers from the lake, Ctrl-C stops it cleanly, and a
//! second run reuses what the first left.

// This binary creates no database of its own (the demo does), so part of `common` is unused.
#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

const SCALE: usize = 1_000;

/// A demo that has printed its banner.
struct Demo {
    child: Child,
    /// Everything it printed to stdout, up to "Ctrl-C stops it."
    banner: String,
    stderr: Arc<Mutex<String>>,
    /// Signalled when stderr reaches its end (the process has exited).
    stderr_closed: mpsc::Receiver<()>,
    base: String,
    key: String,
}

impl Demo {
    /// Starts `oneo demo` in `dir` and waits (up to five minutes) for its banner.
    fn start(dir: &Path, database_url: &str) -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_oneo"))
            .args(["demo", "--scale", &SCALE.to_string(), "--seed", "7"])
            .current_dir(dir)
            .env("DATABASE_URL", database_url)
            .env("ONEO_HTTP_ADDR", "127.0.0.1:0")
            .env("ONEO_FLIGHT_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn oneo demo");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        let (closed_tx, stderr_closed) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("stderr")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            let _ = closed_tx.send(());
        });
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut banner = String::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(300)) {
                Ok(line) => {
                    banner.push_str(&line);
                    banner.push('\n');
                    if line.starts_with("Ctrl-C stops it.") {
                        break;
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    panic!(
                        "oneo demo printed no banner ({e}); stdout:\n{banner}\nstderr:\n{}",
                        stderr.lock().expect("stderr")
                    );
                }
            }
        }
        let field = |label: &str| -> String {
            banner
                .lines()
                .find_map(|l| l.trim_start().strip_prefix(label))
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or_else(|| panic!("no {label} in the banner:\n{banner}"))
                .to_string()
        };
        let base = field("REST:").trim_end_matches("/v1").to_string();
        let key = field("API key:");
        Demo {
            child,
            banner,
            stderr,
            stderr_closed,
            base,
            key,
        }
    }

    async fn sql(&self, sql: &str) -> Value {
        let resp = reqwest::Client::new()
            .post(format!("{}/v1/sql", self.base))
            .bearer_auth(&self.key)
            .json(&json!({ "sql": sql }))
            .send()
            .await
            .expect("POST /v1/sql");
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.expect("json");
        assert_eq!(status, 200, "{sql}: {body}");
        body["rows"].clone()
    }

    /// The sample dashboard the banner points at: its widgets as `/data` answers them.
    async fn dashboard_widgets(&self) -> Vec<Value> {
        let line = self
            .banner
            .lines()
            .find(|l| l.trim_start().starts_with("dashboard:"))
            .unwrap_or_else(|| panic!("the banner names no dashboard:\n{}", self.banner));
        let id = line
            .split("/dashboards/")
            .nth(1)
            .and_then(|rest| rest.split('?').next())
            .expect("a dashboard URL");
        let resp = reqwest::Client::new()
            .get(format!("{}/v1/dashboards/{id}/data", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .expect("GET data");
        assert_eq!(resp.status().as_u16(), 200);
        let body: Value = resp.json().await.expect("json");
        body["widgets"].as_array().cloned().expect("widgets")
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr").clone()
    }

    /// Ctrl-C, then the exit status and everything it wrote to stderr.
    fn interrupt(mut self) -> (std::process::ExitStatus, String) {
        let sent = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill -INT");
        assert!(sent.success());
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // Everything it wrote is read once its stderr is closed.
                self.stderr_closed
                    .recv_timeout(Duration::from_secs(10))
                    .expect("stderr closes when the demo exits");
                return (status, self.stderr());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!(
            "oneo demo did not stop within 60 s of Ctrl-C:\n{}",
            self.stderr()
        );
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// A loopback URL nothing answers at.
fn nothing_there() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    format!("postgres://postgres@127.0.0.1:{port}/oneo_demo")
}

/// A folder other users may enter: under root the embedded cluster belongs to `postgres`.
fn open_folder() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

async fn contacts_in_lake(demo: &Demo) -> i64 {
    demo.sql("SELECT count(*) AS n FROM crm.contact").await[0][0]
        .as_i64()
        .expect("a count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_without_a_server_runs_on_an_embedded_postgres_and_reuses_it() {
    let dir = open_folder();
    let url = nothing_there();

    let first = Demo::start(dir.path(), &url);
    let log = first.stderr();
    assert!(
        log.contains("no PostgreSQL answers at") && log.contains("embedded PostgreSQL"),
        "the demo must say why it runs on an embedded PostgreSQL:\n{log}"
    );
    assert!(first.banner.contains("(new)"), "{}", first.banner);
    // The sample models are listed; at this small scale they have too few closed deals,
    // contacts and customers to train, and the banner says so with the numbers.
    for model in [
        "win_score (win_probability)",
        "lead_score (lead_score)",
        "churn_risk (churn_risk)",
    ] {
        assert!(
            first.banner.contains(&format!("model:     {model}")),
            "{}",
            first.banner
        );
    }
    assert!(
        first.banner.contains("not enough data:"),
        "{}",
        first.banner
    );
    assert!(
        first.banner.contains("FROM oneo.scores"),
        "{}",
        first.banner
    );
    assert!(dir.path().join("data/pg/PG_VERSION").exists());
    // Sample data went through PostgreSQL, ingest and the lake to DataFusion.
    assert_eq!(contacts_in_lake(&first).await, SCALE as i64);
    let deals = first
        .sql("SELECT stage, count(*) AS n FROM crm.deal GROUP BY stage ORDER BY stage")
        .await;
    let total: i64 = deals
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r[1].as_i64().expect("count"))
        .sum();
    assert_eq!(total, (SCALE / 2) as i64);
    let first_key = first.key.clone();
    let (status, log) = first.interrupt();
    assert!(status.success(), "exit {status}:\n{log}");
    assert!(log.contains("embedded PostgreSQL: stopped"), "{log}");
    assert!(
        !dir.path().join("data/pg/postmaster.pid").exists(),
        "the embedded server still runs after the demo stopped"
    );

    // Again: the same cluster, the same workspace, no second load.
    let second = Demo::start(dir.path(), &url);
    let log = second.stderr();
    assert!(
        log.contains("embedded PostgreSQL: started") && !log.contains("creating a cluster"),
        "{log}"
    );
    assert!(second.banner.contains("(reused)"), "{}", second.banner);
    assert_ne!(second.key, first_key, "each run mints a fresh key");
    assert_eq!(contacts_in_lake(&second).await, SCALE as i64);
    // The sample dashboard was materialized on the first run; the second reuses it.
    let widgets = second.dashboard_widgets().await;
    assert_eq!(widgets.len(), 10);
    assert!(
        widgets.iter().all(|w| w["answer"]["error"].is_null()),
        "{widgets:?}"
    );
    let (status, log) = second.interrupt();
    assert!(status.success(), "exit {status}:\n{log}");
    assert!(!dir.path().join("data/pg/postmaster.pid").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_on_a_logical_server_creates_its_database_there() {
    let dir = open_folder();
    // A name the server doesn't have yet: the demo creates it.
    let name = format!("oneo_test_{}", uuid::Uuid::new_v4().simple());
    let _cleanup = DropOnExit(name.clone());
    let demo = Demo::start(dir.path(), &format!("{}/{name}", common::server_url()));
    let log = demo.stderr();
    assert!(log.contains(&format!("created database {name}")), "{log}");
    assert!(!log.contains("embedded PostgreSQL"), "{log}");
    assert!(!dir.path().join("data/pg").exists());
    assert_eq!(contacts_in_lake(&demo).await, SCALE as i64);
    let (status, log) = demo.interrupt();
    assert!(status.success(), "exit {status}:\n{log}");
}

struct DropOnExit(String);

impl Drop for DropOnExit {
    fn drop(&mut self) {
        common::drop_database(self.0.clone());
    }
}
