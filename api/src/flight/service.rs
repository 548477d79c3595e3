//! The Flight SQL service: each call authenticates, opens a session over the caller's
//! workspace, and answers from the lake. Statement tickets carry their SQL, so any server can
//! answer them; prepared statements live in this server (see [`super::prepared`]).

use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionBeginTransactionRequest, ActionBeginTransactionResult,
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandPreparedStatementQuery, CommandPreparedStatementUpdate, CommandStatementIngest,
    CommandStatementQuery, CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt,
    SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse,
    IpcMessage, SchemaAsIpc, Ticket,
};
use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::dataframe::DataFrame;
use futures::{Stream, StreamExt, TryStreamExt};
use oneo_query::WorkspaceSession;
use prost::Message;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Response, Status, Streaming};

use super::prepared::PreparedStatements;
use super::{StreamGauge, auth, metadata, status};
use crate::AppState;
use crate::auth::{Caller, caller_for_key};
use crate::routes::reports::workspace_schema;

type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send>>;

/// Oneo's Flight SQL service over the lake, one workspace per caller.
#[derive(Clone)]
pub struct FlightSqlEndpoint {
    state: AppState,
    prepared: Arc<PreparedStatements>,
    streams: StreamGauge,
}

impl FlightSqlEndpoint {
    pub(crate) fn new(state: AppState) -> Self {
        Self {
            state,
            prepared: Arc::default(),
            streams: StreamGauge::default(),
        }
    }

    pub(super) fn streams(&self) -> StreamGauge {
        self.streams.clone()
    }

    /// The caller behind the call's API key; every role may read.
    async fn caller(&self, metadata: &MetadataMap) -> Result<Caller, Status> {
        let key = auth::api_key(metadata)?;
        let caller = caller_for_key(&self.state.pool, &key)
            .await
            .map_err(status::from_api)?;
        tracing::Span::current().record("workspace", tracing::field::display(caller.workspace_id));
        Ok(caller)
    }

    /// A session over the caller's workspace whose scans decode strings as `Utf8` directly,
    /// as clients get them.
    async fn session(&self, caller: &Caller) -> Result<WorkspaceSession, Status> {
        let (cfg, workspace) = workspace_schema(&self.state, caller.workspace_id)
            .await
            .map_err(status::from_api)?;
        let session = WorkspaceSession::for_clients(&cfg, workspace).map_err(status::from_query)?;
        crate::system::add_system_tables(&self.state, &session, caller.workspace_id)
            .map_err(status::from_query)?;
        Ok(session)
    }

    /// `sql` planned read-only in the caller's workspace, with `params` bound.
    async fn plan(
        &self,
        caller: &Caller,
        sql: &str,
        params: Option<&RecordBatch>,
    ) -> Result<(WorkspaceSession, DataFrame), Status> {
        let session = self.session(caller).await?;
        let df = oneo_query::plan_query(&session, sql)
            .await
            .map_err(status::from_query)?;
        let df = match params {
            Some(p) => oneo_query::bind_parameters(df, p).map_err(status::from_query)?,
            None => df,
        };
        let df = oneo_query::with_classic_types(df).map_err(status::from_query)?;
        Ok((session, df))
    }

    /// Streams the query's batches to the client as they are computed; the client going away
    /// drops the stream, which stops the query.
    async fn execute(
        &self,
        session: &WorkspaceSession,
        df: DataFrame,
    ) -> Result<Response<DoGetStream>, Status> {
        let batches = oneo_query::execute_stream(session, df)
            .await
            .map_err(status::from_query)?;
        let schema = batches.schema();
        let guard = self.streams.enter();
        let batches = batches.map_err(|e| FlightError::Tonic(Box::new(status::from_stream(e))));
        let data = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map(move |item| {
                let _alive = &guard;
                item.map_err(Status::from)
            });
        Ok(Response::new(Box::pin(data)))
    }

    async fn prepared_plan(
        &self,
        metadata: &MetadataMap,
        handle: &[u8],
    ) -> Result<(WorkspaceSession, DataFrame), Status> {
        let caller = self.caller(metadata).await?;
        let prepared = self.prepared.get(caller.workspace_id, handle)?;
        self.plan(&caller, &prepared.sql, prepared.params.as_ref())
            .await
    }
}

