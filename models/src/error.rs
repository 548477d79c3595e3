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
}
