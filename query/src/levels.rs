//! A grouping-sets answer read into rows placed by their `grouping()` flags. A summary with
//! many groups (the top 20 of 100,000 companies) turns into JSON only what it shows: the
//! first `limit` innermost groups, the subtotals of those groups and the grand total. The
//! rest are counted, never formatted.

use std::collections::HashSet;

use datafusion::arrow::array::{ArrayRef, AsArray, PrimitiveArray};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::error::DataFusionError;
use serde_json::Value as Json;

use crate::error::QueryError;
use crate::result::cell;

/// One row of a grouping-sets answer: which keys it is grouped by (a prefix count per
/// side is enough to place it) and its values.
pub(crate) struct LevelRow {
    /// Flags per key: whether the row is grouped by it (not rolled up).
    pub by: Vec<bool>,
    /// How many keys it is grouped by.
    pub grouped: usize,
    pub keys: Vec<Json>,
    pub values: Vec<Json>,
}

pub(crate) struct Levels {
    /// The rows kept, in the answer's order.
    pub rows: Vec<LevelRow>,
    /// How many innermost groups (rows grouped by every key) the answer has, kept or not.
    pub detail_rows: usize,
}

fn arrow(e: datafusion::arrow::error::ArrowError) -> QueryError {
    QueryError::Engine(e.into())
}

fn internal(message: &str) -> QueryError {
    QueryError::Engine(DataFusionError::Internal(message.into()))
}

impl Levels {
    /// Reads rows of keys, values, then one `grouping()` flag per key. With `shown`
    /// (a summary's limit) only the rows a summary answer shows are read; with `None`
    /// (a matrix) every row is.
    pub(crate) fn read(
        batches: &[RecordBatch],
        n_keys: usize,
        n_values: usize,
        shown: Option<usize>,
    ) -> Result<Self, QueryError> {
        let Some(first) = batches.first() else {
            return Ok(Self {
                rows: Vec::new(),
                detail_rows: 0,
            });
        };
        let all = concat_batches(&first.schema(), batches).map_err(arrow)?;
        if all.num_columns() != n_keys * 2 + n_values {
            return Err(internal("grouping sets answered an unexpected shape"));
        }
        let flags: Vec<ArrayRef> = (0..n_keys)
            .map(|i| cast(all.column(n_keys + n_values + i), &DataType::Int64))
            .collect::<Result<_, _>>()
            .map_err(arrow)?;
        let flags: Vec<&PrimitiveArray<Int64Type>> = flags
            .iter()
            .map(|f| f.as_primitive::<Int64Type>())
            .collect();
        // `grouping()` is 0 for a key the row is grouped by, 1 for one rolled up.
        let by = |row: usize| -> Vec<bool> { flags.iter().map(|f| f.value(row) == 0).collect() };
        let grouped: Vec<usize> = (0..all.num_rows())
            .map(|r| flags.iter().filter(|f| f.value(r) == 0).count())
            .collect();
        let detail: Vec<usize> = (0..all.num_rows())
            .filter(|&r| grouped[r] == n_keys)
            .collect();
        let keep: Vec<usize> = match shown {
            Some(limit) if detail.len() > limit => {
                kept_rows(&all, n_keys, &grouped, &detail[..limit])?
            }
            _ => (0..all.num_rows()).collect(),
        };
        let columns = all.columns();
        let rows = keep
            .into_iter()
            .map(|r| LevelRow {
                by: by(r),
                grouped: grouped[r],
                keys: columns[..n_keys].iter().map(|c| cell(c, r)).collect(),
                values: columns[n_keys..n_keys + n_values]
                    .iter()
                    .map(|c| cell(c, r))
                    .collect(),
            })
            .collect();
        Ok(Self {
            rows,
            detail_rows: detail.len(),
        })
    }
}

/// The rows a cut summary shows, in order: the `shown` innermost groups, the subtotals whose
/// groups lead to one of them (matched on Arrow's row format, one key prefix at a time) and
/// the grand total.
fn kept_rows(
    all: &RecordBatch,
    n_keys: usize,
    grouped: &[usize],
    shown: &[usize],
) -> Result<Vec<usize>, QueryError> {
    let mut keep: HashSet<usize> = shown.iter().copied().collect();
    keep.extend((0..all.num_rows()).filter(|&r| grouped[r] == 0));
    for depth in 1..n_keys {
        let keys = &all.columns()[..depth];
        let converter = RowConverter::new(
            keys.iter()
                .map(|k| SortField::new(k.data_type().clone()))
                .collect(),
        )
        .map_err(arrow)?;
        let rows = converter.convert_columns(keys).map_err(arrow)?;
        let wanted: HashSet<&[u8]> = shown.iter().map(|&r| rows.row(r).data()).collect();
        keep.extend(
            (0..all.num_rows())
                .filter(|&r| grouped[r] == depth && wanted.contains(rows.row(r).data())),
        );
    }
    let mut keep: Vec<usize> = keep.into_iter().collect();
    keep.sort_unstable();
    Ok(keep)
}
