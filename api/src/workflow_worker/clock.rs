//! Runs started by time: a `schedule` trigger's cron fires, and a `time_based` trigger's
//! records coming due ("3 days before close_date").
//!
//! Each workflow's mark (`next_fire_at`, `scanned_until`) moves in the transaction that
//! inserts the runs it passed, with the workflow row held `FOR NO KEY UPDATE SKIP LOCKED`,
//! so of several servers one handles a workflow at a time; the runs' sources
//! (`schedule/<fire>`, `time/<record>/<due>`) are unique per workflow besides. A mark that
//! is null starts from now: a new, changed or re-enabled workflow starts no backlog. Fires
//! missed while no server ran fold into one run.

use chrono::{DateTime, Utc};
use oneo_catalog::FieldType;
use oneo_workflows::{Trigger, WorkflowSpec};
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::db::run_writes;

/// Records one time-based workflow starts per tick, at most; the rest wait for the next.
const DUE_PER_TICK: i64 = 10_000;

#[derive(sqlx::FromRow)]
struct Timed {
    id: Uuid,
    workspace_id: Uuid,
    version: i32,
    spec: sqlx::types::Json<WorkflowSpec>,
    next_fire_at: Option<DateTime<Utc>>,
    scanned_until: Option<DateTime<Utc>>,
}

/// Starts the runs time has made due; how many.
pub(super) async fn tick(pool: &PgPool) -> Result<u64, String> {
    let err = |e: sqlx::Error| e.to_string();
    let mut tx = pool.begin().await.map_err(err)?;
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *tx)
        .await
        .map_err(err)?;
    let due: Vec<Timed> = sqlx::query_as(
        "SELECT id, workspace_id, version, spec, next_fire_at, scanned_until FROM oneo.workflows
          WHERE enabled AND spec->'trigger'->>'type' IN ('schedule', 'time_based')
            AND (next_fire_at IS NULL OR next_fire_at <= now())
          FOR NO KEY UPDATE SKIP LOCKED",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(err)?;
    let mut started = 0;
    for w in due {
        let (next, scanned) = match &w.spec.0.trigger {
            t @ Trigger::Schedule { .. } => {
                if let Some(fire) = w.next_fire_at {
                    let t = fire.to_rfc3339();
                    let trigger = json!({"op": "schedule", "fields": {"fire_at": t}});
                    started += insert(&mut tx, &w, &format!("schedule/{t}"), trigger).await?;
                }
                // A cron that never fires again parks the workflow far ahead.
                (
                    Some(t.next_fire_after(now).unwrap_or_else(super::steps::never)),
                    None,
                )
            }
            Trigger::TimeBased { .. } => {
                if let Some(from) = w.scanned_until {
                    started += due_records(&mut tx, &w, from, now).await?;
                }
                // Looked at again on every tick.
                (Some(now), Some(now))
            }
            _ => continue,
        };
        sqlx::query("UPDATE oneo.workflows SET next_fire_at = $2, scanned_until = coalesce($3, scanned_until) WHERE id = $1")
            .bind(w.id)
            .bind(next)
            .bind(scanned)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
    }
    if started > 0 {
        super::announce(&mut *tx).await.map_err(err)?;
    }
    tx.commit().await.map_err(err)?;
    Ok(started)
}

async fn insert(
    conn: &mut PgConnection,
    w: &Timed,
    source: &str,
    trigger: Value,
) -> Result<u64, String> {
    sqlx::query(
        "INSERT INTO oneo.workflow_runs (id, workflow_id, workspace_id, version, status, source, trigger)
         VALUES ($1, $2, $3, $4, 'pending', $5, $6) ON CONFLICT (workflow_id, source) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(w.id)
    .bind(w.workspace_id)
    .bind(w.version)
    .bind(source)
    .bind(trigger)
    .execute(conn)
    .await
    .map(|r| r.rows_affected())
    .map_err(|e| e.to_string())
}

/// The records whose field, moved by the offset, passed in `(from, to]`, each a run.
async fn due_records(
    conn: &mut PgConnection,
    w: &Timed,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<u64, String> {
    let Trigger::TimeBased {
        object,
        field,
        offset_minutes,
        ..
    } = &w.spec.0.trigger
    else {
        return Ok(0);
    };
    let Some(o) = crate::db::schema::load_object(&mut *conn, w.workspace_id, object)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(0);
    };
    let Some(f) = o.field(field) else {
        return Ok(0);
    };
    // Column names come from Oneo's own ids; a date counts from midnight UTC.
    let at = match f.def.field_type {
        FieldType::Date => format!("(r.{}::timestamp AT TIME ZONE 'UTC')", f.column()),
        FieldType::Datetime => format!("r.{}", f.column()),
        _ => return Ok(0),
    };
    let offset = chrono::Duration::minutes(*offset_minutes);
    let ids: Vec<Uuid> = sqlx::query_scalar(crate::db::audited(&format!(
        "SELECT r.id FROM {} r WHERE {at} > $1 AND {at} <= $2 ORDER BY r.id LIMIT $3",
        o.table()
    )))
    .bind(from - offset)
    .bind(to - offset)
    .bind(DUE_PER_TICK)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| e.to_string())?;
    let defs = o.defs();
    let mut started = 0;
    for id in ids {
        let Some(json) = run_writes::read(conn, w.workspace_id, object, id).await? else {
            continue;
        };
        let record = run_writes::typed(&defs, &json);
        // The filter, and the due instant as the trigger defines it.
        let Ok(Some(due)) = w.spec.0.trigger.due_at(&record) else {
            continue;
        };
        let source = format!("time/{id}/{}", due.to_rfc3339());
        let trigger =
            json!({"object": object, "op": "time", "record_id": id, "due_at": due, "new": json});
        started += insert(conn, w, &source, trigger).await?;
    }
    Ok(started)
}
