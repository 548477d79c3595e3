//! Oneo's query engine: DataFusion over a workspace's Delta tables.
//!
//! A [`WorkspaceSession`] sees one workspace's lake as the schema `crm` (a table per object,
//! columns named by field API names). Reports ([`ReportSpec`]) compile to DataFusion plans
//! through the DataFrame API, every identifier checked against the catalog; [`run_sql`]
//! answers read-only SQL over the same tables.
//!
//! ```no_run
//! # async fn run() -> Result<(), oneo_query::QueryError> {
//! use oneo_query::{DateContext, QueryConfig, WorkspaceSchema, WorkspaceSession, run_report};
//! let cfg = QueryConfig::new(url::Url::parse("file:///srv/oneo/lake/").unwrap());
//! let schema = WorkspaceSchema { workspace_id: uuid::Uuid::nil(), objects: vec![] };
//! let session = WorkspaceSession::new(&cfg, schema)?;
//! let spec = serde_json::from_str(r#"{"type": "summary", "object": "deal",
//!     "groupings": [{"field": "stage"}], "aggregates": [{"fn": "sum", "field": "amount"}]}"#)
//!     .expect("a valid spec");
//! let answer = run_report(&session, &spec, &DateContext::new(chrono::Utc::now())).await?;
//! println!("{}", serde_json::to_string_pretty(&answer).unwrap());
//! # Ok(()) }
//! ```

mod aggregate;
mod alias;
mod bucket;
mod compare;
mod dates;
mod eager;
mod error;
mod filter;
mod formula;
mod gather;
mod grouped;
mod groupings;
mod hot;
mod joined;
pub mod keys;
mod levels;
mod lookup;
mod matrix;
mod path;
mod report;
mod result;
mod spec;
mod sql;
mod workspace;

pub use dates::DateContext;
pub use error::QueryError;
pub use hot::ColumnCache;
pub use matrix::{MatrixResult, MatrixSubtotal};
pub use oneo_catalog::lake::format_lsn;
pub use report::{DEFAULT_LIMIT, MAX_LIMIT, ReportResult, Subtotal, run_report, stream_tabular};
pub use result::{ColumnInfo, Freshness, cell};
pub use spec::{
    Aggregate, AggregateFn, Block, Bucket, Comparison, DatePeriod, Filter, FilterOp, Grouping,
    RelatedFilter, ReportKind, ReportSpec, SortKey, SummaryFormula,
};
pub use sql::{
    SQL_ROW_LIMIT, SqlResult, bind_parameters, execute_stream, parameter_fields, plan_query,
    run_sql, with_classic_types,
};
pub use workspace::{
    CATALOG, DEFAULT_COLUMN_CACHE, HISTORY_SCHEMA, ObjectDef, QueryConfig, SCHEMA, SYSTEM_SCHEMA,
    TableCache, WorkspaceSchema, WorkspaceSession,
};
