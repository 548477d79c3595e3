use std::net::SocketAddr;
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
