use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::harness::TestApp;

#[tokio::test]
async fn missing_malformed_and_unknown_keys_get_401() {
    let app = TestApp::new().await;
    for key in [None, Some("oneo_not_a_real_key")] {
        let r = app.call(Method::GET, "/v1/objects", key, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.body["error"]["code"], "unauthenticated");
        assert!(r.body["error"]["message"].as_str().unwrap().len() > 10);
        assert!(r.body["error"]["details"].is_array());
    }
    // A body error must not be reported before the missing key.
    let r = app
        .call(
            Method::POST,
            "/v1/records/deal",
            None,
            Some(json!("garbage")),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn every_endpoint_in_the_openapi_document_rejects_a_missing_key() {
    let app = TestApp::new().await;
    let doc = app
        .call(Method::GET, "/openapi.json", None, None)
        .await
        .body;
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/") {
            continue;
        }
        let concrete = path
            .replace("{object}", "deal")
            .replace("{field}", "amount")
            .replace("{id}", "01a205ec-b27e-73a7-bfcc-51dbaf04f75e");
        for method in ops.as_object().unwrap().keys() {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = if m == Method::GET || m == Method::DELETE {
                None
            } else {
                Some(json!({}))
            };
            let r = app.call(m.clone(), &concrete, None, body).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {path}");
            checked += 1;
        }
    }
    assert!(checked >= 17, "only {checked} operations documented");
}

#[tokio::test]
async fn roles_limit_what_a_key_may_do() {
    let app = TestApp::new().await;
    let company = app.create("company", json!({"name": "Acme"})).await;
    let id = company["id"].as_str().unwrap();
    let new_object = json!({"api_name": "project", "label": "Project"});
    for role in ["viewer", "analyst", "member"] {
        let key = app.key_with_role(role).await;
        let k = Some(key.as_str());
        assert_eq!(
            app.call(Method::GET, "/v1/objects", k, None).await.status,
            StatusCode::OK,
            "{role} reads objects"
        );
        assert_eq!(
            app.call(Method::GET, &format!("/v1/records/company/{id}"), k, None)
                .await
                .status,
            StatusCode::OK,
            "{role} reads records"
        );
        let write = app
            .call(
                Method::POST,
                "/v1/records/company",
                k,
                Some(json!({"name": "New"})),
            )
            .await;
        let expect = if role == "member" {
            StatusCode::CREATED
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(write.status, expect, "{role} writes records");
        let admin_only = app
            .call(Method::POST, "/v1/objects", k, Some(new_object.clone()))
            .await;
        assert_eq!(
            admin_only.status,
            StatusCode::FORBIDDEN,
            "{role} defines objects"
        );
        assert_eq!(admin_only.body["error"]["code"], "forbidden");
        assert_eq!(
            app.call(
                Method::POST,
                "/v1/api-keys",
                k,
                Some(json!({"name": "x", "role": "admin"}))
            )
            .await
            .status,
            StatusCode::FORBIDDEN
        );
    }
    assert_eq!(
        app.post("/v1/objects", new_object).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn a_revoked_key_stops_working_and_the_last_admin_key_stays() {
    let app = TestApp::new().await;
    let member = app.key_with_role("member").await;
    let keys = app.get("/v1/api-keys").await.body;
    let member_id = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "member")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !keys.to_string().contains(&member),
        "a listing shows a secret"
    );
    assert_eq!(
        app.delete(&format!("/v1/api-keys/{member_id}"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.call(Method::GET, "/v1/objects", Some(&member), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let admin_id = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app.delete(&format!("/v1/api-keys/{admin_id}")).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body["error"]["code"], "last_admin_key");
}

/// Workspace B's records and objects are invisible to A's key: every attempt answers exactly
/// as it would for something that does not exist.
#[tokio::test]
async fn another_workspace_is_invisible() {
    let app = TestApp::new().await;
    let (_, key_b) = app.other_workspace().await;
    let kb = Some(key_b.as_str());
    let b_company = app
        .call(
            Method::POST,
            "/v1/records/company",
            kb,
            Some(json!({"name": "Secret Co"})),
        )
        .await;
    assert_eq!(b_company.status, StatusCode::CREATED);
    let b_id = b_company.body["id"].as_str().unwrap().to_string();
    let b_obj = app
        .call(
            Method::POST,
            "/v1/objects",
            kb,
            Some(json!({"api_name": "secret_project", "label": "Secret"})),
        )
        .await;
    assert_eq!(b_obj.status, StatusCode::CREATED);
    let absent = "01a205ec-0000-7000-8000-000000000000";

    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"name": "Hijacked"}))),
        (Method::DELETE, None),
    ] {
        let theirs = app
            .call(
                method.clone(),
                &format!("/v1/records/company/{b_id}"),
                Some(&app.key),
                body.clone(),
            )
            .await;
        let nobody = app
            .call(
                method.clone(),
                &format!("/v1/records/company/{absent}"),
                Some(&app.key),
                body,
            )
            .await;
        assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{method}");
        assert_eq!(
            theirs.body["error"]["message"]
                .as_str()
                .unwrap()
                .replace(&b_id, "X"),
            nobody.body["error"]["message"]
                .as_str()
                .unwrap()
                .replace(absent, "X")
        );
    }
    let list = app.get("/v1/records/company?limit=1000").await;
    assert!(!list.body.to_string().contains(&b_id));
    let by_id = app
        .get(&format!("/v1/records/company?filter=id:eq:{b_id}"))
        .await;
    assert_eq!(by_id.body["records"], json!([]));

    let theirs = app
        .post("/v1/records/contact", json!({"company": b_id}))
        .await;
    let nobody = app
        .post("/v1/records/contact", json!({"company": absent}))
        .await;
    assert_eq!(theirs.status, StatusCode::BAD_REQUEST);
    assert_eq!(theirs.detail_fields(), vec!["company"]);
    assert_eq!(
        theirs.body.to_string().replace(&b_id, "X"),
        nobody.body.to_string().replace(absent, "X")
    );

    let obj = app.get("/v1/objects/secret_project").await;
    let none = app.get("/v1/objects/no_such_thing").await;
    assert_eq!(obj.status, StatusCode::NOT_FOUND);
    assert_eq!(
        obj.body.to_string().replace("secret_project", "X"),
        none.body.to_string().replace("no_such_thing", "X")
    );
    assert!(
        !app.get("/v1/objects")
            .await
            .body
            .to_string()
            .contains("secret_project")
    );
    // B's record is untouched.
    let still = app
        .call(
            Method::GET,
            &format!("/v1/records/company/{b_id}"),
            kb,
            None,
        )
        .await;
    assert_eq!(still.body["name"], "Secret Co");
}
