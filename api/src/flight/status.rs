//! Oneo's errors as gRPC statuses: the caller's mistakes say what was wrong, the service's
//! own failures say little.

use oneo_query::QueryError;
use tonic::Status;

use crate::error::ApiError;

pub(super) fn from_query(e: QueryError) -> Status {
    match &e {
        QueryError::ReadOnly(m) => Status::permission_denied(m.clone()),
        QueryError::Timeout(_) => Status::deadline_exceeded(e.to_string()),
        QueryError::Engine(df)
            if matches!(
                df.find_root(),
                datafusion::error::DataFusionError::ResourcesExhausted(_)
            ) =>
        {
            Status::resource_exhausted(e.to_string())
        }
        _ if e.is_caller_error() => Status::invalid_argument(e.to_string()),
        _ => {
            tracing::error!(error = %e, "Flight SQL query failed");
            Status::internal(e.to_string())
        }
    }
}

pub(super) fn from_api(e: ApiError) -> Status {
    match e {
        ApiError::Unauthenticated(m) => Status::unauthenticated(m),
        ApiError::Forbidden(m) => Status::permission_denied(m),
        ApiError::NotFound(m) => Status::not_found(m),
        ApiError::Unavailable(m) => Status::unavailable(m),
        ApiError::BadRequest(m) => Status::invalid_argument(m),
        ApiError::Validation(issues) => Status::invalid_argument(issues.to_string()),
        e @ (ApiError::Internal(_) | ApiError::Query(_)) => {
            tracing::error!(error = ?e, "Flight SQL call failed");
            Status::internal("internal error")
        }
        e => Status::invalid_argument(e.to_string()),
    }
}

/// A DataFusion error met while streaming, as the status the client sees.
pub(super) fn from_stream(e: datafusion::error::DataFusionError) -> Status {
    if let datafusion::error::DataFusionError::External(inner) = &e
        && let Some(q) = inner.downcast_ref::<QueryError>()
        && matches!(q, QueryError::Timeout(_))
    {
        return Status::deadline_exceeded(q.to_string());
    }
    from_query(QueryError::Engine(e))
}
