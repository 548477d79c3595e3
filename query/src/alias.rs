//! A table of schema `oneo` that is another schema's table under a second name
//! (`oneo.scores` is `crm.score`): opened only when a query scans it, so sessions that never
//! read it never open its Delta table.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

#[derive(Debug)]
pub(crate) struct AliasTable {
    /// The schema the target lives in, and its name there.
    pub target: Arc<dyn SchemaProvider>,
    pub name: String,
    /// The target's catalog columns. A keyed session's table has its key columns after
    /// them, so these positions are the same in both.
    pub schema: SchemaRef,
}

#[async_trait]
impl TableProvider for AliasTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let table = self.target.table(&self.name).await?.ok_or_else(|| {
            DataFusionError::Plan(format!("the table {} is not there", self.name))
        })?;
        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        // The filters stay above the scan (nothing is pushed down), so passing none is exact.
        let _ = filters;
        table
            .scan(state, Some(projection.unwrap_or(&all)), &[], limit)
            .await
    }
}
