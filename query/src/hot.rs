//! The lake's hot columns in memory.
//!
//! A Delta table's data files never change once written: an update writes new files and
//! removes old ones from the log. So a column decoded from one file stays true for as long as
//! any version of the table lists that file, and a cache keyed by file needs no invalidation
//! (the files a snapshot lists are the table; a file no snapshot lists is simply no longer
//! asked for and ages out). [`HotTable`] serves a scan from the cache, decoding only the
//! columns and files it lacks; reports that run again (dashboards, the same report with
//! another filter) then cost the engine's work alone, not Parquet decoding.
//!
//! ```
//! use oneo_query::ColumnCache;
//! // At most 512 MiB of decoded columns, shared by every session of the server.
//! let cache = ColumnCache::new(512 << 20);
//! assert_eq!(cache.bytes(), 0);
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::array::{Array, ArrayRef, new_null_array};
use datafusion::arrow::compute::{cast, concat};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{ColumnStatistics, Statistics};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::object_store::{GetOptions, ObjectStore, path::Path};
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::physical_expr::expressions::Column as PhysicalColumn;
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::ProjectionExec;
use deltalake::DeltaTable;
use futures::StreamExt;

use crate::keys::{KEY_PREFIX, KeyInterner, KeyOf, key_column};
use crate::lookup::LookupCache;

/// Decoded columns of the lake's data files, shared by every session, at most `budget`
/// bytes; the least recently used files go first.
#[derive(Debug)]
pub struct ColumnCache {
    budget: usize,
    state: Mutex<CacheState>,
    /// The keys of the id and lookup columns it holds (see [`crate::keys`]).
    keys: Arc<KeyInterner>,
    /// Lookup tables indexed from these columns (see [`crate::gather`]).
    lookups: Arc<LookupCache>,
}

#[derive(Debug, Default)]
struct CacheState {
    files: HashMap<String, CachedFile>,
    bytes: usize,
    clock: u64,
    /// Scans (a table and its columns) that did not fit the budget: read from the files
    /// from then on, so a scan too big for memory costs one failed attempt, not one per query.
    too_large: HashSet<String>,
}

#[derive(Debug)]
struct CachedFile {
    /// Columns by (name, type): a session reading strings as views caches its own copy.
    columns: HashMap<(String, DataType), ArrayRef>,
    bytes: usize,
    used: u64,
}

/// One data file of a table's snapshot.
#[derive(Debug, Clone)]
struct DataFile {
    /// The file's URI: its identity in the cache, unique for the life of the lake.
    key: String,
    path: Path,
    rows: usize,
}

impl ColumnCache {
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            state: Mutex::default(),
            keys: Arc::default(),
            // Indexed lookups are a small share beside the columns they index.
            lookups: Arc::new(LookupCache::new(budget / 4)),
        }
    }

    /// The lookup tables indexed from the cache's columns.
    pub(crate) fn lookups(&self) -> &Arc<LookupCache> {
        &self.lookups
    }

    /// The interner behind the cache's key columns.
    pub fn keys(&self) -> &Arc<KeyInterner> {
        &self.keys
    }

    /// Bytes of decoded columns held now.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached columns of `file` among `wanted`; the file counts as just used.
    fn get(&self, file: &str, wanted: &[(String, DataType)]) -> Vec<Option<ArrayRef>> {
        let mut state = self.lock();
        state.clock += 1;
        let now = state.clock;
        match state.files.get_mut(file) {
            Some(f) => {
                f.used = now;
                wanted.iter().map(|k| f.columns.get(k).cloned()).collect()
            }
            None => vec![None; wanted.len()],
        }
    }

    /// Keeps `columns` of `file`, then evicts the least recently used files until the cache
    /// is within its budget again.
    fn put(&self, file: &str, columns: Vec<((String, DataType), ArrayRef)>) {
        let mut state = self.lock();
        state.clock += 1;
        let now = state.clock;
        let mut added = 0;
        let entry = state
            .files
            .entry(file.to_string())
            .or_insert_with(|| CachedFile {
                columns: HashMap::new(),
                bytes: 0,
                used: now,
            });
        entry.used = now;
        for (key, array) in columns {
            let size = array.get_array_memory_size();
            if let Some(old) = entry.columns.insert(key, array) {
                added -= old.get_array_memory_size() as isize;
            }
            added += size as isize;
        }
        entry.bytes = entry.bytes.saturating_add_signed(added);
        state.bytes = state.bytes.saturating_add_signed(added);
        while state.bytes > self.budget {
            let Some(oldest) = state
                .files
                .iter()
                .min_by_key(|(_, f)| f.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(f) = state.files.remove(&oldest) {
                state.bytes = state.bytes.saturating_sub(f.bytes);
            }
        }
    }

    fn too_large(&self, scan: &str) -> bool {
        self.lock().too_large.contains(scan)
    }

    fn mark_too_large(&self, scan: String) {
        self.lock().too_large.insert(scan);
    }
}

