//! Oneo's REST API: objects, fields and records of a workspace, written to PostgreSQL.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use oneo_api::{Application, config::{DatabaseConfig, HttpConfig}};
//! let db = DatabaseConfig { database_url: "postgres://postgres@127.0.0.1/oneo".into(), db_max_connections: 10 };
//! let http = HttpConfig { http_addr: "127.0.0.1:0".parse()?, request_timeout_secs: 30 };
//! let app = Application::build(&db, &http).await?;
//! println!("listening on {}", app.local_addr());
//! app.run_until_stopped(tokio_util::sync::CancellationToken::new()).await?;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod config;
pub mod dashboards;
pub mod db;
pub mod error;
pub mod export;
pub mod flight;
pub mod load;
pub mod models;
pub mod openapi;
pub mod relational;
mod routes;
pub mod schedules;
mod share;
mod system;
pub mod workflow_intake;
pub mod workflow_worker;

use std::net::SocketAddr;

use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use routes::app;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// The ingest pipeline running beside the API, when there is one.
    pub ingest: Option<oneo_ingest::IngestHandle>,
    /// Where reports and SQL read the lake, when this server has one.
    pub lake: Option<std::sync::Arc<oneo_query::QueryConfig>>,
    /// Dashboards' materializations, beside the lake.
    pub dashboards: Option<std::sync::Arc<dashboards::DashboardService>>,
    /// Scheduled deliveries, when this server sends them.
    pub deliveries: Option<std::sync::Arc<schedules::DeliveryService>>,
}

