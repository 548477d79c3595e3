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
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{CastExpr, Column};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::ProjectionExec;

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
        let projection = projection.unwrap_or(&all);
        // The filters stay above the scan (nothing is pushed down), so passing none is exact.
        let _ = filters;
        let plan = table.scan(state, Some(projection), &[], limit).await?;
        // Sessions reading strings as views scan them as `Utf8View` where the catalog says
        // `Utf8` (and an empty table as `Utf8`): cast to the declared types.
        let declared = self.schema.project(projection)?;
        let scanned = plan.schema();
        if declared.fields().len() != scanned.fields().len() {
            return Err(DataFusionError::Internal(format!(
                "{} scanned {} columns for {}",
                self.name,
                scanned.fields().len(),
                declared.fields().len()
            )));
        }
        if declared
            .fields()
            .iter()
            .zip(scanned.fields())
            .all(|(d, s)| d.data_type() == s.data_type())
        {
            return Ok(plan);
        }
        let exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = declared
            .fields()
            .iter()
            .zip(scanned.fields())
            .enumerate()
            .map(|(i, (d, s))| {
                let column: Arc<dyn PhysicalExpr> = Arc::new(Column::new(s.name(), i));
                let expr: Arc<dyn PhysicalExpr> = if d.data_type() == s.data_type() {
                    column
                } else {
                    Arc::new(CastExpr::new(column, d.data_type().clone(), None))
                };
                (expr, d.name().clone())
            })
            .collect();
        Ok(Arc::new(ProjectionExec::try_new(exprs, plan)?))
    }
}
