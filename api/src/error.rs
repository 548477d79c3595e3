use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use oneo_catalog::Issues;
use serde_json::{Value, json};

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Every way a request can fail, each with its HTTP status and a stable `code`. The body is
/// `{"error": {"code", "message", "details"}}`; database internals never reach it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Validation(Issues),
    /// Per-item failures of a bulk request: `{index, field, reason}` each.
    #[error("{message}")]
    BulkFailed { message: String, items: Vec<Value> },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        details: Vec<Value>,
    },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("the service is unavailable: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] sqlx::Error),
    /// The query engine failed on a valid question (a lake read, an engine fault).
    #[error("the query failed: {0}")]
    Query(String),
}

impl ApiError {
    pub fn conflict(code: &'static str, message: impl Into<String>, details: Vec<Value>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
            details,
        }
    }

    pub fn no_object(name: &str) -> Self {
        Self::NotFound(format!("there is no object `{name}` in this workspace"))
    }

    fn parts(&self) -> (StatusCode, &'static str, Vec<Value>) {
        match self {
            Self::Validation(issues) => (
                StatusCode::BAD_REQUEST,
                "validation_failed",
                issues
                    .0
                    .iter()
                    .map(|i| json!({"field": i.field, "reason": i.reason}))
                    .collect(),
            ),
            Self::BulkFailed { items, .. } => {
                (StatusCode::BAD_REQUEST, "bulk_failed", items.clone())
            }
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request", vec![]),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", vec![]),
            Self::Conflict { code, details, .. } => (StatusCode::CONFLICT, code, details.clone()),
            Self::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated", vec![]),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", vec![]),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", vec![]),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", vec![]),
            Self::Query(_) => (StatusCode::INTERNAL_SERVER_ERROR, "query_failed", vec![]),
        }
    }
}

impl From<Issues> for ApiError {
    fn from(issues: Issues) -> Self {
        Self::Validation(issues)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Self::Unavailable("the database is unreachable".into())
            }
            _ => Self::Internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, details) = self.parts();
        if let Self::Internal(source) = &self {
            tracing::error!(error = %source, "request failed");
        }
        if let Self::Query(message) = &self {
            tracing::error!(error = %message, "query failed");
        }
        let body =
            json!({"error": {"code": code, "message": self.to_string(), "details": details}});
        let mut resp = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// A JSON body whose syntax errors come back in Oneo's error shape, not as plain text.
pub struct ApiJson<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(ApiError::BadRequest(format!(
                "invalid JSON body: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// Query parameters whose parse errors come back in Oneo's error shape.
pub struct ApiQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(rejection) => Err(ApiError::BadRequest(format!(
                "invalid query string: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// The field a serde message names (`missing field `cron``, `unknown field `x``), else
/// `whole`: where a definition read by serde is wrong.
pub(crate) fn serde_field(message: &str, whole: &str) -> String {
    message
        .split('`')
        .nth(1)
        .filter(|_| message.starts_with("missing field") || message.starts_with("unknown field"))
        .unwrap_or(whole)
        .to_string()
}