/// The REST server, bound and ready to serve.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    http: config::HttpConfig,
    /// Where the workflow intake reads, when this server runs it.
    intake: Option<workflow_intake::IntakeConfig>,
    /// The workflow workers, when this server drives runs.
    workflows: Option<std::sync::Arc<workflow_worker::WorkflowService>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("can't connect to PostgreSQL: {0}")]
    Database(#[from] sqlx::Error),
    #[error("can't apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("can't read the TLS file {path}: {source}")]
    Tls {
        path: String,
        source: std::io::Error,
    },
    #[error("scheduled deliveries: {0}")]
    Delivery(String),
    #[error("workflows: {0}")]
    Workflows(String),
    #[error("can't listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl Application {
    /// Connects, migrates and binds the listener (port 0 picks a free port).
    pub async fn build(
        db_cfg: &config::DatabaseConfig,
        http: &config::HttpConfig,
    ) -> Result<Self, StartError> {
        let pool = db::connect(db_cfg).await?;
        db::migrate(&pool).await?;
        let listener =
            TcpListener::bind(http.http_addr)
                .await
                .map_err(|source| StartError::Bind {
                    addr: http.http_addr,
                    source,
                })?;
        Ok(Self {
            listener,
            state: AppState {
                pool,
                ingest: None,
                lake: None,
                dashboards: None,
                deliveries: None,
            },
            http: http.clone(),
            intake: None,
            workflows: None,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.http.http_addr)
    }

    pub fn pool(&self) -> &PgPool {
        &self.state.pool
    }

    /// Serves ingest's status and resync endpoints from this pipeline.
    pub fn with_ingest(mut self, handle: oneo_ingest::IngestHandle) -> Self {
        self.state.ingest = Some(handle);
        self
    }

    /// Answers reports and SQL from this lake.
    pub fn with_lake(mut self, cfg: oneo_query::QueryConfig) -> Self {
        match dashboards::DashboardService::new(&cfg.lake_root) {
            Ok(d) => self.state.dashboards = Some(std::sync::Arc::new(d)),
            Err(e) => tracing::warn!(error = %e, "dashboards are off: their store can't open"),
        }
        self.state.lake = Some(std::sync::Arc::new(cfg));
        self
    }

    /// How dashboards refresh (see [`config::LakeConfig::dashboard_timing`]); call after
    /// [`Self::with_lake`], before serving.
    pub fn with_dashboard_timing(
        mut self,
        (debounce, min_interval, interval): (
            std::time::Duration,
            std::time::Duration,
            std::time::Duration,
        ),
    ) -> Self {
        // Before serving, the state is not shared yet, so the service is ours to change.
        if let Some(d) = self
            .state
            .dashboards
            .as_mut()
            .and_then(std::sync::Arc::get_mut)
        {
            d.debounce = debounce;
            d.min_interval = min_interval;
            d.interval = interval;
        }
        self
    }

    /// Runs scheduled deliveries (with a lake: see [`Self::with_lake`]) as `cfg` says.
    pub fn with_deliveries(mut self, cfg: config::DeliveryConfig) -> Result<Self, StartError> {
        let service = schedules::DeliveryService::new(cfg, self.local_addr())
            .map_err(StartError::Delivery)?;
        self.state.deliveries = Some(std::sync::Arc::new(service));
        Ok(self)
    }

    /// Starts workflow runs from the change stream read through `cfg`'s slot.
    pub fn with_workflow_intake(mut self, cfg: workflow_intake::IntakeConfig) -> Self {
        self.intake = Some(cfg);
        self
    }

    /// Drives workflow runs (steps, waits, retries) with `cfg`; mail goes through the SMTP
    /// server `smtp` names.
    pub fn with_workflows(
        mut self,
        cfg: config::WorkflowConfig,
        smtp: &config::DeliveryConfig,
    ) -> Result<Self, StartError> {
        let service =
            workflow_worker::WorkflowService::new(cfg, smtp).map_err(StartError::Workflows)?;
        self.workflows = Some(std::sync::Arc::new(service));
        Ok(self)
    }

    /// Loads the dashboards kept as files in `dir` (see [`dashboards::load_files`]).
    pub async fn load_dashboard_files(&self, dir: &std::path::Path) -> Vec<dashboards::LoadedFile> {
        dashboards::load_files(&self.state, dir).await
    }

    /// The workspace's dashboard named as `spec` names it, created and materialized if it
    /// has none (the demo's sample dashboard); its id.
    pub async fn ensure_dashboard(
        &self,
        workspace: uuid::Uuid,
        spec: serde_json::Value,
    ) -> Result<uuid::Uuid, error::ApiError> {
        routes::dashboards::ensure(&self.state, workspace, spec).await
    }

    /// Trains and deploys the sample models (`oneo demo`) unless deployed already.
    pub async fn ensure_demo_models(
        &self,
        workspace: uuid::Uuid,
    ) -> Result<
        Vec<(
            models::ModelRow,
            std::result::Result<models::ScoreRun, String>,
        )>,
        error::ApiError,
    > {
        models::ensure_demo_models(&self.state, workspace).await
    }

    /// The Flight SQL server over the same state (the lake given by [`Self::with_lake`]),
    /// bound to `cfg.flight_addr`; run it beside this one.
    pub async fn flight_server(
        &self,
        cfg: &config::FlightConfig,
    ) -> Result<flight::FlightServer, StartError> {
        flight::FlightServer::bind(self.state.clone(), cfg).await
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, lets requests in flight
    /// finish, and closes the pool.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let pool = self.state.pool.clone();
        tokio::spawn(dashboards::run_refresher(
            self.state.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(schedules::run(self.state.clone(), shutdown.clone()));
        if let Some(cfg) = self.intake {
            tokio::spawn(workflow_intake::run(pool.clone(), cfg, shutdown.clone()));
        }
        if let Some(service) = self.workflows {
            tokio::spawn(workflow_worker::run(
                pool.clone(),
                service,
                shutdown.clone(),
            ));
        }
        let router =
            routes::app(self.state).layer(tower_http::timeout::TimeoutLayer::with_status_code(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                self.http.request_timeout(),
            ));
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await?;
        pool.close().await;
        Ok(())
    }
}
