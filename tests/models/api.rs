//! The registry over HTTP: bad definitions, training in the background, deploy and
//! rollback, scores in the record, the API and the lake, tenants and deletions.

use serde_json::json;

use crate::harness::Env;

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
