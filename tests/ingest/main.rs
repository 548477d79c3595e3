//! Ingest against the real PostgreSQL (wal_level=logical) and a real Delta lake in a
//! temporary folder: the lake equals PostgreSQL after a randomised workload, through crashes,
//! and an independent reader (Python `deltalake`) sees the same rows.

#[path = "../common/mod.rs"]
mod common;
mod harness;
mod operations;
mod workload;

use std::process::{Child, Command};
use std::time::Duration;

use harness::Env;
use oneo_ingest::{Ingest, TableKind, TableState};
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;
use workload::Workload;

const CATCH_UP: Duration = Duration::from_secs(180);

async fn check_slot(env: &Env) -> String {
    let name = format!("check_{}", uuid::Uuid::new_v4().simple());
    sqlx::query("SELECT pg_create_logical_replication_slot($1, 'test_decoding')")
        .bind(&name)
        .execute(&env.pool)
        .await
        .expect("test_decoding slot");
    name
}

/// History holds exactly one row per change PostgreSQL decoded since `slot` was made.
async fn assert_history_exactly_once(env: &Env, slot: &str) {
    for layout in env.objects().await.values() {
        let decoded = env.decoded_changes(slot, layout).await;
        let (rows, distinct) = env.history_counts(layout).await;
        assert_eq!(
            rows, distinct,
            "`{}` history has duplicate changes",
            layout.api_name
        );
        assert_eq!(
            rows, decoded,
            "`{}`: history rows vs changes PostgreSQL decoded",
            layout.api_name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lake_equals_postgres_after_a_randomised_workload() {
    let env = Env::new().await;
    let mut work = Workload::new(7, 240);
    work.preload(&env, 40).await;

    let ingest = Ingest::new(env.ingest_config(), env.pool.clone()).expect("ingest");
    let handle = ingest.handle();
    let stop = CancellationToken::new();
    let task = tokio::spawn(ingest.run(stop.clone()));

    // The rows written before ingest started arrive by the slot's snapshot.
    env.wait_until_lake_equals_pg(CATCH_UP)
        .await
        .expect("snapshot");
    let slot = check_slot(&env).await;
    for i in 0..work.steps {
        work.step(&env, i).await;
    }
    env.wait_until_lake_equals_pg(CATCH_UP)
        .await
        .expect("lake equals PostgreSQL");
    assert_history_exactly_once(&env, &slot).await;

    // The added fields are lake columns with values (the multi-select as a list).
    let deal = env.objects().await.remove("deal").expect("deal");
    let pg = env.pg_rows(&deal).await;
    assert!(pg.len() > 3_000, "the bulk transaction's deals are there");
    assert!(
        pg.values()
            .any(|r| r["region"].as_deref().is_some_and(|v| v.contains('|')))
    );
    assert!(pg.values().any(|r| r["is_key"].as_deref() == Some("true")));

    // An independent reader: delta-rs's Python binding opens the table Oneo wrote.
    let url = env.lake_url(&deal, TableKind::Current);
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/deltalake_reader.py"
        ))
        .arg(url.to_file_path().expect("local lake"))
        .args(["amount", "stage", "close_date", "region"])
        .output()
        .expect("python3 (with the deltalake package: pip install deltalake)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).expect("reader output");
    assert_eq!(read["rows"], pg.len());
    for (id, row) in &pg {
        let want: Vec<Option<&str>> = ["amount", "stage", "close_date", "region"]
            .iter()
            .map(|c| row[*c].as_deref())
            .collect();
        let got: Vec<Option<&str>> = read["values"][id]
            .as_array()
            .unwrap_or_else(|| panic!("deal {id} missing for the Python reader"))
            .iter()
            .map(|v| v.as_str())
            .collect();
        assert_eq!(got, want, "deal {id}");
    }
    assert!(read["app_version"].as_i64().is_some_and(|v| v > 0));

    let report = handle.status.report(env.workspace);
    assert_eq!(report.tables.len(), 4);
    assert!(
        report
            .tables
            .iter()
            .all(|t| t.state == TableState::Streaming),
        "{report:?}"
    );
    assert!(report.pipeline.acknowledged_lsn.is_some());

    stop.cancel();
    task.await.expect("join").expect("ingest ran cleanly");
}

fn spawn_ingest(env: &Env) -> Child {
    Command::new(env!("CARGO_BIN_EXE_oneo"))
        .arg("ingest")
        .env("DATABASE_URL", &env.db_url)
        .env("ONEO_LAKE_URL", env.lake_dir.path())
        .env("ONEO_INGEST_BATCH_MS", "200")
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("oneo ingest")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lake_equals_postgres_through_repeated_sigkills() {
    let env = Env::new().await;
    let mut work = Workload::new(11, 300);
    work.preload(&env, 25).await;
    let mut child = spawn_ingest(&env);
    env.wait_until_lake_equals_pg(CATCH_UP)
        .await
        .expect("snapshot");
    let slot = check_slot(&env).await;

    let env = std::sync::Arc::new(env);
    let writer = {
        let env = env.clone();
        tokio::spawn(async move {
            for i in 0..work.steps {
                work.step(&env, i).await;
            }
        })
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut kills = 0;
    while kills < 20 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..2_500))).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        kills += 1;
        child = spawn_ingest(&env);
    }
    writer.await.expect("workload");
    let caught_up = env.wait_until_lake_equals_pg(CATCH_UP).await;
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    caught_up.expect("lake equals PostgreSQL after 20 SIGKILLs");
    assert_history_exactly_once(&env, &slot).await;
}
