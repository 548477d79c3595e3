//! `oneo serve`: the REST API with the ingest pipeline beside it, stopped together.

use oneo_api::Application;
use oneo_api::config::{DatabaseConfig, HttpConfig, LakeConfig};

use crate::shutdown::shutdown_token;

/// Serves until SIGTERM or Ctrl-C. With a lake config, ingest runs in the same process and
/// its status is served at `/v1/ingest/status`.
pub async fn run(
    db: &DatabaseConfig,
    http: &HttpConfig,
    lake: Option<&LakeConfig>,
) -> anyhow::Result<()> {
    let shutdown = shutdown_token();
    let mut app = Application::build(db, http).await?;
    let ingest_task = match lake {
        Some(lake) => {
            let ingest = oneo_ingest::Ingest::new(lake.ingest_config(db), app.pool().clone())?;
            app = app.with_ingest(ingest.handle());
            tracing::info!(lake = %ingest.handle().lake().root(), "ingest running");
            let stop = shutdown.clone();
            Some(tokio::spawn(async move {
                let result = ingest.run(stop.clone()).await;
                if let Err(e) = &result {
                    tracing::error!(error = %e, "ingest stopped; the API keeps serving");
                }
                result
            }))
        }
        None => None,
    };
    tracing::info!(addr = %app.local_addr(), "REST API listening");
    app.run_until_stopped(shutdown.clone()).await?;
    if let Some(task) = ingest_task {
        shutdown.cancel();
        drop(task.await);
    }
    Ok(())
}
