//! A replication slot PostgreSQL invalidated (the WAL it needed was removed) is reported,
//! dropped and created again, and every table is copied from the new slot's snapshot, so the
//! changes made while it was lost are in the lake, never silently skipped.
//!
//! Invalidating a slot takes a server-wide setting (`max_slot_wal_keep_size`), so this test
//! is a binary of its own: `cargo test` runs test binaries one after another, and nothing else
//! of ours streams while it runs. It sets the limit above what any streaming slot on the
//! server lags, refuses to run beside an idle one (which the limit would invalidate too), and
//! resets the limit however the test ends.

#[path = "../common/mod.rs"]
mod common;
// Shared with the ingest tests, which use more of it.
#[allow(dead_code)]
#[path = "../ingest/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::Env;
use oneo_ingest::{Ingest, IngestHandle, TableState};
use serde_json::json;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const CATCH_UP: Duration = Duration::from_secs(180);
const MB: i64 = 1 << 20;

struct Running {
    handle: IngestHandle,
    stop: CancellationToken,
    task: JoinHandle<Result<(), oneo_ingest::IngestError>>,
}

fn start(env: &Env) -> Running {
    let ingest = Ingest::new(env.ingest_config(), env.pool.clone()).expect("ingest");
    let handle = ingest.handle();
    let stop = CancellationToken::new();
    let task = tokio::spawn(ingest.run(stop.clone()));
    Running { handle, stop, task }
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        self.task.await.expect("join").expect("ingest ran cleanly");
    }
}

/// Puts `max_slot_wal_keep_size` back to the server's default, however the test ends.
struct KeepSizeReset;

impl Drop for KeepSizeReset {
    fn drop(&mut self) {
        let done = std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let url = format!("{}/postgres", common::server_url());
                if let Ok(pool) = PgPool::connect(&url).await {
                    drop(
                        sqlx::query("ALTER SYSTEM RESET max_slot_wal_keep_size")
                            .execute(&pool)
                            .await,
                    );
                    drop(sqlx::query("SELECT pg_reload_conf()").execute(&pool).await);
                }
            });
        });
        drop(done.join());
    }
}

/// The slot's `wal_status` (`reserved`, …, `lost`); the slot must exist.
async fn wal_status(pool: &PgPool, slot: &str) -> Option<String> {
    sqlx::query_scalar("SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1")
        .bind(slot)
        .fetch_one(pool)
        .await
        .expect("the slot exists")
}

/// Makes PostgreSQL invalidate `slot`: a keep limit that streaming slots are within, more
/// WAL than that behind `slot`, and checkpoints until the slot is `lost`.
///
/// PostgreSQL invalidates every slot further behind than the limit, so an idle slot of
/// someone else's on the same server would be lost with this one: the test refuses to run
/// beside one rather than destroy it.
async fn lose_slot(pool: &PgPool, slot: &str) {
    let idle: Vec<String> = sqlx::query_scalar(
        "SELECT slot_name::text FROM pg_replication_slots
          WHERE slot_name <> $1 AND NOT active AND wal_status <> 'lost'",
    )
    .bind(slot)
    .fetch_all(pool)
    .await
    .expect("other slots");
    assert!(
        idle.is_empty(),
        "this test invalidates its replication slot with a server-wide limit, which would \
         also invalidate the idle slots {idle:?} on this server: resume or drop them first"
    );
    let others: i64 = sqlx::query_scalar(
        "SELECT coalesce(max(pg_current_wal_lsn() - restart_lsn), 0)::bigint
           FROM pg_replication_slots WHERE slot_name <> $1 AND restart_lsn IS NOT NULL",
    )
    .bind(slot)
    .fetch_one(pool)
    .await
    .expect("other slots");
    // Whole segments of headroom above the furthest-behind streaming slot.
    let keep_mb = (others / MB / 16 + 4) * 16;
    assert!(
        keep_mb <= 4096,
        "a streaming replication slot on this server is {} MB behind; invalidating this \
         test's slot takes more WAL than that (let it catch up first)",
        others / MB
    );
    let _reset = KeepSizeReset;
    // The value is our own integer: ALTER SYSTEM takes no parameters.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER SYSTEM SET max_slot_wal_keep_size = '{keep_mb}MB'"
    )))
    .execute(pool)
    .await
    .expect("set the keep limit");
    sqlx::query("SELECT pg_reload_conf()")
        .execute(pool)
        .await
        .expect("reload");
    let lag = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT (pg_current_wal_lsn() - restart_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1",
        )
        .bind(slot)
        .fetch_one(pool)
        .await
        .expect("slot lag")
    };
    // A segment switch needs some WAL in the segment; a message is the least there is.
    while lag().await < (keep_mb + 48) * MB {
        sqlx::query("SELECT pg_logical_emit_message(false, 'oneo.test', 'filler')")
            .execute(pool)
            .await
            .expect("message");
        sqlx::query("SELECT pg_switch_wal()")
            .execute(pool)
            .await
            .expect("switch");
    }
    let start = Instant::now();
    loop {
        // The checkpointer may not have read the new limit yet: checkpoint until it has.
        sqlx::query("CHECKPOINT")
            .execute(pool)
            .await
            .expect("checkpoint");
        let status = wal_status(pool, slot).await;
        if status.as_deref() == Some("lost") {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the slot was not invalidated: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_slot_is_recreated_and_every_table_copied_again() {
    let env = Env::new().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let c = env
            .create("company", json!({"name": format!("Before {i}")}))
            .await;
        ids.push(c["id"].as_str().expect("id").to_string());
    }
    let first = start(&env);
    env.wait_until_lake_equals_pg(CATCH_UP)
        .await
        .expect("first copy");
    first.stop().await;

    // While ingest is stopped: the changes the lost WAL held.
    for i in 0..5 {
        env.create("company", json!({"name": format!("While lost {i}")}))
            .await;
    }
    env.call(
        reqwest::Method::PATCH,
        &format!("/v1/records/company/{}", ids[0]),
        Some(json!({"name": "Renamed while lost"})),
    )
    .await;
    env.call(
        reqwest::Method::DELETE,
        &format!("/v1/records/company/{}", ids[1]),
        None,
    )
    .await;
    let slot = env.ingest_config().slot;
    lose_slot(&env.pool, &slot).await;

    let second = start(&env);
    env.wait_until_lake_equals_pg(CATCH_UP)
        .await
        .expect("the lake equals PostgreSQL after the lost slot");
    let report = second.handle.status.report(env.workspace);
    let reason = report.pipeline.snapshot_reason.clone().unwrap_or_default();
    assert!(reason.contains("lost"), "the status says why: {report:?}");
    let company = report
        .tables
        .iter()
        .find(|t| t.object == "company")
        .expect("company table");
    assert_eq!(company.state, TableState::Streaming);
    assert_eq!(company.snapshot_rows, 9, "{company:?}");
    assert_ne!(wal_status(&env.pool, &slot).await.as_deref(), Some("lost"));

    // And it streams from the new slot.
    env.create("company", json!({"name": "After"})).await;
    env.wait_until_lake_equals_pg(CATCH_UP)
        .await
        .expect("streams after recovery");
    second.stop().await;
}
