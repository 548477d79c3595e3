//! A workspace's lake as a DataFusion catalog: schema `crm`, one table per object, opened
//! lazily from its Delta table the first time a query names it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{
    CatalogProvider, MemTable, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider,
    TableProvider,
};
use datafusion::common::ScalarValue;
use datafusion::datasource::{ViewTable, provider_as_source};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::{LogicalPlanBuilder, col, lit};
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::prelude::{SessionConfig, SessionContext};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use oneo_catalog::lake::{INGEST_APP_ID, TableKind, table_path};
use oneo_catalog::{FieldDef, FieldType};
use tracing::Instrument;
use url::Url;
use uuid::Uuid;

use crate::error::QueryError;
use crate::gather::LookupGather;
use crate::hot::{ColumnCache, HotTable};
use crate::keys::{KeyInterner, KeyOf, key_column};

/// The catalog and schema every workspace's tables live in: `oneo.crm.<object>`.
pub const CATALOG: &str = "oneo";
pub const SCHEMA: &str = "crm";
/// The schema of system tables (ingest status, and later model scores).
pub const SYSTEM_SCHEMA: &str = "oneo";
/// The schema of the objects' change histories (`history.deal`), in sessions that ask for
/// it ([`WorkspaceSession::add_history`]).
pub const HISTORY_SCHEMA: &str = "history";
/// Rows per batch in sessions whose results go to clients as they are (Flight SQL).
const CLIENT_BATCH_SIZE: usize = 65_536;

/// An object as the query engine needs it: its lake table and its fields.
#[derive(Debug, Clone)]
pub struct ObjectDef {
    pub id: i64,
    pub api_name: String,
    pub fields: Vec<FieldDef>,
}

impl ObjectDef {
    pub fn field(&self, api_name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.api_name == api_name)
    }

    /// The columns holding ids: `id` and each lookup field.
    pub fn key_columns(&self) -> Vec<&str> {
        let mut out = vec!["id"];
        out.extend(
            self.fields
                .iter()
                .filter(|f| f.field_type == FieldType::Lookup)
                .map(|f| f.api_name.as_str()),
        );
        out
    }

    /// The table's columns: the system columns, then every stored field in order.
    pub fn lake_schema(&self) -> SchemaRef {
        let mut cols = oneo_catalog::lake::system_columns();
        for f in &self.fields {
            if let Some(t) = oneo_catalog::lake::arrow_type(f) {
                cols.push(Field::new(&f.api_name, t, true));
            }
        }
        Arc::new(Schema::new(cols))
    }

    /// The history table's columns: ingest's `_op`, `_lsn`, `_seq` and `_commit_ts`, then
    /// the lake table's.
    pub fn history_schema(&self) -> SchemaRef {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let mut cols = vec![
            Field::new("_op", DataType::Utf8, false),
            Field::new("_lsn", DataType::Int64, false),
            Field::new("_seq", DataType::Int64, false),
            Field::new("_commit_ts", ts, false),
        ];
        cols.extend(
            self.lake_schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone()),
        );
        Arc::new(Schema::new(cols))
    }
}

/// One workspace's objects. Only these are visible to its queries: tenants are walls.
#[derive(Debug, Clone)]
pub struct WorkspaceSchema {
    pub workspace_id: Uuid,
    pub objects: Vec<ObjectDef>,
}

impl WorkspaceSchema {
    pub fn object(&self, api_name: &str) -> Option<&ObjectDef> {
        self.objects.iter().find(|o| o.api_name == api_name)
    }

    pub fn object_names(&self) -> Vec<&str> {
        self.objects.iter().map(|o| o.api_name.as_str()).collect()
    }
}

/// The system columns as field definitions, so paths can name them like fields.
pub fn system_field(name: &str) -> Option<FieldDef> {
    let t = match name {
        "id" => FieldType::Lookup,
        "created_at" | "updated_at" => FieldType::Datetime,
        _ => return None,
    };
    Some(FieldDef::new(name, name, t))
}

