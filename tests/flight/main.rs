//! Flight SQL end to end: the synthetic data set in a real lake, served over Flight SQL on a
//! loopback port, queried with arrow-flight's `FlightSqlServiceClient` and with a third-party
//! client (ADBC's Flight SQL driver, from Python); every answer must equal the REST API's.

#[path = "../common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../reports/harness.rs"]
mod harness;
mod metadata;
mod small;

use std::sync::Arc;
use std::time::Duration;

use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{CommandStatementQuery, ProstMessageExt};
use arrow_flight::{FlightDescriptor, FlightInfo};
use datafusion::arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use futures::TryStreamExt;
use harness::{Env, Row, canonical, report_rows};
use prost::Message;
use serde_json::{Value, json};
use tonic::transport::Channel;

type Client = FlightSqlServiceClient<Channel>;

async fn channel(env: &Env) -> Channel {
    Channel::from_shared(format!("http://{}", env.flight))
        .expect("uri")
        .connect()
        .await
        .expect("connect to Flight SQL")
}

/// A client that sends the key as a bearer token on every call.
async fn client(env: &Env, key: &str) -> Client {
    let mut c = FlightSqlServiceClient::new(channel(env).await);
    c.set_token(key.to_string());
    c
}

/// Every batch behind `info`, as one batch.
async fn fetch(client: &mut Client, info: FlightInfo) -> RecordBatch {
    let schema = Arc::new(info.clone().try_decode_schema().expect("schema"));
    let mut batches = vec![];
    for endpoint in info.endpoint {
        let stream = client
            .do_get(endpoint.ticket.expect("ticket"))
            .await
            .expect("do_get");
        batches.extend(stream.try_collect::<Vec<_>>().await.expect("batches"));
    }
    concat_batches(&schema, &batches).expect("concat")
}

/// A batch's rows keyed by column name, each value as canonical text.
fn rows(batch: &RecordBatch) -> Vec<Row> {
    let columns: Vec<_> = batch
        .columns()
        .iter()
        .map(|c| cast(c, &DataType::Utf8).expect("as text"))
        .collect();
    (0..batch.num_rows())
        .map(|i| {
            batch
                .schema()
                .fields()
                .iter()
                .zip(&columns)
                .map(|(f, c)| {
                    let c = c.as_string::<i32>();
                    let v = (!c.is_null(i)).then(|| canonical(c.value(i)));
                    (f.name().clone(), v)
                })
                .collect()
        })
        .collect()
}

/// The REST API's answer to the same SQL, in the same shape.
async fn rest_rows(env: &Env, sql: &str) -> Vec<Row> {
    let (status, answer) = env.post("/v1/sql", &json!({ "sql": sql })).await;
    assert_eq!(status, 200, "{answer}");
    report_rows(&answer)
}

/// `get_flight_info` for `cmd` straight on the wire, so the status code can be checked.
async fn raw_info(
    env: &Env,
    key: Option<&str>,
    cmd: impl ProstMessageExt,
) -> Result<FlightInfo, tonic::Status> {
    let mut raw = arrow_flight::flight_service_client::FlightServiceClient::new(channel(env).await);
    let mut request = tonic::Request::new(FlightDescriptor::new_cmd(cmd.as_any().encode_to_vec()));
    if let Some(key) = key {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {key}").parse().expect("header"),
        );
    }
    raw.get_flight_info(request).await.map(|r| r.into_inner())
}

