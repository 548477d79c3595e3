use serde::Serialize;

/// One precise complaint about user input: where (`field`, a path such as `options[2]`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    pub field: String,
    pub reason: String,
}

impl Issue {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Every issue found in one piece of input, so a caller can fix them all at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(|i| format!("{}: {}", i.field, i.reason)).collect::<Vec<_>>().join("; "))]
pub struct Issues(pub Vec<Issue>);

impl Issues {
    pub fn one(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self(vec![Issue::new(field, reason)])
    }
}
