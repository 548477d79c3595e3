//! Reports that join, group and count distinct on ids give the same answer whether the
//! engine works on the cache's integer keys, on keys interned while reading files (a table
//! beyond the cache's budget), or on the id texts (no cache); and SQL never shows the key
//! columns.

use std::sync::Arc;

use datafusion::arrow::array::TimestampMicrosecondArray;
use datafusion::arrow::array::{ArrayRef, Decimal128Array, RecordBatch, StringArray};
use oneo_catalog::lake::{TableKind, table_path};
use oneo_catalog::{FieldDef, FieldType};
use oneo_ingest::Lake;
use oneo_query::{
    DateContext, ObjectDef, QueryConfig, ReportSpec, WorkspaceSchema, WorkspaceSession, run_report,
};
use serde_json::{Value, json};
use uuid::Uuid;

const ACME: &str = "0b6d2c6e-7f0a-4c1e-9b7d-2f6f1c9a8e01";
const BOLT: &str = "1c7e3d7f-8a1b-4d2f-8c8e-3a7a2d0b9f12";
/// The same UUID as ACME spelled in capitals: another id, as far as text goes.
const ACME_UPPER: &str = "0B6D2C6E-7F0A-4C1E-9B7D-2F6F1C9A8E01";
/// Not a UUID at all (records imported with their old ids).
const LEGACY: &str = "legacy-7";
/// A deal points here, but no such company exists.
const GONE: &str = "2d8f4e80-9b2c-4e30-9d9f-4b8b3e1c0a23";

fn objects() -> Vec<ObjectDef> {
    let mut lookup = FieldDef::new("company", "Company", FieldType::Lookup);
    lookup.target = Some("company".into());
    vec![
        ObjectDef {
            id: 1,
            api_name: "company".into(),
            fields: vec![FieldDef::new("name", "Name", FieldType::Text)],
        },
        ObjectDef {
            id: 2,
            api_name: "deal".into(),
            fields: vec![
                FieldDef::new("name", "Name", FieldType::Text),
                FieldDef::new("amount", "Amount", FieldType::Currency),
                lookup,
            ],
        },
    ]
}

fn texts(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

/// Rows in `object`'s lake shape: ids, then the field columns after the timestamps.
fn batch(object: &ObjectDef, ids: &[&str], fields: Vec<ArrayRef>) -> RecordBatch {
    let ts = TimestampMicrosecondArray::from(vec![1_700_000_000_000_000i64; ids.len()])
        .with_timezone("UTC");
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(ids.iter().copied())),
        Arc::new(ts.clone()),
        Arc::new(ts),
    ];
    columns.extend(fields);
    RecordBatch::try_new(object.lake_schema(), columns).expect("batch")
}

fn cents(values: &[i128]) -> ArrayRef {
    Arc::new(
        Decimal128Array::from_iter_values(values.iter().copied())
            .with_precision_and_scale(38, 2)
            .expect("decimal"),
    )
}

async fn write(lake: &Lake, workspace: Uuid) {
    let [company, deal] = <[ObjectDef; 2]>::try_from(objects()).expect("two objects");
    let open = |id| {
        let url = lake
            .root()
            .join(&table_path(workspace, id, TableKind::Current))
            .expect("url");
        lake.open(url)
    };
    let mut companies = open(company.id).await.expect("open");
    // Two files, so a scan reads (and interns) more than one.
    companies
        .append(
            batch(
                &company,
                &[ACME, BOLT],
                vec![texts(&[Some("Acme"), Some("Bolt")])],
            ),
            10,
        )
        .await
        .expect("append");
    companies
        .append(
            batch(
                &company,
                &[ACME_UPPER, LEGACY],
                vec![texts(&[Some("Acme (upper)"), Some("Legacy")])],
            ),
            20,
        )
        .await
        .expect("append");
    let mut deals = open(deal.id).await.expect("open");
    let ids = ["d1", "d2", "d3", "d4", "d5", "d6", "d7"];
    deals
        .append(
            batch(
                &deal,
                &ids,
                vec![
                    texts(&[
                        Some("a1"),
                        Some("a2"),
                        Some("u1"),
                        Some("l1"),
                        Some("l2"),
                        Some("none"),
                        Some("gone"),
                    ]),
                    cents(&[1_000, 2_000, 400, 300, 50, 7, 9]),
                    texts(&[
                        Some(ACME),
                        Some(ACME),
                        Some(ACME_UPPER),
                        Some(LEGACY),
                        Some(LEGACY),
                        None,
                        Some(GONE),
                    ]),
                ],
            ),
            30,
        )
        .await
        .expect("append");
}

