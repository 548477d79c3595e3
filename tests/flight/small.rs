//! Flight SQL on a server without the data set: TLS, and the time limit.

use std::time::Duration;

use arrow_flight::sql::client::FlightSqlServiceClient;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use futures::TryStreamExt;
use tonic::transport::Channel;

use crate::{common, fetch};

/// A Flight SQL server over an empty workspace and an empty lake, without the data set.
struct SmallServer {
    addr: std::net::SocketAddr,
    key: String,
    stop: tokio_util::sync::CancellationToken,
    db_name: String,
    _dir: tempfile::TempDir,
}

impl SmallServer {
    async fn start(
        tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
        timeout: Duration,
    ) -> Self {
        let (db_name, db_url) = common::create_database().await;
        let dir = tempfile::tempdir().expect("dir");
        let db = oneo_api::config::DatabaseConfig {
            database_url: db_url,
            db_max_connections: 4,
        };
        let http = oneo_api::config::HttpConfig {
            http_addr: "127.0.0.1:0".parse().expect("addr"),
            request_timeout_secs: 30,
        };
        let mut query =
            oneo_query::QueryConfig::new(url::Url::from_directory_path(dir.path()).expect("url"));
        query.timeout = timeout;
        let app = oneo_api::Application::build(&db, &http)
            .await
            .expect("server")
            .with_lake(query);
        let workspace = oneo_api::db::workspace::create_workspace(app.pool(), "Small")
            .await
            .expect("workspace");
        let (cert, key) = tls.unzip();
        let flight = app
            .flight_server(&oneo_api::config::FlightConfig {
                flight_addr: "127.0.0.1:0".parse().expect("addr"),
                flight_tls_cert: cert,
                flight_tls_key: key,
            })
            .await
            .expect("flight server");
        let addr = flight.local_addr();
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn(flight.run_until_stopped(stop.clone()));
        Self {
            addr,
            key: workspace.api_key,
            stop,
            db_name,
            _dir: dir,
        }
    }
}

impl Drop for SmallServer {
    fn drop(&mut self) {
        self.stop.cancel();
        common::drop_database(self.db_name.clone());
    }
}

/// With a certificate and key configured, Flight SQL speaks TLS only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_when_configured() {
    let dir = tempfile::tempdir().expect("dir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let server = SmallServer::start(Some((cert.clone(), key)), Duration::from_secs(30)).await;

    let pem = std::fs::read(&cert).expect("cert");
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(pem))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://{}", server.addr))
        .expect("uri")
        .tls_config(tls)
        .expect("tls config")
        .connect()
        .await
        .expect("a TLS connection");
    let mut c = FlightSqlServiceClient::new(channel);
    c.set_token(server.key.clone());
    let info = c
        .execute("SELECT count(*) AS n FROM crm.deal".into(), None)
        .await
        .expect("query over TLS");
    let n = fetch(&mut c, info).await;
    assert_eq!(
        n.column(0).as_primitive::<Int64Type>().value(0),
        0,
        "no deals yet"
    );

    // Plain text to the TLS port gets no answer.
    let plain = Channel::from_shared(format!("http://{}", server.addr)).expect("uri");
    let refused = match plain.connect().await {
        Err(_) => true,
        Ok(channel) => {
            let mut c = FlightSqlServiceClient::new(channel);
            c.set_token(server.key.clone());
            c.execute("SELECT 1".into(), None).await.is_err()
        }
    };
    assert!(refused, "a plaintext client must not be served");
}

/// A query longer than the session's time limit ends with DEADLINE_EXCEEDED mid-stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_past_the_time_limit_is_stopped() {
    let server = SmallServer::start(None, Duration::from_secs(1)).await;
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut c = FlightSqlServiceClient::new(channel);
    c.set_token(server.key.clone());
    let info = c
        .execute(
            "SELECT count(*) AS n FROM range(100000000000) WHERE value % 7 = 3".into(),
            None,
        )
        .await
        .expect("planned within the limit");
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let stream = c.do_get(ticket).await.expect("stream opens");
    let e = stream
        .try_collect::<Vec<_>>()
        .await
        .expect_err("a hundred billion rows take longer than a second");
    let text = e.to_string();
    assert!(text.contains("longer than 1 s"), "{text}");
}
