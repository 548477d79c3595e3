//! The schedules' and deliveries' rows: claiming due fires, holding a delivery while it is
//! tried, recording each attempt, and reading the log.

use chrono::{DateTime, Utc};
use oneo_dashboards::ScheduleSpec;
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::{DeliveryService, Outcome};
use crate::config::DeliveryConfig;

/// A due schedule: id, workspace, name, spec, its first unclaimed fire, and the database's
/// clock (one clock for every server process).
type DueRow = (
    Uuid,
    Uuid,
    String,
    sqlx::types::Json<Value>,
    DateTime<Utc>,
    DateTime<Utc>,
);

/// Claims every due fire, one schedule per transaction: the schedule row is locked (others
/// skip it), the fire's delivery written, and `next_fire_at` moved past it, together. How
/// many fires were claimed.
pub(crate) async fn claim_due_fires(
    pool: &PgPool,
    service: &DeliveryService,
) -> sqlx::Result<usize> {
    let mut claimed = 0;
    loop {
        let mut tx = pool.begin().await?;
        let due: Option<DueRow> = sqlx::query_as(
            "SELECT id, workspace_id, name, spec, next_fire_at, clock_timestamp()
                   FROM oneo.schedules WHERE next_fire_at <= clock_timestamp()
                  ORDER BY next_fire_at LIMIT 1 FOR UPDATE SKIP LOCKED",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some((id, workspace, name, spec, next_fire, now)) = due else {
            return Ok(claimed);
        };
        let parsed = serde_json::from_value::<ScheduleSpec>(spec.0.clone())
            .map_err(|e| e.to_string())
            .and_then(|s| s.when().map(|w| (s, w)).map_err(|e| e.to_string()));
        let (schedule, times) = match parsed {
            Ok(p) => p,
            Err(why) => {
                // Never due again until it is fixed: a broken row must not spin the loop.
                tracing::warn!(schedule = %id, error = %why, "a stored schedule no longer parses");
                sqlx::query("UPDATE oneo.schedules SET next_fire_at = NULL WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                continue;
            }
        };
        let due = times.due(next_fire, now, service.grace(), schedule.missed);
        let (status, error) = if due.send {
            ("pending", None)
        } else {
            (
                "skipped",
                Some("missed while no server was running; this schedule skips missed fires"),
            )
        };
        let inserted = sqlx::query(
            "INSERT INTO oneo.deliveries
                 (id, schedule_id, workspace_id, schedule_name, spec, fire_at, status,
                  next_attempt_at, recipients, formats, missed, error, finished_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $7 = 'pending' THEN $6 END, $8, $9, $10, $11,
                     CASE WHEN $7 = 'skipped' THEN clock_timestamp() END)
             ON CONFLICT (schedule_id, fire_at) WHERE NOT manual DO NOTHING",
        )
        .bind(Uuid::now_v7())
        .bind(id)
        .bind(workspace)
        .bind(&name)
        .bind(&spec)
        .bind(due.fire_at)
        .bind(status)
        .bind(&schedule.recipients)
        .bind(formats(&schedule))
        .bind(i32::try_from(due.folded).unwrap_or(i32::MAX))
        .bind(error)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("UPDATE oneo.schedules SET next_fire_at = $2 WHERE id = $1")
            .bind(id)
            .bind(due.next)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        claimed += usize::try_from(inserted).unwrap_or(0);
    }
}

fn formats(spec: &ScheduleSpec) -> Vec<String> {
    spec.formats
        .iter()
        .map(|f| {
            serde_json::to_value(f)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        })
        .collect()
}

/// A "send now": a delivery of `spec` due at once, outside the schedule's fires.
pub(crate) async fn insert_manual(
    pool: &PgPool,
    workspace: Uuid,
    schedule: Uuid,
    name: &str,
    spec: &ScheduleSpec,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO oneo.deliveries
             (id, schedule_id, workspace_id, schedule_name, spec, fire_at, manual, status,
              next_attempt_at, recipients, formats)
         VALUES ($1, $2, $3, $4, $5, clock_timestamp(), true, 'pending', clock_timestamp(), $6, $7)",
    )
    .bind(id)
    .bind(schedule)
    .bind(workspace)
    .bind(name)
    .bind(sqlx::types::Json(spec))
    .bind(&spec.recipients)
    .bind(formats(spec))
    .execute(pool)
    .await?;
    Ok(id)
}

/// A delivery held for one attempt (its row locked by the transaction that holds it).
pub(crate) struct Held {
    pub id: Uuid,
    pub schedule_id: Option<Uuid>,
    pub workspace_id: Uuid,
    pub schedule_name: String,
    pub spec: Value,
    pub fire_at: DateTime<Utc>,
    pub missed: i32,
    pub attempts: i32,
}

type HeldRow = (
    Uuid,
    Option<Uuid>,
    Uuid,
    String,
    sqlx::types::Json<Value>,
    DateTime<Utc>,
    i32,
    i32,
);