async fn raw_statement(
    env: &Env,
    key: Option<&str>,
    sql: &str,
) -> Result<FlightInfo, tonic::Status> {
    let cmd = CommandStatementQuery {
        query: sql.to_string(),
        transaction_id: None,
    };
    raw_info(env, key, cmd).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flight_sql_answers_from_the_workspace_lake_only() {
    let env = Env::with_data(400).await;
    let other = oneo_api::db::workspace::create_workspace(&env.pool, "Other")
        .await
        .expect("second workspace");
    // An object only the first workspace has, with a record in the lake.
    let (status, body) = env
        .post(
            "/v1/objects",
            &json!({"api_name": "project", "label": "Project",
                    "fields": [{"api_name": "name", "label": "Name", "type": "text"}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = env
        .post("/v1/records/project", &json!({"name": "Migration"}))
        .await;
    assert_eq!(status, 201, "{body}");
    env.wait_for_lake().await;

    calls_without_a_valid_key_are_refused(&env).await;
    handshake_returns_a_bearer_token(&env).await;
    metadata::metadata_shows_this_workspace(&env, &other.api_key).await;
    statements_equal_rest(&env).await;
    metadata::system_tables_show_this_workspace(&env, &other.api_key).await;
    prepared_statements_bind_parameters(&env).await;
    writes_and_file_access_are_refused(&env).await;
    a_client_going_away_stops_its_query(&env).await;
    adbc_client_sees_the_same(&env, &other.api_key).await;
}

async fn calls_without_a_valid_key_are_refused(env: &Env) {
    for key in [None, Some("oneo_not_a_key")] {
        let e = raw_statement(env, key, "SELECT 1")
            .await
            .expect_err("no key, no answer");
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "{key:?}: {e}");
    }
    let e = raw_info(env, None, arrow_flight::sql::CommandGetCatalogs {})
        .await
        .expect_err("metadata needs a key too");
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e}");
    let mut anonymous = FlightSqlServiceClient::new(channel(env).await);
    let e = anonymous
        .handshake("anyone", "oneo_wrong")
        .await
        .expect_err("a wrong key fails the handshake");
    assert!(e.to_string().contains("unknown or revoked API key"), "{e}");
}

async fn handshake_returns_a_bearer_token(env: &Env) {
    let mut c = FlightSqlServiceClient::new(channel(env).await);
    c.handshake("analyst", &env.key).await.expect("basic auth");
    assert!(
        c.token().is_some(),
        "the handshake answers with a bearer token"
    );
    let info = c
        .execute("SELECT count(*) AS n FROM crm.deal".into(), None)
        .await
        .expect("query");
    let batch = fetch(&mut c, info).await;
    let want: i64 = sqlx::query_scalar("SELECT count(*) FROM rel.deal")
        .fetch_one(&env.pool)
        .await
        .expect("oracle");
    let n = batch
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("count");
    assert_eq!(n.value(0), want);
}

async fn statements_equal_rest(env: &Env) {
    let mut c = client(env, &env.key).await;
    for sql in [
        "SELECT stage, count(*) AS n, sum(amount) AS total FROM crm.deal GROUP BY stage",
        "SELECT c.industry, count(d.id) AS deals, avg(d.amount) AS mean FROM crm.deal d JOIN crm.company c ON c.id = d.company GROUP BY c.industry",
        "SELECT id, name, created_at FROM crm.project",
        "SELECT id FROM crm.deal WHERE amount < 0",
    ] {
        let info = c.execute(sql.into(), None).await.expect(sql);
        let mut got = rows(&fetch(&mut c, info).await);
        let mut want = rest_rows(env, sql).await;
        got.sort_by_key(|r| format!("{r:?}"));
        want.sort_by_key(|r| format!("{r:?}"));
        assert_eq!(got, want, "{sql}");
    }
    // Larger than one batch, streamed: every activity arrives once.
    let info = c
        .execute("SELECT id, subject FROM crm.activity".into(), None)
        .await
        .expect("activities");
    let all = fetch(&mut c, info).await;
    let want: i64 = sqlx::query_scalar("SELECT count(*) FROM rel.activity")
        .fetch_one(&env.pool)
        .await
        .expect("oracle");
    assert_eq!(all.num_rows() as i64, want);
}

async fn prepared_statements_bind_parameters(env: &Env) {
    let mut c = client(env, &env.key).await;
    let mut stmt = c
        .prepare(
            "SELECT count(*) AS n, sum(amount) AS total FROM crm.deal WHERE stage = $1 AND amount >= $2".into(),
            None,
        )
        .await
        .expect("prepare");
    let params = stmt.parameter_schema().expect("parameters").clone();
    let names: Vec<&str> = params.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["$1", "$2"]);
    for (stage, min) in [("closed_won", 1000_i64), ("proposal", 0)] {
        let schema = Arc::new(Schema::new(vec![
            Field::new("stage", DataType::Utf8, false),
            Field::new("min", DataType::Int64, false),
        ]));
        let values = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![stage])),
                Arc::new(Int64Array::from(vec![min])),
            ],
        )
        .expect("params");
        stmt.set_parameters(values).expect("bind");
        let info = stmt.execute().await.expect("execute");
        let got = rows(&fetch(&mut c, info).await);
        let want = rest_rows(
            env,
            &format!(
                "SELECT count(*) AS n, sum(amount) AS total FROM crm.deal WHERE stage = '{stage}' AND amount >= {min}"
            ),
        )
        .await;
        assert_ne!(
            want[0]["n"].as_deref(),
            Some("0"),
            "{stage}: the case must match deals"
        );
        assert_eq!(got, want, "{stage} ≥ {min}");
    }
    // A value that can't be read as the column's type says which parameter.
    let schema = Arc::new(Schema::new(vec![
        Field::new("stage", DataType::Utf8, false),
        Field::new("min", DataType::Utf8, false),
    ]));
    let bad = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["closed_won"])),
            Arc::new(StringArray::from(vec!["lots"])),
        ],
    )
    .expect("params");
    stmt.set_parameters(bad).expect("bind");
    let e = stmt.execute().await.expect_err("`lots` is no amount");
    assert!(e.to_string().contains("$2"), "{e}");
    stmt.close().await.expect("close");

    // Another workspace can't use, or close, this workspace's statement.
    let handle = prepare_raw(env, &env.key, "SELECT 1 AS one").await;
    let other = oneo_api::db::workspace::create_workspace(&env.pool, "Third")
        .await
        .expect("workspace");
    let cmd = |handle: &bytes::Bytes| arrow_flight::sql::CommandPreparedStatementQuery {
        prepared_statement_handle: handle.clone(),
    };
    let e = raw_info(env, Some(&other.api_key), cmd(&handle))
        .await
        .expect_err("not their statement");
    assert_eq!(e.code(), tonic::Code::NotFound, "{e}");
    let info = raw_info(env, Some(&env.key), cmd(&handle))
        .await
        .expect("still ours");
    let mut ours = client(env, &env.key).await;
    assert_eq!(fetch(&mut ours, info).await.num_rows(), 1);
}