/// Engine limits, shared by every workspace session.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// The lake's root (as ingest resolved it), ending in `/`.
    pub lake_root: Url,
    /// Most memory one query may hold for sorts, joins and aggregations.
    pub memory_limit_bytes: usize,
    /// Longest a query may run.
    pub timeout: Duration,
    /// Tables opened by earlier sessions, shared by all of them.
    pub tables: Arc<TableCache>,
    /// Decoded columns of the lake's files, shared by all sessions; `None` reads every
    /// scan from the files.
    pub columns: Option<Arc<ColumnCache>>,
}

/// Delta tables opened before, kept so that the next query reads only the commits made since
/// rather than replaying each table's log from its last checkpoint on every request; with
/// each, the LSN ingest had applied at that version (finding it replays the log's `txn`
/// actions, so it is worked out once per version, not once per query).
#[derive(Debug, Default)]
pub struct TableCache(Mutex<HashMap<Url, Opened>>);

#[derive(Debug, Clone)]
struct Opened {
    table: DeltaTable,
    /// (version, the ingest LSN applied at it).
    applied: Option<(Option<deltalake::kernel::Version>, Option<u64>)>,
}

impl TableCache {
    /// The table at its newest version and the LSN ingest had applied to it, or `None`
    /// where nothing was written yet.
    async fn latest(&self, url: Url) -> Result<Option<(DeltaTable, Option<u64>)>, QueryError> {
        let cached = self.lock().get(&url).cloned();
        let mut opened = match cached {
            Some(mut o) => {
                o.table.update_incremental(None).await?;
                o
            }
            None => match open_existing(url.clone(), None).await? {
                Some(table) => Opened {
                    table,
                    applied: None,
                },
                None => return Ok(None),
            },
        };
        let version = opened.table.version();
        let applied = match opened.applied {
            Some((v, lsn)) if v == version => lsn,
            _ => {
                let lsn = applied_lsn(&opened.table).await?;
                opened.applied = Some((version, lsn));
                lsn
            }
        };
        let table = opened.table.clone();
        self.lock().insert(url, opened);
        Ok(Some((table, applied)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Url, Opened>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The highest commit LSN ingest recorded in `table` (its `txn` version).
async fn applied_lsn(table: &DeltaTable) -> Result<Option<u64>, QueryError> {
    Ok(table
        .snapshot()?
        .transaction_version(table.log_store().as_ref(), INGEST_APP_ID)
        .await?
        .and_then(|v| u64::try_from(v).ok()))
}

impl QueryConfig {
    pub fn new(lake_root: Url) -> Self {
        Self {
            lake_root,
            memory_limit_bytes: 1 << 30,
            timeout: Duration::from_secs(30),
            tables: Arc::default(),
            columns: Some(Arc::new(ColumnCache::new(DEFAULT_COLUMN_CACHE))),
        }
    }

    /// The newest Delta version of each table (paths as [`WorkspaceSession::read_versions`]
    /// gives them; `None` where nothing was written yet). Reads only each log's commits made
    /// since the table was last opened.
    pub async fn current_versions<'p>(
        &self,
        paths: impl IntoIterator<Item = &'p String>,
    ) -> Result<BTreeMap<String, Option<u64>>, QueryError> {
        let mut out = BTreeMap::new();
        for path in paths {
            let url = self.lake_root.join(path).map_err(|e| {
                QueryError::Lake(DeltaTableError::InvalidTableLocation(e.to_string()))
            })?;
            let version = self
                .tables
                .latest(url)
                .await?
                .and_then(|(t, _)| t.version());
            out.insert(path.clone(), version);
        }
        Ok(out)
    }

    /// Keeps at most `bytes` of decoded columns in memory (0: none, every scan reads files).
    pub fn with_column_cache(mut self, bytes: usize) -> Self {
        self.columns = (bytes > 0).then(|| Arc::new(ColumnCache::new(bytes)));
        self
    }
}

/// The column cache's size unless configured: 4 GiB.
pub const DEFAULT_COLUMN_CACHE: usize = 4 << 30;

/// A DataFusion session that sees exactly one workspace's lake tables.
pub struct WorkspaceSession {
    ctx: SessionContext,
    schema: Arc<WorkspaceSchema>,
    tables: Arc<LakeSchema>,
    timeout: Duration,
    /// Schema `oneo`: system tables the caller added, with their shapes.
    system: Mutex<Vec<(String, SchemaRef)>>,
}

impl WorkspaceSession {
    pub fn new(cfg: &QueryConfig, schema: WorkspaceSchema) -> Result<Self, QueryError> {
        Self::as_of(cfg, schema, None)
    }

    /// A session that reads every table as it was at `as_of` (Delta time travel), or now.
    pub fn as_of(
        cfg: &QueryConfig,
        schema: WorkspaceSchema,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<Self, QueryError> {
        Self::build(cfg, schema, as_of, true, true)
    }

    /// A session for SQL written by users (`/v1/sql`): the tables show exactly the catalog's
    /// columns, without the key columns reports join on.
    pub fn for_sql(
        cfg: &QueryConfig,
        schema: WorkspaceSchema,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<Self, QueryError> {
        Self::build(cfg, schema, as_of, true, false)
    }

    /// A session whose scans decode strings and binaries into the classic Arrow types
    /// (`Utf8`, `Binary`) rather than view types: for results shipped to clients as they are
    /// (Flight SQL), where a later cast would copy every string once more.
    pub fn for_clients(cfg: &QueryConfig, schema: WorkspaceSchema) -> Result<Self, QueryError> {
        Self::build(cfg, schema, None, false, false)
    }

    /// `keyed`: each table also shows a key column (`__key_<name>`, see [`crate::keys`]) for
    /// its id and each lookup, where the server has a column cache to keep them in.
    fn build(
        cfg: &QueryConfig,
        schema: WorkspaceSchema,
        as_of: Option<DateTime<Utc>>,
        view_types: bool,
        keyed: bool,
    ) -> Result<Self, QueryError> {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(cfg.memory_limit_bytes, 1.0)
            .build_arc()?;
        // DataFusion's own settings may be tuned by operators through its environment
        // variables (`DATAFUSION_EXECUTION_BATCH_SIZE=32768`); the rest is Oneo's.
        let mut config = SessionConfig::from_env()?;
        if !view_types && std::env::var_os("DATAFUSION_EXECUTION_BATCH_SIZE").is_none() {
            // Results shipped whole to clients go in larger batches: fewer, larger IPC
            // messages (the Flight bench streamed 10M rows in 2.23 s instead of 2.73 s).
            config = config.with_batch_size(CLIENT_BATCH_SIZE);
        }
        let batch_size = config.batch_size();
        let config = config
            .with_create_default_catalog_and_schema(false)
            .with_default_catalog_and_schema(CATALOG, SCHEMA)
            .with_information_schema(true);
        // Lookups whose table is in memory are gathers, not hash joins (see `gather`); the
        // rule sees the joins as planned, before DataFusion's own rules place them.
        let mut rules = PhysicalOptimizer::new().rules;
        let lookups = cfg.columns.as_ref().map(|c| Arc::clone(c.lookups()));
        rules.insert(0, Arc::new(LookupGather::new(lookups.unwrap_or_default())));
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .with_physical_optimizer_rules(rules)
            .build();
        let ctx = SessionContext::new_with_state(state);
        let schema = Arc::new(schema);
        // What the Delta scans read by: delta-rs takes its scan options from a session.
        let mut scan = SessionConfig::from_env()?.with_batch_size(batch_size);
        scan.options_mut().execution.parquet.schema_force_view_types = view_types;
        // delta-rs pushes filters into Parquet unless a session says otherwise; keep that.
        scan.options_mut().execution.parquet.pushdown_filters = true;
        let scan = Arc::new(SessionStateBuilder::new().with_config(scan).build());
        let tables = Arc::new(LakeSchema {
            kind: TableKind::Current,
            root: cfg.lake_root.clone(),
            scan,
            schema: Arc::clone(&schema),
            as_of,
            cache: Arc::clone(&cfg.tables),
            columns: cfg.columns.clone(),
            keys: cfg
                .columns
                .as_ref()
                .filter(|_| keyed)
                .map(|c| Arc::clone(c.keys())),
            opened: Arc::default(),
            versions: Arc::default(),
        });
        let catalog = MemoryCatalogProvider::new();
        catalog.register_schema(SCHEMA, Arc::clone(&tables) as Arc<dyn SchemaProvider>)?;
        ctx.register_catalog(CATALOG, Arc::new(catalog));
        Ok(Self {
            ctx,
            schema,
            tables,
            timeout: cfg.timeout,
            system: Mutex::default(),
        })
    }

    /// Adds `name` to the schema `oneo` (system tables such as `ingest_status`), holding
    /// `batch`. The caller puts in this workspace's rows only: the table is the session's.
    pub fn add_system_table(&self, name: &str, batch: RecordBatch) -> Result<(), QueryError> {
        let schema = self.system_schema()?;
        let shape = batch.schema();
        let table = MemTable::try_new(Arc::clone(&shape), vec![vec![batch]])?;
        schema.register_table(name.to_string(), Arc::new(table))?;
        self.system
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((name.to_string(), shape));
        Ok(())
    }

    /// Adds `name` to the schema `oneo` as another name of the object `object` of schema
    /// `crm` (`oneo.scores` for `crm.score`), opened only when a query reads it. Nothing is
    /// added where the workspace has no such object.
    pub fn add_system_alias(&self, name: &str, object: &str) -> Result<(), QueryError> {
        let Some(def) = self.schema.object(object) else {
            return Ok(());
        };
        let shape = def.lake_schema();
        let schema = self.system_schema()?;
        let alias = crate::alias::AliasTable {
            target: Arc::clone(&self.tables) as Arc<dyn SchemaProvider>,
            name: object.to_string(),
            schema: Arc::clone(&shape),
        };
        schema.register_table(name.to_string(), Arc::new(alias))?;
        self.system
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((name.to_string(), shape));
        Ok(())
    }

    /// The schema `oneo`, created on first use.
    fn system_schema(&self) -> Result<Arc<dyn SchemaProvider>, QueryError> {
        let catalog = self.ctx.catalog(CATALOG).ok_or_else(|| {
            QueryError::Engine(DataFusionError::Internal(
                "the session has no catalog".into(),
            ))
        })?;
        Ok(match catalog.schema(SYSTEM_SCHEMA) {
            Some(s) => s,
            None => {
                let s: Arc<dyn SchemaProvider> = Arc::new(MemorySchemaProvider::new());
                catalog.register_schema(SYSTEM_SCHEMA, Arc::clone(&s))?;
                s
            }
        })
    }

    /// The system tables in schema `oneo`, with their shapes.
    pub fn system_tables(&self) -> Vec<(String, SchemaRef)> {
        self.system
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    pub fn schema(&self) -> &WorkspaceSchema {
        &self.schema
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Adds the schema `history`: each object's change history (`history.deal`), one row
    /// per change with ingest's `_op`, `_lsn`, `_seq` and `_commit_ts` before the fields.
    /// Its tables count in [`Self::read_versions`] and [`Self::applied_lsn`] like `crm`'s.
    pub fn add_history(&self) -> Result<(), QueryError> {
        let catalog = self.ctx.catalog(CATALOG).ok_or_else(|| {
            QueryError::Engine(DataFusionError::Internal(
                "the session has no catalog".into(),
            ))
        })?;
        let crm = &self.tables;
        let history = LakeSchema {
            kind: TableKind::History,
            root: crm.root.clone(),
            scan: Arc::clone(&crm.scan),
            schema: Arc::clone(&crm.schema),
            as_of: crm.as_of,
            cache: Arc::clone(&crm.cache),
            columns: None,
            keys: None,
            opened: Arc::clone(&crm.opened),
            versions: Arc::clone(&crm.versions),
        };
        catalog.register_schema(HISTORY_SCHEMA, Arc::new(history))?;
        Ok(())
    }

    /// The interner behind the tables' key columns, when they have them.
    pub fn keys(&self) -> Option<&Arc<KeyInterner>> {
        self.tables.keys.as_ref()
    }

    /// The tables this session has read, by their path under the lake root, with the Delta
    /// version each was read at (`None`: no change had reached it). An answer computed from
    /// these versions is still current while [`QueryConfig::current_versions`] says the same.
    pub fn read_versions(&self) -> BTreeMap<String, Option<u64>> {
        self.tables
            .versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The lowest commit LSN applied to the tables this session has read: every answer it
    /// gave reflects at least the changes up to there. `None` before any table is read, or
    /// when a table read has no ingested change yet.
    pub fn applied_lsn(&self) -> Option<u64> {
        let opened = self.tables.opened.lock().unwrap_or_else(|p| p.into_inner());
        let mut min: Option<u64> = None;
        for lsn in opened.values() {
            let lsn = (*lsn)?;
            min = Some(min.map_or(lsn, |m| m.min(lsn)));
        }
        min
    }
}

/// The `crm` schema: the workspace's objects, each opened on first use.
#[derive(Debug)]
struct LakeSchema {
    /// Current state (`crm`) or change history (`history`).
    kind: TableKind,
    root: Url,
    /// Carries only the scan options (view types, pushdown) the lake's tables are read with.
    scan: Arc<SessionState>,
    schema: Arc<WorkspaceSchema>,
    as_of: Option<DateTime<Utc>>,
    cache: Arc<TableCache>,
    columns: Option<Arc<ColumnCache>>,
    /// Set when the tables show key columns.
    keys: Option<Arc<KeyInterner>>,
    /// Tables opened so far and the LSN ingest had applied to each.
    /// Shared by the session's `crm` and `history` schemas, keyed by table path.
    opened: Arc<Mutex<HashMap<String, Option<u64>>>>,
    /// Tables opened so far: their path under the lake root and the Delta version read
    /// (`None` for a table with no change yet).
    versions: Arc<Mutex<BTreeMap<String, Option<u64>>>>,
}

impl LakeSchema {
    async fn open(&self, object: &ObjectDef) -> Result<Arc<dyn TableProvider>, QueryError> {
        let path = table_path(self.schema.workspace_id, object.id, self.kind);
        let url = self
            .root
            .join(&path)
            .map_err(|e| QueryError::Lake(DeltaTableError::InvalidTableLocation(e.to_string())))?;
        let wanted = match self.kind {
            TableKind::Current => object.lake_schema(),
            TableKind::History => object.history_schema(),
        };
        let key_columns = object.key_columns();
        let keys = self.keys.as_ref().map(|k| (key_columns.as_slice(), k));
        let found = match self.as_of {
            None => self.cache.latest(url).await?,
            Some(_) => match open_existing(url, self.as_of).await? {
                Some(t) => {
                    let applied = applied_lsn(&t).await?;
                    Some((t, applied))
                }
                None => None,
            },
        };
        let Some((table, applied)) = found else {
            // No change reached the lake yet: an empty table of the right shape.
            self.record(object, None);
            self.record_version(&path, None);
            let empty = Arc::new(MemTable::try_new(Arc::clone(&wanted), vec![vec![]])?);
            return Ok(Arc::new(catalog_view(
                &object.api_name,
                empty,
                &wanted,
                keys,
            )?));
        };
        self.record(object, applied);
        self.record_version(&path, table.version());
        let mut provider: Arc<dyn TableProvider> = table
            .table_provider()
            .with_session(Arc::clone(&self.scan))
            .await?;
        if let Some(columns) = self
            .columns
            .as_ref()
            .filter(|_| self.kind == TableKind::Current)
        {
            provider = HotTable::wrap(provider, &table, columns, &key_columns);
        }
        Ok(Arc::new(catalog_view(
            &object.api_name,
            provider,
            &wanted,
            keys,
        )?))
    }

    fn record_version(&self, path: &str, version: Option<deltalake::kernel::Version>) {
        let mut versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        versions.insert(path.to_string(), version);
    }

    fn record(&self, object: &ObjectDef, lsn: Option<u64>) {
        let path = table_path(self.schema.workspace_id, object.id, self.kind);
        let mut opened = self.opened.lock().unwrap_or_else(|p| p.into_inner());
        opened.insert(path, lsn);
    }
}

/// The Delta table at `url` (as of a moment, if given), or `None` where nothing was
/// written yet.
async fn open_existing(
    url: Url,
    as_of: Option<DateTime<Utc>>,
) -> Result<Option<DeltaTable>, QueryError> {
    if url.scheme() == "file"
        && let Ok(path) = url.to_file_path()
        && !path.join("_delta_log").is_dir()
    {
        return Ok(None);
    }
    let mut builder = DeltaTableBuilder::from_url(url)?;
    if let Some(t) = as_of {
        builder = builder.with_timestamp(t);
    }
    match builder.load().await {
        Ok(t) => Ok(Some(t)),
        Err(DeltaTableError::NotATable(_)) => Ok(None),
        Err(e) if as_of.is_some() => Err(QueryError::spec(
            "as_of",
            format!("the lake has no state of this table at that time: {e}"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// The lake table seen through the catalog: exactly the catalog's columns in its order (a
/// field added since the last change reads as null; a deleted field's column and ingest's
/// bookkeeping columns are hidden); with `keys`, then the key column of each id and lookup
/// column named, from the column cache where the provider has it, interned per batch where it
/// doesn't.
fn catalog_view(
    name: &str,
    provider: Arc<dyn TableProvider>,
    wanted: &Schema,
    keys: Option<(&[&str], &Arc<KeyInterner>)>,
) -> DfResult<ViewTable> {
    let have = provider.schema();
    let mut exprs = wanted
        .fields()
        .iter()
        .map(|f| {
            if have.field_with_name(f.name()).is_ok() {
                col(f.name().as_str())
            } else {
                lit(ScalarValue::try_from(f.data_type()).unwrap_or(ScalarValue::Null))
                    .alias(f.name())
            }
        })
        .collect::<Vec<_>>();
    if let Some((columns, interner)) = keys {
        for c in columns {
            let key = key_column(c);
            let expr = if have.field_with_name(&key).is_ok() {
                col(key.as_str())
            } else if have.field_with_name(c).is_ok() {
                KeyOf::udf(interner).call(vec![col(*c)]).alias(&key)
            } else {
                lit(ScalarValue::Int64(None)).alias(&key)
            };
            exprs.push(expr);
        }
    }
    let plan = LogicalPlanBuilder::scan(name, provider_as_source(provider), None)?
        .project(exprs)?
        .build()?;
    Ok(ViewTable::new(plan, None))
}

#[async_trait]
impl SchemaProvider for LakeSchema {
    fn table_names(&self) -> Vec<String> {
        self.schema
            .objects
            .iter()
            .map(|o| o.api_name.clone())
            .collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let Some(object) = self.schema.object(name) else {
            return Ok(None);
        };
        self.open(object)
            .instrument(tracing::debug_span!("open_lake_table", object = name))
            .await
            .map(Some)
            .map_err(|e| DataFusionError::External(Box::new(e)))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.schema.object(name).is_some()
    }
}
