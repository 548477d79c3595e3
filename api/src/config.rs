use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where the operational database is. Read once, from flags or the environment.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseConfig {
    /// PostgreSQL connection URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/oneo"
    )]
    pub database_url: String,
    /// Most connections the server keeps open.
    #[arg(long, env = "ONEO_DB_MAX_CONNECTIONS", default_value_t = 20)]
    pub db_max_connections: u32,
}

/// The REST listener.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpConfig {
    /// Address the REST API listens on (port 0 picks a free one).
    #[arg(long, env = "ONEO_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Longest a request may take before it is answered 503.
    #[arg(long, env = "ONEO_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
}

impl HttpConfig {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
}

/// The Flight SQL listener.
#[derive(Debug, Clone, clap::Args)]
pub struct FlightConfig {
    /// Address Flight SQL listens on (port 0 picks a free one).
    #[arg(long, env = "ONEO_FLIGHT_ADDR", default_value = "127.0.0.1:50051")]
    pub flight_addr: SocketAddr,
    /// PEM certificate chain: with the key, Flight SQL takes TLS connections only.
    #[arg(long, env = "ONEO_FLIGHT_TLS_CERT", requires = "flight_tls_key")]
    pub flight_tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate.
    #[arg(long, env = "ONEO_FLIGHT_TLS_KEY", requires = "flight_tls_cert")]
    pub flight_tls_key: Option<PathBuf>,
}

/// The lake and the ingest pipeline that fills it.
#[derive(Debug, Clone, clap::Args)]
pub struct LakeConfig {
    /// Where the Delta tables live: a folder (created if missing) or a file:// URL.
    #[arg(long, env = "ONEO_LAKE_URL", default_value = "./data/lake")]
    pub lake_url: String,
    /// The logical replication slot ingest reads from (created if missing); by default
    /// `oneo_<database name>`, as slot names are shared by the whole PostgreSQL cluster.
    #[arg(long, env = "ONEO_INGEST_SLOT")]
    pub ingest_slot: Option<String>,
    /// A batch is written to the lake at this many changes…
    #[arg(long, env = "ONEO_INGEST_BATCH_CHANGES", default_value_t = 50_000)]
    pub ingest_batch_changes: usize,
    /// …or this many milliseconds after its first transaction.
    #[arg(long, env = "ONEO_INGEST_BATCH_MS", default_value_t = 1000)]
    pub ingest_batch_ms: u64,
    /// How far back time travel reaches; older unreferenced files are vacuumed.
    #[arg(long, env = "ONEO_LAKE_RETENTION_HOURS", default_value_t = 168)]
    pub lake_retention_hours: i64,
    /// Memory for the lake's decoded columns, shared by all queries (MiB); a table whose
    /// columns don't fit is read from its files. 0 turns the cache off.
    #[arg(long, env = "ONEO_COLUMN_CACHE_MB", default_value_t = 4096)]
    pub column_cache_mb: usize,
    /// Most memory one query may hold for joins, sorts and aggregations (MiB); beyond it,
    /// DataFusion spills to disk or the query fails.
    #[arg(long, env = "ONEO_QUERY_MEMORY_MB", default_value_t = 1024)]
    pub query_memory_mb: usize,
    /// Quiet time after ingest commits before dashboards refresh (ms); more commits reset it.
    #[arg(long, env = "ONEO_DASHBOARD_DEBOUNCE_MS", default_value_t = 500)]
    pub dashboard_debounce_ms: u64,
    /// The least time between two computations of one dashboard widget (ms).
    #[arg(long, env = "ONEO_DASHBOARD_MIN_INTERVAL_MS", default_value_t = 2000)]
    pub dashboard_min_interval_ms: u64,
    /// Dashboards also refresh this often without commits (s): "this month" moves too.
    #[arg(long, env = "ONEO_DASHBOARD_INTERVAL_SECS", default_value_t = 300)]
    pub dashboard_interval_secs: u64,
    /// Dashboards kept as files (`*.yaml`, `*.yml`, `*.json`, each naming its `workspace`),
    /// loaded at startup; a missing folder is no error.
    #[arg(long, env = "ONEO_DASHBOARDS_DIR", default_value = "./dashboards")]
    pub dashboards_dir: PathBuf,
}

impl LakeConfig {
    /// The query engine's settings over the lake at `root` (as ingest resolved it).
    pub fn query_config(&self, root: url::Url) -> oneo_query::QueryConfig {
        let mut cfg =
            oneo_query::QueryConfig::new(root).with_column_cache(self.column_cache_mb << 20);
        cfg.memory_limit_bytes = self.query_memory_mb.max(1) << 20;
        cfg
    }

    /// How dashboards refresh: (debounce, minimum interval, interval).
    pub fn dashboard_timing(&self) -> (Duration, Duration, Duration) {
        (
            Duration::from_millis(self.dashboard_debounce_ms),
            Duration::from_millis(self.dashboard_min_interval_ms),
            Duration::from_secs(self.dashboard_interval_secs.max(1)),
        )
    }

