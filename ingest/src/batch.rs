//! A micro-batch's changes to one table, turned into Arrow record batches: the current state
//! they leave (rows to upsert, ids to delete) and one history row per change.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deltalake::arrow::array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    UInt32Array,
};
use deltalake::arrow::compute::take;
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::decode::ColumnBuilder;
use crate::error::TableError;
use crate::layout::{ObjectLayout, columns};
use crate::source::{Cell, Lsn, Op, RowChange, Tuple};

/// The merge source's extra column: the row is to be deleted.
pub const DELETED: &str = "_deleted";

/// One change waiting for its batch to be written.
#[derive(Debug)]
pub struct PendingRow {
    /// The commit LSN of its transaction.
    pub lsn: Lsn,
    pub commit_ts: DateTime<Utc>,
    /// Position within the transaction.
    pub seq: i64,
    /// The change as decoded, still boxed: its two tuples are about a kilobyte, and a row is
    /// moved from the stream into its transaction and then into its batch. Moving them
    /// unboxed (and growing the vectors that held them) was a sixth of ingest's time.
    pub change: Box<RowChange>,
}

impl PendingRow {
    pub fn op(&self) -> Op {
        self.change.op
    }

    fn new_values(&self) -> Option<&Tuple> {
        self.change.new.as_ref()
    }

    fn old_values(&self) -> Option<&Tuple> {
        self.change.old.as_ref()
    }

    /// The value of a PostgreSQL column after the change (before it, for a delete). An
    /// unchanged TOASTed value is absent from the new row: it is taken from the old one.
    fn value(&self, column: &str) -> Option<&str> {
        fn text(cell: Cell<'_>) -> Option<&str> {
            match cell {
                Cell::Text(t) => Some(t),
                _ => None,
            }
        }
        match (self.new_values(), self.old_values()) {
            (Some(new), old) => match new.get(column) {
                Cell::Absent => old.and_then(|o| text(o.get(column))),
                cell => text(cell),
            },
            (None, Some(old)) => text(old.get(column)),
            (None, None) => None,
        }
    }

    fn id(&self) -> Result<&str, TableError> {
        self.value(columns::ID).ok_or(TableError::MissingId)
    }
}

/// What a batch leaves in a current-state table.
pub struct CurrentChanges {
    /// Rows to upsert and (with `_deleted` true) ids to delete; every column nullable, as a
    /// merge source.
    pub batch: RecordBatch,
    /// Every row is a record first inserted in this batch, so appending is enough.
    pub only_inserts: bool,
    pub upserts: usize,
    pub deletes: usize,
}

/// The `id`, `created_at`, `updated_at` and field columns: (lake name, PostgreSQL name, type).
fn value_columns(layout: &ObjectLayout) -> Vec<(String, String, DataType)> {
    let mut cols: Vec<(String, String, DataType)> = oneo_catalog::lake::system_columns()
        .into_iter()
        .map(|f| (f.name().clone(), f.name().clone(), f.data_type().clone()))
        .collect();
    cols.extend(
        layout
            .fields
            .iter()
            .map(|f| (f.name.clone(), f.source.clone(), f.data_type.clone())),
    );
    cols
}

/// Finds a column's position among the columns wanted, by name; remembers the answer per
/// message position, because every message of a relation lists its columns in the same order
/// and with the same shared name.
struct ColumnIndex<'a> {
    by_name: HashMap<&'a str, usize>,
    /// Per message position: the name's address seen there and the column it maps to.
    seen: Vec<Option<(*const u8, Option<usize>)>>,
}

impl<'a> ColumnIndex<'a> {
    fn new(sources: &'a [String]) -> Self {
        Self {
            by_name: sources
                .iter()
                .enumerate()
                .map(|(i, s)| (s.as_str(), i))
                .collect(),
            seen: Vec::new(),
        }
    }

    fn find(&mut self, position: usize, name: &Arc<str>) -> Option<usize> {
        let addr = Arc::as_ptr(name).cast::<u8>();
        if position >= self.seen.len() {
            self.seen.resize(position + 1, None);
        }
        match self.seen[position] {
            Some((a, column)) if a == addr => column,
            _ => {
                let column = self.by_name.get(name.as_ref()).copied();
                self.seen[position] = Some((addr, column));
                column
            }
        }
    }

    /// A row's values in column order. An unchanged TOASTed value is absent from the new
    /// row: it stays as the old row had it.
    fn fill<'r>(&mut self, row: &'r PendingRow, out: &mut [Option<&'r str>]) {
        out.fill(None);
        for tuple in [row.old_values(), row.new_values()].into_iter().flatten() {
            for (position, (name, cell)) in tuple.cells().enumerate() {
                if let Some(c) = self.find(position, name) {
                    out[c] = match cell {
                        Cell::Text(t) => Some(t),
                        Cell::Null | Cell::Absent => None,
                    };
                }
            }
        }
    }
}

/// The `id`, `created_at`, `updated_at` and field columns of a run of changes, parsed once
/// for both of an object's tables: the history takes them whole, the current state takes the
/// rows it keeps.
pub struct ValueColumns {
    columns: Vec<ArrayRef>,
}

