//! The workflow intake: every committed record change, read from a replication slot of its
//! own, matched with the enabled workflows of its workspace and object; a match is a run.
//!
//! Exactly once: the runs of a transaction are inserted, keyed by `(workflow, commit LSN,
//! record, op)`, and only after that insert commits is the transaction's end acknowledged
//! to the slot. A crash in between replays the transaction; the unique key makes the replay
//! start nothing. Nothing committed is skipped, as the slot releases nothing unacknowledged.

use std::collections::HashMap;
use std::time::Duration;

use oneo_catalog::{FieldDef, SchemaView};
use oneo_ingest::layout::{ObjectLayout, load_layouts, object_id_of};
use oneo_ingest::source::{
    Cell, Change, ChangeSource, Op, RECORD_SCHEMA, RowChange, SlotConfig, open_stream,
};
use oneo_ingest::values::record_values;
use oneo_workflows::{RecordChange, RecordOp, WorkflowSpec};
use serde_json::{Map, Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Where the intake reads.
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    pub database_url: String,
    /// Its own slot: ingest's position says nothing about which changes started runs.
    pub slot: String,
    pub publication: String,
}

/// Runs until `stop`; a failure (PostgreSQL restarting, a slot in use) is logged and the
/// intake reconnects from the slot's position.
pub async fn run(pool: PgPool, cfg: IntakeConfig, stop: CancellationToken) {
    let mut wait = Duration::from_millis(500);
    while !stop.is_cancelled() {
        match run_once(&pool, &cfg, &stop).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, slot = %cfg.slot, "the workflow intake stopped; reconnecting")
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(30));
    }
}

async fn run_once(
    pool: &PgPool,
    cfg: &IntakeConfig,
    stop: &CancellationToken,
) -> Result<(), String> {
    let slot = SlotConfig {
        database_url: cfg.database_url.clone(),
        slot: cfg.slot.clone(),
        publication: cfg.publication.clone(),
    };
    let mut source = open_stream(&slot)
        .await
        .map_err(|e| e.to_string())?
        .start(stop.clone())
        .await
        .map_err(|e| e.to_string())?;
    let mut layouts = load_layouts(pool).await.map_err(|e| e.to_string())?;
    let mut rows: Vec<RowChange> = Vec::new();
    let mut catalog_changed = false;
    let mut commit = 0;
    let mut writer: Option<Uuid> = None;
    loop {
        let chunk = tokio::select! {
            () = stop.cancelled() => break,
            c = source.next_chunk() => c.map_err(|e| e.to_string())?,
        };
        for change in chunk {
            match change {
                Change::Begin { commit_lsn, .. } => {
                    rows.clear();
                    writer = None;
                    commit = commit_lsn;
                }
                Change::Row(r) if r.schema.as_ref() == RECORD_SCHEMA => rows.push(*r),
                // An object or field made or changed: the columns of later rows follow the
                // new layout (a trigger on a field added today must see its values). The
                // catalog may not be visible yet at this commit, so `start_runs` also
                // reloads on a row with a column the layout lacks.
                Change::Row(r)
                    if r.schema.as_ref() == "oneo"
                        && matches!(r.table.as_ref(), "objects" | "fields") =>
                {
                    catalog_changed = true;
                }
                // A run's step row committed with record writes: those writes are the run's,
                // and the runs they start are one deeper.
                Change::Row(r)
                    if r.schema.as_ref() == "oneo" && r.table.as_ref() == "workflow_steps" =>
                {
                    if let Some(Cell::Text(id)) = r.new.as_ref().map(|t| t.get("run_id"))
                        && let Ok(id) = Uuid::parse_str(id)
                    {
                        writer = Some(id);
                    }
                }
                Change::Row(_) => {}
                Change::Commit { end_lsn, .. } => {
                    if std::mem::take(&mut catalog_changed) {
                        layouts = load_layouts(pool).await.map_err(|e| e.to_string())?;
                    }
                    if !rows.is_empty() {
                        start_runs(pool, &mut layouts, commit, writer.take(), &rows).await?;
                        rows.clear();
                    }
                    source.acknowledge(end_lsn);
                }
            }
        }
    }
    source.close().await;
    Ok(())
}

/// The enabled record-triggered workflows of each (workspace, object) in a transaction.
type Workflows = HashMap<(Uuid, String), Vec<(Uuid, i32, WorkflowSpec)>>;