    pub fn ingest_config(&self, db: &DatabaseConfig) -> oneo_ingest::IngestConfig {
        let mut cfg = oneo_ingest::IngestConfig::new(&db.database_url, &self.lake_url);
        if let Some(slot) = &self.ingest_slot {
            cfg.slot = slot.clone();
        }
        cfg.max_batch_changes = self.ingest_batch_changes.max(1);
        cfg.max_batch_delay = Duration::from_millis(self.ingest_batch_ms.max(1));
        cfg.retention = chrono::Duration::hours(self.lake_retention_hours.max(0));
        cfg
    }
}

/// Scheduled deliveries: where mail goes, and how hard a delivery is tried.
#[derive(Debug, Clone, clap::Args)]
pub struct DeliveryConfig {
    /// The SMTP server deliveries go through (`smtp://host:port`, `smtps://…` for TLS,
    /// `smtp://…?tls=required` for STARTTLS; user and password in the URL). Without it,
    /// deliveries fail with that reason in `/v1/deliveries`.
    #[arg(long, env = "ONEO_SMTP_URL")]
    pub smtp_url: Option<String>,
    /// The sender of delivery mail.
    #[arg(
        long,
        env = "ONEO_SMTP_FROM",
        default_value = "Oneo <reports@oneo.localhost>"
    )]
    pub smtp_from: String,
    /// Where recipients reach this server, for download links (default: the REST address).
    #[arg(long, env = "ONEO_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// A file larger than this (KiB) is not attached; the mail links to it instead.
    #[arg(long, env = "ONEO_DELIVERY_ATTACHMENT_LIMIT_KB", default_value_t = 10 * 1024)]
    pub attachment_limit_kb: u64,
    /// How long a download link stays valid (hours).
    #[arg(long, env = "ONEO_DELIVERY_LINK_HOURS", default_value_t = 7 * 24)]
    pub link_hours: i64,
    /// Attempts before a delivery is marked failed.
    #[arg(long, env = "ONEO_DELIVERY_MAX_ATTEMPTS", default_value_t = 5)]
    pub max_attempts: u32,
    /// The wait before the first retry (ms); each further retry waits twice as long.
    #[arg(long, env = "ONEO_DELIVERY_RETRY_MS", default_value_t = 30_000)]
    pub retry_ms: u64,
    /// How often the scheduler looks for due fires and deliveries (ms).
    #[arg(long, env = "ONEO_SCHEDULER_TICK_MS", default_value_t = 1000)]
    pub tick_ms: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            smtp_url: None,
            smtp_from: "Oneo <reports@oneo.localhost>".into(),
            public_url: None,
            attachment_limit_kb: 10 * 1024,
            link_hours: 7 * 24,
            max_attempts: 5,
            retry_ms: 30_000,
            tick_ms: 1000,
        }
    }
}

impl DeliveryConfig {
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms.max(10))
    }

    /// The wait after failed attempt `n` (1-based): `retry_ms`, doubling, capped at a day.
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = 1u64 << n.saturating_sub(1).min(20);
        Duration::from_millis(self.retry_ms.saturating_mul(factor).min(86_400_000))
    }
}

/// Workflow runs: how many this server drives at once and how often it looks for due ones.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkflowConfig {
    /// Runs driven at once by this process (each holds a database connection while it
    /// does a step).
    #[arg(long, env = "ONEO_WORKFLOW_WORKERS", default_value_t = 4)]
    pub workflow_workers: usize,
    /// How often idle workers look for due runs (ms); a new run wakes them at once.
    #[arg(long, env = "ONEO_WORKFLOW_TICK_MS", default_value_t = 500)]
    pub workflow_tick_ms: u64,
    /// How often a `wait` on a condition re-reads its record (ms).
    #[arg(long, env = "ONEO_WORKFLOW_CONDITION_POLL_MS", default_value_t = 5000)]
    pub workflow_condition_poll_ms: u64,
}

impl Default for WorkflowConfig {
    fn default() -> Self {
        Self {
            workflow_workers: 4,
            workflow_tick_ms: 500,
            workflow_condition_poll_ms: 5000,
        }
    }
}

impl WorkflowConfig {
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.workflow_tick_ms.max(10))
    }

    pub fn condition_poll(&self) -> Duration {
        Duration::from_millis(self.workflow_condition_poll_ms.max(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_doubling_up_to_a_day() {
        let cfg = DeliveryConfig {
            retry_ms: 30_000,
            ..DeliveryConfig::default()
        };
        let waits: Vec<u64> = (1..=4).map(|n| cfg.backoff(n).as_secs()).collect();
        assert_eq!(waits, [30, 60, 120, 240]);
        assert_eq!(
            cfg.backoff(40).as_secs(),
            86_400,
            "capped, never overflowing"
        );
    }
}
