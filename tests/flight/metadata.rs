//! What a client sees before querying: catalogs, schemas, tables with their Arrow schemas, and
//! the system tables of schema `oneo`, each for the caller's workspace only.

use arrow_flight::sql::{CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetTables, SqlInfo};
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Schema;

use crate::harness::Env;
use crate::{client, fetch, rest_rows, rows};

/// The catalog, schemas and tables a client lists: this workspace's only.
pub async fn metadata_shows_this_workspace(env: &Env, other_key: &str) {
    let mut c = client(env, &env.key).await;
    let info = c.get_catalogs().await.expect("catalogs");
    let catalogs = fetch(&mut c, info).await;
    assert_eq!(catalogs.num_rows(), 1);
    assert_eq!(catalogs.column(0).as_string::<i32>().value(0), "oneo");

    let info = c
        .get_db_schemas(CommandGetDbSchemas {
            catalog: None,
            db_schema_filter_pattern: None,
        })
        .await
        .expect("schemas");
    let schemas = fetch(&mut c, info).await;
    let names: Vec<&str> = schemas
        .column(1)
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect();
    assert_eq!(names, ["crm", "oneo"], "record tables and system tables");

    let tables_of = |key: String| async move {
        let mut c = client(env, &key).await;
        let info = c
            .get_tables(CommandGetTables {
                catalog: None,
                db_schema_filter_pattern: Some("crm".into()),
                table_name_filter_pattern: None,
                table_types: vec![],
                include_schema: true,
            })
            .await
            .expect("tables");
        fetch(&mut c, info).await
    };
    let ours = tables_of(env.key.clone()).await;
    let names: Vec<&str> = ours.column(2).as_string::<i32>().iter().flatten().collect();
    for table in ["activity", "company", "contact", "deal", "project"] {
        assert!(names.contains(&table), "{table} in {names:?}");
    }
    // The deal table's Arrow schema, as a BI tool would read it before querying.
    let deal = names.iter().position(|n| *n == "deal").expect("deal");
    let ipc = ours.column(4).as_binary::<i32>().value(deal);
    let schema = arrow_flight::IpcMessage(bytes::Bytes::copy_from_slice(ipc));
    let schema = Schema::try_from(schema).expect("table schema");
    for column in [
        "id",
        "created_at",
        "updated_at",
        "stage",
        "amount",
        "company",
    ] {
        assert!(
            schema.field_with_name(column).is_ok(),
            "deal.{column} in {schema:?}"
        );
    }
    assert!(
        schema.field_with_name("_lsn").is_err(),
        "ingest bookkeeping stays hidden"
    );

    let theirs = tables_of(other_key.to_string()).await;
    let names: Vec<&str> = theirs
        .column(2)
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect();
    assert!(
        !names.contains(&"project"),
        "another workspace's object: {names:?}"
    );

    let info = c
        .get_primary_keys(CommandGetPrimaryKeys {
            catalog: None,
            db_schema: Some("crm".into()),
            table: "deal".into(),
        })
        .await
        .expect("primary keys");
    let keys = fetch(&mut c, info).await;
    assert_eq!(keys.num_rows(), 1);
    assert_eq!(keys.column(3).as_string::<i32>().value(0), "id");

    let info = c.get_table_types().await.expect("table types");
    assert_eq!(fetch(&mut c, info).await.num_rows(), 1);

    let info = c
        .get_sql_info(vec![
            SqlInfo::FlightSqlServerName,
            SqlInfo::FlightSqlServerReadOnly,
        ])
        .await
        .expect("sql info");
    let info = fetch(&mut c, info).await;
    assert_eq!(info.num_rows(), 2, "one row per fact asked for");
}

/// `oneo.ingest_status`: this workspace's tables as `/v1/ingest/status` reports them, listed by
/// `GetTables`, equal over Flight SQL and `/v1/sql`, and another workspace's rows never.
pub async fn system_tables_show_this_workspace(env: &Env, other_key: &str) {
    let mut c = client(env, &env.key).await;
    let info = c
        .get_tables(CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: Some("oneo".into()),
            table_name_filter_pattern: None,
            table_types: vec![],
            include_schema: false,
        })
        .await
        .expect("system tables");
    let listed = fetch(&mut c, info).await;
    let names: Vec<&str> = listed
        .column(2)
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect();
    // Beside it, `oneo.scores`: the models' scores (none here), the same for every caller.
    assert_eq!(names, ["ingest_status", "scores"]);

    let sql = "SELECT object, state, changes_applied > 0 AS applied FROM oneo.ingest_status ORDER BY object";
    let info = c.execute(sql.into(), None).await.expect(sql);
    let got = rows(&fetch(&mut c, info).await);
    assert_eq!(got, rest_rows(env, sql).await, "Flight SQL and REST agree");
    let (status, report) = env
        .send(reqwest::Method::GET, "/v1/ingest/status", None)
        .await;
    assert_eq!(status, 200, "{report}");
    let report: serde_json::Value = serde_json::from_str(&report).expect("json");
    let mut want: Vec<(String, String)> = report["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| {
            (
                t["object"].as_str().expect("object").into(),
                t["state"].as_str().expect("state").into(),
            )
        })
        .collect();
    want.sort();
    let seen: Vec<(String, String)> = got
        .iter()
        .map(|r| {
            (
                r["object"].clone().expect("object"),
                r["state"].clone().expect("state"),
            )
        })
        .collect();
    assert_eq!(seen, want, "the rows /v1/ingest/status reports");
    assert!(seen.iter().any(|(o, _)| o == "project"), "{seen:?}");

    let mut theirs = client(env, other_key).await;
    let info = theirs
        .execute("SELECT object FROM oneo.ingest_status".into(), None)
        .await
        .expect("their status");
    let their_rows = rows(&fetch(&mut theirs, info).await);
    assert!(
        !their_rows
            .iter()
            .any(|r| r["object"].as_deref() == Some("project")),
        "another workspace sees its own tables only: {their_rows:?}"
    );
}
