//! Oneo's workflow automation. This crate holds a workflow's definition ([`WorkflowSpec`]:
//! a trigger, steps, per-step error handling) and its validation against a workspace's
//! objects, trigger decisions, and the pure part of running one ([`Position`], [`Scope`]);
//! the worker in `api` keeps runs durable in PostgreSQL.
//!
//! ```
//! use oneo_catalog::{FieldDef, FieldType, SchemaView};
//! use oneo_workflows::WorkflowSpec;
//!
//! struct Crm;
//! impl SchemaView for Crm {
//!     fn fields_of(&self, object: &str) -> Option<Vec<FieldDef>> {
//!         (object == "deal").then(|| vec![FieldDef::new("stage", "Stage", FieldType::Text)])
//!     }
//! }
//! let spec: WorkflowSpec = serde_json::from_value(serde_json::json!({
//!     "name": "Won deals",
//!     "trigger": {"type": "field_changed", "object": "deal", "field": "stage", "to": "closed_won"},
//!     "steps": [{"key": "tell", "type": "send_email", "to": ["sales@example.com"],
//!                "subject": "Won: {{trigger.stage}}"}],
//! })).unwrap();
//! assert!(spec.validate(&Crm).is_ok());
//! ```

mod engine;
mod spec;
mod trigger;
mod validate;

pub use engine::{Next, Position, Scope};

pub use spec::{Action, END, MAX_STEPS, OnError, Step, Trigger, WebhookField, WorkflowSpec};
pub use trigger::{Record, RecordChange, RecordOp, holds};