/// A lake table whose scans are served from the [`ColumnCache`], with the Delta provider
/// beside it for what the cache can't hold.
#[derive(Debug)]
pub(crate) struct HotTable {
    /// The Delta provider for the same snapshot: its schema is the table's, and a scan too
    /// large for the cache goes to it.
    delta: Arc<dyn TableProvider>,
    /// The Delta provider's columns, then a key column (`__key_<name>`, Int64) for each id
    /// and lookup column.
    schema: SchemaRef,
    table: String,
    store: Arc<dyn ObjectStore>,
    files: Vec<DataFile>,
    cache: Arc<ColumnCache>,
}

impl HotTable {
    /// `delta` served from memory where the snapshot is plain Parquet (a version-1 reader's
    /// table: no deletion vectors, no column mapping) and unpartitioned, with a key column
    /// for each of `key_columns` the table has; otherwise `delta`.
    pub(crate) fn wrap(
        delta: Arc<dyn TableProvider>,
        table: &DeltaTable,
        cache: &Arc<ColumnCache>,
        key_columns: &[&str],
    ) -> Arc<dyn TableProvider> {
        let Ok(snapshot) = table.snapshot() else {
            return delta;
        };
        let reader_v1 = serde_json::to_value(snapshot.protocol())
            .ok()
            .and_then(|p| {
                p.get("minReaderVersion")
                    .and_then(serde_json::Value::as_i64)
            })
            == Some(1);
        if !reader_v1 {
            return delta;
        }
        let mut files = Vec::new();
        for f in snapshot.log_data().iter() {
            let plain =
                f.deletion_vector_descriptor().is_none() && f.partition_values_map().is_empty();
            let Some(rows) = f.num_records() else {
                return delta;
            };
            if !plain {
                return delta;
            }
            let path = f.object_store_path();
            files.push(DataFile {
                key: format!(
                    "{}/{path}",
                    table.table_url().as_str().trim_end_matches('/')
                ),
                path,
                rows,
            });
        }
        let base = delta.schema();
        let mut fields: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
        for name in key_columns {
            if base.field_with_name(name).is_ok() {
                fields.push(Field::new(key_column(name), DataType::Int64, true));
            }
        }
        Arc::new(Self {
            delta,
            schema: Arc::new(Schema::new_with_metadata(fields, base.metadata().clone())),
            table: table.table_url().to_string(),
            store: table.object_store(),
            files,
            cache: Arc::clone(cache),
        })
    }