/// A `FlightInfo` whose one endpoint's ticket is `ticket`, to be redeemed on this server.
fn flight_info(
    schema: &Schema,
    ticket: &impl ProstMessageExt,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let ticket = Ticket::new(ticket.as_any().encode_to_vec());
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(format!("the result schema can't be encoded: {e}")))?
        .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

/// A metadata answer: one batch, sent as a stream.
fn one_batch(batch: Result<RecordBatch, FlightError>) -> Result<Response<DoGetStream>, Status> {
    let batch = batch.map_err(|e| Status::internal(format!("metadata: {e}")))?;
    let data = FlightDataEncoderBuilder::new()
        .with_schema(batch.schema())
        .build(futures::stream::once(async { Ok(batch) }))
        .map_err(Status::from);
    Ok(Response::new(Box::pin(data)))
}

fn schema_bytes(schema: &Schema) -> Result<Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: ArrowError| Status::internal(format!("the schema can't be encoded: {e}")))?;
    Ok(bytes)
}

fn statement_sql(handle: &[u8]) -> Result<String, Status> {
    String::from_utf8(handle.to_vec())
        .map_err(|_| Status::invalid_argument("the statement ticket is not one this server issued"))
}

fn read_only(what: &str) -> Status {
    Status::permission_denied(format!(
        "{what}: Oneo's Flight SQL only reads the lake; write records through the REST API"
    ))
}

#[tonic::async_trait]
impl FlightSqlService for FlightSqlEndpoint {
    type FlightService = FlightSqlEndpoint;

