use std::future::Future;
use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::json;

use crate::harness::TestApp;

/// Runs `n` requests at once on the multi-threaded runtime and returns their statuses.
async fn race<F, Fut>(app: &Arc<TestApp>, n: usize, request: F) -> Vec<StatusCode>
where
    F: Fn(Arc<TestApp>, usize) -> Fut,
    Fut: Future<Output = StatusCode> + Send + 'static,
{
    let tasks: Vec<_> = (0..n)
        .map(|i| tokio::spawn(request(app.clone(), i)))
        .collect();
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect()
}

fn count(statuses: &[StatusCode], want: StatusCode) -> usize {
    statuses.iter().filter(|s| **s == want).count()
}

/// Ten writers read version 1 and PATCH at once: exactly one wins, the rest get 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_with_the_same_version_one_wins() {
    let app = Arc::new(TestApp::new().await);
    let deal = app.create("deal", json!({"name": "Contested"})).await;
    let path = format!("/v1/records/deal/{}", deal["id"].as_str().unwrap());
    let statuses = race(&app, 10, |app, i| {
        let path = path.clone();
        async move {
            app.patch(&path, json!({"owner": format!("writer {i}"), "version": 1}))
                .await
                .status
        }
    })
    .await;
    assert_eq!(count(&statuses, StatusCode::OK), 1, "{statuses:?}");
    assert_eq!(count(&statuses, StatusCode::CONFLICT), 9, "{statuses:?}");
    assert_eq!(app.get(&path).await.body["version"], 2);
}

/// Ten writers create the same unique email at once: PostgreSQL lets exactly one through.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unique_holds_under_concurrent_inserts() {
    let app = Arc::new(TestApp::new().await);
    for round in 0..3 {
        let statuses = race(&app, 10, move |app, _| async move {
            app.post(
                "/v1/records/contact",
                json!({"email": format!("race{round}@example.com")}),
            )
            .await
            .status
        })
        .await;
        assert_eq!(count(&statuses, StatusCode::CREATED), 1, "{statuses:?}");
        assert_eq!(count(&statuses, StatusCode::CONFLICT), 9, "{statuses:?}");
    }
    assert_eq!(app.count("contact").await, 3);
}
