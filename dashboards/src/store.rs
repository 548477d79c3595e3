//! Materialized widget answers: kept in memory and, per dashboard, as one Parquet file in the
//! lake's object store (`<workspace>/dashboards/<dashboard>.parquet`), so a restarted server
//! serves them without running a query.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    Array, AsArray, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit, TimestampMicrosecondType};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::Serialize;
use url::Url;
use uuid::Uuid;

use crate::error::DashboardError;

/// One widget's stored answer and what it was computed from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Materialized {
    pub key: String,
    /// SHA-256 of the widget's resolved definition: a changed widget is never served an
    /// answer computed for its old definition.
    pub fingerprint: String,
    /// The answer as `/v1/dashboards/{id}/data` shows it.
    pub answer: serde_json::Value,
    /// Each table read (by its path under the lake root) and the Delta version read.
    pub versions: BTreeMap<String, Option<u64>>,
    /// The lowest ingest LSN applied to those tables.
    pub lsn: Option<String>,
    pub computed_at: DateTime<Utc>,
}

/// Every dashboard's materialized widgets, by widget key.
pub type Widgets = HashMap<String, Arc<Materialized>>;

/// The store of materializations: memory first, the object store behind it.
#[derive(Debug)]
pub struct MaterializationStore {
    store: Arc<dyn ObjectStore>,
    /// The lake root's path inside `store`.
    prefix: StorePath,
    memory: Mutex<HashMap<Uuid, Arc<Widgets>>>,
}

impl MaterializationStore {
    /// A store under the lake root `lake_root` (a local folder as a `file://` URL, or any
    /// URL `object_store` parses).
    pub fn new(lake_root: &Url) -> Result<Self, DashboardError> {
        let (store, prefix) = object_store::parse_url(lake_root)
            .map_err(|e| DashboardError::Store(format!("the lake URL {lake_root}: {e}")))?;
        Ok(Self {
            store: Arc::from(store),
            prefix,
            memory: Mutex::default(),
        })
    }

    fn path(&self, workspace: Uuid, dashboard: Uuid) -> StorePath {
        let mut parts: Vec<String> = self
            .prefix
            .parts()
            .map(|p| p.as_ref().to_string())
            .collect();
        parts.extend([
            workspace.to_string(),
            "dashboards".to_string(),
            format!("{dashboard}.parquet"),
        ]);
        StorePath::from_iter(parts)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<Widgets>>> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The dashboard's materialized widgets: from memory, else from its file (then kept in
    /// memory), else none.
    pub async fn get(
        &self,
        workspace: Uuid,
        dashboard: Uuid,
    ) -> Result<Arc<Widgets>, DashboardError> {
        if let Some(w) = self.lock().get(&dashboard) {
            return Ok(Arc::clone(w));
        }
        let widgets = match self.store.get(&self.path(workspace, dashboard)).await {
            Ok(got) => {
                let bytes = got
                    .bytes()
                    .await
                    .map_err(|e| DashboardError::Store(e.to_string()))?;
                decode(bytes)?
            }
            Err(object_store::Error::NotFound { .. }) => Widgets::new(),
            Err(e) => return Err(DashboardError::Store(e.to_string())),
        };
        let widgets = Arc::new(widgets);
        self.lock().insert(dashboard, Arc::clone(&widgets));
        Ok(widgets)
    }

    /// Replaces the dashboard's materializations with `widgets`: the file first, so memory
    /// never holds what a restart would lose.
    pub async fn put(
        &self,
        workspace: Uuid,
        dashboard: Uuid,
        widgets: Widgets,
    ) -> Result<Arc<Widgets>, DashboardError> {
        let bytes = encode(&widgets)?;
        self.store
            .put(&self.path(workspace, dashboard), PutPayload::from(bytes))
            .await
            .map_err(|e| DashboardError::Store(e.to_string()))?;
        let widgets = Arc::new(widgets);
        self.lock().insert(dashboard, Arc::clone(&widgets));
        Ok(widgets)
    }

    /// Forgets a deleted dashboard's materializations.
    pub async fn remove(&self, workspace: Uuid, dashboard: Uuid) -> Result<(), DashboardError> {
        self.lock().remove(&dashboard);
        match self.store.delete(&self.path(workspace, dashboard)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(DashboardError::Store(e.to_string())),
        }
    }
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("widget", DataType::Utf8, false),
        Field::new("fingerprint", DataType::Utf8, false),
        Field::new(
            "computed_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("lsn", DataType::Utf8, true),
        // The table versions and the answer keep their JSON shape: an answer nests rows,
        // subtotals and pivots, which the page and the API serve as they are.
        Field::new("versions", DataType::Utf8, false),
        Field::new("answer", DataType::Utf8, false),
    ]))
}

