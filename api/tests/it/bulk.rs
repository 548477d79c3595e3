use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::harness::TestApp;

#[tokio::test]
async fn ten_thousand_records_in_one_request() {
    let app = TestApp::new().await;
    let records: Vec<Value> = (0..10_000)
        .map(|i| json!({"name": format!("Co {i}"), "employees": i, "industry": "retail"}))
        .collect();
    let r = app
        .post(
            "/v1/records/company/bulk",
            json!({"operation": "create", "records": records}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["count"], 10_000);
    assert!(r.headers.contains_key("oneo-lsn"));
    assert_eq!(app.count("company").await, 10_000);
    let too_many: Vec<Value> = (0..10_001)
        .map(|i| json!({"name": format!("X {i}")}))
        .collect();
    let r = app
        .post(
            "/v1/records/company/bulk",
            json!({"operation": "create", "records": too_many}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.detail_fields(), vec!["records"]);
    assert_eq!(app.count("company").await, 10_000);
}

#[tokio::test]
async fn one_bad_item_writes_nothing_and_every_failure_is_reported() {
    let app = TestApp::new().await;
    app.create("contact", json!({"email": "taken@example.com"}))
        .await;
    let mut records: Vec<Value> = (0..100)
        .map(|i| json!({"first_name": format!("P{i}"), "email": format!("p{i}@example.com")}))
        .collect();
    records[3] = json!({"email": "not-an-email"});
    records[41] = json!({"email": "Taken@example.com"});
    records[57] = json!({"email": "p56@example.com"});
    records[88] = json!({"company": "01a205ec-0000-7000-8000-000000000000"});
    let failures = |r: &crate::harness::Resp| -> Vec<(i64, String)> {
        r.body["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["index"].as_i64().unwrap(),
                    d["field"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    // One round trip names every failure: a malformed value, a taken unique value, a duplicate
    // within the request, and a lookup to a record that does not exist.
    let r = app
        .post(
            "/v1/records/contact/bulk",
            json!({"operation": "create", "records": records.clone()}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "bulk_failed");
    assert_eq!(
        failures(&r),
        vec![
            (3, "email".into()),
            (41, "email".into()),
            (57, "email".into()),
            (88, "company".into())
        ],
        "{}",
        r.body
    );
    assert!(
        r.body["error"]["details"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("not an email")
    );
    assert_eq!(app.count("contact").await, 1, "nothing was written");
    records[3] = json!({"email": "fixed@example.com"});
    let r = app
        .post(
            "/v1/records/contact/bulk",
            json!({"operation": "create", "records": records}),
        )
        .await;
    assert_eq!(
        failures(&r),
        vec![
            (41, "email".into()),
            (57, "email".into()),
            (88, "company".into())
        ],
        "{}",
        r.body
    );
    assert_eq!(app.count("contact").await, 1, "nothing was written");
}

#[tokio::test]
async fn bulk_updates_and_deletes_are_all_or_nothing() {
    let app = TestApp::new().await;
    let created = app.post("/v1/records/deal/bulk", json!({"operation": "create", "records": (0..50).map(|i| json!({"name": format!("D{i}"), "amount": i})).collect::<Vec<_>>()})).await;
    let ids: Vec<String> = created.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let mut updates: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "version": 1, "stage": "closed_won"}))
        .collect();
    updates[10]["version"] = json!(7);
    let r = app
        .post(
            "/v1/records/deal/bulk",
            json!({"operation": "update", "records": updates.clone()}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"]["details"][0]["index"], 10);
    assert_eq!(r.body["error"]["details"][0]["current_version"], 1);
    let won = app.get("/v1/records/deal?filter=stage:eq:closed_won").await;
    assert_eq!(won.body["records"], json!([]), "nothing was updated");
    updates[10]["version"] = json!(1);
    let r = app
        .post(
            "/v1/records/deal/bulk",
            json!({"operation": "update", "records": updates}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.body["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["version"] == 2)
    );

    let mut deletes: Vec<Value> = ids.iter().map(|id| json!(id)).collect();
    deletes.push(json!("01a205ec-0000-7000-8000-000000000000"));
    let r = app
        .post(
            "/v1/records/deal/bulk",
            json!({"operation": "delete", "records": deletes}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"]["details"][0]["index"], 50);
    assert_eq!(app.count("deal").await, 50);
    let r = app
        .post(
            "/v1/records/deal/bulk",
            json!({"operation": "delete", "records": ids}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(app.count("deal").await, 0);
}
