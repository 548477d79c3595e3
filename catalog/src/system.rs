//! System objects: Oneo's own tables that stream into each workspace's lake beside its
//! objects, so reports, `/v1/sql` and Flight SQL read them like any object. Today these
//! are workflow runs and their steps (`workflow_run`, `workflow_step`).
//!
//! ```
//! use oneo_catalog::system::{SYSTEM_OBJECTS, system_object};
//! let ws = uuid::Uuid::nil();
//! let runs = system_object("workflow_runs").unwrap();
//! assert_eq!(runs.api_name, "workflow_run");
//! // A negative id of its own per workspace: never an object's.
//! assert!(runs.object_id(ws) < 0);
//! assert_ne!(runs.object_id(ws), SYSTEM_OBJECTS[1].object_id(ws));
//! ```

use crate::field::{FieldDef, FieldType};

/// A table of schema `oneo` whose rows (one workspace's, by `workspace_id`) are an object
/// of that workspace in the lake.
#[derive(Debug, Clone, Copy)]
pub struct SystemObject {
    /// The object's name in reports and SQL.
    pub api_name: &'static str,
    /// The PostgreSQL table, in schema `oneo`.
    pub table: &'static str,
    /// Its columns besides `id`, `created_at` and `updated_at`: (column, type).
    columns: &'static [(&'static str, FieldType)],
    /// Distinguishes the system objects' ids within a workspace.
    tag: i64,
}

use FieldType::{Datetime, Number, Text};

pub const SYSTEM_OBJECTS: [SystemObject; 2] = [
    SystemObject {
        api_name: "workflow_run",
        table: "workflow_runs",
        columns: &[
            ("workflow_id", Text),
            ("version", Number),
            ("status", Text),
            ("source", Text),
            ("depth", Number),
            ("parent_run", Text),
            ("error", Text),
            ("started_at", Datetime),
            ("finished_at", Datetime),
        ],
        tag: 0,
    },
    SystemObject {
        api_name: "workflow_step",
        table: "workflow_steps",
        columns: &[
            ("run_id", Text),
            ("workflow_id", Text),
            ("path", Text),
            ("step_type", Text),
            ("attempt", Number),
            ("status", Text),
            ("error", Text),
            ("started_at", Datetime),
            ("finished_at", Datetime),
        ],
        tag: 1,
    },
];

/// The system object fed by table `oneo.<table>`.
pub fn system_object(table: &str) -> Option<&'static SystemObject> {
    SYSTEM_OBJECTS.iter().find(|s| s.table == table)
}

impl SystemObject {
    /// Its fields, each named as its column; whole numbers have scale 0.
    pub fn fields(&self) -> Vec<FieldDef> {
        self.columns
            .iter()
            .map(|(name, t)| FieldDef {
                scale: (*t == Number).then_some(0),
                ..FieldDef::new(name, name, *t)
            })
            .collect()
    }

    /// Its object id in `workspace`: negative, so no object's (a positive sequence) is the
    /// same, and derived from the workspace's id, so every process agrees on it.
    pub fn object_id(&self, workspace: uuid::Uuid) -> i64 {
        let mut high = [0u8; 8];
        high.copy_from_slice(&workspace.as_bytes()[..8]);
        let base = (u64::from_be_bytes(high) >> 4) as i64;
        -(base * 2 + self.tag + 1)
    }
}
