//! Lookups as gathers: a left join on a record key whose other side is already in memory.
//!
//! Following a lookup (`activity.contact.lead_source`) is a left join of the records on the
//! looked-up table's key column (see [`crate::keys`]). DataFusion plans it as a hash join:
//! both sides are repartitioned by hash, a hash table is built over the lookup table, and
//! every record probes it. When the lookup table is served from the column cache its rows
//! are in memory already, and the keys are dense integers, so the row of a key can be found
//! by indexing an array instead. [`LookupGather`] is a physical optimizer rule that replaces
//! such a join with a [`GatherExec`]: each record batch, in whatever partition it is, takes
//! the lookup table's columns at the rows its keys name. Over 5M activities and 1M contacts
//! that removes the repartitioning of both sides and the hash table.
//!
//! The answer is the join's, row for row: a key the table lacks (or a null key) gets nulls,
//! as a left join gives. The rule applies only where the lookup side's keys are unique,
//! which it checks while indexing them (ids are unique in a table's current state, but the
//! rule does not rely on it); otherwise the hash join stays.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use datafusion::arrow::array::{
    Array, ArrayData, ArrayRef, AsArray, Int64Array, RecordBatch, UInt32Array,
};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer};
use datafusion::arrow::compute::{concat, take};
use datafusion::arrow::datatypes::{DataType, Int64Type, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{HashMap, JoinType, NullEquality};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::{DataSource, DataSourceExec};
use datafusion::error::Result as DfResult;
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::joins::HashJoinExec;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;

/// A dense index may spend this many slots per lookup row (keys interned by other tables
/// interleave with a table's own); past it the index is a hash map.
const DENSE_SLOTS_PER_ROW: usize = 8;

/// Indexed lookups kept for this many lookup tables (a table's version, its columns).
const CACHED_LOOKUPS: usize = 8;

/// The physical optimizer rule: left joins on a key column whose right side is an in-memory
/// scan with unique keys become [`GatherExec`]s. It runs before DataFusion's own rules, on
/// the joins as the planner made them (left: the records, right: the lookup table).
#[derive(Debug, Default)]
pub struct LookupGather {
    cache: Arc<LookupCache>,
}

impl LookupGather {
    /// A rule that keeps what it indexes in `cache`, for the sessions that share it.
    pub fn new(cache: Arc<LookupCache>) -> Self {
        Self { cache }
    }
}

/// Lookup tables indexed by earlier queries. Indexing 1M contacts and gathering their
/// columns into one array each costs more than a small report's whole answer, and the next
/// report over the same table version reads the same rows: the column cache hands out the
/// same arrays until the table changes. An entry is known by the memory its rows occupy
/// (each column's buffer, offset and length) and keeps those rows alive, so no other rows
/// can take that memory and be mistaken for them while it is kept.
#[derive(Debug, Default)]
pub struct LookupCache {
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
    /// The lookup of `batches` by column `key`, indexed now or by an earlier query; `None`
    /// when its keys repeat.
    fn lookup(
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
        let mut entries = self.lock();
        let now = entries.iter().map(|e| e.used).max().unwrap_or(0) + 1;
        entries.retain(|e| e.identity != identity);
        if entries.len() >= CACHED_LOOKUPS {
            if let Some(oldest) = (0..entries.len()).min_by_key(|&i| entries[i].used) {
                entries.swap_remove(oldest);
            }
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

impl PhysicalOptimizerRule for LookupGather {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else {
                return Ok(Transformed::no(node));
            };
            match gather_for(join, &self.cache)? {
                Some(gather) => Ok(Transformed::yes(Arc::new(gather) as Arc<dyn ExecutionPlan>)),
                None => Ok(Transformed::no(node)),
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "lookup_gather"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The gather that answers `join`, where it can.
fn gather_for(join: &HashJoinExec, cache: &LookupCache) -> DfResult<Option<GatherExec>> {
    if join.join_type != JoinType::Left
        || join.filter.is_some()
        || join.null_equality != NullEquality::NullEqualsNothing
        || join.null_aware
        || join.fetch().is_some()
        || join.on.len() != 1
    {
        return Ok(None);
    }
    let (probe_key, lookup_key) = &join.on[0];
    let (Some(probe_key), Some(lookup_key)) = (
        probe_key.downcast_ref::<Column>(),
        lookup_key.downcast_ref::<Column>(),
    ) else {
        return Ok(None);
    };
    let is_int64 = |plan: &Arc<dyn ExecutionPlan>, c: &Column| {
        plan.schema()
            .fields()
            .get(c.index())
            .is_some_and(|f| f.data_type() == &DataType::Int64)
    };
    if !is_int64(&join.left, probe_key) || !is_int64(&join.right, lookup_key) {
        return Ok(None);
    }
    let Some(batches) = in_memory(&join.right) else {
        return Ok(None);
    };
    let Some(lookup) = cache.lookup(batches, join.right.schema(), lookup_key.index())? else {
        return Ok(None);
    };
    let projection = join.projection.as_ref().map(|p| p.to_vec());
    tracing::debug!(lookup_rows = lookup.rows, "a lookup join is a gather");
    Ok(Some(GatherExec::new(
        Arc::clone(&join.left),
        probe_key.index(),
        lookup,
        join.schema(),
        projection,
    )))
}

/// The rows of an in-memory scan, every partition's.
fn in_memory(plan: &Arc<dyn ExecutionPlan>) -> Option<Vec<RecordBatch>> {
    let source = plan.downcast_ref::<DataSourceExec>()?;
    let memory = source.data_source().downcast_ref::<MemorySourceConfig>()?;
    if memory.fetch().is_some() {
        return None;
    }
    let batches = memory.partitions().iter().flatten();
    match memory.projection() {
        None => Some(batches.cloned().collect()),
        Some(p) => batches.map(|b| b.project(p).ok()).collect(),
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
    fn row(&self, key: i64) -> Option<u32> {
        match self {
            Self::Dense { min, rows } => {
                let slot = usize::try_from(key.checked_sub(*min)?).ok()?;
                rows.get(slot).and_then(|&r| r.checked_sub(1))
            }
            Self::Sparse(map) => map.get(&key).copied(),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Self::Dense { rows, .. } => rows.len() * size_of::<u32>(),
            Self::Sparse(map) => map.capacity() * (size_of::<i64>() + size_of::<u32>() + 1),
        }
    }
}

/// A lookup table's rows, as one array per column, and its key index.
#[derive(Debug)]
struct Lookup {
    index: KeyIndex,
    columns: Vec<ArrayRef>,
    /// Which column is the key.
    key: usize,
    rows: usize,
}

impl Lookup {
    /// `None` when a key repeats (a join could then match a record twice) or the rows don't
    /// fit a `u32` row number.
    fn build(batches: &[RecordBatch], schema: SchemaRef, key: usize) -> DfResult<Option<Self>> {
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

    fn bytes(&self) -> usize {
        self.index.bytes()
            + self
                .columns
                .iter()
                .map(|c| c.get_array_memory_size())
                .sum::<usize>()
    }

    /// The lookup rows of `keys`, null where there is none.
    fn rows_of(&self, keys: &Int64Array) -> UInt32Array {
        let KeyIndex::Dense { min, rows } = &self.index else {
            return keys
                .iter()
                .map(|k| k.and_then(|k| self.index.row(k)))
                .collect();
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

/// A left join of its input with a lookup table held in memory, by the lookup's key: each
/// input row gets the lookup row its key names, or nulls. Output is the join's: the input's
/// columns, then the lookup's (with the join's projection, if it had one).
#[derive(Debug)]
pub struct GatherExec {
    input: Arc<dyn ExecutionPlan>,
    /// The input's key column.
    key: usize,
    lookup: Arc<Lookup>,
    schema: SchemaRef,
    projection: Option<Vec<usize>>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl GatherExec {
    fn new(
        input: Arc<dyn ExecutionPlan>,
        key: usize,
        lookup: Arc<Lookup>,
        schema: SchemaRef,
        projection: Option<Vec<usize>>,
    ) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(input.output_partitioning().partition_count()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self {
            input,
            key,
            lookup,
            schema,
            projection,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for GatherExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let index = match self.lookup.index {
            KeyIndex::Dense { .. } => "dense",
            KeyIndex::Sparse(_) => "hashed",
        };
        write!(
            f,
            "GatherExec: key={}, lookup_rows={}, index={index}",
            self.input.schema().field(self.key).name(),
            self.lookup.rows
        )
    }
}

impl ExecutionPlan for GatherExec {
    fn name(&self) -> &str {
        "GatherExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return datafusion::common::internal_err!("GatherExec takes one input");
        }
        Ok(Arc::new(Self::new(
            children.swap_remove(0),
            self.key,
            Arc::clone(&self.lookup),
            Arc::clone(&self.schema),
            self.projection.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        // Each partition holds its share of the lookup's memory, so the query's limit sees
        // the lookup once, as it would a collected hash join's table.
        let partitions = self.properties.partitioning.partition_count().max(1);
        let reservation =
            MemoryConsumer::new(format!("GatherExec[{partition}]")).register(context.memory_pool());
        reservation.try_grow(self.lookup.bytes().div_ceil(partitions))?;
        let input = self.input.execute(partition, context)?;
        let (lookup, key, schema) = (Arc::clone(&self.lookup), self.key, Arc::clone(&self.schema));
        let projection = self.projection.clone();
        let metrics = BaselineMetrics::new(&self.metrics, partition);
        let stream = input.map(move |batch| {
            let _hold = &reservation;
            let batch = batch?;
            let timer = metrics.elapsed_compute().timer();
            let keys = batch.column(key).as_primitive::<Int64Type>();
            let rows = lookup.rows_of(keys);
            let mut columns = batch.columns().to_vec();
            for (c, column) in lookup.columns.iter().enumerate() {
                columns.push(if c == lookup.key {
                    // The lookup's own key, where found, is the record's: no gather.
                    Arc::new(Int64Array::new(
                        keys.values().clone(),
                        rows.nulls().cloned(),
                    ))
                } else {
                    take(column.as_ref(), &rows, None)?
                });
            }
            let columns = match &projection {
                None => columns,
                Some(p) => p.iter().map(|&i| Arc::clone(&columns[i])).collect(),
            };
            let out = RecordBatch::try_new(Arc::clone(&schema), columns)?;
            timer.done();
            metrics.record_output(out.num_rows());
            Ok(out)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::util::display::array_value_to_string;
    use datafusion::datasource::MemTable;
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::SessionContext;

    use super::*;

    fn table(columns: Vec<(&str, ArrayRef)>) -> Arc<MemTable> {
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            columns.into_iter().map(|(_, a)| a).collect(),
        )
        .expect("batch");
        // Two partitions of the lookup table: the gather indexes both.
        let (a, b) = (
            batch.slice(0, batch.num_rows() / 2),
            batch.slice(
                batch.num_rows() / 2,
                batch.num_rows() - batch.num_rows() / 2,
            ),
        );
        Arc::new(MemTable::try_new(schema, vec![vec![a], vec![b]]).expect("table"))
    }

    fn session(gather: bool) -> SessionContext {
        let mut rules = PhysicalOptimizer::new().rules;
        if gather {
            rules.insert(0, Arc::new(LookupGather::default()));
        }
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_physical_optimizer_rules(rules)
            .build();
        SessionContext::new_with_state(state)
    }

    /// The plan and sorted answer of a left join of `records` with `lookup` on its key.
    async fn answer(gather: bool, lookup_keys: Vec<Option<i64>>) -> (String, Vec<String>) {
        let ctx = session(gather);
        let n = lookup_keys.len();
        let names: Vec<String> = (0..n).map(|i| format!("company {i}")).collect();
        ctx.register_table(
            "company",
            table(vec![
                ("id", Arc::new(Int64Array::from(lookup_keys))),
                ("name", Arc::new(StringArray::from(names))),
            ]),
        )
        .expect("register");
        ctx.register_table(
            "deal",
            table(vec![
                ("deal", Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5, 6]))),
                // A key the lookup table lacks, a null key and one far from the rest.
                (
                    "company",
                    Arc::new(Int64Array::from(vec![
                        Some(7),
                        Some(9),
                        None,
                        Some(99),
                        Some(7),
                        Some(1 << 40),
                    ])),
                ),
            ]),
        )
        .expect("register");
        let df = ctx
            .sql("SELECT d.deal, d.company, c.id, c.name FROM deal d LEFT JOIN company c ON d.company = c.id ORDER BY d.deal, c.name")
            .await
            .expect("plan");
        let plan = df.clone().create_physical_plan().await.expect("physical");
        let plan = displayable(plan.as_ref()).indent(true).to_string();
        let mut rows = Vec::new();
        for batch in df.collect().await.expect("run") {
            for r in 0..batch.num_rows() {
                let cells: Vec<String> = batch
                    .columns()
                    .iter()
                    .map(|c| array_value_to_string(c, r).expect("cell"))
                    .collect();
                rows.push(cells.join(" "));
            }
        }
        (plan, rows)
    }

    #[tokio::test]
    async fn a_gather_answers_as_the_hash_join() {
        for keys in [
            // Dense: keys near each other.
            vec![Some(7), Some(8), Some(9), None, Some(10)],
            // Sparse: one key far from the others.
            vec![Some(7), Some(9), Some(1 << 40), Some(11)],
        ] {
            let (plan, rows) = answer(true, keys.clone()).await;
            assert!(plan.contains("GatherExec"), "{plan}");
            assert!(!plan.contains("HashJoinExec"), "{plan}");
            let (join_plan, join_rows) = answer(false, keys).await;
            assert!(join_plan.contains("HashJoinExec"), "{join_plan}");
            assert_eq!(rows, join_rows);
            // Deals 1 and 5 find company 7, deal 3 (null key) and 4 (no such key) find none.
            assert_eq!(rows[0], "1 7 7 company 0", "{rows:?}");
            assert_eq!(rows[2..4], ["3   ", "4 99  "], "{rows:?}");
        }
        let sparse = answer(true, vec![Some(7), Some(1 << 40)]).await.0;
        assert!(sparse.contains("index=hashed"), "{sparse}");
        let dense = answer(true, vec![Some(7), Some(8)]).await.0;
        assert!(dense.contains("index=dense"), "{dense}");
    }

    #[tokio::test]
    async fn repeated_keys_keep_the_hash_join() {
        // Key 7 twice: deals 1 and 5 each match two companies.
        let keys = vec![Some(7), Some(7), Some(9)];
        let (plan, rows) = answer(true, keys.clone()).await;
        assert!(plan.contains("HashJoinExec"), "{plan}");
        assert!(!plan.contains("GatherExec"), "{plan}");
        assert_eq!(rows, answer(false, keys).await.1);
        assert_eq!(
            rows[..2],
            ["1 7 7 company 0", "1 7 7 company 1"],
            "{rows:?}"
        );
    }

    #[test]
    fn the_same_rows_are_indexed_once() {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
        let rows = |keys: Vec<i64>| {
            RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(Int64Array::from(keys))])
                .expect("batch")
        };
        let cache = LookupCache::default();
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
        assert_eq!(part.index.row(3), None);
        // Repeated keys are never a lookup.
        assert!(
            cache
                .lookup(vec![rows(vec![4, 4])], schema, 0)
                .expect("index")
                .is_none()
        );
    }
}
