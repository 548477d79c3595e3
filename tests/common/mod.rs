//! What the binary's integration tests share: a database of their own on the test server,
//! and dropping it with the replication slots that hold it open.

use std::time::Duration;

use sqlx::{Connection, PgConnection};
use uuid::Uuid;

pub fn server_url() -> String {
    std::env::var("ONEO_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// Creates a fresh database; its name and URL.
pub async fn create_database() -> (String, String) {
    let name = format!("oneo_test_{}", Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&format!("{}/postgres", server_url()))
        .await
        .expect("PostgreSQL at ONEO_TEST_PG");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create db");
    let url = format!("{}/{name}", server_url());
    (name, url)
}

/// Stops and drops the database's replication slots, then the database. On a thread of its
/// own, as this runs from `Drop` inside the test's runtime.
pub fn drop_database(name: String) {
    let done = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let Ok(mut admin) = PgConnection::connect(&format!("{}/postgres", server_url())).await
            else {
                return;
            };
            for _ in 0..20 {
                let r = sqlx::query(
                    "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
                      WHERE database = $1 AND active_pid IS NOT NULL",
                )
                .bind(&name)
                .execute(&mut admin)
                .await;
                let dropped = sqlx::query(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                      WHERE database = $1 AND NOT active",
                )
                .bind(&name)
                .execute(&mut admin)
                .await;
                let left: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_replication_slots WHERE database = $1",
                )
                .bind(&name)
                .fetch_one(&mut admin)
                .await
                .unwrap_or(0);
                if left == 0 || (r.is_err() && dropped.is_err()) {
                    break;
                }
                // The terminated walsender takes a moment to release its slot.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            drop(
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await,
            );
        });
    });
    drop(done.join());
}
