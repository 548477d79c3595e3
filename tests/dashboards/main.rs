//! Dashboards end to end: the synthetic data set in a real lake, a dashboard materialized
//! from it, refreshed by ingest commits, opened in headless Chromium and exported as a PDF
//! read back by `pdftotext`.

#[path = "../common/mod.rs"]
mod common;
mod exports;
#[path = "../reports/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::process::Command;
use std::time::Duration;

use harness::Env;
use reqwest::Method;
use serde_json::{Value, json};

fn dashboard_spec() -> Value {
    json!({
        "name": "Sales overview",
        "description": "Pipeline and accounts",
        "filters": [{"field": "owner", "label": "Owner"}, {"field": "close_date", "label": "Close date"}],
        "widgets": [
            {"key": "deals", "title": "Open and closed deals", "type": "metric",
             "report": {"type": "summary", "object": "deal", "aggregates": [{"fn": "count"}]}},
            {"key": "won", "title": "Won this quarter", "type": "metric",
             "compare": {"field": "close_date", "period": "quarter"},
             "report": {"type": "summary", "object": "deal", "aggregates": [{"fn": "sum", "field": "amount"}],
                        "filters": [{"field": "stage", "op": "equals", "value": "closed_won"}]}},
            {"key": "stages", "title": "Deals by stage", "type": "chart", "chart": "bar",
             "report": {"type": "summary", "object": "deal", "groupings": [{"field": "stage"}],
                        "aggregates": [{"fn": "count"}]}},
            {"key": "industries", "title": "Companies by industry", "type": "chart", "chart": "donut",
             "report": {"type": "summary", "object": "company", "groupings": [{"field": "industry"}]}},
            {"key": "biggest", "title": "Biggest deals", "type": "report",
             "report": {"type": "tabular", "object": "deal", "columns": ["name", "amount", "stage"],
                        "sort": [{"by": "amount", "desc": true}], "limit": 10}}
        ]
    })
}

pub(crate) fn widget<'a>(data: &'a Value, key: &str) -> &'a Value {
    data["widgets"]
        .as_array()
        .expect("widgets")
        .iter()
        .find(|w| w["key"] == key)
        .unwrap_or_else(|| panic!("no widget {key} in {data}"))
}

