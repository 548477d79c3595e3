//! The Delta tables: where they live, and every way ingest writes them. Each commit carries
//! the highest commit LSN it applied as Delta's application transaction version (`txn`
//! action), so after a crash the changes at or below it are recognised and skipped.

use std::collections::HashMap;
use std::ops::Not;
use std::sync::Arc;

use deltalake::arrow::array::{RecordBatch, new_null_array};
use deltalake::arrow::datatypes::{Field, Schema};
use deltalake::datafusion::prelude::{SessionContext, col, ident};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{StructField, Transaction};
use deltalake::operations::write::SchemaMode;
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::parquet::schema::types::ColumnPath;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableError};
use url::Url;
use uuid::Uuid;

use crate::batch::DELETED;
use crate::error::{IngestError, TableError};
use crate::layout::columns;
use crate::source::Lsn;

use oneo_catalog::lake::INGEST_APP_ID as APP_ID;
pub use oneo_catalog::lake::TableKind;

/// The lake's root: a local folder or an object store URL.
#[derive(Debug, Clone)]
pub struct Lake {
    root: Url,
}

impl Lake {
    /// A folder path (created if missing) or a URL such as `file:///srv/lake`.
    pub fn new(location: &str) -> Result<Self, IngestError> {
        let bad = |reason: String| IngestError::LakeLocation {
            url: location.to_string(),
            reason,
        };
        let mut root = match Url::parse(location) {
            Ok(url) if url.scheme().len() > 1 => url,
            // Not a URL (or a Windows drive letter): a local folder.
            _ => {
                std::fs::create_dir_all(location).map_err(|e| bad(e.to_string()))?;
                let abs = std::fs::canonicalize(location).map_err(|e| bad(e.to_string()))?;
                Url::from_directory_path(&abs).map_err(|()| bad("not an absolute path".into()))?
            }
        };
        if root.scheme() == "file" {
            let path = root
                .to_file_path()
                .map_err(|()| bad("not a local path".into()))?;
            std::fs::create_dir_all(&path).map_err(|e| bad(e.to_string()))?;
        } else if root.scheme() != "memory" {
            return Err(bad(format!(
                "the `{}` scheme is not enabled in this build (local folders and file:// are)",
                root.scheme()
            )));
        }
        if !root.path().ends_with('/') {
            root.set_path(&format!("{}/", root.path()));
        }
        Ok(Self { root })
    }

    pub fn root(&self) -> &Url {
        &self.root
    }

    /// `<root>/<workspace id>/o<object id>/<current|history>/`.
    pub fn table_url(&self, workspace: Uuid, object_id: i64, kind: TableKind) -> Url {
        let rel = oneo_catalog::lake::table_path(workspace, object_id, kind);
        // Joining a relative path made of a UUID, digits and a fixed word can't fail.
        self.root.join(&rel).unwrap_or_else(|_| self.root.clone())
    }

    /// Opens a table, or a handle to where it will be created by its first write.
    pub async fn open(&self, url: Url) -> Result<LakeTable, IngestError> {
        if url.scheme() == "file"
            && let Ok(path) = url.to_file_path()
        {
            std::fs::create_dir_all(&path).map_err(|e| IngestError::LakeLocation {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        }
        let table = DeltaTable::try_from_url(url).await?;
        let applied = match table.version() {
            Some(_) => {
                table
                    .snapshot()?
                    .transaction_version(table.log_store().as_ref(), APP_ID)
                    .await?
            }
            None => None,
        };
        Ok(LakeTable { table, applied })
    }
}

/// One Delta table and the last commit LSN applied to it.
pub struct LakeTable {
    table: DeltaTable,
    applied: Option<i64>,
}

fn commit(lsn: Lsn) -> CommitProperties {
    let version = i64::try_from(lsn).unwrap_or(i64::MAX);
    CommitProperties::default().with_application_transaction(Transaction::new(APP_ID, version))
}

/// How ingest writes Parquet: LZ4 (raw) rather than delta-rs's default Snappy. Reading is
/// most of the lake's life and Snappy's decoder was 12% of the CPU of streaming 10M rows over
/// Flight SQL; LZ4 decodes several times faster at a similar ratio, and every Parquet reader
/// (Spark, DuckDB, pyarrow, delta-rs) reads it.
///
/// The `id` column is written plain: every value in it is distinct, so a dictionary only
/// costs the interning before the writer gives up on it.
fn file_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_created_by(concat!("oneo-ingest ", env!("CARGO_PKG_VERSION")).to_string())
        .set_compression(Compression::LZ4_RAW)
        .set_column_dictionary_enabled(ColumnPath::from(columns::ID), false)
        .build()
}

fn write_error(e: DeltaTableError) -> TableError {
    TableError::Write(e.to_string())
}

impl LakeTable {
    /// The highest commit LSN whose changes are in the table; `None` when ingest never
    /// finished writing it (a new table, or a snapshot cut short).
    pub fn applied(&self) -> Option<Lsn> {
        self.applied.and_then(|v| u64::try_from(v).ok())
    }

