//! Arrow Flight SQL: BI tools and notebooks query their workspace's lake directly, as Arrow
//! record batches streamed from DataFusion.
//!
//! ```no_run
//! # async fn run(app: oneo_api::Application) -> anyhow::Result<()> {
//! use oneo_api::config::FlightConfig;
//! let cfg = FlightConfig { flight_addr: "127.0.0.1:50051".parse()?, flight_tls_cert: None, flight_tls_key: None };
//! let flight = app.flight_server(&cfg).await?;
//! println!("Flight SQL on grpc://{}", flight.local_addr());
//! flight.run_until_stopped(tokio_util::sync::CancellationToken::new()).await?;
//! # Ok(()) }
//! ```
//!
//! A caller authenticates with its workspace API key: as the password of basic auth in the
//! handshake (which answers with the key as the bearer token), or directly as
//! `authorization: Bearer <key>` on every call. It sees one catalog, `oneo`, with the schema
//! `crm` of its own workspace's objects; every statement goes through the same read-only
//! planning as `/v1/sql`.

mod auth;
mod metadata;
mod prepared;
mod service;
mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::config::FlightConfig;
use crate::{AppState, StartError};

pub use service::FlightSqlEndpoint;

/// Largest message a client may send (parameter batches are small; this bounds abuse).
const MAX_REQUEST_BYTES: usize = 16 << 20;

/// The Flight SQL server, bound and ready to serve.
pub struct FlightServer {
    listener: TcpListener,
    endpoint: FlightSqlEndpoint,
    tls: Option<ServerTlsConfig>,
}

impl FlightServer {
    pub(crate) async fn bind(state: AppState, cfg: &FlightConfig) -> Result<Self, StartError> {
        let tls = match (&cfg.flight_tls_cert, &cfg.flight_tls_key) {
            (Some(cert), Some(key)) => {
                let read = |path: &std::path::PathBuf| {
                    std::fs::read(path).map_err(|source| StartError::Tls {
                        path: path.display().to_string(),
                        source,
                    })
                };
                let identity = Identity::from_pem(read(cert)?, read(key)?);
                // Other crates compile rustls with aws-lc-rs as well as ring, so rustls can't
                // pick a provider by itself (it panics on the first handshake). Already
                // installed is fine.
                drop(rustls::crypto::ring::default_provider().install_default());
                Some(ServerTlsConfig::new().identity(identity))
            }
            _ => None,
        };
        let listener =
            TcpListener::bind(cfg.flight_addr)
                .await
                .map_err(|source| StartError::Bind {
                    addr: cfg.flight_addr,
                    source,
                })?;
        Ok(Self {
            listener,
            endpoint: FlightSqlEndpoint::new(state),
            tls,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Whether clients must connect with TLS (`grpc+tls://`).
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Counts the query results being streamed right now.
    pub fn streams(&self) -> StreamGauge {
        self.endpoint.streams()
    }

    /// Serves until `shutdown` is cancelled.
    pub async fn run_until_stopped(
        self,
        shutdown: CancellationToken,
    ) -> Result<(), tonic::transport::Error> {
        let mut server = Server::builder();
        if let Some(tls) = self.tls {
            server = server.tls_config(tls)?;
        }
        let service =
            FlightServiceServer::new(self.endpoint).max_decoding_message_size(MAX_REQUEST_BYTES);
        server
            .add_service(service)
            .serve_with_incoming_shutdown(
                TcpIncoming::from(self.listener).with_nodelay(Some(true)),
                shutdown.cancelled_owned(),
            )
            .await
    }
}

/// How many query results are being streamed to clients. A stream leaves the count when it
/// ends, fails, or its client goes away, which also stops the query behind it.
#[derive(Debug, Clone, Default)]
pub struct StreamGauge(Arc<AtomicUsize>);

impl StreamGauge {
    pub fn current(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    fn enter(&self) -> StreamGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        StreamGuard(Arc::clone(&self.0))
    }
}

/// Held by a result stream for as long as it lives.
struct StreamGuard(Arc<AtomicUsize>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
