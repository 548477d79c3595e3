//! Lookup tables indexed by key, for [`crate::gather`]: where each key's row is, the
//! table's columns as one array each, and the indexes kept for the next report over the
//! same rows.

use std::sync::{Arc, Mutex, MutexGuard};

use datafusion::arrow::array::{
    Array, ArrayData, ArrayRef, AsArray, Int64Array, RecordBatch, UInt32Array,
};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer};
use datafusion::arrow::compute::concat;
use datafusion::arrow::datatypes::{Int64Type, SchemaRef};
use datafusion::common::HashMap;
use datafusion::error::Result as DfResult;

/// A dense index may spend this many slots per lookup row (keys interned by other tables
/// interleave with a table's own); past it the index is a hash map.
const DENSE_SLOTS_PER_ROW: usize = 8;

/// Indexed lookups kept for at most this many lookup tables (a table's version, its
/// columns), within the cache's bytes.
const CACHED_LOOKUPS: usize = 8;

/// Lookup tables indexed by earlier queries. Indexing 1M contacts and gathering their
/// columns into one array each is work the next report over the same table version would
/// repeat exactly: the column cache hands out the same arrays until the table changes. An entry is known by the memory its rows occupy
/// (each column's buffer, offset and length) and keeps those rows alive, so no other rows
/// can take that memory and be mistaken for them while it is kept.
#[derive(Debug, Default)]
pub struct LookupCache {
    /// Most bytes of indexes and gathered columns kept (0: none kept).
    budget: usize,
    entries: Mutex<Vec<CachedLookup>>,
}

#[derive(Debug)]
struct CachedLookup {
    identity: Identity,
    /// Keep the rows, and so the memory the identity names.
    _rows: Vec<RecordBatch>,
    lookup: Arc<Lookup>,
    used: u64,
}

/// Where rows live: every buffer of every column (its address, offset and length), batch
/// by batch, with the schema and the key column.
#[derive(Debug, PartialEq)]
struct Identity {
    schema: SchemaRef,
    key: usize,
    columns: Vec<usize>,
}

impl Identity {
    fn of(batches: &[RecordBatch], schema: &SchemaRef, key: usize) -> Self {
        let mut columns = Vec::new();
        for column in batches.iter().flat_map(|b| b.columns()) {
            locate(&column.to_data(), &mut columns);
        }
        Self {
            schema: Arc::clone(schema),
            key,
            columns,
        }
    }
}

/// Appends where `data` lives: offset, length, and each buffer's address (validity first,
/// children last), so two arrays agree only if they read the very same memory.
fn locate(data: &ArrayData, to: &mut Vec<usize>) {
    to.extend([data.offset(), data.len()]);
    to.push(data.nulls().map_or(0, |n| n.buffer().as_ptr() as usize));
    to.extend(data.buffers().iter().map(|b| b.as_ptr() as usize));
    for child in data.child_data() {
        locate(child, to);
    }
}

impl LookupCache {
    /// A cache keeping at most `budget` bytes of lookups.
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            entries: Mutex::default(),
        }
    }

    /// The lookup of `batches` by column `key`, indexed now or by an earlier query; `None`
    /// when its keys repeat.
    pub(crate) fn lookup(
        &self,
        batches: Vec<RecordBatch>,
        schema: SchemaRef,
        key: usize,
    ) -> DfResult<Option<Arc<Lookup>>> {
        let identity = Identity::of(&batches, &schema, key);
        {
            let mut entries = self.lock();
            let now = entries.iter().map(|e| e.used).max().unwrap_or(0) + 1;
            if let Some(e) = entries.iter_mut().find(|e| e.identity == identity) {
                e.used = now;
                return Ok(Some(Arc::clone(&e.lookup)));
            }
        }
        // Indexed without the lock: other sessions plan meanwhile. Two sessions indexing
        // the same rows at once both keep theirs; the entry is the last one's.
        let Some(lookup) = Lookup::build(&batches, schema, key)? else {
            return Ok(None);
        };
        let lookup = Arc::new(lookup);
        let bytes = lookup.bytes();
        if bytes > self.budget {
            return Ok(Some(lookup));
        }
        let mut entries = self.lock();
        let now = entries.iter().map(|e| e.used).max().unwrap_or(0) + 1;
        entries.retain(|e| e.identity != identity);
        // The least recently used go first, until the new one fits.
        while entries.len() >= CACHED_LOOKUPS
            || entries.iter().map(|e| e.lookup.bytes()).sum::<usize>() + bytes > self.budget
        {
            let Some(oldest) = (0..entries.len()).min_by_key(|&i| entries[i].used) else {
                break;
            };
            entries.swap_remove(oldest);
        }
        entries.push(CachedLookup {
            identity,
            _rows: batches,
            lookup: Arc::clone(&lookup),
            used: now,
        });
        Ok(Some(lookup))
    }

    fn lock(&self) -> MutexGuard<'_, Vec<CachedLookup>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Where each key's row is.
#[derive(Debug)]
enum KeyIndex {
    /// `rows[key - min]` is the row plus one; 0 is no row.
    Dense {
        min: i64,
        rows: Vec<u32>,
    },
    Sparse(HashMap<i64, u32>),
}

impl KeyIndex {
    fn bytes(&self) -> usize {
        match self {
            Self::Dense { rows, .. } => rows.len() * size_of::<u32>(),
            Self::Sparse(map) => map.capacity() * (size_of::<i64>() + size_of::<u32>() + 1),
        }
    }
}