/// Inserts the runs one transaction's changes start, in one PostgreSQL transaction.
async fn start_runs(
    pool: &PgPool,
    layouts: &mut HashMap<i64, ObjectLayout>,
    commit: u64,
    writer: Option<Uuid>,
    rows: &[RowChange],
) -> Result<(), String> {
    // The run that wrote these changes, and so how deep the runs they start are.
    let parent: Option<(Uuid, i32)> = match writer {
        None => None,
        Some(id) => sqlx::query_scalar("SELECT depth FROM oneo.workflow_runs WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(|e| e.to_string())?
            .map(|d: i32| (id, d)),
    };
    let depth = parent.map_or(0, |(_, d)| d + 1);
    let mut workflows: Workflows = HashMap::new();
    let mut started = 0;
    let mut schemas: HashMap<Uuid, crate::db::schema::WorkspaceSchema> = HashMap::new();
    let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
    for row in rows {
        let Some(object_id) = object_id_of(&row.table) else {
            continue;
        };
        // An object made, or a field added, since the layouts were read.
        let stale = layouts.get(&object_id).is_none_or(|l| {
            [&row.new, &row.old]
                .into_iter()
                .flatten()
                .any(|t| l.lacks_columns_of(t))
        });
        if stale {
            *layouts = load_layouts(pool).await.map_err(|e| e.to_string())?;
        }
        let Some(layout) = layouts.get(&object_id) else {
            continue;
        };
        let key = (layout.workspace_id, layout.api_name.clone());
        if !workflows.contains_key(&key) {
            let found: Vec<(Uuid, i32, sqlx::types::Json<Value>)> = sqlx::query_as(
                "SELECT id, version, spec FROM oneo.workflows
                  WHERE workspace_id = $1 AND enabled AND spec->'trigger'->>'object' = $2",
            )
            .bind(layout.workspace_id)
            .bind(&layout.api_name)
            .fetch_all(pool)
            .await
            .map_err(|e| e.to_string())?;
            let parsed = found
                .into_iter()
                .filter_map(|(id, v, s)| serde_json::from_value(s.0).ok().map(|spec| (id, v, spec)))
                .collect();
            workflows.insert(key.clone(), parsed);
        }
        let candidates = &workflows[&key];
        if candidates.is_empty() {
            continue;
        }
        let schema = match schemas.entry(layout.workspace_id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(
                crate::db::schema::WorkspaceSchema::load(pool, layout.workspace_id)
                    .await
                    .map_err(|e| e.to_string())?,
            ),
        };
        let fields: Vec<FieldDef> = schema.fields_of(&layout.api_name).unwrap_or_default();
        let read = |t: &Option<oneo_ingest::source::Tuple>| {
            t.as_ref().map(|t| record_values(layout, t)).transpose()
        };
        let (old, new) = match (read(&row.old), read(&row.new)) {
            (Ok(o), Ok(n)) => (o, n),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(object = %layout.api_name, error = %e, "a record change could not be read for workflows");
                continue;
            }
        };
        let op = match row.op {
            Op::Insert => RecordOp::Created,
            Op::Update => RecordOp::Updated,
            Op::Delete => RecordOp::Deleted,
        };
        let change = RecordChange {
            object: &layout.api_name,
            op,
            old: old.as_ref(),
            new: new.as_ref(),
        };
        let record_id = new
            .as_ref()
            .or(old.as_ref())
            .and_then(|r| r.get("id"))
            .map(|v| v.to_json())
            .unwrap_or(Value::Null);
        let as_json = |r: &Option<oneo_workflows::Record>| {
            r.as_ref().map(|r| {
                Value::Object(
                    r.iter()
                        .map(|(k, v)| (k.clone(), v.to_json()))
                        .collect::<Map<_, _>>(),
                )
            })
        };
        for (id, version, spec) in candidates {
            match spec.trigger.fires_on(&change, &fields) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(workflow = %id, error = %e, "a workflow trigger no longer matches its object");
                    continue;
                }
            }
            let source = format!(
                "{}/{}/{}",
                oneo_ingest::format_lsn(commit),
                record_id.as_str().unwrap_or_default(),
                row.op.as_str()
            );
            let trigger = json!({"object": layout.api_name, "op": row.op.as_str(), "record_id": record_id,
                                 "old": as_json(&old), "new": as_json(&new)});
            // A chain of workflows firing one another stops at the triggered one's depth.
            let cut = (depth > i32::try_from(spec.max_depth).unwrap_or(i32::MAX)).then(|| {
                format!(
                    "cut: started by the writes of run {} at depth {depth}, deeper than this workflow's max_depth {}",
                    parent.map(|(p, _)| p.to_string()).unwrap_or_default(),
                    spec.max_depth
                )
            });
            started += sqlx::query(
                "INSERT INTO oneo.workflow_runs
                   (id, workflow_id, workspace_id, version, status, source, trigger, depth, parent_run, error, finished_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, CASE WHEN $10 IS NULL THEN NULL ELSE now() END)
                 ON CONFLICT (workflow_id, source) DO NOTHING",
            )
            .bind(Uuid::now_v7())
            .bind(id)
            .bind(layout.workspace_id)
            .bind(version)
            .bind(if cut.is_some() { "cut" } else { "pending" })
            .bind(&source)
            .bind(trigger)
            .bind(depth)
            .bind(parent.map(|(p, _)| p))
            .bind(&cut)
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?
            .rows_affected();
        }
    }
    if started > 0 {
        // Wakes the workers now rather than at their next tick.
        crate::workflow_worker::announce(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
    }
    tx.commit().await.map_err(|e| e.to_string())
}
