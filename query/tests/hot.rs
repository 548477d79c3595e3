//! The column cache against the lake as ingest writes it (appends, merges that rewrite files,
//! a column added later, a replace): every answer served from memory equals the same query
//! read from the Parquet files, and a new table version is seen by the next session.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Decimal128Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::pretty::pretty_format_batches;
use oneo_catalog::lake::{TableKind, table_path};
use oneo_catalog::{FieldDef, FieldType};
use oneo_ingest::Lake;
use oneo_query::{ColumnCache, ObjectDef, QueryConfig, WorkspaceSchema, WorkspaceSession};
use uuid::Uuid;

const OBJECT_ID: i64 = 7;

fn object(with_region: bool) -> ObjectDef {
    let mut fields = vec![
        FieldDef::new("name", "Name", FieldType::Text),
        FieldDef::new("amount", "Amount", FieldType::Currency),
    ];
    if with_region {
        fields.push(FieldDef::new("region", "Region", FieldType::Text));
    }
    ObjectDef {
        id: OBJECT_ID,
        api_name: "deal".into(),
        fields,
    }
}

/// Rows `(id, name, amount in cents, region)` in the lake's shape for `object(region)`,
/// with ingest's `_deleted` flag when `deleted` is given (a merge's source).
fn batch(
    rows: &[(&str, &str, i128, Option<&str>)],
    region: bool,
    deleted: Option<bool>,
) -> RecordBatch {
    let schema = object(region).lake_schema();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let ts = TimestampMicrosecondArray::from(vec![1_700_000_000_000_000i64; rows.len()])
        .with_timezone("UTC");
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(ts.clone()),
        Arc::new(ts),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
        Arc::new(
            Decimal128Array::from_iter_values(rows.iter().map(|r| r.2))
                .with_precision_and_scale(38, 2)
                .expect("decimal"),
        ),
    ];
    if region {
        columns.push(Arc::new(StringArray::from_iter(rows.iter().map(|r| r.3))));
    }
    if let Some(d) = deleted {
        fields.push(Field::new("_deleted", DataType::Boolean, false));
        columns.push(Arc::new(BooleanArray::from(vec![d; rows.len()])));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch")
}

struct Env {
    _dir: tempfile::TempDir,
    lake: Lake,
    workspace: Uuid,
    cached: QueryConfig,
    files_only: QueryConfig,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = Lake::new(&dir.path().to_string_lossy()).expect("lake");
        let root = lake.root().clone();
        Self {
            _dir: dir,
            lake,
            workspace: Uuid::now_v7(),
            cached: QueryConfig::new(root.clone()).with_column_cache(64 << 20),
            files_only: QueryConfig::new(root).with_column_cache(0),
        }
    }

    async fn table(&self) -> oneo_ingest::lake::LakeTable {
        let url = self
            .lake
            .root()
            .join(&table_path(self.workspace, OBJECT_ID, TableKind::Current))
            .expect("url");
        self.lake.open(url).await.expect("open")
    }

    /// The answer to `sql` with the cache and from the files, which must be equal.
    async fn answer(&self, sql: &str, region: bool) -> String {
        let mut answers = Vec::new();
        for cfg in [&self.cached, &self.files_only] {
            let schema = WorkspaceSchema {
                workspace_id: self.workspace,
                objects: vec![object(region)],
            };
            let session = WorkspaceSession::new(cfg, schema).expect("session");
            let batches = session
                .context()
                .sql(sql)
                .await
                .expect("plan")
                .collect()
                .await
                .expect("run");
            answers.push(pretty_format_batches(&batches).expect("format").to_string());
        }
        assert_eq!(answers[0], answers[1], "from memory and from files: {sql}");
        answers.remove(0)
    }

    fn cache(&self) -> &ColumnCache {
        self.cached.columns.as_deref().expect("a cache")
    }
}