impl ValueColumns {
    /// Parses every row's values; a value its column can't hold fails with its column named.
    pub fn parse(layout: &ObjectLayout, rows: &[PendingRow]) -> Result<Self, TableError> {
        let cols = value_columns(layout);
        let sources: Vec<String> = cols.iter().map(|(_, s, _)| s.clone()).collect();
        let width = cols.len();
        // Row-major gather in one pass over each message, then one builder per column.
        let mut index = ColumnIndex::new(&sources);
        let mut values: Vec<Option<&str>> = vec![None; rows.len() * width];
        for (row, out) in rows.iter().zip(values.chunks_mut(width.max(1))) {
            index.fill(row, out);
        }
        let columns = cols
            .iter()
            .enumerate()
            .map(|(c, (name, source, data_type))| {
                let mut builder = ColumnBuilder::new(data_type, rows.len()).ok_or_else(|| {
                    TableError::Schema(format!("column `{name}` has unsupported type {data_type}"))
                })?;
                for r in 0..rows.len() {
                    let v = values[r * width + c];
                    builder.append(v).map_err(|reason| TableError::Value {
                        column: name.clone(),
                        source_column: source.clone(),
                        value: v.unwrap_or_default().chars().take(200).collect(),
                        reason,
                    })?;
                }
                Ok(builder.finish())
            })
            .collect::<Result<_, TableError>>()?;
        Ok(Self { columns })
    }

    /// No rows at all.
    pub fn empty() -> Self {
        Self {
            columns: Vec::new(),
        }
    }

    /// The columns of rows `offset..offset + len`.
    pub fn slice(&self, offset: usize, len: usize) -> Self {
        Self {
            columns: self.columns.iter().map(|c| c.slice(offset, len)).collect(),
        }
    }

    /// The columns of the rows at `indices`, in that order.
    fn take(&self, indices: &[usize]) -> Result<Vec<ArrayRef>, TableError> {
        let len = self.columns.first().map_or(0, |c| c.len());
        // A batch of new records keeps every row in order: nothing to copy.
        if indices.len() == len && indices.iter().enumerate().all(|(i, r)| i == *r) {
            return Ok(self.columns.clone());
        }
        let indices = UInt32Array::from_iter_values(indices.iter().map(|&i| i as u32));
        self.columns
            .iter()
            .map(|c| take(c, &indices, None).map_err(|e| TableError::Schema(e.to_string())))
            .collect()
    }
}

fn lsns(rows: &[&PendingRow]) -> ArrayRef {
    // LSNs stay below 2^63 for any real cluster (that is 8 exabytes of WAL).
    Arc::new(Int64Array::from_iter_values(
        rows.iter()
            .map(|r| i64::try_from(r.lsn).unwrap_or(i64::MAX)),
    ))
}

fn commit_times(rows: &[&PendingRow]) -> ArrayRef {
    Arc::new(
        TimestampMicrosecondArray::from_iter_values(
            rows.iter().map(|r| r.commit_ts.timestamp_micros()),
        )
        .with_timezone("UTC"),
    )
}

fn batch(schema: SchemaRef, columns: Vec<ArrayRef>) -> Result<RecordBatch, TableError> {
    RecordBatch::try_new(schema, columns).map_err(|e| TableError::Schema(e.to_string()))
}

/// The merge source schema: the current-state columns, all nullable, and `_deleted`.
pub fn merge_source_schema(layout: &ObjectLayout) -> SchemaRef {
    let mut fields: Vec<Field> = layout
        .current_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    fields.push(Field::new(DELETED, DataType::Boolean, false));
    Arc::new(Schema::new(fields))
}

/// Collapses the batch's changes to each record's final state; `values` are the rows' own,
/// row for row.
pub fn current_changes(
    layout: &ObjectLayout,
    rows: &[PendingRow],
    values: &ValueColumns,
) -> Result<Option<CurrentChanges>, TableError> {
    // For each id: the first operation in the batch and the last change's index.
    let mut seen: HashMap<&str, (Op, usize)> = HashMap::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        seen.entry(row.id()?).or_insert((row.op(), i)).1 = i;
    }
    let mut chosen: Vec<(usize, bool)> = Vec::with_capacity(seen.len());
    let mut only_inserts = true;
    for (first, last) in seen.into_values() {
        let deleted = rows[last].op() == Op::Delete;
        // A record inserted and deleted within the batch never reaches the table.
        if deleted && first == Op::Insert {
            continue;
        }
        only_inserts &= first == Op::Insert && !deleted;
        chosen.push((last, deleted));
    }
    if chosen.is_empty() {
        return Ok(None);
    }
    chosen.sort_unstable();
    let picked: Vec<&PendingRow> = chosen.iter().map(|(i, _)| &rows[*i]).collect();
    let deletes = chosen.iter().filter(|(_, d)| *d).count();
    let indices: Vec<usize> = chosen.iter().map(|(i, _)| *i).collect();
    let mut cols = values.take(&indices)?;
    cols.push(lsns(&picked));
    cols.push(commit_times(&picked));
    cols.push(Arc::new(BooleanArray::from_iter(
        chosen.iter().map(|(_, d)| Some(*d)),
    )));
    Ok(Some(CurrentChanges {
        batch: batch(merge_source_schema(layout), cols)?,
        only_inserts,
        upserts: chosen.len() - deletes,
        deletes,
    }))
}

