//! What a client may ask about the server and the caller's workspace: SQL info, catalogs,
//! schemas, tables (with their Arrow schemas), table types and primary keys.

use std::sync::{Arc, LazyLock};

use arrow_flight::error::FlightError;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetTableTypes,
    CommandGetTables, SqlInfo, SqlNullOrdering, SqlSupportedCaseSensitivity,
    SqlSupportedTransaction,
};
use datafusion::arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use oneo_query::WorkspaceSchema;

/// The only catalog and schema a caller sees.
pub(super) const CATALOG: &str = oneo_query::CATALOG;
pub(super) const SCHEMA: &str = oneo_query::SCHEMA;
const TABLE_TYPE: &str = "TABLE";

/// Facts about this server that clients (ADBC, JDBC, BI tools) ask for before querying.
pub(super) static SQL_INFO: LazyLock<SqlInfoData> = LazyLock::new(|| {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "Oneo");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "59");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.append(SqlInfo::FlightSqlServerBulkIngestion, false);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    // DataFusion folds unquoted identifiers to lower case; quoted ones stay as written and
    // match exactly, which the protocol's choices (insensitive, upper, lower) cannot say.
    b.append(
        SqlInfo::SqlIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32,
    );
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(
        SqlInfo::SqlQuotedIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityUnknown as i32,
    );
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    // Ascending sorts put nulls last, as PostgreSQL does.
    b.append(
        SqlInfo::SqlNullOrdering,
        SqlNullOrdering::SqlNullsSortedHigh as i32,
    );
    b.append(SqlInfo::SqlSearchStringEscape, "\\");
    b.append(SqlInfo::SqlSupportsColumnAliasing, true);
    b.append(SqlInfo::SqlNullPlusNullIsNull, true);
    b.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    b.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
    b.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
    b.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    b.append(SqlInfo::SqlTransactionsSupported, false);
    b.append(SqlInfo::SqlBatchUpdatesSupported, false);
    b.append(SqlInfo::SqlSavepointsSupported, false);
    b.append(SqlInfo::SqlNamedParametersSupported, false);
    b.append(SqlInfo::SqlStoredProceduresSupported, false);
    // A static list of valid builder values cannot fail to build.
    b.build()
        .unwrap_or_else(|e| panic!("the SQL info table is malformed: {e}"))
});

pub(super) fn catalogs(query: CommandGetCatalogs) -> Result<RecordBatch, FlightError> {
    let mut b = query.into_builder();
    b.append(CATALOG);
    b.build()
}

/// `crm`, and `oneo` when the server has system tables to show (ingest runs beside it).
pub(super) fn schemas(
    query: CommandGetDbSchemas,
    system: bool,
) -> Result<RecordBatch, FlightError> {
    let mut b = query.into_builder();
    b.append(CATALOG, SCHEMA);
    if system {
        b.append(CATALOG, oneo_query::SYSTEM_SCHEMA);
    }
    b.build()
}

pub(super) fn table_types(query: CommandGetTableTypes) -> Result<RecordBatch, FlightError> {
    let mut b = query.into_builder();
    b.append(TABLE_TYPE);
    b.build()
}

/// One row per object of the caller's workspace (the builder applies the client's catalog,
/// schema, name and type filters); with `include_schema`, each table's Arrow schema.
pub(super) fn tables(
    query: CommandGetTables,
    workspace: &WorkspaceSchema,
    system: &[(String, SchemaRef)],
) -> Result<RecordBatch, FlightError> {
    let mut b = query.into_builder();
    for object in &workspace.objects {
        b.append(
            CATALOG,
            SCHEMA,
            &object.api_name,
            TABLE_TYPE,
            &object.lake_schema(),
        )?;
    }
    for (name, shape) in system {
        b.append(CATALOG, oneo_query::SYSTEM_SCHEMA, name, TABLE_TYPE, shape)?;
    }
    b.build()
}

/// Every record table is keyed by its `id`.
pub(super) fn primary_keys(
    query: &CommandGetPrimaryKeys,
    workspace: &WorkspaceSchema,
) -> Result<RecordBatch, FlightError> {
    let ours = query.catalog.as_deref().is_none_or(|c| c == CATALOG)
        && query.db_schema.as_deref().is_none_or(|s| s == SCHEMA);
    let table = workspace
        .object(&query.table)
        .filter(|_| ours)
        .map(|o| o.api_name.clone());
    let n = usize::from(table.is_some());
    let text = |v: Option<String>| Arc::new(StringArray::from(vec![v; n])) as ArrayRef;
    let key_name = table.as_ref().map(|t| format!("{t}_pkey"));
    Ok(RecordBatch::try_new(
        primary_keys_schema(),
        vec![
            text(Some(CATALOG.to_string())),
            text(Some(SCHEMA.to_string())),
            text(table),
            text(Some("id".to_string())),
            text(key_name),
            Arc::new(Int32Array::from(vec![1; n])),
        ],
    )?)
}

/// The result shape Flight SQL defines for `CommandGetPrimaryKeys`.
pub(super) fn primary_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
}
