use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::harness::TestApp;

fn lsn(r: &crate::harness::Resp) -> u64 {
    let text = r
        .headers
        .get("oneo-lsn")
        .expect("Oneo-Lsn header")
        .to_str()
        .unwrap();
    let (hi, lo) = text.split_once('/').expect("X/Y");
    (u64::from_str_radix(hi, 16).unwrap() << 32) + u64::from_str_radix(lo, 16).unwrap()
}

#[tokio::test]
async fn create_read_update_delete_with_versions_and_lsns() {
    let app = TestApp::new().await;
    let created = app
        .post(
            "/v1/records/deal",
            json!({"name": "Big", "amount": "5000", "stage": "proposal"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(created.body["version"], 1);
    let first_lsn = lsn(&created);
    let path = format!("/v1/records/deal/{id}");
    assert_eq!(app.get(&path).await.body["amount"], "5000.00");

    let updated = app
        .patch(&path, json!({"stage": "negotiation", "version": 1}))
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(
        (
            updated.body["version"].clone(),
            updated.body["stage"].clone()
        ),
        (json!(2), json!("negotiation"))
    );
    assert!(
        lsn(&updated) > first_lsn,
        "a later write is durable at a later position"
    );

    let stale = app
        .patch(&path, json!({"stage": "closed_won", "version": 1}))
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert_eq!(stale.body["error"]["code"], "version_conflict");
    assert_eq!(stale.body["error"]["details"][0]["current_version"], 2);
    assert_eq!(app.get(&path).await.body["stage"], "negotiation");

    let bad = app.patch(&path, json!({"stage": "won"})).await;
    assert_eq!(bad.detail_fields(), vec!["stage"]);
    let ro = app
        .patch(
            &path,
            json!({"id": "x", "created_at": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(ro.status, StatusCode::BAD_REQUEST);

    let bad_version = app.delete(&format!("{path}?version=abc")).await;
    assert_eq!(bad_version.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_version.body["error"]["code"], "bad_request");
    let stale_delete = app.delete(&format!("{path}?version=1")).await;
    assert_eq!(stale_delete.status, StatusCode::CONFLICT);
    let deleted = app.delete(&path).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(lsn(&deleted) >= lsn(&updated));
    assert_eq!(app.get(&path).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.delete(&path).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/v1/records/deal/not-a-uuid").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/v1/records/nothing").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn deleting_a_looked_up_record_clears_optional_lookups() {
    let app = TestApp::new().await;
    let co = app.create("company", json!({"name": "Acme"})).await;
    let contact = app
        .create("contact", json!({"first_name": "Ann", "company": co["id"]}))
        .await;
    assert_eq!(
        app.delete(&format!(
            "/v1/records/company/{}",
            co["id"].as_str().unwrap()
        ))
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    let after = app
        .get(&format!(
            "/v1/records/contact/{}",
            contact["id"].as_str().unwrap()
        ))
        .await
        .body;
    assert_eq!(after["company"], Value::Null);
    assert_eq!(
        after["version"], 2,
        "clearing the lookup is a change of the contact"
    );
}

async fn seed_deals(app: &TestApp) -> Vec<Value> {
    let mut out = Vec::new();
    let stages = ["prospecting", "proposal", "closed_won"];
    for i in 0..30 {
        let amount = if i % 7 == 0 {
            Value::Null
        } else {
            json!(format!("{}.50", (i * 37) % 1000))
        };
        let body = json!({"name": format!("Deal {i:02}"), "amount": amount, "stage": stages[i % 3], "close_date": format!("2026-0{}-1{}", 1 + i % 9, i % 10), "owner": if i % 2 == 0 { "Ann Smith" } else { "bob" }});
        out.push(app.create("deal", body).await);
    }
    out
}

fn names(r: &crate::harness::Resp) -> Vec<String> {
    let mut v: Vec<String> = r.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn expect(deals: &[Value], keep: impl Fn(&Value) -> bool) -> Vec<String> {
    let mut v: Vec<String> = deals
        .iter()
        .filter(|d| keep(d))
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn amount(d: &Value) -> Option<f64> {
    d["amount"].as_str().map(|s| s.parse().unwrap())
}

#[tokio::test]
async fn lists_filter_with_every_operator() {
    let app = TestApp::new().await;
    let deals = seed_deals(&app).await;
    let q = |f: &str| format!("/v1/records/deal?limit=1000&filter={f}");
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "stage:eq:proposal",
            expect(&deals, |d| d["stage"] == "proposal"),
        ),
        (
            "stage:ne:proposal",
            expect(&deals, |d| d["stage"] != "proposal"),
        ),
        (
            "amount:lt:300",
            expect(&deals, |d| amount(d).is_some_and(|a| a < 300.0)),
        ),
        (
            "amount:lte:333.50",
            expect(&deals, |d| amount(d).is_some_and(|a| a <= 333.5)),
        ),
        (
            "amount:gt:500",
            expect(&deals, |d| amount(d).is_some_and(|a| a > 500.0)),
        ),
        (
            "amount:gte:703.50",
            expect(&deals, |d| amount(d).is_some_and(|a| a >= 703.5)),
        ),
        (
            "stage:in:proposal,closed_won",
            expect(&deals, |d| d["stage"] != "prospecting"),
        ),
        (
            "owner:contains:SMITH",
            expect(&deals, |d| d["owner"] == "Ann Smith"),
        ),
        (
            "amount:is_null:true",
            expect(&deals, |d| d["amount"].is_null()),
        ),
        (
            "amount:is_null:false",
            expect(&deals, |d| !d["amount"].is_null()),
        ),
        (
            "close_date:gte:2026-05-01",
            expect(&deals, |d| {
                d["close_date"].as_str().unwrap() >= "2026-05-01"
            }),
        ),
    ];
    for (filter, want) in cases {
        let r = app.get(&q(filter)).await;
        assert_eq!(r.status, StatusCode::OK, "{filter}: {}", r.body);
        assert!(!want.is_empty(), "{filter} tests nothing");
        assert_eq!(names(&r), want, "{filter}");
    }
    let both = app
        .get("/v1/records/deal?limit=1000&filter=stage:eq:closed_won&filter=amount:gt:400")
        .await;
    assert_eq!(
        names(&both),
        expect(&deals, |d| d["stage"] == "closed_won"
            && amount(d).is_some_and(|a| a > 400.0))
    );
    for bad in [
        "nope:eq:1",
        "amount:eq:lots",
        "amount:around:5",
        "stage",
        "weighted:eq:1",
    ] {
        let r = app.get(&q(bad)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.detail_fields(), vec![format!("filter={bad}")]);
    }
    assert_eq!(
        app.get("/v1/records/deal?limit=0").await.detail_fields(),
        vec!["limit"]
    );
    assert_eq!(
        app.get("/v1/records/deal?sort=nope").await.detail_fields(),
        vec!["sort"]
    );
    assert_eq!(
        app.get("/v1/records/deal?cursor=zzz").await.detail_fields(),
        vec!["cursor"]
    );
}

/// Paging through any sort order visits every record exactly once, in order, nulls included.
#[tokio::test]
async fn cursor_pages_cover_every_record_once_in_order() {
    let app = TestApp::new().await;
    let deals = seed_deals(&app).await;
    for sort in ["-amount", "amount", "stage,-close_date", "owner,amount"] {
        let mut seen: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/v1/records/deal?limit=7&sort={sort}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let r = app.get(&path).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            seen.extend(r.body["records"].as_array().unwrap().iter().cloned());
            match r.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(seen.len(), deals.len(), "{sort}");
        let mut ids: Vec<&str> = seen.iter().map(|d| d["id"].as_str().unwrap()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), deals.len(), "{sort}: a record appeared twice");
        if sort == "-amount" {
            // Descending puts nulls first, then amounts high to low.
            let amounts: Vec<Option<f64>> = seen.iter().map(amount).collect();
            let nulls = amounts.iter().take_while(|a| a.is_none()).count();
            assert_eq!(
                nulls,
                deals.iter().filter(|d| d["amount"].is_null()).count()
            );
            let rest: Vec<f64> = amounts[nulls..].iter().map(|a| a.unwrap()).collect();
            assert!(rest.windows(2).all(|w| w[0] >= w[1]), "{rest:?}");
        }
    }
}