async fn get_json(env: &Env, path: &str) -> Value {
    let (status, body) = env.send(Method::GET, path, None).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboards_materialize_refresh_render_and_export() {
    let env = Env::with_data(400).await;

    // Bad definitions are refused with the part named, and nothing is saved.
    let (status, body) = env
        .post(
            "/v1/dashboards",
            &json!({"name": "x", "widgets": [{"key": "a", "title": "A", "type": "chart",
            "report": {"type": "summary", "object": "deal", "groupings": [{"field": "stage"}]}}]}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["details"][0]["field"], "widgets[0].chart",
        "{body}"
    );
    let (status, body) = env
        .post("/v1/dashboards", &json!({"name": "x", "widgets": [{"key": "a", "title": "A", "type": "metric",
            "report": {"type": "summary", "object": "deal", "aggregates": [{"fn": "sum", "field": "amout"}]}}]}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["details"][0]["field"]
            .as_str()
            .unwrap_or("")
            .starts_with("widgets[0].report"),
        "{body}"
    );
    assert!(body.to_string().contains("amout"), "{body}");
    let listed = get_json(&env, "/v1/dashboards").await;
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(0),
        "a refused dashboard was saved"
    );

    // The demo's ten-widget dashboard runs on the sample data, every widget drawn.
    let demo: Value =
        serde_json::from_str(include_str!("../../src/demo_dashboard.json")).expect("demo spec");
    let (status, body) = env.post("/v1/dashboards", &demo).await;
    assert_eq!(status, 201, "the demo dashboard: {body}");
    let demo_id = body["id"].as_str().expect("id");
    let demo_data = get_json(&env, &format!("/v1/dashboards/{demo_id}/data")).await;
    assert_eq!(demo_data["widgets"].as_array().map(Vec::len), Some(10));
    for w in demo_data["widgets"].as_array().expect("widgets") {
        assert!(w["answer"]["error"].is_null(), "{w}");
    }

    let (status, created) = env.post("/v1/dashboards", &dashboard_spec()).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_string();
    let workspace: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM oneo.workspaces WHERE name = 'Acme'")
            .fetch_one(&env.pool)
            .await
            .expect("workspace");
    let stored = env
        .ingest
        .lake()
        .root()
        .to_file_path()
        .expect("a local lake")
        .join(workspace.to_string())
        .join("dashboards")
        .join(format!("{id}.parquet"));
    assert!(
        stored.is_file(),
        "creating did not materialize {}",
        stored.display()
    );

    // Materialized at creation: every widget current, none recomputed by opening.
    let data = get_json(&env, &format!("/v1/dashboards/{id}/data")).await;
    let deal_count: i64 = sqlx::query_scalar("SELECT count(*) FROM rel.deal")
        .fetch_one(&env.pool)
        .await
        .expect("count");
    assert_eq!(
        widget(&data, "deals")["answer"]["value"],
        json!(deal_count),
        "{data}"
    );
    for w in data["widgets"].as_array().expect("widgets") {
        assert_eq!(w["current"], true, "{w}");
        assert_eq!(w["recomputed"], false, "opening recomputed {w}");
        assert!(w["freshness"]["lsn"].is_string(), "{w}");
    }
    let stages = &widget(&data, "stages")["answer"]["result"]["rows"];
    assert!(stages.as_array().is_some_and(|r| !r.is_empty()), "{stages}");
    let industries_at = widget(&data, "industries")["computed_at"].clone();
    let deals_at = widget(&data, "deals")["computed_at"].clone();

    // A write through the API: the refresher (not the next open) recomputes the deal
    // widgets once ingest has it and the debounce has passed; the company widget stays.
    let (status, body) = env
        .post("/v1/records/deal", &json!({"name": "Dashboard deal", "amount": "1000.00", "stage": "prospecting", "owner": "dash-owner"}))
        .await;
    assert_eq!(status, 201, "{body}");
    env.wait_for_lake().await;
    // Nothing opens the dashboard meanwhile: only the refresher can recompute it, and when
    // it does it rewrites the dashboard's materialization file.
    let written = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let before = written(&stored);
    let mut rewritten = false;
    for _ in 0..150 {
        if written(&stored) != before {
            rewritten = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        rewritten,
        "the refresher did not rewrite {} within 15 s",
        stored.display()
    );
    let data = get_json(&env, &format!("/v1/dashboards/{id}/data")).await;
    assert_eq!(
        widget(&data, "deals")["recomputed"],
        false,
        "the refresher left it to the open: {data}"
    );
    assert_eq!(widget(&data, "deals")["current"], true, "{data}");
    let deals_widget = widget(&data, "deals");
    assert_eq!(
        deals_widget["answer"]["value"],
        json!(deal_count + 1),
        "{data}"
    );
    assert_ne!(deals_widget["computed_at"], deals_at);
    assert_eq!(
        widget(&data, "industries")["computed_at"],
        industries_at,
        "an untouched object's widget was recomputed"
    );

    // Global filters run live and apply only where the object has the field.
    let live = get_json(
        &env,
        &format!("/v1/dashboards/{id}/data?f.owner=dash-owner"),
    )
    .await;
    assert_eq!(
        widget(&live, "deals")["answer"]["value"],
        json!(1),
        "{live}"
    );
    let companies: i64 = widget(&data, "industries")["answer"]["result"]["totals"][0]
        .as_i64()
        .expect("total");
    assert_eq!(
        widget(&live, "industries")["answer"]["result"]["totals"][0],
        json!(companies)
    );
    let (status, body) = env
        .send(
            Method::GET,
            &format!("/v1/dashboards/{id}/data?f.stage=x"),
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("f.stage"), "{body}");

    // Tenants are walls.
    let other = oneo_api::db::workspace::create_workspace(&env.pool, "Other")
        .await
        .expect("workspace");
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/dashboards/{id}/data", env.base))
        .bearer_auth(&other.api_key)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 404);

    exports::check(&env, &id, &data, deal_count).await;

    // A real browser: the key is exchanged for a cookie, the page shows each title and the
    // charts as SVG with their categories.
    let url = format!("{}/dashboards/{id}?key={}", env.base, env.key);
    let dom = chromium(&["--dump-dom", &url]);
    for title in [
        "Sales overview",
        "Open and closed deals",
        "Deals by stage",
        "Companies by industry",
        "Biggest deals",
    ] {
        assert!(dom.contains(title), "the page lacks {title}");
    }
    assert!(dom.matches("<svg").count() >= 2, "the page has no charts");
    assert!(
        dom.contains("closed_won"),
        "the charts and tables lack data"
    );
    assert!(
        dom.contains("data-computed-at"),
        "the page does not say how fresh it is"
    );
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    chromium(&[
        "--window-size=1280,1400",
        &format!("--screenshot={}", shot.display()),
        &url,
    ]);
    let png = std::fs::read(&shot).expect("screenshot");
    assert_eq!(&png[1..4], b"PNG");
    assert!(
        png.len() > 20_000,
        "the screenshot looks empty ({} bytes)",
        png.len()
    );

    // Without the key or its cookie, the page refuses.
    let resp = reqwest::Client::new()
        .get(format!("{}/dashboards/{id}", env.base))
        .send()
        .await
        .expect("page");
    assert_eq!(resp.status().as_u16(), 401);

    // A share link opens the page (and its PDF) without a key; a forged one doesn't.
    let (status, body) = env
        .post(
            &format!("/v1/dashboards/{id}/share"),
            &json!({"expires_in_hours": 0}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"][0]["field"], "expires_in_hours");
    let (status, shared) = env
        .post(
            &format!("/v1/dashboards/{id}/share"),
            &json!({"expires_in_hours": 2}),
        )
        .await;
    assert_eq!(status, 200, "{shared}");
    let link = format!("{}{}", env.base, shared["url"].as_str().expect("url"));
    let dom = chromium(&["--dump-dom", &link]);
    assert!(
        dom.contains("Deals by stage") && dom.contains("<svg"),
        "the shared page: {dom}"
    );
    assert!(
        dom.contains("name=\"share\""),
        "the filter form drops the share token"
    );
    let anonymous = reqwest::Client::new();
    let pdf = anonymous
        .get(format!(
            "{}/dashboards/{id}/export.pdf?share={}",
            env.base,
            link.split("share=").nth(1).expect("token")
        ))
        .send()
        .await
        .expect("pdf");
    assert_eq!(pdf.status().as_u16(), 200);
    assert!(pdftotext(&pdf.bytes().await.expect("bytes")).contains("Biggest deals"));
    let forged = link.replace("share=", "share=x");
    assert_eq!(
        anonymous
            .get(&forged)
            .send()
            .await
            .expect("page")
            .status()
            .as_u16(),
        401
    );
    let other_dashboard = link.replace(&id, demo_id);
    assert_eq!(
        anonymous
            .get(&other_dashboard)
            .send()
            .await
            .expect("page")
            .status()
            .as_u16(),
        401
    );

    // An explicit refresh recomputes what changed (nothing here); `force` recomputes all.
    let (status, body) = env
        .post(&format!("/v1/dashboards/{id}/refresh"), &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["widgets"]
            .as_array()
            .expect("widgets")
            .iter()
            .all(|w| w["recomputed"] == false),
        "{body}"
    );
    let (status, body) = env
        .post(
            &format!("/v1/dashboards/{id}/refresh?force=true"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["widgets"]
            .as_array()
            .expect("widgets")
            .iter()
            .all(|w| w["recomputed"] == true),
        "{body}"
    );

    // Dashboards kept as files: loaded, loaded again after an edit (same dashboard, new
    // title), and a wrong file reported while the others load.
    let root = env.ingest.lake().root().clone();
    let state = oneo_api::AppState {
        pool: env.pool.clone(),
        ingest: Some(env.ingest.clone()),
        lake: Some(std::sync::Arc::new(oneo_query::QueryConfig::new(
            root.clone(),
        ))),
        dashboards: Some(std::sync::Arc::new(
            oneo_api::dashboards::DashboardService::new(&root).expect("service"),
        )),
        deliveries: None,
    };
    let dir = tempfile::tempdir().expect("dir");
    let yaml = |title: &str| {
        format!(
            "workspace: {workspace}\nname: Kept in git\nwidgets:\n  - key: n\n    title: {title}\n    type: metric\n    report: {{type: summary, object: deal}}\n"
        )
    };
    std::fs::write(dir.path().join("kept.yaml"), yaml("Deal count")).expect("write");
    std::fs::write(dir.path().join("broken.json"), "{\"workspace\": \"nope\"}").expect("write");
    let loaded = oneo_api::dashboards::load_files(&state, dir.path()).await;
    assert_eq!(loaded.len(), 2);
    assert!(
        loaded[0]
            .outcome
            .as_ref()
            .is_err_and(|e| e.contains("workspace")),
        "{loaded:?}"
    );
    let kept = loaded[1].outcome.clone().expect("kept.yaml loads");
    std::fs::write(dir.path().join("kept.yaml"), yaml("Deals")).expect("write");
    let again = oneo_api::dashboards::load_files(&state, dir.path()).await;
    assert_eq!(
        again[1].outcome.as_ref().ok(),
        Some(&kept),
        "loading again made another dashboard"
    );
    // The running server serves it, from the materialization the loader stored.
    let data = get_json(&env, &format!("/v1/dashboards/{kept}/data")).await;
    assert_eq!(widget(&data, "n")["title"], "Deals");
    assert_eq!(widget(&data, "n")["answer"]["value"], json!(deal_count + 1));

    let (status, _) = env
        .send(Method::DELETE, &format!("/v1/dashboards/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = env
        .send(Method::GET, &format!("/v1/dashboards/{id}/data"), None)
        .await;
    assert_eq!(status, 404);
}

pub(crate) fn pdftotext(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("d.pdf");
    std::fs::write(&path, pdf).expect("write");
    let out = Command::new("pdftotext")
        .args(["-layout"])
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (Debian poppler-utils)");
    assert!(
        out.status.success(),
        "pdftotext: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Headless Chromium with a profile of its own; its standard output.
fn chromium(args: &[&str]) -> String {
    let profile = tempfile::tempdir().expect("profile");
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .output()
        .expect("chromium (Debian package chromium)");
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
