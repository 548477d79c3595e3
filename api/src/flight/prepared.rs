//! Prepared statements: the server keeps each one's SQL and bound parameters under an opaque
//! handle, for the workspace that created it only.
//!
//! The handle stays the same when parameters are bound, so clients that ignore the updated
//! handle of `DoPutPreparedStatementResult` (older Flight SQL clients) work too.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use tonic::Status;
use uuid::Uuid;

/// Open statements a workspace may hold at once.
const MAX_PER_WORKSPACE: usize = 1_000;
/// A statement nobody used for this long is closed for its client.
const IDLE: Duration = Duration::from_secs(3_600);

/// A statement as prepared: its text and the values bound last.
#[derive(Debug, Clone)]
pub(super) struct Prepared {
    pub sql: String,
    pub params: Option<RecordBatch>,
}

struct Entry {
    workspace_id: Uuid,
    prepared: Prepared,
    used: Instant,
}

#[derive(Default)]
pub(super) struct PreparedStatements(Mutex<HashMap<Bytes, Entry>>);

impl PreparedStatements {
    pub fn create(&self, workspace_id: Uuid, sql: String) -> Result<Bytes, Status> {
        let mut map = self.lock();
        let now = Instant::now();
        map.retain(|_, e| now.duration_since(e.used) < IDLE);
        let open = map
            .values()
            .filter(|e| e.workspace_id == workspace_id)
            .count();
        if open >= MAX_PER_WORKSPACE {
            return Err(Status::resource_exhausted(format!(
                "this workspace has {open} prepared statements open; close some first"
            )));
        }
        let handle = Bytes::from(Uuid::new_v4().to_string());
        map.insert(
            handle.clone(),
            Entry {
                workspace_id,
                prepared: Prepared { sql, params: None },
                used: now,
            },
        );
        Ok(handle)
    }

    /// The statement, if `workspace_id` prepared it; another workspace's handle is unknown.
    pub fn get(&self, workspace_id: Uuid, handle: &[u8]) -> Result<Prepared, Status> {
        let mut map = self.lock();
        let entry = Self::entry(&mut map, workspace_id, handle)?;
        entry.used = Instant::now();
        Ok(entry.prepared.clone())
    }

    pub fn bind(
        &self,
        workspace_id: Uuid,
        handle: &[u8],
        params: RecordBatch,
    ) -> Result<(), Status> {
        let mut map = self.lock();
        let entry = Self::entry(&mut map, workspace_id, handle)?;
        entry.used = Instant::now();
        entry.prepared.params = Some(params);
        Ok(())
    }

    pub fn close(&self, workspace_id: Uuid, handle: &[u8]) -> Result<(), Status> {
        let mut map = self.lock();
        Self::entry(&mut map, workspace_id, handle)?;
        map.remove(handle);
        Ok(())
    }

    fn entry<'a>(
        map: &'a mut HashMap<Bytes, Entry>,
        workspace_id: Uuid,
        handle: &[u8],
    ) -> Result<&'a mut Entry, Status> {
        map.get_mut(handle)
            .filter(|e| e.workspace_id == workspace_id)
            .ok_or_else(|| {
                Status::not_found("no such prepared statement (closed, expired, or never prepared)")
            })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Bytes, Entry>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_belongs_to_its_workspace() {
        let statements = PreparedStatements::default();
        let (ours, theirs) = (Uuid::new_v4(), Uuid::new_v4());
        let handle = statements.create(ours, "SELECT 1".into()).expect("created");
        assert_eq!(statements.get(ours, &handle).expect("ours").sql, "SELECT 1");
        let e = statements.get(theirs, &handle).expect_err("not theirs");
        assert_eq!(e.code(), tonic::Code::NotFound);
        assert!(statements.close(theirs, &handle).is_err());
        statements.close(ours, &handle).expect("closed");
        assert!(statements.get(ours, &handle).is_err());
    }
}
