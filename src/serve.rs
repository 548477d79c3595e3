//! `oneo serve`: the REST API with the ingest pipeline beside it, stopped together.

use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use oneo_api::Application;
use oneo_api::config::{
    DatabaseConfig, DeliveryConfig, FlightConfig, HttpConfig, LakeConfig, WorkflowConfig,
};
use oneo_api::flight::FlightServer;
use oneo_ingest::IngestHandle;
use oneo_ingest::source::parse_lsn;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::shutdown::shutdown_token;

/// Ingest running in this process.
pub struct IngestTask {
    pub handle: IngestHandle,
    task: JoinHandle<()>,
}

/// Starts ingest beside `app` (which then serves its status) until `shutdown`.
pub fn start_ingest(
    app: Application,
    db: &DatabaseConfig,
    lake: &LakeConfig,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Application, IngestTask)> {
    let ingest = oneo_ingest::Ingest::new(lake.ingest_config(db), app.pool().clone())?;
    let handle = ingest.handle();
    tracing::info!(lake = %handle.lake().root(), "ingest running");
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = ingest.run(stop).await {
            tracing::error!(error = %e, "ingest stopped; the API keeps serving");
        }
    });
    let query = lake.query_config(handle.lake().root().clone());
    let ingest_cfg = lake.ingest_config(db);
    let intake = oneo_api::workflow_intake::IntakeConfig {
        database_url: db.database_url.clone(),
        // Beside ingest's slot, with a position of its own.
        slot: format!("{}_wf", ingest_cfg.slot),
        publication: ingest_cfg.publication.clone(),
    };
    let app = app
        .with_workflow_intake(intake)
        .with_ingest(handle.clone())
        .with_lake(query)
        .with_dashboard_timing(lake.dashboard_timing());
    Ok((app, IngestTask { handle, task }))
}

/// Serves REST (and Flight SQL, when given) until `shutdown`, then stops ingest too.
pub async fn serve(
    app: Application,
    flight: Option<FlightServer>,
    ingest: Option<IngestTask>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    tracing::info!(addr = %app.local_addr(), "REST API listening");
    let flight = flight.map(|f| {
        tracing::info!(addr = %f.local_addr(), tls = f.uses_tls(), "Flight SQL listening");
        let stop = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = f.run_until_stopped(stop.clone()).await {
                tracing::error!(error = %e, "Flight SQL stopped; stopping the server");
                stop.cancel();
            }
        })
    });
    app.run_until_stopped(shutdown.clone()).await?;
    shutdown.cancel();
    if let Some(flight) = flight {
        drop(flight.await);
    }
    if let Some(ingest) = ingest {
        shutdown.cancel();
        drop(ingest.task.await);
    }
    Ok(())
}

/// Waits, with a progress bar over the WAL still to apply, until everything committed so
/// far is in the lake. A logical message marks "so far": its commit is the last change the
/// pipeline has to acknowledge.
pub async fn wait_for_lake(
    app: &Application,
    ingest: &IngestTask,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let status = &ingest.handle.status;
    let copying = ProgressBar::new_spinner().with_message("copying tables into the lake");
    copying.enable_steady_tick(Duration::from_millis(120));
    // A mark written before the slot exists would never reach the stream.
    while !status.report(uuid::Uuid::nil()).pipeline.running {
        if ingest.task.is_finished() {
            anyhow::bail!("ingest stopped before it started streaming (see the log above)");
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    let mark: String =
        sqlx::query_scalar("SELECT pg_logical_emit_message(true, 'oneo.sync', '')::text")
            .fetch_one(app.pool())
            .await?;
    let target = parse_lsn(&mark).context("the sync mark's LSN")?;
    copying.finish_and_clear();
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>20} [{bar:40}] {binary_bytes}/{binary_total_bytes} of WAL ({eta} left)",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message("lake catching up");
    let mut start = None;
    loop {
        let acked = status.acknowledged();
        if acked.is_some_and(|a| a >= target) {
            break;
        }
        // Until the first batch lands (a new slot copies every table first), the distance
        // is counted from where the stream starts.
        if let Some(a) = acked {
            let from = *start.get_or_insert(a);
            bar.set_length(target.saturating_sub(from));
            bar.set_position(a.saturating_sub(from));
        }
        if let Some(e) = status.report(uuid::Uuid::nil()).pipeline.last_error {
            bar.set_message(format!("retrying: {e}"));
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        if ingest.task.is_finished() {
            bar.abandon();
            anyhow::bail!("ingest stopped before the lake caught up (see the log above)");
        }
    }
    bar.finish_and_clear();
    Ok(())
}

/// `oneo serve`: until SIGTERM or Ctrl-C. With a lake config, ingest runs in the same process
/// (its status served at `/v1/ingest/status`), Flight SQL answers from its lake, and
/// scheduled deliveries are sent. Workflow runs are driven either way.
pub async fn run(
    db: &DatabaseConfig,
    http: &HttpConfig,
    flight: &FlightConfig,
    lake: Option<&LakeConfig>,
    delivery: DeliveryConfig,
    workflows: WorkflowConfig,
) -> anyhow::Result<()> {
    let shutdown = shutdown_token();
    let app = Application::build(db, http)
        .await?
        .with_workflows(workflows, &delivery)?;
    let (app, ingest, flight) = match lake {
        Some(lake) => {
            let (app, task) = start_ingest(app, db, lake, &shutdown)?;
            let app = app.with_deliveries(delivery)?;
            load_dashboards(&app, lake).await;
            let flight = app.flight_server(flight).await?;
            (app, Some(task), Some(flight))
        }
        None => {
            tracing::info!("no ingest, so no lake: reports, SQL and Flight SQL are off");
            (app, None, None)
        }
    };
    serve(app, flight, ingest, shutdown).await
}

/// The dashboards kept as files, each loaded or reported.
pub async fn load_dashboards(app: &Application, lake: &LakeConfig) {
    for f in app.load_dashboard_files(&lake.dashboards_dir).await {
        match f.outcome {
            Ok(id) => tracing::info!(file = %f.path.display(), dashboard = %id, "dashboard loaded"),
            Err(why) => {
                tracing::warn!(file = %f.path.display(), error = %why, "dashboard file not loaded")
            }
        }
    }
}
