//! Workflow definitions through the API: validated against the workspace's objects on every
//! save, versioned, enabled and disabled, and walled per workspace.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::TestApp;

fn won_deals() -> Value {
    json!({
        "name": "Won deals",
        "trigger": {"type": "field_changed", "object": "deal", "field": "stage", "to": "closed_won"},
        "steps": [
            {"key": "follow_up", "type": "create_record", "object": "activity",
             "values": {"subject": "Kick-off: {{trigger.name}}", "type": "task"}},
            {"key": "tell", "type": "send_email", "to": ["sales@example.com"],
             "subject": "Won: {{trigger.name}}", "body": "Task {{steps.follow_up.id}}",
             "on_error": {"do": "retry", "max_attempts": 3, "backoff_ms": 1000}},
        ],
    })
}

#[tokio::test]
async fn workflows_are_validated_versioned_and_walled() {
    let app = TestApp::new().await;

    // Mistakes are named by their place, and nothing is saved.
    let mut bad = won_deals();
    bad["trigger"]["field"] = json!("colour");
    bad["steps"][0]["values"]["mood"] = json!("happy");
    bad["steps"][1]["to"] = json!(["nobody"]);
    bad["steps"].as_array_mut().unwrap().push(json!(
        {"key": "check", "type": "condition", "when": "amount >", "then": "nowhere"}
    ));
    let r = app.post("/v1/workflows", bad).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let fields = r.detail_fields();
    for want in [
        "trigger.field",
        "steps[0].values.mood",
        "steps[1].to[0]",
        "steps[2].when",
        "steps[2].then",
    ] {
        assert!(
            fields.iter().any(|f| f == want),
            "no issue at {want}: {fields:?}"
        );
    }
    let mut unknown = won_deals();
    unknown["steps"][0]["colour"] = json!("red");
    let r = app.post("/v1/workflows", unknown).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("step `follow_up`"),
        "{}",
        r.body
    );
    assert_eq!(
        app.get("/v1/workflows").await.body,
        json!([]),
        "nothing was saved"
    );

    // A good one: version 1, enabled, owned by the key that made it.
    let r = app.post("/v1/workflows", won_deals()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        (r.body["version"].clone(), r.body["enabled"].clone()),
        (json!(1), json!(true))
    );
    assert!(
        r.body.get("hook_path").is_none(),
        "only webhook triggers have a hook"
    );

    // A change is a new version; the old one stays readable.
    let mut changed = won_deals();
    changed["name"] = json!("Won deals, v2");
    let r = app
        .call(
            Method::PUT,
            &format!("/v1/workflows/{id}"),
            Some(&app.key),
            Some(changed),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["version"], 2);
    let versions = app.get(&format!("/v1/workflows/{id}/versions")).await.body;
    let names: Vec<&str> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["spec"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Won deals, v2", "Won deals"]);
    // A bad change changes nothing.
    let mut broken = won_deals();
    broken["steps"] = json!([]);
    let r = app
        .call(
            Method::PUT,
            &format!("/v1/workflows/{id}"),
            Some(&app.key),
            Some(broken),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        app.get(&format!("/v1/workflows/{id}")).await.body["version"],
        2
    );

    // Disable and enable.
    let r = app
        .post(&format!("/v1/workflows/{id}/disable"), json!({}))
        .await;
    assert_eq!(
        (r.status, r.body["enabled"].clone()),
        (StatusCode::OK, json!(false))
    );
    assert_eq!(r.body["spec"]["enabled"], false);
    let r = app
        .post(&format!("/v1/workflows/{id}/enable"), json!({}))
        .await;
    assert_eq!(r.body["enabled"], true);

    // A webhook workflow gets its secret path.
    let hook = json!({"name": "Inbound lead", "trigger": {"type": "webhook",
        "fields": [{"name": "email", "type": "email", "required": true}]},
        "steps": [{"key": "lead", "type": "create_record", "object": "contact",
                   "values": {"email": "{{trigger.email}}"}}]});
    let r = app.post("/v1/workflows", hook).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let path = r.body["hook_path"].as_str().unwrap();
    assert!(
        path.starts_with(&format!("/hooks/{}/", r.body["id"].as_str().unwrap())),
        "{path}"
    );

    // The hook starts a run without a key; the body is checked against its fields.
    let hook_id = r.body["id"].as_str().unwrap().to_string();
    let path = path.to_string();
    let started = app
        .post_hook(&path, json!({"email": "ann@example.com"}), None)
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    let runs = app
        .get(&format!("/v1/workflow-runs?workflow={hook_id}"))
        .await
        .body;
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    assert_eq!(runs[0]["id"], started.body["run_id"]);
    assert_eq!(runs[0]["trigger"]["fields"]["email"], "ann@example.com");
    let wrong = format!("{}x", &path[..path.len() - 1]);
    assert_eq!(
        app.post_hook(&wrong, json!({"email": "ann@example.com"}), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = app.post_hook(&path, json!({"mail": "x"}), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(
        r.detail_fields(),
        ["email", "mail"],
        "required missing, unknown given"
    );
    let r = app
        .post_hook(&path, json!({"email": "not an address"}), None)
        .await;
    assert_eq!(r.detail_fields(), ["email"], "{}", r.body);
    // A retried call with the same Idempotency-Key starts the run once.
    let once = app
        .post_hook(&path, json!({"email": "bob@example.com"}), Some("lead-42"))
        .await;
    let again = app
        .post_hook(&path, json!({"email": "bob@example.com"}), Some("lead-42"))
        .await;
    assert_eq!(once.body["run_id"], again.body["run_id"]);
    assert_eq!(
        (
            once.body["duplicate"].clone(),
            again.body["duplicate"].clone()
        ),
        (json!(false), json!(true))
    );
    let runs = app
        .get(&format!("/v1/workflow-runs?workflow={hook_id}"))
        .await
        .body;
    assert_eq!(
        runs.as_array().unwrap().len(),
        2,
        "bad calls started nothing: {runs}"
    );
    app.post(&format!("/v1/workflows/{hook_id}/disable"), json!({}))
        .await;
    let r = app
        .post_hook(&path, json!({"email": "cy@example.com"}), None)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);

    // Viewers can't change workflows; another workspace can't see them.
    let viewer = app.key_with_role("viewer").await;
    let r = app
        .call(
            Method::POST,
            "/v1/workflows",
            Some(&viewer),
            Some(won_deals()),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let (_, other) = app.other_workspace().await;
    let r = app
        .call(
            Method::GET,
            &format!("/v1/workflows/{id}"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .call(
            Method::DELETE,
            &format!("/v1/workflows/{id}"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .call(Method::GET, "/v1/workflows", Some(&other), None)
        .await;
    assert_eq!(r.body, json!([]));

    let r = app.delete(&format!("/v1/workflows/{id}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/v1/workflows/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
}