    /// Basic auth (any user, the API key as password) or a bearer key; answers with the key
    /// as the bearer token for the calls that follow.
    #[tracing::instrument(name = "flight.handshake", skip_all, fields(workspace))]
    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let key = auth::api_key(request.metadata())?;
        self.caller(request.metadata()).await?;
        let bearer = MetadataValue::try_from(format!("Bearer {key}"))
            .map_err(|_| Status::unauthenticated("the API key is not valid header text"))?;
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: Bytes::from(key),
        };
        let mut response: Response<Pin<Box<dyn Stream<Item = _> + Send>>> =
            Response::new(Box::pin(futures::stream::once(async { Ok(reply) })));
        response.metadata_mut().insert("authorization", bearer);
        Ok(response)
    }

    #[tracing::instrument(name = "flight.statement", skip_all, fields(workspace))]
    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = self.caller(request.metadata()).await?;
        if query.transaction_id.is_some() {
            return Err(Status::invalid_argument(
                "transactions are not supported: every statement reads the lake as of now",
            ));
        }
        let (_, df) = self.plan(&caller, &query.query, None).await?;
        let ticket = TicketStatementQuery {
            statement_handle: Bytes::from(query.query),
        };
        flight_info(df.schema().as_arrow(), &ticket, request.into_inner())
    }

    #[tracing::instrument(name = "flight.statement_stream", skip_all, fields(workspace))]
    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let caller = self.caller(request.metadata()).await?;
        let sql = statement_sql(&ticket.statement_handle)?;
        let (session, df) = self.plan(&caller, &sql, None).await?;
        self.execute(&session, df).await
    }

    #[tracing::instrument(name = "flight.prepare", skip_all, fields(workspace))]
    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let caller = self.caller(request.metadata()).await?;
        if query.transaction_id.is_some() {
            return Err(Status::invalid_argument("transactions are not supported"));
        }
        let (_, df) = self.plan(&caller, &query.query, None).await?;
        let params = oneo_query::parameter_fields(&df).map_err(status::from_query)?;
        let dataset_schema = schema_bytes(df.schema().as_arrow())?;
        let parameter_schema = schema_bytes(&Schema::new(params))?;
        let handle = self.prepared.create(caller.workspace_id, query.query)?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle,
            dataset_schema,
            parameter_schema,
        })
    }

    /// Binds one row of parameter values, checked against the statement at once.
    #[tracing::instrument(name = "flight.bind", skip_all, fields(workspace))]
    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let caller = self.caller(request.metadata()).await?;
        let handle = query.prepared_statement_handle;
        let prepared = self.prepared.get(caller.workspace_id, &handle)?;
        // The stream itself, not `into_inner()`: that would drop the peeked schema message.
        let data = request.into_inner().map_err(FlightError::from);
        let batches: Vec<RecordBatch> = FlightRecordBatchStream::new_from_flight_data(data)
            .try_collect()
            .await
            .map_err(|e| Status::invalid_argument(format!("the parameters can't be read: {e}")))?;
        let params = match batches.first() {
            Some(first) => datafusion::arrow::compute::concat_batches(&first.schema(), &batches)
                .map_err(|e| Status::invalid_argument(format!("parameters: {e}")))?,
            None => RecordBatch::new_empty(Arc::new(Schema::empty())),
        };
        self.plan(&caller, &prepared.sql, Some(&params)).await?;
        self.prepared.bind(caller.workspace_id, &handle, params)?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle),
        })
    }

    #[tracing::instrument(name = "flight.prepared", skip_all, fields(workspace))]
    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let (_, df) = self
            .prepared_plan(request.metadata(), &cmd.prepared_statement_handle)
            .await?;
        flight_info(df.schema().as_arrow(), &cmd, request.into_inner())
    }

    #[tracing::instrument(name = "flight.prepared_stream", skip_all, fields(workspace))]
    async fn do_get_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let (session, df) = self
            .prepared_plan(request.metadata(), &cmd.prepared_statement_handle)
            .await?;
        self.execute(&session, df).await
    }

    #[tracing::instrument(name = "flight.close", skip_all, fields(workspace))]
    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        let caller = self.caller(request.metadata()).await?;
        self.prepared
            .close(caller.workspace_id, &query.prepared_statement_handle)
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(request.metadata()).await?;
        let schema = query.clone().into_builder(&metadata::SQL_INFO).schema();
        flight_info(&schema, &query, request.into_inner())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.caller(request.metadata()).await?;
        one_batch(query.into_builder(&metadata::SQL_INFO).build())
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(request.metadata()).await?;
        let schema = query.into_builder().schema();
        flight_info(&schema, &query, request.into_inner())
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.caller(request.metadata()).await?;
        one_batch(metadata::catalogs(query))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(request.metadata()).await?;
        let schema = query.clone().into_builder().schema();
        flight_info(&schema, &query, request.into_inner())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.caller(request.metadata()).await?;
        one_batch(metadata::schemas(query, self.state.ingest.is_some()))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(request.metadata()).await?;
        let schema = query.clone().into_builder().schema();
        flight_info(&schema, &query, request.into_inner())
    }

    #[tracing::instrument(name = "flight.tables", skip_all, fields(workspace))]
    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let caller = self.caller(request.metadata()).await?;
        let session = self.session(&caller).await?;
        one_batch(metadata::tables(
            query,
            session.schema(),
            &session.system_tables(),
        ))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(request.metadata()).await?;
        let schema = query.into_builder().schema();
        flight_info(&schema, &query, request.into_inner())
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.caller(request.metadata()).await?;
        one_batch(metadata::table_types(query))
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(request.metadata()).await?;
        flight_info(
            &metadata::primary_keys_schema(),
            &query,
            request.into_inner(),
        )
    }

    async fn do_get_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let caller = self.caller(request.metadata()).await?;
        let session = self.session(&caller).await?;
        one_batch(metadata::primary_keys(&query, session.schema()))
    }

    async fn do_put_statement_update(
        &self,
        _query: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.caller(request.metadata()).await?;
        Err(read_only("updates are refused"))
    }

    async fn do_put_statement_ingest(
        &self,
        _query: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.caller(request.metadata()).await?;
        Err(read_only("bulk ingestion is refused"))
    }

    async fn do_put_prepared_statement_update(
        &self,
        _query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.caller(request.metadata()).await?;
        Err(read_only("updates are refused"))
    }

    async fn do_action_begin_transaction(
        &self,
        _query: ActionBeginTransactionRequest,
        request: Request<Action>,
    ) -> Result<ActionBeginTransactionResult, Status> {
        self.caller(request.metadata()).await?;
        Err(Status::unimplemented(
            "transactions are not supported: every statement reads the lake as of now",
        ))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