/// A lookup table's rows, as one array per column, and its key index.
#[derive(Debug)]
pub(crate) struct Lookup {
    index: KeyIndex,
    /// Every column of the lookup table, each as one array.
    pub columns: Vec<ArrayRef>,
    /// Which column is the key.
    pub key: usize,
    pub rows: usize,
}

impl Lookup {
    /// `None` when a key repeats (a join could then match a record twice) or the rows don't
    /// fit a `u32` row number.
    pub fn build(batches: &[RecordBatch], schema: SchemaRef, key: usize) -> DfResult<Option<Self>> {
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if u32::try_from(rows).is_err() || rows == u32::MAX as usize {
            return Ok(None);
        }
        let keys = || {
            batches
                .iter()
                .flat_map(|b| b.column(key).as_primitive::<Int64Type>().iter())
        };
        let (mut min, mut max) = (i64::MAX, i64::MIN);
        for k in keys().flatten() {
            min = min.min(k);
            max = max.max(k);
        }
        let span = if min <= max {
            usize::try_from(max.abs_diff(min)).ok().map(|s| s + 1)
        } else {
            Some(0)
        };
        let mut index = match span {
            Some(span) if span <= rows.saturating_mul(DENSE_SLOTS_PER_ROW).max(1024) => {
                KeyIndex::Dense {
                    min,
                    rows: vec![0; span],
                }
            }
            _ => KeyIndex::Sparse(HashMap::with_capacity(rows)),
        };
        for (row, k) in (1u32..).zip(keys()) {
            let Some(k) = k else { continue };
            let fresh = match &mut index {
                KeyIndex::Dense { min, rows } => {
                    let slot = &mut rows[(k - *min) as usize];
                    std::mem::replace(slot, row) == 0
                }
                KeyIndex::Sparse(map) => map.insert(k, row - 1).is_none(),
            };
            if !fresh {
                return Ok(None);
            }
        }
        let columns = (0..schema.fields().len())
            .map(|c| {
                let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
                match parts.as_slice() {
                    [] => Ok(datafusion::arrow::array::new_empty_array(
                        schema.field(c).data_type(),
                    )),
                    [one] => Ok(one.slice(0, one.len())),
                    _ => concat(&parts),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Self {
            index,
            columns,
            key,
            rows,
        }))
    }

    pub fn bytes(&self) -> usize {
        self.index.bytes()
            + self
                .columns
                .iter()
                .map(|c| c.get_array_memory_size())
                .sum::<usize>()
    }

    /// How keys are found: `dense` (an array by key) or `hashed`.
    pub fn index_kind(&self) -> &'static str {
        match self.index {
            KeyIndex::Dense { .. } => "dense",
            KeyIndex::Sparse(_) => "hashed",
        }
    }

    /// The lookup rows of `keys`, null where there is none.
    pub fn rows_of(&self, keys: &Int64Array) -> UInt32Array {
        let (min, rows) = match &self.index {
            KeyIndex::Dense { min, rows } => (min, rows),
            KeyIndex::Sparse(map) => {
                return keys
                    .iter()
                    .map(|k| k.and_then(|k| map.get(&k).copied()))
                    .collect();
            }
        };
        // Row plus one, or 0, for every slot (a null key's slot holds any value), then the
        // nulls: one pass the compiler can keep tight, with no branch per key.
        let len = rows.len() as u64;
        let mut found: Vec<u32> = keys
            .values()
            .iter()
            .map(|&k| {
                let slot = k.wrapping_sub(*min) as u64;
                if slot < len { rows[slot as usize] } else { 0 }
            })
            .collect();
        let present = NullBuffer::from(BooleanBuffer::collect_bool(found.len(), |i| found[i] != 0));
        for r in &mut found {
            *r = r.saturating_sub(1);
        }
        let nulls = NullBuffer::union(keys.nulls(), Some(&present));
        UInt32Array::new(found.into(), nulls)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn the_same_rows_are_indexed_once() {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
        let rows = |keys: Vec<i64>| {
            RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(Int64Array::from(keys))])
                .expect("batch")
        };
        let cache = LookupCache::new(1 << 20);
        let (a, b) = (rows(vec![1, 2, 3]), rows(vec![1, 2, 3]));
        let first = cache
            .lookup(vec![a.clone()], Arc::clone(&schema), 0)
            .expect("index");
        let again = cache
            .lookup(vec![a.slice(0, 3)], Arc::clone(&schema), 0)
            .expect("index");
        assert!(Arc::ptr_eq(
            &first.expect("unique"),
            &again.expect("unique")
        ));
        // Equal values elsewhere in memory, or part of the same rows: indexed anew.
        let other = cache
            .lookup(vec![b], Arc::clone(&schema), 0)
            .expect("index")
            .expect("unique");
        let part = cache
            .lookup(vec![a.slice(0, 2)], Arc::clone(&schema), 0)
            .expect("index")
            .expect("unique");
        assert_eq!((other.rows, part.rows), (3, 2));
        let found = part.rows_of(&Int64Array::from(vec![Some(1), Some(3), None]));
        assert_eq!(found.iter().collect::<Vec<_>>(), [Some(0), None, None]);
        // Nothing is kept beyond the cache's bytes.
        let none = LookupCache::new(0);
        let once = none
            .lookup(vec![a.clone()], Arc::clone(&schema), 0)
            .expect("index");
        let twice = none
            .lookup(vec![a.clone()], Arc::clone(&schema), 0)
            .expect("index");
        assert!(!Arc::ptr_eq(
            &once.expect("unique"),
            &twice.expect("unique")
        ));
        // Repeated keys are never a lookup.
        assert!(
            cache
                .lookup(vec![rows(vec![4, 4])], schema, 0)
                .expect("index")
                .is_none()
        );
    }
}
