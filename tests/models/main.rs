//! Predictive scores from the lake, end to end: the synthetic data set is written through
//! the API's loader while ingest streams every change into a real Delta lake, and the
//! features of `win_probability` are read point in time from the history tables.

#[path = "../common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::time::Duration;

use oneo_api::Application;
use oneo_api::config::{DatabaseConfig, HttpConfig};
use oneo_ingest::{Ingest, IngestConfig, IngestHandle};
use oneo_models::{
    FeatureRows, FeatureSpec, ModelKind, Purpose, RawValues, Requirements, Scorer, extract,
};
use oneo_query::{ObjectDef, QueryConfig, WorkspaceSchema, WorkspaceSession};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use common::{create_database, drop_database};

/// The generator's contacts: 3,000 deals, about 2,100 of them closed.
const SCALE: usize = 6000;

struct Env {
    pool: PgPool,
    base: String,
    key: String,
    workspace: Uuid,
    data: oneo_data::Dataset,
    ids: HashMap<&'static str, Vec<Uuid>>,
    ingest: IngestHandle,
    query: QueryConfig,
    http: reqwest::Client,
    stop: CancellationToken,
    db_name: String,
    _lake: tempfile::TempDir,
}

impl Env {
    /// Ingest runs first, so the history holds every change the loader makes (a snapshot
    /// copy would bring current state only).
    async fn start() -> Env {
        Self::start_with(SCALE).await
    }

    /// A workspace with a lake and no records.
    async fn start_empty() -> Env {
        Self::start_with(0).await
    }

