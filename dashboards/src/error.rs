use oneo_catalog::Issues;
use oneo_query::QueryError;

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The dashboard's definition is wrong; each issue names the part.
    #[error("{0}")]
    Invalid(Issues),
    /// A widget's report failed: `widget` is its key.
    #[error("widget `{widget}`: {source}")]
    Widget {
        widget: String,
        #[source]
        source: Box<QueryError>,
    },
    /// Reading the lake's table versions failed.
    #[error("{0}")]
    Query(Box<QueryError>),
    #[error("the materialization store: {0}")]
    Store(String),
    #[error("Parquet: {0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    #[error("Arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("rendering: {0}")]
    Render(String),
}

impl From<QueryError> for DashboardError {
    fn from(e: QueryError) -> Self {
        Self::Query(Box::new(e))
    }
}
