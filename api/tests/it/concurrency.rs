use axum::http::StatusCode;
use serde_json::json;

use crate::harness::TestApp;

/// Ten writers read version 1 and PATCH at once: exactly one wins, the rest get 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_with_the_same_version_one_wins() {
    let app = std::sync::Arc::new(TestApp::new().await);
    let deal = app.create("deal", json!({"name": "Contested"})).await;
    let path = format!("/v1/records/deal/{}", deal["id"].as_str().unwrap());
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let (app, path) = (app.clone(), path.clone());
            tokio::spawn(async move {
                app.patch(&path, json!({"owner": format!("writer {i}"), "version": 1}))
                    .await
                    .status
            })
        })
        .collect();
    let statuses: Vec<StatusCode> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count(),
        9,
        "{statuses:?}"
    );
    assert_eq!(app.get(&path).await.body["version"], 2);
}

/// Ten writers create the same unique email at once: PostgreSQL lets exactly one through.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unique_holds_under_concurrent_inserts() {
    let app = std::sync::Arc::new(TestApp::new().await);
    for round in 0..3 {
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move {
                    app.post(
                        "/v1/records/contact",
                        json!({"email": format!("race{round}@example.com")}),
                    )
                    .await
                    .status
                })
            })
            .collect();
        let statuses: Vec<StatusCode> = futures::future::join_all(tasks)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(
            statuses
                .iter()
                .filter(|s| **s == StatusCode::CREATED)
                .count(),
            1,
            "{statuses:?}"
        );
        assert!(
            statuses
                .iter()
                .all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT),
            "{statuses:?}"
        );
    }
    assert_eq!(app.count("contact").await, 3);
}