    /// `scale` contacts of the data set (none: an empty workspace).
    async fn start_with(scale: usize) -> Env {
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

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
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
    async fn wait_for_lake(&self) {
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

    async fn session(&self) -> WorkspaceSession {
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
    fn deal_positions(&self) -> HashMap<String, usize> {
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

fn numbers<'a>(rows: &'a FeatureRows, name: &str) -> &'a [Option<f64>] {
    let column = rows.columns.iter().find(|c| c.name == name);
    match column.map(|c| &c.values) {
        Some(RawValues::Numbers(v)) => v,
        other => panic!("{name}: {other:?}"),
    }
}

fn win(fields: &[&str]) -> FeatureSpec {
    FeatureSpec {
        kind: ModelKind::WinProbability,
        horizon_days: 90,
        fields: fields.iter().map(|f| f.to_string()).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn win_probability_learns_the_planted_signal_from_point_in_time_history() {
    let before = chrono::Utc::now().date_naive();
    let env = Env::start().await;
    let load_days = [before, chrono::Utc::now().date_naive()];
    // A field only set once a deal has closed, saying how it ended: the leak a model
    // reading today's values would learn from.
    let positions = env.deal_positions();
    let closed: Vec<Value> = env
        .data
        .deals
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            let last = *d.stages.last()?;
            last.starts_with("closed_").then(
                || json!({"id": env.ids["deal"][i], "post_mortem": u8::from(last == "closed_won")}),
            )
        })
        .collect();
    for chunk in closed.chunks(1000) {
        let (status, body) = env
            .post(
                "/v1/records/deal/bulk",
                &json!({"operation": "update", "records": chunk}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    env.wait_for_lake().await;

    let session = env.session().await;
    let rows = extract(&session, &win(&[]), Purpose::Training)
        .await
        .expect("features");
    assert_eq!(
        rows.len(),
        closed.len(),
        "every closed deal is one training row"
    );
    // Labels and point-in-time counts agree with what the generator made. A deal's cutoff
    // is its close date, or the day it was closed (today) where that is earlier; meetings
    // count when logged by then (all were committed before the deal closed).
    let meetings = numbers(&rows, "meetings");
    let epoch = chrono::NaiveDate::default();
    for (k, id) in rows.ids.iter().enumerate() {
        let i = positions[id];
        let deal = &env.data.deals[i];
        assert_eq!(
            rows.labels[k],
            Some(deal.stages.last() == Some(&"closed_won")),
            "label of deal {i}"
        );
        let cutoff = epoch + chrono::Duration::days(rows.cutoffs[k].into());
        assert!(
            cutoff == deal.close_date || (cutoff < deal.close_date && load_days.contains(&cutoff)),
            "deal {i} closing on {} was cut off on {cutoff}",
            deal.close_date
        );
        let expected = env
            .data
            .activities
            .iter()
            .filter(|a| a.deal == Some(i) && a.kind == "meeting" && a.occurred_at.date() <= cutoff)
            .count();
        assert_eq!(meetings[k], Some(expected as f64), "meetings of deal {i}");
    }
    assert!(
        rows.versions.keys().any(|p| p.ends_with("/history/")),
        "the history tables' versions are recorded: {:?}",
        rows.versions
    );

    let trained = Scorer::train(
        &win(&[]),
        &rows,
        &Requirements::default(),
        Default::default(),
    )
    .expect("trained");
    eprintln!(
        "win_probability: {} training rows, {} validation rows, AUC {:.4}, PR AUC {:.4}, log loss {:.4}, Brier {:.4}",
        trained.train_rows,
        trained.validation_rows,
        trained.metrics.roc_auc,
        trained.metrics.pr_auc,
        trained.metrics.log_loss,
        trained.metrics.brier
    );
    assert!(
        trained.metrics.roc_auc >= 0.80,
        "validation AUC {}",
        trained.metrics.roc_auc
    );

    // The post-mortem was written after each outcome, so at every cutoff it was unset: it
    // carries nothing into training, and the model is the same without it.
    let leaky = extract(&session, &win(&["post_mortem"]), Purpose::Training)
        .await
        .expect("features");
    assert!(
        numbers(&leaky, "deal.post_mortem")
            .iter()
            .all(Option::is_none),
        "no training row sees a value written after its outcome"
    );
    let with_leak = Scorer::train(
        &win(&["post_mortem"]),
        &leaky,
        &Requirements::default(),
        Default::default(),
    )
    .expect("trained");
    let share = with_leak
        .importance
        .iter()
        .find(|(f, _)| f == "deal.post_mortem")
        .map(|(_, s)| *s);
    assert_eq!(share, Some(0.0), "{:?}", with_leak.importance);
    assert!(
        (with_leak.metrics.roc_auc - trained.metrics.roc_auc).abs() < 1e-9,
        "AUC {} with the late field, {} without",
        with_leak.metrics.roc_auc,
        trained.metrics.roc_auc
    );

    // Same data, same model; same model and input, same scores.
    let again = Scorer::train(
        &win(&[]),
        &rows,
        &Requirements::default(),
        Default::default(),
    )
    .expect("trained");
    assert_eq!(again.scorer, trained.scorer);
    let today = chrono::Utc::now().date_naive();
    let open = extract(&session, &win(&[]), Purpose::Scoring { today })
        .await
        .expect("open deals");
    let open_deals = env
        .data
        .deals
        .iter()
        .filter(|d| !d.stages.last().is_some_and(|s| s.starts_with("closed_")))
        .count();
    assert_eq!(open.len(), open_deals, "every open deal is scored");
    let scores = trained.scorer.score(&open);
    assert_eq!(scores, again.scorer.score(&open));
    assert!(scores.iter().all(|s| (1..=99).contains(&s.score)));
    // A deal in negotiation (the stage every won deal passed) scores above one still
    // prospecting, on average.
    let stage_of = |id: &str| env.data.deals[positions[id]].stages.last().copied();
    let mean = |stage: &str| {
        let s: Vec<f64> = scores
            .iter()
            .filter(|s| stage_of(&s.id) == Some(stage))
            .map(|s| s.probability)
            .collect();
        s.iter().sum::<f64>() / s.len().max(1) as f64
    };
    assert!(mean("negotiation") > mean("prospecting"));
    let explained = &scores[0];
    assert!(
        !explained.factors.is_empty() && explained.factors.iter().all(|f| !f.text.is_empty()),
        "{explained:?}"
    );
    eprintln!(
        "a score: {}",
        serde_json::to_string(explained).unwrap_or_default()
    );
}

impl Env {
    async fn call(
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

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, &self.key, None).await
    }

    /// Until the version's training ended; the model as it is then.
    async fn trained(&self, model: &str, version: i64) -> Value {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn models_train_deploy_and_score_through_the_api() {
    let env = Env::start().await;
    env.wait_for_lake().await;
    let other = oneo_api::db::workspace::create_workspace(&env.pool, "Other")
        .await
        .expect("workspace");

    // Bad definitions name the part at fault and create nothing.
    for (body, part) in [
        (json!({"name": "w", "kind": "deal_size"}), "kind"),
        (
            json!({"name": "Win Score", "kind": "win_probability"}),
            "name",
        ),
        (
            json!({"name": "w", "kind": "win_probability", "horizon_days": 0}),
            "horizon_days",
        ),
        (
            json!({"name": "w", "kind": "win_probability", "fields": ["nope"]}),
            "fields[0]",
        ),
        (
            json!({"name": "w", "kind": "win_probability", "fields": ["stage"]}),
            "fields[0]",
        ),
        (
            json!({"name": "w", "kind": "win_probability", "fields": ["contact"]}),
            "fields[0]",
        ),
    ] {
        let (status, answer) = env.post("/v1/models", &body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["details"][0]["field"], part, "{answer}");
    }
    let (_, listed) = env.get("/v1/models").await;
    assert_eq!(listed, json!([]));

    let (status, model) = env
        .post(
            "/v1/models",
            &json!({"name": "win_score", "kind": "win_probability"}),
        )
        .await;
    assert_eq!(status, 201, "{model}");
    let id = model["id"].as_str().expect("id").to_string();
    let (status, started) = env
        .post(&format!("/v1/models/{id}/train"), &json!({}))
        .await;
    assert_eq!(status, 202, "{started}");
    let v1 = env.trained(&id, 1).await;
    assert_eq!(v1["status"], "validated", "{v1}");
    let auc = v1["metrics"]["roc_auc"].as_f64().expect("auc");
    assert!(auc >= 0.80, "{v1}");
    assert!(
        v1["table_versions"]
            .as_object()
            .is_some_and(|t| !t.is_empty()),
        "{v1}"
    );
    assert_eq!(
        v1["metrics"]["calibration"].as_array().map(Vec::len),
        Some(10),
        "{v1}"
    );

    // Deploying scores every open deal, into oneo.scores and the deal's own field.
    let open: Vec<usize> = (0..env.data.deals.len())
        .filter(|i| {
            !env.data.deals[*i]
                .stages
                .last()
                .is_some_and(|s| s.starts_with("closed_"))
        })
        .collect();
    let (status, deployed) = env
        .post(&format!("/v1/models/{id}/deploy"), &json!({"version": 1}))
        .await;
    assert_eq!(status, 200, "{deployed}");
    assert_eq!(deployed["scoring"]["scored"], open.len(), "{deployed}");
    assert_eq!(deployed["scoring"]["changed"], open.len(), "{deployed}");
    // Drift: today's open deals against the closed ones trained on, per feature.
    let (_, detail) = env.get(&format!("/v1/models/{id}")).await;
    let drift = detail["versions"][0]["drift"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let psi = |f: &str| {
        drift
            .iter()
            .find(|d| d["feature"] == f)
            .and_then(|d| d["psi"].as_f64())
    };
    assert!(psi("meetings").is_some(), "{detail}");
    // Open deals sit in every stage, while the closed ones were trained on as they stood
    // just before closing: the stage mix differs, and the PSI says so.
    assert!(psi("stage_changes").is_some_and(|p| p > 0.1), "{drift:?}");
    let deal = env.ids["deal"][open[0]].to_string();
    let (status, scored) = env.get(&format!("/v1/scores/deal/{deal}")).await;
    assert_eq!(status, 200, "{scored}");
    let score = &scored["scores"][0];
    assert_eq!(score["version"], 1);
    let value = score["score"].as_i64().expect("score");
    assert!((1..=99).contains(&value), "{score}");
    assert!(
        score["factors"]
            .as_array()
            .is_some_and(|f| !f.is_empty() && f.iter().all(|x| x["text"].is_string())),
        "{score}"
    );
    let (_, record) = env.get(&format!("/v1/records/deal/{deal}")).await;
    // Numbers read back as decimal text, as every number field does.
    assert_eq!(record["win_score"], value.to_string(), "{record}");
    let record_version = record["version"].clone();

    // Scoring again with nothing changed writes nothing.
    let (status, again) = env
        .post(&format!("/v1/models/{id}/score"), &json!({}))
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (again["changed"].as_i64(), again["removed"].as_i64()),
        (Some(0), Some(0)),
        "{again}"
    );
    let (_, record) = env.get(&format!("/v1/records/deal/{deal}")).await;
    assert_eq!(record["version"], record_version, "{record}");

    // The scores reach the lake: the system table and the deals' field.
    env.wait_for_lake().await;
    let (status, sql) = env
        .post(
            "/v1/sql",
            &json!({"sql": "SELECT count(*) AS n, min(score) AS lo, max(score) AS hi FROM oneo.scores"}),
        )
        .await;
    assert_eq!(status, 200, "{sql}");
    assert_eq!(sql["rows"][0][0], open.len(), "{sql}");
    // Text columns too (a session reading strings as views casts them to the catalog's).
    let (status, sql) = env
        .post(
            "/v1/sql",
            &json!({"sql": "SELECT model, kind, object, count(*) FROM oneo.scores GROUP BY model, kind, object"}),
        )
        .await;
    assert_eq!(status, 200, "{sql}");
    assert_eq!(
        sql["rows"],
        json!([["win_score", "win_probability", "deal", open.len()]]),
        "{sql}"
    );
    let (status, sql) = env
        .post(
            "/v1/sql",
            &json!({"sql": format!("SELECT win_score FROM crm.deal WHERE id = '{deal}'")}),
        )
        .await;
    assert_eq!(status, 200, "{sql}");
    assert_eq!(sql["rows"][0][0], value.to_string(), "{sql}");

    // Tenants are walls: the other workspace sees neither the model nor the score.
    let (status, _) = env
        .call(
            reqwest::Method::GET,
            &format!("/v1/models/{id}"),
            &other.api_key,
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = env
        .call(
            reqwest::Method::GET,
            &format!("/v1/scores/deal/{deal}"),
            &other.api_key,
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (_, theirs) = env
        .call(reqwest::Method::GET, "/v1/models", &other.api_key, None)
        .await;
    assert_eq!(theirs, json!([]));

    // A deleted deal's score disappears, from the API at once and from the table on the
    // next pass.
    let (status, _) = env
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/records/deal/{deal}"),
            &env.key,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = env.get(&format!("/v1/scores/deal/{deal}")).await;
    assert_eq!(status, 404);
    let (_, pass) = env
        .post(&format!("/v1/models/{id}/score"), &json!({}))
        .await;
    assert_eq!(pass["removed"], 1, "{pass}");

    // A second version, deployed, then rolled back to the first.
    let (status, _) = env
        .post(&format!("/v1/models/{id}/train"), &json!({}))
        .await;
    assert_eq!(status, 202);
    assert_eq!(env.trained(&id, 2).await["status"], "validated");
    let (status, body) = env
        .post(&format!("/v1/models/{id}/deploy"), &json!({"version": 2}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = env
        .post(&format!("/v1/models/{id}/deploy"), &json!({"version": 1}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, detail) = env.get(&format!("/v1/models/{id}")).await;
    assert_eq!(detail["deployed"], 1, "{detail}");
    let statuses: Vec<&str> = detail["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|v| v["status"].as_str())
        .collect();
    assert_eq!(statuses, ["archived", "deployed"], "{detail}");
    let (status, body) = env
        .post(&format!("/v1/models/{id}/deploy"), &json!({"version": 9}))
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn too_little_data_fails_the_version_with_the_numbers() {
    let env = Env::start_empty().await;
    let (status, model) = env
        .post(
            "/v1/models",
            &json!({"name": "win_score", "kind": "win_probability"}),
        )
        .await;
    assert_eq!(status, 201, "{model}");
    let id = model["id"].as_str().expect("id").to_string();
    let (status, _) = env
        .post(&format!("/v1/models/{id}/train"), &json!({}))
        .await;
    assert_eq!(status, 202);
    let v1 = env.trained(&id, 1).await;
    assert_eq!(v1["status"], "failed", "{v1}");
    assert_eq!(
        v1["error"],
        "not enough data: 0 labelled rows (0 positive, 0 negative); training needs at least 1000 rows and 100 of each class",
        "{v1}"
    );
    let (status, body) = env
        .post(&format!("/v1/models/{id}/deploy"), &json!({"version": 1}))
        .await;
    assert_eq!(status, 409, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lead_score_learns_who_wins_next_from_activity_before_each_cutoff() {
    let env = Env::start().await;
    env.wait_for_lake().await;
    let today = chrono::Utc::now().date_naive();
    let spec = FeatureSpec {
        kind: ModelKind::LeadScore,
        horizon_days: 90,
        fields: vec![],
    };
    let session = env.session().await;
    let rows = extract(&session, &spec, Purpose::Training)
        .await
        .expect("features");
    // Labels agree with the generator: a deal of the contact won (on its close date, or
    // today where that is earlier) in the 90 days after the cutoff.
    let contact_of: HashMap<String, usize> = env.ids["contact"]
        .iter()
        .enumerate()
        .map(|(i, id)| (id.to_string(), i))
        .collect();
    let epoch = chrono::NaiveDate::default();
    let activities = numbers(&rows, "activities");
    let mut positives = 0;
    for (k, id) in rows.ids.iter().enumerate() {
        let c = contact_of[id];
        let cutoff = epoch + chrono::Duration::days(rows.cutoffs[k].into());
        assert!(
            cutoff + chrono::Duration::days(90) <= today,
            "{cutoff}: its window has not passed"
        );
        let won = env.data.deals.iter().any(|d| {
            let day = d.close_date.min(today);
            d.contact == c
                && d.stages.last() == Some(&"closed_won")
                && day > cutoff
                && day <= cutoff + chrono::Duration::days(90)
        });
        assert_eq!(rows.labels[k], Some(won), "contact {c} at {cutoff}");
        positives += usize::from(won);
        let dated = env
            .data
            .activities
            .iter()
            .filter(|a| a.contact == Some(c) && a.occurred_at.date() <= cutoff)
            .count();
        assert_eq!(
            activities[k],
            Some(dated as f64),
            "activities of contact {c} by {cutoff}"
        );
    }
    let trained =
        Scorer::train(&spec, &rows, &Requirements::default(), Default::default()).expect("trained");
    eprintln!(
        "lead_score: {} rows ({positives} positive), {} training, {} validation, AUC {:.4}, PR AUC {:.4}",
        rows.len(),
        trained.train_rows,
        trained.validation_rows,
        trained.metrics.roc_auc,
        trained.metrics.pr_auc
    );
    assert!(
        trained.metrics.roc_auc > 0.70,
        "validation AUC {}",
        trained.metrics.roc_auc
    );
    let open = extract(&session, &spec, Purpose::Scoring { today })
        .await
        .expect("contacts");
    assert_eq!(
        open.len(),
        env.data.contacts.len(),
        "every contact is scored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn churn_risk_learns_which_customers_go_quiet() {
    // Twice the usual scale: 1,200 companies, so that the customers at four cutoffs make the
    // 1,000 rows training needs.
    let env = Env::start_with(2 * SCALE).await;
    env.wait_for_lake().await;
    let today = chrono::Utc::now().date_naive();
    let spec = FeatureSpec {
        kind: ModelKind::ChurnRisk,
        horizon_days: 90,
        fields: vec![],
    };
    let session = env.session().await;
    let rows = extract(&session, &spec, Purpose::Training)
        .await
        .expect("features");
    let company_of: HashMap<String, usize> = env.ids["company"]
        .iter()
        .enumerate()
        .map(|(i, id)| (id.to_string(), i))
        .collect();
    let epoch = chrono::NaiveDate::default();
    let days = chrono::Duration::days;
    let mut quiet = 0;
    for (k, id) in rows.ids.iter().enumerate() {
        let c = company_of[id];
        let cutoff = epoch + days(rows.cutoffs[k].into());
        let won_on = |d: &oneo_data::Deal| {
            (d.company == c && d.stages.last() == Some(&"closed_won"))
                .then(|| d.close_date.min(today))
        };
        assert!(
            env.data
                .deals
                .iter()
                .filter_map(won_on)
                .any(|day| day <= cutoff),
            "company {c} at {cutoff} had won nothing yet"
        );
        let won_after = env
            .data
            .deals
            .iter()
            .filter_map(won_on)
            .any(|day| day > cutoff && day <= cutoff + days(90));
        let active_after = env.data.activities.iter().any(|a| {
            a.contact.is_some_and(|p| env.data.contacts[p].company == c)
                && a.occurred_at.date() > cutoff
                && a.occurred_at.date() <= cutoff + days(90)
        });
        let churned = !won_after && !active_after;
        assert_eq!(rows.labels[k], Some(churned), "company {c} at {cutoff}");
        quiet += usize::from(churned);
    }
    let trained =
        Scorer::train(&spec, &rows, &Requirements::default(), Default::default()).expect("trained");
    eprintln!(
        "churn_risk: {} rows ({quiet} quiet), {} training, {} validation, AUC {:.4}, PR AUC {:.4}",
        rows.len(),
        trained.train_rows,
        trained.validation_rows,
        trained.metrics.roc_auc,
        trained.metrics.pr_auc
    );
    assert!(
        trained.metrics.roc_auc > 0.70,
        "validation AUC {}",
        trained.metrics.roc_auc
    );
    let customers = extract(&session, &spec, Purpose::Scoring { today })
        .await
        .expect("customers");
    let expected = (0..env.data.companies.len())
        .filter(|c| {
            env.data
                .deals
                .iter()
                .any(|d| d.company == *c && d.stages.last() == Some(&"closed_won"))
        })
        .count();
    assert_eq!(customers.len(), expected, "every customer is scored");
}
