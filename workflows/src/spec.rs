//! A workflow's definition as `/v1/workflows` takes it: a trigger, steps, and what each step
//! does on error. Steps run in order unless one names its `next` (a step's key, or `end`);
//! a `condition` jumps to `then` or `else`. Values of the trigger record and of earlier steps
//! are written `{{trigger.amount}}`, `{{steps.follow_up.id}}` and, inside a loop,
//! `{{item.subject}}`.

use std::collections::BTreeMap;

use oneo_catalog::FieldType;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The step key that ends a run.
pub const END: &str = "end";
/// Most steps in one workflow, loops' steps included.
pub const MAX_STEPS: usize = 100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    pub name: String,
    pub trigger: Trigger,
    pub steps: Vec<Step>,
    /// How deep workflows may fire one another (a run's writes triggering runs) before the
    /// run that would go deeper is cut.
    #[serde(default = "default_depth")]
    pub max_depth: u32,
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn default_depth() -> u32 {
    3
}

fn enabled() -> bool {
    true
}

/// What starts a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    RecordCreated {
        object: String,
        /// A boolean formula over the record's fields; the run starts only when it is true.
        #[serde(default)]
        filter: Option<String>,
    },
    RecordUpdated {
        object: String,
        #[serde(default)]
        filter: Option<String>,
    },
    /// `field` changed, optionally from one value and/or to another.
    FieldChanged {
        object: String,
        field: String,
        #[serde(default)]
        from: Option<Value>,
        #[serde(default)]
        to: Option<Value>,
        #[serde(default)]
        filter: Option<String>,
    },
    RecordDeleted {
        object: String,
        #[serde(default)]
        filter: Option<String>,
    },
    /// A cron expression read in an IANA zone (UTC unless given).
    Schedule {
        cron: String,
        #[serde(default = "utc")]
        time_zone: String,
    },
    /// Relative to a date field of each record: `offset_minutes` before (negative) or after.
    TimeBased {
        object: String,
        field: String,
        offset_minutes: i64,
        #[serde(default)]
        filter: Option<String>,
    },
    /// `POST /hooks/{workflow id}/{secret}` with a JSON body of these fields.
    Webhook {
        #[serde(default)]
        fields: Vec<WebhookField>,
    },
}

fn utc() -> String {
    "UTC".into()
}

impl Trigger {
    /// The object whose records start runs, if runs start from records.
    pub fn object(&self) -> Option<&str> {
        match self {
            Self::RecordCreated { object, .. }
            | Self::RecordUpdated { object, .. }
            | Self::FieldChanged { object, .. }
            | Self::RecordDeleted { object, .. }
            | Self::TimeBased { object, .. } => Some(object),
            Self::Schedule { .. } | Self::Webhook { .. } => None,
        }
    }
}

/// A field a webhook's body declares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookField {
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    #[serde(default)]
    pub required: bool,
}

/// One step: its key (unique in the workflow), what it does, where the run goes next, and
/// what happens when it fails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Map<String, Value>")]
pub struct Step {
    pub key: String,
    #[serde(flatten)]
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    #[serde(default)]
    pub on_error: OnError,
}

impl TryFrom<Map<String, Value>> for Step {
    type Error = String;

    /// The common fields taken out, the rest read as the action, so a field the action does
    /// not know is an error rather than ignored.
    fn try_from(mut map: Map<String, Value>) -> Result<Self, String> {
        let key = match map.remove("key") {
            Some(Value::String(k)) => k,
            Some(_) => return Err("`key` must be a string".into()),
            None => return Err("missing field `key`".into()),
        };
        let next = match map.remove("next") {
            None | Some(Value::Null) => None,
            Some(Value::String(n)) => Some(n),
            Some(_) => {
                return Err(format!(
                    "step `{key}`: `next` must be a step key or \"end\""
                ));
            }
        };
        let on_error = match map.remove("on_error") {
            None => OnError::default(),
            Some(v) => {
                serde_json::from_value(v).map_err(|e| format!("step `{key}`: on_error: {e}"))?
            }
        };
        let action =
            serde_json::from_value(Value::Object(map)).map_err(|e| format!("step `{key}`: {e}"))?;
        Ok(Self {
            key,
            action,
            next,
            on_error,
        })
    }
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Writes `values` to a record: the trigger's unless `object` and `record` (an id or a
    /// template) say otherwise.
    UpdateRecord {
        #[serde(default)]
        object: Option<String>,
        #[serde(default)]
        record: Option<String>,
        values: Map<String, Value>,
    },
    CreateRecord {
        object: String,
        values: Map<String, Value>,
    },
    SendEmail {
        to: Vec<String>,
        subject: String,
        #[serde(default)]
        body: String,
    },
    /// An outbound call; its response's JSON fields are the step's output.
    HttpRequest {
        #[serde(default = "post")]
        method: String,
        url: String,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        #[serde(default)]
        body: Option<Value>,
        #[serde(default = "timeout_ms")]
        timeout_ms: u64,
    },
    /// A boolean formula over the trigger record's fields; `then` or `else` (a step key or
    /// `end`; without `else`, the run goes on to the next step).
    Condition {
        when: String,
        then: String,
        #[serde(default, rename = "else")]
        otherwise: Option<String>,
    },
    /// Exactly one of: a duration, an instant (a template), or a formula over the trigger
    /// record that is re-read until true.
    Wait {
        #[serde(default)]
        seconds: Option<u64>,
        #[serde(default)]
        until: Option<String>,
        #[serde(default)]
        until_condition: Option<String>,
    },
    /// Runs `steps` once per related record: the records of `object` whose lookup `via`
    /// points at the trigger record, at most `max` of them.
    Loop {
        object: String,
        via: String,
        #[serde(default = "max_items")]
        max: u32,
        steps: Vec<Step>,
    },
    /// Pauses until a key of `role` or higher approves or rejects
    /// (`POST /v1/workflow-runs/{id}/approve|reject`), or the timeout passes.
    Approval {
        #[serde(default = "approver")]
        role: String,
        #[serde(default)]
        timeout_seconds: Option<u64>,
        #[serde(default)]
        on_reject: Option<String>,
        #[serde(default)]
        on_timeout: Option<String>,
    },
}

fn post() -> String {
    "POST".into()
}

fn timeout_ms() -> u64 {
    10_000
}

fn max_items() -> u32 {
    100
}

fn approver() -> String {
    "member".into()
}

/// What a failed step leads to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "do", rename_all = "snake_case", deny_unknown_fields)]
pub enum OnError {
    /// The run stops, failed, with the step's reason.
    #[default]
    Stop,
    /// The failure is recorded and the run goes on.
    Continue,
    /// Tried again after `backoff_ms`, doubling, up to `max_attempts` in all; then the run
    /// stops, failed.
    Retry {
        #[serde(default = "attempts")]
        max_attempts: u32,
        #[serde(default = "backoff")]
        backoff_ms: u64,
    },
}

fn attempts() -> u32 {
    3
}

fn backoff() -> u64 {
    1000
}
