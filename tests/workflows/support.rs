//! What the workflow tests share: run listings, waiting on a run's status, and a real HTTP
//! server that counts the calls it gets by `Idempotency-Key`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

use crate::harness::Setup;

pub async fn runs(s: &Setup, base: &str, key: Option<&str>) -> Vec<Value> {
    let resp = reqwest::Client::new()
        .get(format!("{base}/v1/workflow-runs?limit=500"))
        .bearer_auth(key.unwrap_or(&s.key))
        .send()
        .await
        .expect("runs");
    assert_eq!(resp.status().as_u16(), 200);
    resp.json::<Value>()
        .await
        .expect("json")
        .as_array()
        .expect("list")
        .clone()
}

/// Until at least `n` runs exist (each returned with its steps).
pub async fn wait_runs(s: &Setup, base: &str, what: &str, n: usize) -> Vec<Value> {
    wait_all(s, base, what, |r| r.len() >= n).await
}

/// Until `done` holds of the workspace's runs.
pub async fn wait_all(
    s: &Setup,
    base: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    for _ in 0..1800 {
        let r = runs(s, base, None).await;
        if done(&r) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{what}: not within 180 s; the runs: {:#}",
        Value::from(runs(s, base, None).await)
    );
}

/// Until run `id` is in one of `statuses`; the run.
pub async fn wait_run(s: &Setup, base: &str, id: &str, statuses: &[&str]) -> Value {
    let mut last = Value::Null;
    for _ in 0..1800 {
        let (code, run) = s
            .call(
                base,
                reqwest::Method::GET,
                &format!("/v1/workflow-runs/{id}"),
                None,
            )
            .await;
        assert_eq!(code, 200, "{run}");
        if statuses.iter().any(|st| run["status"] == *st) {
            return run;
        }
        last = run;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("run {id} did not reach {statuses:?} within 180 s: {last:#}");
}

/// Calls a webhook; the run id.
pub async fn hook(base: &str, path: &str, body: Value) -> String {
    let resp = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .expect("hook");
    assert_eq!(resp.status().as_u16(), 202);
    let v: Value = resp.json().await.expect("json");
    v["run_id"].as_str().expect("run id").to_string()
}

/// A workflow created through the API; (id, its webhook path if any).
pub async fn create_workflow(s: &Setup, base: &str, spec: Value) -> (String, String) {
    let (status, w) = s
        .call(base, reqwest::Method::POST, "/v1/workflows", Some(&spec))
        .await;
    assert_eq!(status, 201, "{w}");
    (
        w["id"].as_str().expect("id").to_string(),
        w["hook_path"].as_str().unwrap_or_default().to_string(),
    )
}

/// The test's outbound webhook receiver. `POST /calls?fail=N` answers 503 to the first N
/// calls carrying an `Idempotency-Key`, then 200 `{"ticket": "T-<key's call count>"}`.
#[derive(Clone, Default)]
pub struct Counter {
    calls: Arc<Mutex<HashMap<String, usize>>>,
}

impl Counter {
    /// Serves on a free port; its base URL.
    pub async fn start() -> (Self, String) {
        let counter = Self::default();
        let app = axum::Router::new()
            .route("/calls", post(call))
            .with_state(counter.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (counter, format!("http://{addr}"))
    }

    /// Calls per idempotency key.
    pub fn calls(&self) -> HashMap<String, usize> {
        self.calls.lock().expect("lock").clone()
    }
}

async fn call(
    State(c): State<Counter>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, axum::Json<Value>) {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_string();
    let n = {
        let mut calls = c.calls.lock().expect("lock");
        let n = calls.entry(key).or_default();
        *n += 1;
        *n
    };
    let fail: usize = q.get("fail").and_then(|f| f.parse().ok()).unwrap_or(0);
    if n <= fail {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"error": "try later"})),
        );
    }
    let sent: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    (
        StatusCode::OK,
        axum::Json(json!({"ticket": format!("T-{n}"), "echo": sent})),
    )
}

/// The attempts of `path` in a run's step log.
pub fn attempts<'a>(run: &'a Value, path: &str) -> Vec<&'a Value> {
    run["steps"]
        .as_array()
        .map(|s| s.iter().filter(|a| a["path"] == path).collect())
        .unwrap_or_default()
}
