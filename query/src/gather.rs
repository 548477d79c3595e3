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
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Int64Array, RecordBatch};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{DataType, Int64Type, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{JoinType, NullEquality, Statistics};
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
use datafusion::physical_plan::statistics::{ChildStats, StatisticsArgs};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;

use crate::lookup::{Lookup, LookupCache};

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
        let index = self.lookup.index_kind();
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

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    /// A left join on unique keys keeps every record once: the input's row count, so the
    /// joins and aggregates above are planned as they would be over the hash join.
    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> DfResult<Arc<Statistics>> {
        let mut stats = Statistics::new_unknown(&self.schema);
        if let Some(input) = input_stats.first() {
            stats.num_rows = input.num_rows;
        }
        Ok(Arc::new(stats))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
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
}