/// Prepares `sql` on the wire and returns the server's handle.
async fn prepare_raw(env: &Env, key: &str, sql: &str) -> bytes::Bytes {
    let mut raw = arrow_flight::flight_service_client::FlightServiceClient::new(channel(env).await);
    let body = arrow_flight::sql::ActionCreatePreparedStatementRequest {
        query: sql.to_string(),
        transaction_id: None,
    };
    let mut request = tonic::Request::new(arrow_flight::Action {
        r#type: "CreatePreparedStatement".into(),
        body: body.as_any().encode_to_vec().into(),
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {key}").parse().expect("header"),
    );
    let mut results = raw.do_action(request).await.expect("prepare").into_inner();
    let result = results.message().await.expect("answer").expect("a result");
    let any = arrow_flight::sql::Any::decode(&*result.body).expect("Any");
    any.unpack::<arrow_flight::sql::ActionCreatePreparedStatementResult>()
        .expect("unpack")
        .expect("a prepared statement")
        .prepared_statement_handle
}

async fn writes_and_file_access_are_refused(env: &Env) {
    for (sql, code) in [
        ("DROP TABLE crm.deal", tonic::Code::PermissionDenied),
        ("CREATE TABLE t AS SELECT 1", tonic::Code::PermissionDenied),
        (
            "INSERT INTO crm.deal (id) VALUES ('x')",
            tonic::Code::PermissionDenied,
        ),
        (
            "COPY crm.deal TO '/tmp/oneo_flight_deals.csv'",
            tonic::Code::PermissionDenied,
        ),
        (
            "CREATE EXTERNAL TABLE f STORED AS CSV LOCATION '/etc/passwd'",
            tonic::Code::PermissionDenied,
        ),
        (
            "SET datafusion.execution.batch_size = 1",
            tonic::Code::PermissionDenied,
        ),
        ("SELECT * FROM '/etc/passwd'", tonic::Code::InvalidArgument),
        (
            "SELECT * FROM crm.nonexistent",
            tonic::Code::InvalidArgument,
        ),
        ("SELEC 1", tonic::Code::InvalidArgument),
    ] {
        let e = raw_statement(env, Some(&env.key), sql)
            .await
            .expect_err(sql);
        assert_eq!(e.code(), code, "{sql}: {e}");
        assert!(!e.message().is_empty(), "{sql}");
    }
    assert!(
        !std::path::Path::new("/tmp/oneo_flight_deals.csv").exists(),
        "COPY wrote nothing"
    );
    let deals: i64 = sqlx::query_scalar("SELECT count(*) FROM rel.deal")
        .fetch_one(&env.pool)
        .await
        .expect("count");
    let (_, answer) = env
        .post(
            "/v1/sql",
            &json!({"sql": "SELECT count(*) AS n FROM crm.deal"}),
        )
        .await;
    assert_eq!(answer["rows"][0][0], json!(deals), "the lake is unchanged");
}

async fn a_client_going_away_stops_its_query(env: &Env) {
    assert_eq!(env.flight_streams.current(), 0);
    let mut c = client(env, &env.key).await;
    // Millions of rows: far more than the client will read.
    let info = c
        .execute(
            "SELECT a.id, b.id AS other FROM crm.activity a CROSS JOIN crm.activity b".into(),
            None,
        )
        .await
        .expect("query");
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let mut stream = c.do_get(ticket).await.expect("do_get");
    let first = stream
        .try_next()
        .await
        .expect("a batch")
        .expect("some rows");
    assert!(first.num_rows() > 0);
    assert_eq!(env.flight_streams.current(), 1, "the query is streaming");
    drop(stream);
    drop(c);
    for _ in 0..100 {
        if env.flight_streams.current() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the query kept running after its client went away");
}

async fn adbc_client_sees_the_same(env: &Env, other_key: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/flight_adbc.py");
    let uri = format!("grpc://{}", env.flight);
    let key = env.key.clone();
    let other_key = other_key.to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args([script, &uri, &key, &other_key])
            .output()
    })
    .await
    .expect("join")
    .expect("python3 runs (pip install adbc-driver-flightsql adbc-driver-manager pyarrow)");
    assert!(
        out.status.success(),
        "the ADBC client failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).expect("json from the ADBC client");

    let tables: Vec<String> = got["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| {
            t.as_array()
                .expect("triple")
                .iter()
                .map(|p| p.as_str().unwrap_or(""))
                .collect::<Vec<_>>()
                .join(".")
        })
        .collect();
    for t in ["oneo.crm.deal", "oneo.crm.project"] {
        assert!(tables.contains(&t.to_string()), "{t} in {tables:?}");
    }
    assert!(
        got["deal_columns"]
            .as_array()
            .expect("columns")
            .contains(&json!("amount")),
        "{}",
        got["deal_columns"]
    );

    let sql = "SELECT stage, count(*) AS n, sum(amount) AS total FROM crm.deal GROUP BY stage ORDER BY stage";
    let want: Vec<Vec<Option<String>>> = rest_rows(env, sql)
        .await
        .into_iter()
        .map(|r| vec![r["stage"].clone(), r["n"].clone(), r["total"].clone()])
        .collect();
    let by_stage: Vec<Vec<Option<String>>> = got["by_stage"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|v| v.as_str().map(canonical))
                .collect()
        })
        .collect();
    assert_eq!(by_stage, want, "ADBC rows equal REST's");

    for (stage, field) in [("closed_won", "won"), ("closed_lost", "lost")] {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM rel.deal WHERE stage = $1")
            .bind(stage)
            .fetch_one(&env.pool)
            .await
            .expect("oracle");
        assert!(n > 0, "{stage}: the case must match deals");
        assert_eq!(got[field], json!(n), "prepared count for {stage}");
    }
    assert_eq!(
        got["by_stage_types"],
        json!(["string", "int64", "decimal128(38, 2)"]),
        "classic Arrow types every client reads"
    );
    for (sql, message) in got["refused"].as_object().expect("refused") {
        let message = message
            .as_str()
            .unwrap_or_else(|| panic!("{sql} was not refused"));
        let reason = if sql.starts_with("SELECT") {
            "not found"
        } else {
            "only reads"
        };
        assert!(message.contains(reason), "{sql}: {message}");
    }

    let other_tables: Vec<String> = got["other_tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| t[2].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        !other_tables.contains(&"project".to_string()),
        "{other_tables:?}"
    );
    assert_eq!(
        got["other_deals"],
        json!(0),
        "the other workspace has no deals"
    );
    assert!(
        got["other_project"].is_string(),
        "crm.project is not theirs"
    );
    assert!(got["bad_key"].is_string(), "a wrong key is refused");
}