fn encode(widgets: &Widgets) -> Result<Bytes, DashboardError> {
    let mut entries: Vec<&Arc<Materialized>> = widgets.values().collect();
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                entries.iter().map(|m| m.key.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                entries.iter().map(|m| m.fingerprint.as_str()),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    entries.iter().map(|m| m.computed_at.timestamp_micros()),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from_iter(
                entries.iter().map(|m| m.lsn.as_deref()),
            )),
            Arc::new(StringArray::from_iter_values(
                entries.iter().map(|m| json(&m.versions)),
            )),
            Arc::new(StringArray::from_iter_values(
                entries.iter().map(|m| json(&m.answer)),
            )),
        ],
    )?;
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), None)?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(Bytes::from(out))
}

fn decode(bytes: Bytes) -> Result<Widgets, DashboardError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
    let mut widgets = Widgets::new();
    for batch in reader {
        let batch = batch?;
        let text = |i: usize| batch.column(i).as_string::<i32>().clone();
        let (key, fingerprint, lsn, versions, answer) =
            (text(0), text(1), text(3), text(4), text(5));
        let computed = batch.column(2).as_primitive::<TimestampMicrosecondType>();
        for r in 0..batch.num_rows() {
            let parse = |s: &str| {
                serde_json::from_str(s)
                    .map_err(|e| DashboardError::Store(format!("a stored answer is damaged: {e}")))
            };
            let m = Materialized {
                key: key.value(r).to_string(),
                fingerprint: fingerprint.value(r).to_string(),
                answer: parse(answer.value(r))?,
                versions: serde_json::from_str(versions.value(r)).map_err(|e| {
                    DashboardError::Store(format!("stored versions are damaged: {e}"))
                })?,
                lsn: (!lsn.is_null(r)).then(|| lsn.value(r).to_string()),
                computed_at: DateTime::from_timestamp_micros(computed.value(r)).unwrap_or_default(),
            };
            widgets.insert(m.key.clone(), Arc::new(m));
        }
    }
    Ok(widgets)
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_new_store_reads_what_an_earlier_one_wrote() {
        let dir = tempfile::tempdir().expect("dir");
        let root = Url::from_directory_path(dir.path()).expect("url");
        let (ws, dash) = (Uuid::now_v7(), Uuid::now_v7());
        let m = Materialized {
            key: "won".into(),
            fingerprint: "f".into(),
            answer: serde_json::json!({"value": "12.50"}),
            versions: BTreeMap::from([("a/o1/current".to_string(), Some(3))]),
            lsn: Some("0/16B3748".into()),
            computed_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("t"),
        };
        let first = MaterializationStore::new(&root).expect("store");
        first
            .put(
                ws,
                dash,
                Widgets::from([("won".to_string(), Arc::new(m.clone()))]),
            )
            .await
            .expect("put");
        let second = MaterializationStore::new(&root).expect("store");
        let got = second.get(ws, dash).await.expect("get");
        assert_eq!(got.get("won").map(|m| m.as_ref()), Some(&m));
        assert!(
            dir.path()
                .join(ws.to_string())
                .join("dashboards")
                .join(format!("{dash}.parquet"))
                .is_file()
        );
        second.remove(ws, dash).await.expect("remove");
        assert!(
            MaterializationStore::new(&root)
                .expect("store")
                .get(ws, dash)
                .await
                .expect("get")
                .is_empty()
        );
    }
}