/// `spec`'s rows (and totals, subtotals) as JSON, in the report's order.
async fn run(cfg: &QueryConfig, workspace: Uuid, spec: &Value) -> Value {
    let schema = WorkspaceSchema {
        workspace_id: workspace,
        objects: objects(),
    };
    let session = WorkspaceSession::new(cfg, schema).expect("session");
    let spec: ReportSpec = serde_json::from_value(spec.clone()).expect("spec");
    let answer = run_report(&session, &spec, &DateContext::new(chrono::Utc::now()))
        .await
        .expect("report");
    json!({"rows": answer.rows, "subtotals": answer.subtotals, "totals": answer.totals})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_answers_equal_answers_over_id_texts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::new(&dir.path().to_string_lossy()).expect("lake");
    let workspace = Uuid::now_v7();
    write(&lake, workspace).await;
    let root = lake.root().clone();
    let keyed = QueryConfig::new(root.clone()).with_column_cache(64 << 20);
    // Too small for any scan: every table is read from its files, keys interned per batch.
    let interned_on_read = QueryConfig::new(root.clone()).with_column_cache(64);
    let texts_only = QueryConfig::new(root).with_column_cache(0);

    let cases = [
        (
            "group by a lookup, count its distinct values",
            json!({"type": "summary", "object": "deal",
                   "groupings": [{"field": "company"}, {"field": "company.name"}],
                   "aggregates": [{"fn": "count"}, {"fn": "count_distinct", "field": "company"},
                                  {"fn": "sum", "field": "amount"}]}),
            json!([
                [ACME_UPPER, "Acme (upper)", 1, 1, "4.00"],
                [ACME, "Acme", 2, 1, "30.00"],
                [GONE, null, 1, 1, "0.09"],
                [LEGACY, "Legacy", 2, 1, "3.50"],
                [null, null, 1, 0, "0.07"],
            ]),
        ),
        (
            "count distinct ids across a lookup",
            json!({"type": "summary", "object": "deal", "groupings": [{"field": "company.name"}],
                   "aggregates": [{"fn": "count_distinct", "field": "id"},
                                  {"fn": "count_distinct", "field": "company"}]}),
            json!([
                ["Acme", 2, 1],
                ["Acme (upper)", 1, 1],
                ["Legacy", 2, 1],
                [null, 2, 1],
            ]),
        ),
        (
            "companies without deals, and with big ones",
            json!({"type": "tabular", "object": "company", "columns": ["id", "name"],
                   "related": [{"object": "deal", "via": "company", "without": true}],
                   "sort": [{"by": "name"}]}),
            json!([[BOLT, "Bolt"]]),
        ),
        (
            "companies with a deal over 3.00",
            json!({"type": "tabular", "object": "company", "columns": ["name"],
                   "related": [{"object": "deal", "via": "company",
                                "filters": [{"field": "amount", "op": "gt", "value": 3}]}],
                   "sort": [{"by": "name"}]}),
            json!([["Acme"], ["Acme (upper)"]]),
        ),
    ];
    for (name, spec, want_rows) in cases {
        let mut answers = Vec::new();
        for cfg in [&keyed, &interned_on_read, &texts_only] {
            answers.push(run(cfg, workspace, &spec).await);
        }
        assert_eq!(answers[0]["rows"], want_rows, "{name}: keyed");
        assert_eq!(
            answers[0], answers[1],
            "{name}: keys interned while reading"
        );
        assert_eq!(answers[0], answers[2], "{name}: over the id texts");
    }
    assert!(
        keyed.columns.as_ref().expect("cache").keys().len() >= 5,
        "the cache interned the ids it joined on"
    );

    // SQL sees the catalog's columns, never the key columns.
    let schema = WorkspaceSchema {
        workspace_id: workspace,
        objects: objects(),
    };
    let session = WorkspaceSession::for_sql(&keyed, schema, None).expect("session");
    let df = session
        .context()
        .sql("SELECT * FROM deal")
        .await
        .expect("plan");
    let names: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        [
            "id",
            "created_at",
            "updated_at",
            "name",
            "amount",
            "company"
        ]
    );
}