    /// Whether the changes of the transaction committed at `lsn` are already in.
    pub fn has_applied(&self, lsn: Lsn) -> bool {
        self.applied().is_some_and(|a| lsn <= a)
    }

    pub fn delta(&self) -> &DeltaTable {
        &self.table
    }

    pub fn file_count(&self) -> usize {
        self.table.get_file_uris().map(|f| f.count()).unwrap_or(0)
    }

    /// Adds the columns of `schema` the table lacks (new fields: nullable, existing data
    /// untouched). A column whose type changed can't be represented: the table stops.
    pub async fn ensure_columns(&mut self, schema: &Schema) -> Result<(), TableError> {
        if self.table.version().is_none() {
            return Ok(());
        }
        let existing: HashMap<String, StructField> = self
            .table
            .snapshot()
            .map_err(write_error)?
            .schema()
            .fields()
            .map(|f| (f.name().clone(), f.clone()))
            .collect();
        let mut missing = Vec::new();
        for field in schema.fields() {
            let nullable = field.as_ref().clone().with_nullable(true);
            let wanted: StructField = (&nullable)
                .try_into_kernel()
                .map_err(|e| TableError::Schema(e.to_string()))?;
            match existing.get(field.name()) {
                Some(have) if have.data_type() != wanted.data_type() => {
                    return Err(TableError::Schema(format!(
                        "column `{}` is {} in the lake but {} in PostgreSQL now (a field \
                         deleted and re-created with another type); resync the table",
                        field.name(),
                        have.data_type(),
                        wanted.data_type()
                    )));
                }
                Some(_) => {}
                None => missing.push(wanted),
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        self.table = self
            .table
            .clone()
            .add_columns()
            .with_fields(missing)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    /// Moves the values of every column whose type differs from `schema` (a field deleted and
    /// re-created under the same API name with another type) to a column of their own,
    /// `<name>_before_v<version>`, so the name is free for the new type and no value is lost.
    /// One overwrite commit that keeps the table's applied version; nothing happens when no
    /// column differs. Returns the columns moved, as (old name, new name).
    ///
    /// A history table needs this on a resync: its rows are the record's past and can't be
    /// retyped, while the current state is simply copied again with the new type.
    pub async fn retire_conflicting_columns(
        &mut self,
        schema: &Schema,
    ) -> Result<Vec<(String, String)>, TableError> {
        let Some(version) = self.table.version() else {
            return Ok(Vec::new());
        };
        let existing = self
            .table
            .snapshot()
            .map_err(write_error)?
            .snapshot()
            .arrow_schema();
        let mut taken: std::collections::HashSet<String> = existing
            .fields()
            .iter()
            .chain(schema.fields().iter())
            .map(|f| f.name().clone())
            .collect();
        let mut moved = Vec::new();
        for field in existing.fields() {
            let Ok(wanted) = schema.field_with_name(field.name()) else {
                continue;
            };
            let have: StructField = field
                .as_ref()
                .try_into_kernel()
                .map_err(|e| TableError::Schema(e.to_string()))?;
            let want: StructField = wanted
                .try_into_kernel()
                .map_err(|e| TableError::Schema(e.to_string()))?;
            if have.data_type() == want.data_type() {
                continue;
            }
            let mut new_name = format!("{}_before_v{version}", field.name());
            let mut n = 1;
            while taken.contains(&new_name) {
                n += 1;
                new_name = format!("{}_before_v{version}_{n}", field.name());
            }
            taken.insert(new_name.clone());
            moved.push((field.name().clone(), new_name));
        }
        if moved.is_empty() {
            return Ok(moved);
        }
        let df_error =
            |e: deltalake::datafusion::error::DataFusionError| TableError::Write(e.to_string());
        // delta-rs's own session: its planner turns the write's custom nodes into a plan.
        let ctx = deltalake::delta_datafusion::create_session().into_inner();
        self.table
            .update_datafusion_session(&ctx.state())
            .map_err(write_error)?;
        let provider = self.table.table_provider().await.map_err(df_error)?;
        let exprs: Vec<_> = existing
            .fields()
            .iter()
            .map(|f| {
                let c = ident(f.name());
                match moved.iter().find(|(old, _)| old == f.name()) {
                    Some((_, new)) => c.alias(new),
                    None => c,
                }
            })
            .collect();
        let plan = ctx
            .read_table(provider)
            .and_then(|df| df.select(exprs))
            .map_err(df_error)?
            .into_unoptimized_plan();
        let mut props = CommitProperties::default();
        if let Some(applied) = self.applied {
            props = props.with_application_transaction(Transaction::new(APP_ID, applied));
        }
        self.table = self
            .table
            .clone()
            .write(Vec::new())
            .with_input_plan(plan)
            .with_session_state(Arc::new(ctx.state()))
            .with_save_mode(SaveMode::Overwrite)
            .with_schema_mode(SchemaMode::Overwrite)
            .with_writer_properties(file_properties())
            .with_commit_properties(props)
            .await
            .map_err(write_error)?;
        Ok(moved)
    }

    /// Appends rows; creates the table on its first write.
    pub async fn append(&mut self, batch: RecordBatch, lsn: Lsn) -> Result<(), TableError> {
        let batch = self.with_retired_columns(batch)?;
        self.table = self
            .table
            .clone()
            .write(vec![batch])
            .with_save_mode(SaveMode::Append)
            .with_writer_properties(file_properties())
            .with_commit_properties(commit(lsn))
            .await
            .map_err(write_error)?;
        self.applied = i64::try_from(lsn).ok();
        Ok(())
    }

    /// The batch with a null column for each column the table has and the batch lacks (a
    /// history's retired columns, see [`Self::retire_conflicting_columns`]), in the table's
    /// order: an append must carry every column of the table.
    fn with_retired_columns(&self, batch: RecordBatch) -> Result<RecordBatch, TableError> {
        if self.table.version().is_none() {
            // No table yet: its first write defines its columns.
            return Ok(batch);
        }
        let state = self.table.snapshot().map_err(write_error)?;
        // The usual case, checked on the kernel schema without converting it to Arrow.
        if state.schema().fields().len() == batch.num_columns() {
            return Ok(batch);
        }
        let table = state.snapshot().arrow_schema();
        let mut fields = Vec::with_capacity(table.fields().len());
        let mut columns = Vec::with_capacity(table.fields().len());
        for f in table.fields() {
            match batch.schema().column_with_name(f.name()) {
                Some((i, have)) => {
                    fields.push(have.clone());
                    columns.push(batch.column(i).clone());
                }
                None => {
                    fields.push(f.as_ref().clone().with_nullable(true));
                    columns.push(new_null_array(f.data_type(), batch.num_rows()));
                }
            }
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(|e| TableError::Schema(e.to_string()))
    }

    /// Replaces the whole table, schema included, in one commit (a snapshot or resync).
    pub async fn replace(&mut self, batches: Vec<RecordBatch>, lsn: Lsn) -> Result<(), TableError> {
        self.table = self
            .table
            .clone()
            .write(batches)
            .with_save_mode(SaveMode::Overwrite)
            .with_schema_mode(SchemaMode::Overwrite)
            .with_writer_properties(file_properties())
            .with_commit_properties(commit(lsn))
            .await
            .map_err(write_error)?;
        self.applied = i64::try_from(lsn).ok();
        Ok(())
    }

    /// Upserts and deletes by `id` in one commit (`source` has the `_deleted` column).
    pub async fn merge(
        &mut self,
        source: RecordBatch,
        columns: &[String],
        lsn: Lsn,
    ) -> Result<(), TableError> {
        let ctx = SessionContext::new();
        let source = ctx
            .read_batch(source)
            .map_err(|e| TableError::Write(e.to_string()))?;
        let deleted = col(format!("source.{DELETED}"));
        let (table, _metrics) = self
            .table
            .clone()
            .merge(
                source,
                col(format!("target.{}", columns::ID)).eq(col(format!("source.{}", columns::ID))),
            )
            .with_source_alias("source")
            .with_target_alias("target")
            .with_writer_properties(file_properties())
            .with_commit_properties(commit(lsn))
            .when_matched_delete(|d| d.predicate(deleted.clone()))
            .and_then(|m| {
                m.when_matched_update(|mut u| {
                    for c in columns.iter().filter(|c| *c != columns::ID) {
                        u = u.update(c.as_str(), col(format!("source.{c}")));
                    }
                    u
                })
            })
            .and_then(|m| {
                m.when_not_matched_insert(|mut i| {
                    i = i.predicate(deleted.clone().not());
                    for c in columns {
                        i = i.set(c.as_str(), col(format!("source.{c}")));
                    }
                    i
                })
            })
            .map_err(write_error)?
            .await
            .map_err(write_error)?;
        self.table = table;
        self.applied = i64::try_from(lsn).ok();
        Ok(())
    }

    /// Compacts small files and removes files older than the retention that no version
    /// within it needs. Returns (files compacted, files removed).
    pub async fn maintain(
        &mut self,
        retention: chrono::Duration,
    ) -> Result<(u64, usize), DeltaTableError> {
        let (table, metrics) = self
            .table
            .clone()
            .optimize()
            .with_writer_properties(file_properties())
            .await?;
        let (table, vacuumed) = table
            .vacuum()
            .with_retention_period(retention)
            .with_enforce_retention_duration(false)
            .await?;
        self.table = table;
        Ok((metrics.num_files_removed, vacuumed.files_deleted.len()))
    }
}

/// The lake columns of a schema, by name, for merges.
pub fn column_names(schema: &Schema) -> Vec<String> {
    schema
        .fields()
        .iter()
        .map(|f: &Arc<Field>| f.name().clone())
        .collect()
}
