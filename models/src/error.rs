use thiserror::Error;

/// Why a model could not be trained or used.
#[derive(Debug, Error)]
pub enum ModelError {
    /// Too few labelled rows, or too few of one class, to learn from or to validate.
    #[error("not enough data: {0}")]
    NotEnoughData(String),
    /// A feature matrix whose shape disagrees with its labels or with the model.
    #[error("bad input: {0}")]
    Shape(String),
    /// The optimiser failed (it reports why).
    #[error("training failed: {0}")]
    Training(String),
    /// A model definition the workspace can't have: `part` names where.
    #[error("{part}: {message}")]
    Definition { part: String, message: String },
    /// The lake could not be read for features.
    #[error("{0}")]
    Lake(String),
}

impl ModelError {
    pub fn definition(part: impl Into<String>, message: impl Into<String>) -> Self {
        ModelError::Definition {
            part: part.into(),
            message: message.into(),
        }
    }
}

impl From<oneo_query::QueryError> for ModelError {
    fn from(e: oneo_query::QueryError) -> Self {
        ModelError::Lake(e.to_string())
    }
}

impl From<datafusion::error::DataFusionError> for ModelError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        ModelError::Lake(format!("the feature query failed: {e}"))
    }
}

impl From<datafusion::arrow::error::ArrowError> for ModelError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        ModelError::Lake(format!("the feature rows could not be read: {e}"))
    }
}