fn lines(table: &str) -> Vec<&str> {
    table
        .lines()
        .filter(|l| l.starts_with("| "))
        .skip(1)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_from_memory_equal_the_files_through_every_kind_of_write() {
    let env = Env::new();
    let mut table = env.table().await;
    table
        .append(
            batch(
                &[("a", "Acme", 10_000, None), ("b", "Bolt", 2_550, None)],
                false,
                None,
            ),
            10,
        )
        .await
        .expect("append");
    table
        .append(batch(&[("c", "Cork", 99, None)], false, None), 20)
        .await
        .expect("append");

    let sql = "SELECT id, name, amount FROM deal ORDER BY id";
    let first = env.answer(sql, false).await;
    assert_eq!(
        lines(&first),
        vec![
            "| a  | Acme | 100.00 |",
            "| b  | Bolt | 25.50  |",
            "| c  | Cork | 0.99   |"
        ]
    );
    let held = env.cache().bytes();
    assert!(held > 0, "the first query left its columns in memory");
    // The same query again reads memory only: nothing more is decoded.
    assert_eq!(env.answer(sql, false).await, first);
    assert_eq!(env.cache().bytes(), held);

    // An update and a delete (a merge rewrites the file that held them) and a new field.
    let columns: Vec<String> = ["id", "created_at", "updated_at", "name", "amount"]
        .map(String::from)
        .to_vec();
    table
        .merge(
            batch(&[("a", "Acme", 12_345, None)], false, Some(false)),
            &columns,
            30,
        )
        .await
        .expect("update");
    table
        .merge(
            batch(&[("b", "Bolt", 0, None)], false, Some(true)),
            &columns,
            40,
        )
        .await
        .expect("delete");
    let with_region = object(true).lake_schema();
    table
        .ensure_columns(&with_region)
        .await
        .expect("new column");
    table
        .append(batch(&[("d", "Dune", 500, Some("EMEA"))], true, None), 50)
        .await
        .expect("append");

    let after = env
        .answer(
            "SELECT id, name, amount, region FROM deal ORDER BY id",
            true,
        )
        .await;
    assert_eq!(
        lines(&after),
        vec![
            "| a  | Acme | 123.45 |        |",
            "| c  | Cork | 0.99   |        |",
            "| d  | Dune | 5.00   | EMEA   |",
        ]
    );
    let grouped = env
        .answer(
            "SELECT region, count(*) AS n, sum(amount) AS total FROM deal GROUP BY region ORDER BY region NULLS FIRST",
            true,
        )
        .await;
    assert_eq!(
        lines(&grouped),
        vec!["|        | 2 | 124.44 |", "| EMEA   | 1 | 5.00   |"]
    );

    // A replace (a resync) leaves none of the earlier rows.
    table
        .replace(
            vec![batch(&[("z", "Zinc", 1, Some("APAC"))], true, None)],
            60,
        )
        .await
        .expect("replace");
    let replaced = env.answer("SELECT id, region FROM deal", true).await;
    assert_eq!(lines(&replaced), vec!["| z  | APAC   |"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_beyond_the_budget_is_read_from_its_files() {
    let mut env = Env::new();
    env.cached = QueryConfig::new(env.lake.root().clone()).with_column_cache(512);
    let mut table = env.table().await;
    let rows: Vec<(String, String)> = (0..2_000)
        .map(|i| (format!("id{i:05}"), format!("n{i}")))
        .collect();
    let refs: Vec<(&str, &str, i128, Option<&str>)> = rows
        .iter()
        .map(|(i, n)| (i.as_str(), n.as_str(), 100, None))
        .collect();
    table
        .append(batch(&refs, false, None), 10)
        .await
        .expect("append");

    let answer = env
        .answer(
            "SELECT count(*) AS n, sum(amount) AS total FROM deal",
            false,
        )
        .await;
    assert_eq!(lines(&answer), vec!["| 2000 | 2000.00 |"]);
    assert_eq!(env.cache().bytes(), 0, "nothing beyond the budget is kept");
}