/// Locks the next due delivery (or `only`, when it is due), skipping those other processes
/// hold. `NO KEY UPDATE`, not `UPDATE`: the attempt writes the delivery's files (rows whose
/// foreign key share-locks this one) on other connections while the lock is held.
pub(crate) async fn hold_due(
    tx: &mut Transaction<'_, Postgres>,
    only: Option<Uuid>,
) -> sqlx::Result<Option<Held>> {
    let row: Option<HeldRow> = sqlx::query_as(
        "SELECT id, schedule_id, workspace_id, schedule_name, spec, fire_at, missed, attempts
           FROM oneo.deliveries
          WHERE status IN ('pending', 'retrying') AND next_attempt_at <= clock_timestamp()
            AND ($1::uuid IS NULL OR id = $1)
          ORDER BY next_attempt_at LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED",
    )
    .bind(only)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(
        |(id, schedule_id, workspace_id, schedule_name, spec, fire_at, missed, attempts)| Held {
            id,
            schedule_id,
            workspace_id,
            schedule_name,
            spec: spec.0,
            fire_at,
            missed,
            attempts,
        },
    ))
}

/// Writes one attempt's outcome: sent, skipped, or failed (retried after a backoff while
/// attempts remain, then failed for good).
pub(crate) async fn record(
    tx: &mut Transaction<'_, Postgres>,
    held: &Held,
    outcome: Outcome,
    config: &DeliveryConfig,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    let attempts = held.attempts + 1;
    let (status, error, next, files, lsn) = match outcome {
        Outcome::Sent(sent) => ("sent", None, None, json!(sent.files), sent.lsn),
        Outcome::Skipped(why) => ("skipped", Some(why), None, json!([]), None),
        Outcome::Failed(why) => {
            let left = u32::try_from(attempts).unwrap_or(u32::MAX) < config.max_attempts;
            let wait = config.backoff(u32::try_from(attempts).unwrap_or(u32::MAX));
            // Counted on the database's clock, as `hold_due` compares with it.
            let next = left.then(|| i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
            let status = if left { "retrying" } else { "failed" };
            tracing::warn!(delivery = %held.id, attempts, error = %why, status, "a delivery attempt failed");
            (status, Some(why), next, json!([]), None)
        }
    };
    let entry = json!([{"at": now, "outcome": status, "error": error}]);
    sqlx::query(
        "UPDATE oneo.deliveries
            SET status = $2, attempts = $3, error = $4,
                next_attempt_at = clock_timestamp() + $5::bigint * interval '1 millisecond',
                files = CASE WHEN $2 = 'sent' THEN $6 ELSE files END,
                lsn = coalesce($7, lsn),
                attempt_log = attempt_log || $8,
                finished_at = CASE WHEN $2 IN ('sent', 'skipped', 'failed') THEN $9 END
          WHERE id = $1",
    )
    .bind(held.id)
    .bind(status)
    .bind(attempts)
    .bind(error)
    .bind(next)
    .bind(files)
    .bind(lsn)
    .bind(entry)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A delivery as `/v1/deliveries` shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    id: Uuid,
    /// Null once the schedule is deleted (the log outlives it).
    schedule_id: Option<Uuid>,
    schedule_name: String,
    fire_at: DateTime<Utc>,
    /// A "send now" rather than a fire of the expression.
    manual: bool,
    /// `pending`, `retrying`, `sent`, `failed` or `skipped`.
    pub(crate) status: String,
    attempts: i32,
    next_attempt_at: Option<DateTime<Utc>>,
    recipients: Vec<String>,
    formats: Vec<String>,
    /// `[{name, format, bytes, linked}]`: each file sent, and whether it went as a link.
    #[schema(value_type = Vec<Object>)]
    files: Value,
    /// The lake position the numbers reflect.
    lsn: Option<String>,
    /// Why the last attempt failed, or why the delivery was skipped.
    error: Option<String>,
    /// Earlier fires folded into this one (missed while no server ran).
    missed: i32,
    /// `[{at, outcome, error}]`, one per attempt.
    #[schema(value_type = Vec<Object>)]
    attempt_log: Value,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, schedule_id, schedule_name, fire_at, manual, status, attempts,
    next_attempt_at, recipients, formats, files, lsn, error, missed, attempt_log, created_at,
    finished_at";

fn delivery(r: &sqlx::postgres::PgRow) -> sqlx::Result<Delivery> {
    use sqlx::Row;
    Ok(Delivery {
        id: r.try_get("id")?,
        schedule_id: r.try_get("schedule_id")?,
        schedule_name: r.try_get("schedule_name")?,
        fire_at: r.try_get("fire_at")?,
        manual: r.try_get("manual")?,
        status: r.try_get("status")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        recipients: r.try_get("recipients")?,
        formats: r.try_get("formats")?,
        files: r.try_get::<sqlx::types::Json<Value>, _>("files")?.0,
        lsn: r.try_get("lsn")?,
        error: r.try_get("error")?,
        missed: r.try_get("missed")?,
        attempt_log: r.try_get::<sqlx::types::Json<Value>, _>("attempt_log")?.0,
        created_at: r.try_get("created_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

pub(crate) async fn load_delivery(
    pool: &PgPool,
    workspace: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Delivery>> {
    let sql = format!("SELECT {COLUMNS} FROM oneo.deliveries WHERE id = $1 AND workspace_id = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(workspace)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(delivery).transpose()
}

/// The workspace's deliveries, newest first; of one schedule when given.
pub(crate) async fn list_deliveries(
    pool: &PgPool,
    workspace: Uuid,
    schedule: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Delivery>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM oneo.deliveries
          WHERE workspace_id = $1 AND ($2::uuid IS NULL OR schedule_id = $2)
          ORDER BY created_at DESC, id DESC LIMIT $3"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(workspace)
        .bind(schedule)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    rows.iter().map(delivery).collect()
}
