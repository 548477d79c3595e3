//! System objects: Oneo's own tables that stream into each workspace's lake beside its
//! objects, so reports, `/v1/sql` and Flight SQL read them like any object. Today these
//! are workflow runs and their steps (`workflow_run`, `workflow_step`) and model scores
//! (`score`).
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
    /// Its columns besides `id`, `created_at` and `updated_at`: (column, type, a
    /// number's scale).
    columns: &'static [(&'static str, FieldType, u32)],
    /// Distinguishes the system objects' ids within a workspace.
    tag: i64,
}

use FieldType::{Datetime, Number, Text};

pub const SYSTEM_OBJECTS: [SystemObject; 3] = [
    SystemObject {
        api_name: "workflow_run",
        table: "workflow_runs",
        columns: &[
            ("workflow_id", Text, 0),
            ("version", Number, 0),
            ("status", Text, 0),
            ("source", Text, 0),
            ("depth", Number, 0),
            ("parent_run", Text, 0),
            ("error", Text, 0),
            ("started_at", Datetime, 0),
            ("finished_at", Datetime, 0),
        ],
        tag: 0,
    },
    SystemObject {
        api_name: "workflow_step",
        table: "workflow_steps",
        columns: &[
            ("run_id", Text, 0),
            ("workflow_id", Text, 0),
            ("path", Text, 0),
            ("step_type", Text, 0),
            ("attempt", Number, 0),
            ("status", Text, 0),
            ("error", Text, 0),
            ("started_at", Datetime, 0),
            ("finished_at", Datetime, 0),
        ],
        tag: 1,
    },
    // The latest score of each record by each model (issue 23); read as `oneo.scores`.
    SystemObject {
        api_name: "score",
        table: "scores",
        columns: &[
            ("model_id", Text, 0),
            ("model", Text, 0),
            ("kind", Text, 0),
            ("object", Text, 0),
            ("record_id", Text, 0),
            ("version", Number, 0),
            ("score", Number, 0),
            ("probability", Number, 6),
        ],
        tag: 2,
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
            .map(|(name, t, scale)| FieldDef {
                scale: (*t == Number).then_some(*scale),
                ..FieldDef::new(name, name, *t)
            })
            .collect()
    }

    /// Its object id in `workspace`: negative, so no object's (a positive sequence) is the
    /// same, and derived from the workspace's id, so every process agrees on it.
    pub fn object_id(&self, workspace: uuid::Uuid) -> i64 {
        let mut high = [0u8; 8];
        high.copy_from_slice(&workspace.as_bytes()[..8]);
        // Room for four system objects per workspace (60 bits × 4 fits an i64), so no two
        // workspaces' ids meet.
        let base = (u64::from_be_bytes(high) >> 4) as i64;
        -(base * 4 + self.tag + 1)
    }
}