    /// Every file's `wanted` columns, from the cache or decoded now (files in parallel);
    /// `None` when they would take more than the cache's budget.
    async fn columns(&self, schema: &SchemaRef) -> DfResult<Option<Vec<RecordBatch>>> {
        let wanted: Vec<(String, DataType)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        let wanted = wanted.as_slice();
        let scan = format!(
            "{} {}",
            self.table,
            wanted
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(",")
        );
        if self.cache.too_large(&scan) {
            return Ok(None);
        }
        let mut have = Vec::with_capacity(self.files.len());
        let mut pending = Vec::new();
        for (i, file) in self.files.iter().enumerate() {
            let cached = self.cache.get(&file.key, wanted);
            let missing: Vec<usize> = (0..wanted.len()).filter(|&c| cached[c].is_none()).collect();
            if !missing.is_empty() {
                let (store, file) = (Arc::clone(&self.store), file.clone());
                let keys = Arc::clone(&self.cache.keys);
                let want: Vec<(String, DataType)> =
                    missing.iter().map(|&c| wanted[c].clone()).collect();
                pending.push(async move { (i, missing, decode(store, file, want, keys).await) });
            }
            have.push(cached);
        }
        let mut bytes: usize = have
            .iter()
            .flatten()
            .flatten()
            .map(|a| a.get_array_memory_size())
            .sum();
        // A few files at a time (each is read whole), and the scan gives up as soon as it
        // passes the budget: a table far bigger than memory costs one budget's worth of
        // decoding once, never all of it at once.
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut decoding = futures::stream::iter(pending).buffer_unordered(parallel);
        let mut decoded = Vec::new();
        while let Some((i, missing, arrays)) = decoding.next().await {
            let arrays = arrays?;
            bytes += arrays
                .iter()
                .map(|a| a.get_array_memory_size())
                .sum::<usize>();
            if bytes > self.cache.budget() {
                tracing::info!(table = %self.table, bytes, budget = self.cache.budget(),
                    "the scan's columns exceed the column cache; the table is read from its files");
                self.cache.mark_too_large(scan);
                return Ok(None);
            }
            decoded.push((i, missing, arrays));
        }
        for (i, missing, arrays) in decoded {
            let file = &self.files[i];
            let mut keep = Vec::with_capacity(missing.len());
            for (c, array) in missing.into_iter().zip(arrays) {
                keep.push((wanted[c].clone(), Arc::clone(&array)));
                have[i][c] = Some(array);
            }
            self.cache.put(&file.key, keep);
        }
        let mut batches = Vec::with_capacity(self.files.len());
        for (file, columns) in self.files.iter().zip(have) {
            let columns: Vec<ArrayRef> = columns.into_iter().flatten().collect();
            let options = RecordBatchOptions::new().with_row_count(Some(file.rows));
            batches.push(RecordBatch::try_new_with_options(
                Arc::clone(schema),
                columns,
                &options,
            )?);
        }
        Ok(Some(batches))
    }
}

/// Reads `wanted` from one data file, each as one array of the wanted type; a column the
/// file lacks (a field added after it was written) is all nulls, and a key column holds the
/// keys of its id column (interned once, here, rather than in every query). The file comes in one read
/// (one request on an object store) and is decoded on a blocking thread, so decoding many
/// files uses every core without holding up the server's tasks.
async fn decode(
    store: Arc<dyn ObjectStore>,
    file: DataFile,
    wanted: Vec<(String, DataType)>,
    keys: Arc<KeyInterner>,
) -> DfResult<Vec<ArrayRef>> {
    let bytes = store
        .get_opts(&file.path, GetOptions::default())
        .await?
        .bytes()
        .await?;
    tokio::task::spawn_blocking(move || decode_bytes(bytes, &wanted, &keys))
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?
}

fn decode_bytes(
    bytes: Bytes,
    wanted: &[(String, DataType)],
    keys: &KeyInterner,
) -> DfResult<Vec<ArrayRef>> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let file_schema = Arc::clone(builder.schema());
    let mut present: Vec<usize> = wanted
        .iter()
        .filter_map(|(name, _)| file_schema.index_of(source_column(name)).ok())
        .collect();
    present.sort_unstable();
    present.dedup();
    let rows = usize::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    let mask = ProjectionMask::roots(builder.parquet_schema(), present.iter().copied());
    let batches = builder
        .with_projection(mask)
        .with_batch_size(65_536)
        .build()?
        .collect::<Result<Vec<RecordBatch>, _>>()?;
    let mut out = Vec::with_capacity(wanted.len());
    for (name, data_type) in wanted {
        let source = source_column(name);
        let parts: Vec<&dyn Array> = batches
            .iter()
            .filter_map(|b| b.column_by_name(source).map(|a| a.as_ref()))
            .collect();
        let array = if parts.is_empty() {
            new_null_array(data_type, rows)
        } else if source != name {
            keys.intern(&concat(&parts)?)?
        } else {
            let whole = concat(&parts)?;
            if whole.data_type() == data_type {
                whole
            } else {
                cast(&whole, data_type)?
            }
        };
        out.push(array);
    }
    Ok(out)
}

