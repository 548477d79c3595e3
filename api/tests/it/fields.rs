use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::harness::TestApp;

async fn thing(app: &TestApp) {
    let r = app
        .post(
            "/v1/objects",
            json!({"api_name": "thing", "label": "Thing", "fields": [
                {"api_name": "t_text", "label": "Text", "type": "text", "max_length": 5, "pattern": "[a-z]+"},
                {"api_name": "t_number", "label": "Number", "type": "number", "min": 0, "max": 100, "scale": 1},
                {"api_name": "t_currency", "label": "Currency", "type": "currency"},
                {"api_name": "t_percent", "label": "Percent", "type": "percent", "min": 0, "max": 100},
                {"api_name": "t_date", "label": "Date", "type": "date"},
                {"api_name": "t_datetime", "label": "Datetime", "type": "datetime"},
                {"api_name": "t_boolean", "label": "Boolean", "type": "boolean"},
                {"api_name": "t_picklist", "label": "Picklist", "type": "picklist", "options": ["a", "b"]},
                {"api_name": "t_multi", "label": "Multi", "type": "multiselect", "options": ["x", "y", "z"]},
                {"api_name": "t_email", "label": "Email", "type": "email"},
                {"api_name": "t_phone", "label": "Phone", "type": "phone"},
                {"api_name": "t_url", "label": "Url", "type": "url"},
                {"api_name": "t_lookup", "label": "Lookup", "type": "lookup", "target": "company"},
                {"api_name": "t_auto", "label": "Auto", "type": "autonumber"},
                {"api_name": "t_formula", "label": "Formula", "type": "formula", "expression": "t_number * 2"}
            ]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

/// A field, the values it accepts with how each is stored, and values it rejects.
type Case = (&'static str, Vec<(Value, Value)>, Vec<Value>);

#[tokio::test]
async fn each_field_type_accepts_and_rejects_the_right_values() {
    let app = TestApp::new().await;
    thing(&app).await;
    let company = app.create("company", json!({"name": "Acme"})).await["id"].clone();
    let cases: Vec<Case> = vec![
        (
            "t_text",
            vec![(json!("abc"), json!("abc"))],
            vec![json!("abcdef"), json!("ABC"), json!(5)],
        ),
        (
            "t_number",
            vec![(json!(12.5), json!("12.5")), (json!("100"), json!("100.0"))],
            vec![
                json!(100.1),
                json!(-1),
                json!(1.25),
                json!("ten"),
                json!(true),
            ],
        ),
        (
            "t_currency",
            vec![(json!("19.99"), json!("19.99")), (json!(7), json!("7.00"))],
            vec![json!("1.999"), json!("1e40"), json!([1])],
        ),
        (
            "t_percent",
            vec![(json!(45.5), json!("45.50"))],
            vec![json!(101), json!(-0.5)],
        ),
        (
            "t_date",
            vec![(json!("2026-02-28"), json!("2026-02-28"))],
            vec![
                json!("2026-02-30"),
                json!("28/02/2026"),
                json!("2026-2-8"),
                json!(20260228),
            ],
        ),
        (
            "t_datetime",
            vec![(
                json!("2026-03-31T14:05:00+02:00"),
                json!("2026-03-31T12:05:00Z"),
            )],
            vec![json!("2026-03-31 14:05"), json!("yesterday")],
        ),
        (
            "t_boolean",
            vec![(json!(true), json!(true)), (json!(false), json!(false))],
            vec![json!("true"), json!(1)],
        ),
        (
            "t_picklist",
            vec![(json!("a"), json!("a"))],
            vec![json!("c"), json!("A"), json!(["a"])],
        ),
        (
            "t_multi",
            vec![
                (json!(["x", "z"]), json!(["x", "z"])),
                (json!([]), json!([])),
            ],
            vec![json!(["x", "x"]), json!(["w"]), json!("x")],
        ),
        (
            "t_email",
            vec![(json!("ann@example.com"), json!("ann@example.com"))],
            vec![json!("ann@"), json!("not an email"), json!("a@b")],
        ),
        (
            "t_phone",
            vec![(json!("+1 (415) 555-0100"), json!("+1 (415) 555-0100"))],
            vec![
                json!("12"),
                json!("call me"),
                json!("+1 415 555 0100 0100 0100"),
            ],
        ),
        (
            "t_url",
            vec![
                (json!("https://acme.com/x"), json!("https://acme.com/x")),
                (json!("acme.com"), json!("acme.com")),
            ],
            vec![
                json!("ftp://acme.com"),
                json!("not a url"),
                json!("localhost"),
            ],
        ),
        (
            "t_lookup",
            vec![(company.clone(), company.clone())],
            vec![
                json!("not-a-uuid"),
                json!("01a205ec-0000-7000-8000-000000000000"),
            ],
        ),
        ("t_auto", vec![], vec![json!(5)]),
        ("t_formula", vec![], vec![json!(5)]),
    ];
    for (field, good, bad) in cases {
        for (input, stored) in good {
            let r = app.post("/v1/records/thing", json!({ field: input })).await;
            assert_eq!(
                r.status,
                StatusCode::CREATED,
                "{field} should accept {input}: {}",
                r.body
            );
            assert_eq!(r.body[field], stored, "{field} stores {input}");
        }
        for input in bad {
            let before = app.count("thing").await;
            let r = app.post("/v1/records/thing", json!({ field: input })).await;
            assert_eq!(
                r.status,
                StatusCode::BAD_REQUEST,
                "{field} should reject {input}: {}",
                r.body
            );
            assert_eq!(
                r.detail_fields(),
                vec![field.to_string()],
                "{field} / {input}"
            );
            assert_eq!(
                app.count("thing").await,
                before,
                "a rejected record was written"
            );
        }
    }
}

#[tokio::test]
async fn autonumbers_are_assigned_increasing_and_formulas_computed_on_read() {
    let app = TestApp::new().await;
    thing(&app).await;
    let a = app.create("thing", json!({"t_number": 21})).await;
    let b = app.create("thing", json!({})).await;
    assert!(b["t_auto"].as_i64().unwrap() > a["t_auto"].as_i64().unwrap());
    assert_eq!(a["t_formula"], "42");
    assert_eq!(b["t_formula"], Value::Null);
    app.delete(&format!("/v1/records/thing/{}", b["id"].as_str().unwrap()))
        .await;
    let c = app.create("thing", json!({})).await;
    assert!(
        c["t_auto"].as_i64().unwrap() > b["t_auto"].as_i64().unwrap(),
        "autonumbers are never reused"
    );
    let updated = app
        .patch(
            &format!("/v1/records/thing/{}", a["id"].as_str().unwrap()),
            json!({"t_number": 2.5}),
        )
        .await;
    assert_eq!(updated.body["t_formula"], "5");
}

#[tokio::test]
async fn required_and_unique_are_enforced() {
    let app = TestApp::new().await;
    let r = app
        .post("/v1/records/company", json!({"domain": "acme.com"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.detail_fields(), vec!["name"]);
    let r = app.post("/v1/records/company", json!({"name": null})).await;
    assert_eq!(r.detail_fields(), vec!["name"]);
    app.create("contact", json!({"email": "ann@example.com"}))
        .await;
    let dup = app
        .post("/v1/records/contact", json!({"email": "ANN@example.com"}))
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT, "{}", dup.body);
    assert_eq!(dup.body["error"]["code"], "unique_violation");
    assert_eq!(dup.detail_fields(), vec!["email"]);
    assert_eq!(app.count("contact").await, 1);
    // PostgreSQL itself holds the line, not only the API's check.
    let oid: i64 = sqlx::query_scalar(
        "SELECT id FROM oneo.objects WHERE api_name = 'contact' AND workspace_id = $1",
    )
    .bind(app.workspace)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let fid: i64 = sqlx::query_scalar(
        "SELECT id FROM oneo.fields WHERE object_id = $1 AND api_name = 'email'",
    )
    .bind(oid)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let direct = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO oneo_records.o{oid} (id, f{fid}) VALUES (gen_random_uuid(), 'Ann@Example.com')"
    )))
    .execute(&app.pool)
    .await;
    assert!(direct.is_err(), "the database accepted a duplicate email");
}

#[tokio::test]
async fn fields_can_be_added_renamed_and_changed_on_an_object_with_records() {
    let app = TestApp::new().await;
    let acme = app.create("company", json!({"name": "Acme"})).await;
    let id = acme["id"].as_str().unwrap();
    let r = app.post("/v1/objects/company/fields", json!({"api_name": "tier", "label": "Tier", "type": "picklist", "options": ["gold", "silver"]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        app.get(&format!("/v1/records/company/{id}")).await.body["tier"],
        Value::Null
    );

    let r = app
        .post(
            "/v1/objects/company/fields",
            json!({"api_name": "region", "label": "Region", "type": "text", "required": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.detail_fields(), vec!["required"]);
    let r = app.post("/v1/objects/company/fields", json!({"api_name": "region", "label": "Region", "type": "text", "required": true, "default": "emea"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        app.get(&format!("/v1/records/company/{id}")).await.body["region"],
        "emea"
    );
    assert_eq!(
        app.create("company", json!({"name": "Beta"})).await["region"],
        "emea",
        "new records get the default"
    );

    let r = app
        .patch(
            "/v1/objects/company/fields/tier",
            json!({"label": "Customer tier"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["api_name"], "tier");
    assert_eq!(
        app.get(&format!("/v1/records/company/{id}")).await.body["tier"],
        Value::Null,
        "the API name is unchanged"
    );
    let r = app
        .patch(
            "/v1/objects/company/fields/tier",
            json!({"api_name": "level"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let r = app
        .patch(
            "/v1/objects/company/fields/country",
            json!({"unique": true}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "standard fields only take label changes: {}",
        r.body
    );
    let r = app
        .post(
            "/v1/objects/company/fields",
            json!({"api_name": "code", "label": "Code", "type": "text"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    app.create("company", json!({"name": "Gamma", "code": "X1"}))
        .await;
    app.create("company", json!({"name": "Delta", "code": "X1"}))
        .await;
    let r = app
        .patch("/v1/objects/company/fields/code", json!({"unique": true}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "duplicate_values");
    let r = app
        .patch("/v1/objects/company/fields/tier", json!({"unique": true}))
        .await;
    assert_eq!(
        r.detail_fields(),
        vec!["unique"],
        "picklists can't be unique"
    );
    let r = app
        .patch("/v1/objects/company/fields/tier", json!({"required": true}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    let r = app
        .patch(
            "/v1/objects/company/fields/tier",
            json!({"required": true, "default": "silver"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        app.get(&format!("/v1/records/company/{id}")).await.body["tier"],
        "silver"
    );
}

#[tokio::test]
async fn formulas_are_checked_when_defined() {
    let app = TestApp::new().await;
    let cases = [
        ("amount * nope", "unknown field `nope`"),
        ("amount + name", "needs numbers"),
        ("IF(stage, 1, 0)", "IF's condition"),
        ("amount; DROP TABLE oneo.workspaces", "formula"),
        ("pg_sleep(10)", "unknown function"),
    ];
    for (expr, reason) in cases {
        let r = app
            .post(
                "/v1/objects/deal/fields",
                json!({"api_name": "f", "label": "F", "type": "formula", "expression": expr}),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{expr}");
        assert_eq!(r.detail_fields(), vec!["expression"]);
        assert!(r.body.to_string().contains(reason), "{expr}: {}", r.body);
    }
    let ok = app.post("/v1/objects/deal/fields", json!({"api_name": "weighted", "label": "W", "type": "formula", "expression": "amount * probability / 100"})).await;
    assert_eq!(ok.status, StatusCode::CREATED);
    let ok = app.post("/v1/objects/deal/fields", json!({"api_name": "big", "label": "Big", "type": "formula", "expression": "weighted > 1000"})).await;
    assert_eq!(ok.body["result_type"], "boolean");
    let cyc = app
        .patch(
            "/v1/objects/deal/fields/weighted",
            json!({"expression": "IF(big, 1, 0)"}),
        )
        .await;
    assert_eq!(cyc.status, StatusCode::BAD_REQUEST);
    assert!(cyc.body.to_string().contains("circle"), "{}", cyc.body);
    let deal = app
        .create(
            "deal",
            json!({"name": "D", "amount": 5000, "probability": 40}),
        )
        .await;
    assert_eq!(
        (deal["weighted"].clone(), deal["big"].clone()),
        (json!("2000"), json!(true))
    );
}

#[tokio::test]
async fn rollups_aggregate_children_and_dependents_block_deletes() {
    let app = TestApp::new().await;
    for (name, def) in [
        (
            "deal_count",
            json!({"function": "count", "object": "deal", "via": "company"}),
        ),
        (
            "pipeline",
            json!({"function": "sum", "object": "deal", "via": "company", "field": "amount"}),
        ),
        (
            "first_close",
            json!({"function": "min", "object": "deal", "via": "company", "field": "close_date"}),
        ),
    ] {
        let r = app
            .post(
                "/v1/objects/company/fields",
                json!({"api_name": name, "label": name, "type": "rollup", "rollup": def}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let bad = app.post("/v1/objects/company/fields", json!({"api_name": "x", "label": "x", "type": "rollup", "rollup": {"function": "sum", "object": "deal", "via": "company", "field": "name"}})).await;
    assert_eq!(bad.detail_fields(), vec!["rollup.field"]);
    let co = app.create("company", json!({"name": "Acme"})).await;
    let id = co["id"].as_str().unwrap();
    assert_eq!(
        (co["deal_count"].clone(), co["pipeline"].clone()),
        (json!(0), json!("0"))
    );
    app.create(
        "deal",
        json!({"name": "A", "amount": "100.10", "company": id, "close_date": "2026-05-01"}),
    )
    .await;
    app.create(
        "deal",
        json!({"name": "B", "amount": "0.90", "company": id, "close_date": "2026-04-01"}),
    )
    .await;
    app.create("deal", json!({"name": "C", "amount": 5})).await;
    let co = app.get(&format!("/v1/records/company/{id}")).await.body;
    assert_eq!(
        (
            co["deal_count"].clone(),
            co["pipeline"].clone(),
            co["first_close"].clone()
        ),
        (json!(2), json!("101.00"), json!("2026-04-01"))
    );

    // deal.amount feeds a rollup; deleting it is refused with the dependent named.
    let r = app
        .post(
            "/v1/objects/deal/fields",
            json!({"api_name": "discount", "label": "D", "type": "currency"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    app.post("/v1/objects/deal/fields", json!({"api_name": "net", "label": "Net", "type": "formula", "expression": "amount - discount"})).await;
    let r = app.delete("/v1/objects/deal/fields/discount").await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deal.net (formula)"),
        "{}",
        r.body
    );
    assert_eq!(
        app.delete("/v1/objects/deal/fields/net").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete("/v1/objects/deal/fields/discount").await.status,
        StatusCode::NO_CONTENT
    );
    let r = app.delete("/v1/objects/deal/fields/amount").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "standard");

    // A custom object pointed at by a lookup and rolled up can't be deleted.
    app.post("/v1/objects", json!({"api_name": "project", "label": "Project", "fields": [{"api_name": "budget", "label": "Budget", "type": "currency"}]})).await;
    app.post("/v1/objects", json!({"api_name": "task", "label": "Task", "fields": [{"api_name": "project", "label": "Project", "type": "lookup", "target": "project"}, {"api_name": "hours", "label": "Hours", "type": "number"}]})).await;
    app.post("/v1/objects/project/fields", json!({"api_name": "hours", "label": "Hours", "type": "rollup", "rollup": {"function": "sum", "object": "task", "via": "project", "field": "hours"}})).await;
    let r = app.delete("/v1/objects/project").await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("task.project (lookup)"),
        "{}",
        r.body
    );
    let r = app.delete("/v1/objects/task/fields/hours").await;
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("project.hours (rollup)"),
        "{}",
        r.body
    );
    assert_eq!(
        app.delete("/v1/objects/company").await.status,
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn bad_definitions_name_the_setting_at_fault() {
    let app = TestApp::new().await;
    let cases = [
        (
            json!({"api_name": "Bad Name", "label": "X", "type": "text"}),
            "api_name",
        ),
        (
            json!({"api_name": "x", "label": "X", "type": "number", "options": ["a"]}),
            "options",
        ),
        (
            json!({"api_name": "x", "label": "X", "type": "picklist"}),
            "options",
        ),
        (
            json!({"api_name": "x", "label": "X", "type": "picklist", "options": ["a", "a"]}),
            "options[1]",
        ),
        (
            json!({"api_name": "x", "label": "X", "type": "lookup", "target": "nothing"}),
            "target",
        ),
        (
            json!({"api_name": "x", "label": "X", "type": "text", "pattern": "("}),
            "pattern",
        ),
        (
            json!({"api_name": "x", "label": "X", "type": "boolean", "unique": true}),
            "unique",
        ),
        (
            json!({"api_name": "name", "label": "X", "type": "text"}),
            "api_name",
        ),
        (
            json!({"api_name": "id", "label": "X", "type": "text"}),
            "api_name",
        ),
        (
            json!({"api_name": "x", "label": "", "type": "text"}),
            "label",
        ),
    ];
    for (def, field) in cases {
        let r = app.post("/v1/objects/company/fields", def.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{def}");
        assert_eq!(
            r.detail_fields(),
            vec![field.to_string()],
            "{def}: {}",
            r.body
        );
    }
    let r = app
        .post(
            "/v1/objects/company/fields",
            json!({"api_name": "x", "label": "X", "type": "colour"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("colour")
    );
}