/// Current-state rows, without `_deleted`, in the table's own schema.
pub fn current_rows(
    layout: &ObjectLayout,
    changes: &CurrentChanges,
) -> Result<RecordBatch, TableError> {
    let n = changes.batch.num_columns() - 1;
    batch(
        layout.current_schema(),
        changes.batch.columns()[..n].to_vec(),
    )
}

/// One history row per change, in commit order; `values` are the rows' own, row for row.
pub fn history_rows(
    layout: &ObjectLayout,
    rows: &[PendingRow],
    values: &ValueColumns,
) -> Result<RecordBatch, TableError> {
    let all: Vec<&PendingRow> = rows.iter().collect();
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            all.iter().map(|r| r.op().as_str()),
        )),
        lsns(&all),
        Arc::new(Int64Array::from_iter_values(all.iter().map(|r| r.seq))),
        commit_times(&all),
    ];
    cols.extend(values.columns.iter().cloned());
    batch(layout.history_schema(), cols)
}

#[cfg(test)]
mod tests {
    use deltalake::arrow::array::AsArray;
    use deltalake::arrow::datatypes::Decimal128Type;

    use super::*;
    use crate::source::test_tuple as tuple;

    fn layout() -> ObjectLayout {
        ObjectLayout {
            object_id: 1,
            workspace_id: uuid::Uuid::nil(),
            api_name: "deal".into(),
            fields: vec![crate::layout::LakeField {
                field_id: 7,
                name: "amount".into(),
                source: "f7".into(),
                data_type: DataType::Decimal128(38, 2),
            }],
        }
    }

    fn row(op: Op, lsn: Lsn, id: &str, amount: Option<&str>) -> PendingRow {
        let t = tuple(&[
            ("id", Some(id)),
            ("created_at", Some("2026-11-01 00:00:00+00")),
            ("updated_at", Some("2026-11-02 00:00:00+00")),
            ("f7", amount),
        ]);
        let (new, old) = match op {
            Op::Delete => (None, Some(t)),
            _ => (Some(t), None),
        };
        PendingRow {
            lsn,
            commit_ts: DateTime::UNIX_EPOCH,
            seq: 0,
            change: Box::new(RowChange {
                schema: "oneo_records".into(),
                table: "o1".into(),
                op,
                new,
                old,
            }),
        }
    }

    #[test]
    fn a_batch_collapses_to_each_records_final_state() {
        let rows = vec![
            row(Op::Insert, 10, "a", Some("1")),
            row(Op::Update, 11, "a", Some("2")),
            row(Op::Insert, 12, "b", Some("3")),
            row(Op::Delete, 13, "b", Some("3")),
            row(Op::Update, 14, "c", Some("4")),
            row(Op::Delete, 15, "d", None),
        ];
        let values = ValueColumns::parse(&layout(), &rows).unwrap();
        let c = current_changes(&layout(), &rows, &values).unwrap().unwrap();
        assert_eq!((c.upserts, c.deletes, c.only_inserts), (2, 1, false));
        let ids: Vec<&str> = c
            .batch
            .column(0)
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect();
        assert_eq!(ids, ["a", "c", "d"]);
        let history = history_rows(&layout(), &rows, &values).unwrap();
        assert_eq!(history.num_rows(), 6);
        // The current state takes the last change of each record, history every change.
        let amounts = c.batch.column(3).as_primitive::<Decimal128Type>();
        assert_eq!(amounts.value_as_string(0), "2.00");
        assert_eq!(amounts.value_as_string(1), "4.00");
        let cents: Vec<Option<i128>> = history
            .column(7)
            .as_primitive::<Decimal128Type>()
            .iter()
            .collect();
        assert_eq!(
            cents,
            [Some(100), Some(200), Some(300), Some(300), Some(400), None]
        );
    }

    #[test]
    fn new_records_only_can_be_appended() {
        let rows = vec![
            row(Op::Insert, 10, "a", None),
            row(Op::Update, 11, "a", Some("5")),
        ];
        let values = ValueColumns::parse(&layout(), &rows).unwrap();
        let c = current_changes(&layout(), &rows, &values).unwrap().unwrap();
        assert!(c.only_inserts);
        assert_eq!(current_rows(&layout(), &c).unwrap().num_columns(), 6);
    }

    #[test]
    fn a_bad_value_names_its_column() {
        let rows = vec![row(Op::Insert, 10, "a", Some("lots"))];
        let err = ValueColumns::parse(&layout(), &rows).err().unwrap();
        assert!(err.to_string().contains("`amount`"), "{err}");
        assert!(err.to_string().contains("`f7`"), "{err}");
    }
}
