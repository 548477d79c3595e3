use datafusion::error::DataFusionError;

/// Why a report or a query could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The spec is wrong: `part` names where (`filters[2].value`, `groupings[0].field`).
    #[error("{part}: {message}")]
    Spec { part: String, message: String },
    /// The SQL text is wrong or asks for something read-only SQL may not do.
    #[error("{0}")]
    Sql(String),
    /// The statement would change something or reach outside the lake; every SQL surface
    /// only reads.
    #[error("{0}")]
    ReadOnly(String),
    /// The query ran longer than the session allows.
    #[error("the query ran longer than {0} s and was stopped")]
    Timeout(u64),
    #[error("the lake could not be read: {0}")]
    Lake(#[from] deltalake::DeltaTableError),
    #[error("the query failed: {0}")]
    Engine(#[from] DataFusionError),
}

impl QueryError {
    pub fn spec(part: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Spec {
            part: part.into(),
            message: message.into(),
        }
    }

    /// Whether the caller's input is at fault (a 400) rather than the service (a 500).
    pub fn is_caller_error(&self) -> bool {
        // A plan or schema error comes from what the caller asked for; resource exhaustion is
        // the memory limit refusing an oversized question.
        match self {
            Self::Spec { .. } | Self::Sql(_) | Self::ReadOnly(_) => true,
            Self::Engine(e) => match e.find_root() {
                DataFusionError::Plan(_)
                | DataFusionError::SchemaError(..)
                | DataFusionError::SQL(..)
                | DataFusionError::NotImplemented(_)
                | DataFusionError::ResourcesExhausted(_) => true,
                // A lake table opened inside the engine (time travel to before it existed).
                DataFusionError::External(inner) => inner
                    .downcast_ref::<QueryError>()
                    .is_some_and(QueryError::is_caller_error),
                _ => false,
            },
            Self::Timeout(_) | Self::Lake(_) => false,
        }
    }
}
