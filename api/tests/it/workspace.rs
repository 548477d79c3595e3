use axum::http::StatusCode;
use sha2::Digest;

use crate::harness::TestApp;

#[tokio::test]
async fn migrating_twice_changes_nothing() {
    let app = TestApp::new().await;
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    oneo_api::db::migrate(&app.pool)
        .await
        .expect("second migrate is a no-op");
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(before, after);
    assert!(before >= 1);
}

/// The standard objects carry exactly the fields API.md lists, with those types.
#[tokio::test]
async fn a_new_workspace_has_the_standard_objects() {
    let app = TestApp::new().await;
    let r = app.get("/v1/objects").await;
    assert_eq!(r.status, StatusCode::OK);
    let expected: &[(&str, &[(&str, &str)])] = &[
        (
            "company",
            &[
                ("name", "text"),
                ("domain", "url"),
                ("industry", "picklist"),
                ("employees", "number"),
                ("annual_revenue", "currency"),
                ("country", "text"),
            ],
        ),
        (
            "contact",
            &[
                ("first_name", "text"),
                ("last_name", "text"),
                ("email", "email"),
                ("phone", "phone"),
                ("title", "text"),
                ("lead_source", "picklist"),
                ("status", "picklist"),
                ("company", "lookup"),
            ],
        ),
        (
            "deal",
            &[
                ("name", "text"),
                ("amount", "currency"),
                ("stage", "picklist"),
                ("close_date", "date"),
                ("probability", "percent"),
                ("lead_source", "picklist"),
                ("owner", "text"),
                ("company", "lookup"),
                ("contact", "lookup"),
            ],
        ),
        (
            "activity",
            &[
                ("type", "picklist"),
                ("subject", "text"),
                ("occurred_at", "datetime"),
                ("duration_minutes", "number"),
                ("contact", "lookup"),
                ("deal", "lookup"),
            ],
        ),
    ];
    let objects = r.body.as_array().unwrap();
    assert_eq!(objects.len(), expected.len());
    for (name, fields) in expected {
        let o = objects
            .iter()
            .find(|o| o["api_name"] == *name)
            .unwrap_or_else(|| panic!("{name} missing"));
        let got: Vec<(String, String)> = o["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["api_name"].as_str().unwrap().into(),
                    f["type"].as_str().unwrap().into(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = fields
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want, "{name}");
        assert_eq!(o["is_standard"], true);
    }
    let deal = objects.iter().find(|o| o["api_name"] == "deal").unwrap();
    let stage = deal["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["api_name"] == "stage")
        .unwrap();
    assert_eq!(
        stage["options"],
        serde_json::json!([
            "prospecting",
            "qualification",
            "proposal",
            "negotiation",
            "closed_won",
            "closed_lost"
        ])
    );
    let contact = objects.iter().find(|o| o["api_name"] == "contact").unwrap();
    let email = contact["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["api_name"] == "email")
        .unwrap();
    assert_eq!(email["unique"], true);
}

#[tokio::test]
async fn the_key_is_stored_only_as_its_hash() {
    let app = TestApp::new().await;
    let rows: Vec<String> = sqlx::query_scalar("SELECT row_to_json(k)::text FROM oneo.api_keys k")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].contains(&app.key), "the plaintext key is stored");
    let hash: Vec<u8> = sqlx::query_scalar("SELECT key_hash FROM oneo.api_keys")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(hash, sha2::Sha256::digest(app.key.as_bytes()).to_vec());
}

#[tokio::test]
async fn health_readiness_and_openapi() {
    let app = TestApp::new().await;
    assert_eq!(
        app.call(axum::http::Method::GET, "/healthz", None, None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.call(axum::http::Method::GET, "/readyz", None, None)
            .await
            .status,
        StatusCode::OK
    );
    let doc = app
        .call(axum::http::Method::GET, "/openapi.json", None, None)
        .await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["paths"]["/v1/records/{object}/bulk"]["post"].is_object());
    // A database whose migrations are behind is not ready.
    sqlx::query("DELETE FROM _sqlx_migrations")
        .execute(&app.pool)
        .await
        .unwrap();
    let r = app
        .call(axum::http::Method::GET, "/readyz", None, None)
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["error"]["code"], "unavailable");
}

/// The settings relative dates depend on: UTC and January by default; an admin may change
/// them; a bad value is refused naming the setting and changes nothing.
#[tokio::test]
async fn workspace_settings_are_checked_and_admin_only() {
    let app = TestApp::new().await;
    let r = app.get("/v1/workspace").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["id"], serde_json::json!(app.workspace.to_string()));
    assert_eq!(r.body["time_zone"], "UTC");
    assert_eq!(r.body["fiscal_year_start_month"], 1);

    let bad = app
        .patch(
            "/v1/workspace",
            serde_json::json!({"time_zone": "Mars/Olympus", "fiscal_year_start_month": 13}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    let mut fields = bad.detail_fields();
    fields.sort();
    assert_eq!(fields, ["fiscal_year_start_month", "time_zone"]);
    let unknown = app
        .patch("/v1/workspace", serde_json::json!({"fiscal_start": 4}))
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.body);
    let r = app.get("/v1/workspace").await;
    assert_eq!(
        (
            r.body["time_zone"].as_str(),
            r.body["fiscal_year_start_month"].as_i64()
        ),
        (Some("UTC"), Some(1)),
        "a refused change changes nothing"
    );

    let analyst = app.key_with_role("analyst").await;
    let r = app
        .call(
            axum::http::Method::PATCH,
            "/v1/workspace",
            Some(&analyst),
            Some(serde_json::json!({"fiscal_year_start_month": 4})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);

    let r = app
        .patch(
            "/v1/workspace",
            serde_json::json!({"time_zone": "America/New_York", "fiscal_year_start_month": 4}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.headers.contains_key("oneo-lsn"));
    let r = app.get("/v1/workspace").await;
    assert_eq!(r.body["time_zone"], "America/New_York");
    assert_eq!(r.body["fiscal_year_start_month"], 4);
    // Only what is named changes.
    app.patch(
        "/v1/workspace",
        serde_json::json!({"fiscal_year_start_month": 7}),
    )
    .await;
    let r = app.get("/v1/workspace").await;
    assert_eq!(
        (
            r.body["time_zone"].as_str(),
            r.body["fiscal_year_start_month"].as_i64()
        ),
        (Some("America/New_York"), Some(7))
    );
}
