//! Each test gets its own migrated database and a workspace with an admin key, and drives the
//! router in process. The database is dropped when the test's `TestApp` goes away.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use oneo_api::{AppState, app, db};
use serde_json::Value;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tower::ServiceExt;
use uuid::Uuid;

pub fn server_url() -> String {
    std::env::var("ONEO_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub struct TestApp {
    pub router: Router,
    pub pool: PgPool,
    pub workspace: Uuid,
    pub key: String,
    db_name: String,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    /// The `field`s named in an error's details.
    pub fn detail_fields(&self) -> Vec<String> {
        self.body["error"]["details"]
            .as_array()
            .map(|d| {
                d.iter()
                    .filter_map(|x| x["field"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl TestApp {
    pub async fn new() -> Self {
        let db_name = format!("oneo_test_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&format!("{}/postgres", server_url()))
            .await
            .expect("PostgreSQL at ONEO_TEST_PG");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
            .execute(&mut admin)
            .await
            .expect("create db");
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect(&format!("{}/{db_name}", server_url()))
            .await
            .expect("connect");
        db::migrate(&pool).await.expect("migrate");
        let created = db::workspace::create_workspace(&pool, "Acme")
            .await
            .expect("workspace");
        let router = app(AppState {
            pool: pool.clone(),
            ingest: None,
            lake: None,
            dashboards: None,
            deliveries: None,
        });
        Self {
            router,
            pool,
            workspace: created.workspace_id,
            key: created.api_key,
            db_name,
        }
    }

    /// Another workspace in the same database: its id and admin key.
    pub async fn other_workspace(&self) -> (Uuid, String) {
        let c = db::workspace::create_workspace(&self.pool, "Other")
            .await
            .expect("workspace");
        (c.workspace_id, c.api_key)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .expect("request");
        let resp = self.router.clone().oneshot(req).await.expect("response");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    /// A POST without a key, with an optional `Idempotency-Key` (webhooks).
    pub async fn post_hook(&self, path: &str, body: Value, idempotency: Option<&str>) -> Resp {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("content-type", "application/json");
        if let Some(k) = idempotency {
            req = req.header("idempotency-key", k);
        }
        let req = req.body(Body::from(body.to_string())).expect("request");
        let resp = self.router.clone().oneshot(req).await.expect("response");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, Some(&self.key.clone()), None)
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(&self.key.clone()), Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(&self.key.clone()), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.call(Method::DELETE, path, Some(&self.key.clone()), None)
            .await
    }

    /// A key of this workspace with `role`, minted through the API.
    pub async fn key_with_role(&self, role: &str) -> String {
        let r = self
            .post(
                "/v1/api-keys",
                serde_json::json!({"name": role, "role": role}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["api_key"].as_str().expect("api_key").to_string()
    }

    /// Creates a record and returns its JSON, failing the test if that fails.
    pub async fn create(&self, object: &str, body: Value) -> Value {
        let r = self.post(&format!("/v1/records/{object}"), body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body
    }

    pub async fn count(&self, object: &str) -> i64 {
        let oid: i64 = sqlx::query_scalar(
            "SELECT id FROM oneo.objects WHERE workspace_id = $1 AND api_name = $2",
        )
        .bind(self.workspace)
        .bind(object)
        .fetch_one(&self.pool)
        .await
        .expect("object");
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM oneo_records.o{oid}"
        )))
        .fetch_one(&self.pool)
        .await
        .expect("count")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let name = self.db_name.clone();
        // The test's runtime is blocked in this drop, so its pool can't be closed politely;
        // a connection of our own on a thread of its own ends its sessions with FORCE.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut admin) =
                    PgConnection::connect(&format!("{}/postgres", server_url())).await
                {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await;
                }
            });
        })
        .join();
    }
}