/// The column a wanted column is read from: a key column's id column, or itself.
fn source_column(name: &str) -> &str {
    name.strip_prefix(KEY_PREFIX).unwrap_or(name)
}

fn mentions_key(e: &Expr) -> bool {
    e.column_refs()
        .iter()
        .any(|c| c.name.starts_with(KEY_PREFIX))
}

impl HotTable {
    /// The scan from the table's files, when the cache can't hold it: the Delta scan of the
    /// columns needed, with key columns interned batch by batch.
    async fn scan_files(
        &self,
        state: &dyn Session,
        projected: &Schema,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let base = self.delta.schema();
        let mut under: Vec<usize> = Vec::new();
        for f in projected.fields() {
            let i = base.index_of(source_column(f.name()))?;
            if !under.contains(&i) {
                under.push(i);
            }
        }
        let filters: Vec<Expr> = filters
            .iter()
            .filter(|f| !mentions_key(f))
            .cloned()
            .collect();
        let input = self
            .delta
            .scan(state, Some(&under), &filters, limit)
            .await?;
        let input_schema = input.schema();
        let key_of = Arc::new(KeyOf::udf(&self.cache.keys));
        let config = Arc::new(state.config_options().clone());
        let mut exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = Vec::new();
        for f in projected.fields() {
            let source = source_column(f.name());
            let at = input_schema.index_of(source)?;
            let column: Arc<dyn PhysicalExpr> = Arc::new(PhysicalColumn::new(source, at));
            let expr: Arc<dyn PhysicalExpr> = if source == f.name() {
                column
            } else {
                Arc::new(ScalarFunctionExpr::try_new(
                    Arc::clone(&key_of),
                    vec![column],
                    &input_schema,
                    Arc::clone(&config),
                )?)
            };
            exprs.push((expr, f.name().clone()));
        }
        Ok(Arc::new(ProjectionExec::try_new(exprs, input)?))
    }
}

#[async_trait]
impl TableProvider for HotTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // The cached scan filters nothing itself, so nothing may be Exact: the engine keeps
        // every filter above the scan, and the Delta scan still prunes with them. The Delta
        // table has no key columns: filters on them stay above the scan.
        let plain: Vec<&Expr> = filters
            .iter()
            .copied()
            .filter(|f| !mentions_key(f))
            .collect();
        let mut delta = self.delta.supports_filters_pushdown(&plain)?.into_iter();
        Ok(filters
            .iter()
            .map(|f| {
                if mentions_key(f) {
                    return TableProviderFilterPushDown::Unsupported;
                }
                match delta.next() {
                    Some(TableProviderFilterPushDown::Exact) => {
                        TableProviderFilterPushDown::Inexact
                    }
                    Some(other) => other,
                    None => TableProviderFilterPushDown::Unsupported,
                }
            })
            .collect())
    }

    fn statistics(&self) -> Option<Statistics> {
        // The key columns' statistics are unknown; the engine reads one per column.
        self.delta.statistics().map(|mut s| {
            s.column_statistics
                .resize(self.schema.fields().len(), ColumnStatistics::new_unknown());
            s
        })
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let schema = self.schema();
        let projected = match projection {
            Some(p) => Arc::new(schema.project(p)?),
            None => Arc::clone(&schema),
        };
        let Some(files) = self.columns(&projected).await? else {
            return self.scan_files(state, &projected, filters, limit).await;
        };
        // Batches of the session's size, dealt round-robin over its partitions, so the
        // plan above runs on every core whatever the number and size of the files.
        let config = state.config();
        let (batch_size, partitions) = (
            config.batch_size().max(1),
            config.target_partitions().max(1),
        );
        let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); partitions];
        let mut next = 0;
        for batch in files {
            let mut offset = 0;
            while offset < batch.num_rows() {
                let len = batch_size.min(batch.num_rows() - offset);
                parts[next % partitions].push(batch.slice(offset, len));
                next += 1;
                offset += len;
            }
        }
        parts.retain(|p| !p.is_empty());
        if parts.is_empty() {
            parts.push(Vec::new());
        }
        Ok(MemorySourceConfig::try_new_exec(&parts, projected, None)?)
    }
}
