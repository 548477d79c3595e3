//! Drives workflow runs, a step at a time, from their rows in PostgreSQL.
//!
//! A worker claims a due run with `FOR NO KEY UPDATE SKIP LOCKED` and holds it while it does
//! one step; the step's effect (a record written), its log row in `oneo.workflow_steps` and
//! the run's next position commit in one transaction. So any number of server processes
//! share the runs, a run is driven by one of them at a time, and a process killed mid-step
//! leaves the step undone, to be done by whoever claims the run next. An email or HTTP call
//! can't roll back: its attempt is committed as `started` before it goes out, and a run that
//! finds its step still `started` (the process died not knowing the outcome) marks it
//! `unknown` and never sends it again.
//!
//! `NO KEY` because the step rows' foreign key share-locks the run row: written on another
//! connection while the run is held, they would wait on a plain `FOR UPDATE` forever.

mod clock;
mod steps;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use oneo_workflows::{Next, OnError, Position, WorkflowSpec};
use serde_json::{Map, Value, json};
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::config::{DeliveryConfig, WorkflowConfig};
use crate::schedules::mail::Mailer;

/// The channel a new or woken run is announced on.
pub const CHANNEL: &str = "oneo_workflow_runs";

/// What workers share: settings, the mail and HTTP clients, and the specs they have read.
pub struct WorkflowService {
    pub config: WorkflowConfig,
    mailer: Result<Mailer, String>,
    http: reqwest::Client,
    specs: Mutex<HashMap<(Uuid, i32), Arc<WorkflowSpec>>>,
}

impl std::fmt::Debug for WorkflowService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowService")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl WorkflowService {
    /// Mail goes through the same SMTP server as deliveries (`ONEO_SMTP_URL`).
    pub fn new(config: WorkflowConfig, smtp: &DeliveryConfig) -> Result<Self, String> {
        let mailer = match &smtp.smtp_url {
            Some(url) => Ok(Mailer::new(url, &smtp.smtp_from)?),
            None => Err("no SMTP server is configured (set ONEO_SMTP_URL)".to_string()),
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!("oneo-workflows/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("the HTTP client: {e}"))?;
        Ok(Self {
            config,
            mailer,
            http,
            specs: Mutex::new(HashMap::new()),
        })
    }

    async fn spec(
        &self,
        pool: &PgPool,
        workflow: Uuid,
        version: i32,
    ) -> Result<Arc<WorkflowSpec>, String> {
        if let Some(s) = self
            .specs
            .lock()
            .ok()
            .and_then(|m| m.get(&(workflow, version)).cloned())
        {
            return Ok(s);
        }
        let raw: sqlx::types::Json<Value> = sqlx::query_scalar(
            "SELECT spec FROM oneo.workflow_versions WHERE workflow_id = $1 AND version = $2",
        )
        .bind(workflow)
        .bind(version)
        .fetch_one(pool)
        .await
        .map_err(|e| e.to_string())?;
        let spec = Arc::new(
            serde_json::from_value::<WorkflowSpec>(raw.0)
                .map_err(|e| format!("the saved definition no longer reads: {e}"))?,
        );
        if let Ok(mut m) = self.specs.lock() {
            m.insert((workflow, version), Arc::clone(&spec));
        }
        Ok(spec)
    }
}

/// Tells every server's workers that a run is due now.
pub async fn announce<'e>(db: impl sqlx::PgExecutor<'e>) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(db)
        .await
        .map(drop)
}

/// Runs the workers and their wake-up listener until `stop`.
pub async fn run(pool: PgPool, service: Arc<WorkflowService>, stop: CancellationToken) {
    let wake = Arc::new(Notify::new());
    tokio::spawn(listen(pool.clone(), Arc::clone(&wake), stop.clone()));
    tokio::spawn(run_clock(pool.clone(), service.config.tick(), stop.clone()));
    let workers = service.config.workflow_workers.max(1);
    let mut tasks = Vec::with_capacity(workers);
    for n in 0..workers {
        let (pool, service, wake, stop) = (
            pool.clone(),
            Arc::clone(&service),
            Arc::clone(&wake),
            stop.clone(),
        );
        tasks.push(tokio::spawn(
            async move { worker(pool, service, wake, stop).await }
                .instrument(tracing::info_span!("workflow_worker", n)),
        ));
    }
    for t in tasks {
        drop(t.await);
    }
}

/// Starts the runs of schedules and time-based triggers as they come due.
async fn run_clock(pool: PgPool, tick: std::time::Duration, stop: CancellationToken) {
    while !stop.is_cancelled() {
        if let Err(e) = clock::tick(&pool).await {
            tracing::warn!(error = %e, "the workflow clock could not start due runs; retrying");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(tick) => {}
        }
    }
}

async fn listen(pool: PgPool, wake: Arc<Notify>, stop: CancellationToken) {
    while !stop.is_cancelled() {
        let listener = async {
            let mut l = sqlx::postgres::PgListener::connect_with(&pool).await?;
            l.listen(CHANNEL).await?;
            loop {
                l.recv().await?;
                wake.notify_waiters();
            }
        };
        let outcome: sqlx::Result<()> = tokio::select! {
            () = stop.cancelled() => return,
            r = listener => r,
        };
        if let Err(e) = outcome {
            tracing::debug!(error = %e, "workflow wake-ups lost their connection; reconnecting");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}

async fn worker(
    pool: PgPool,
    service: Arc<WorkflowService>,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut prefer = None;
    while !stop.is_cancelled() {
        // Registered before looking, so an announcement during the look is not lost.
        let notified = wake.notified();
        match step_once(&pool, &service, prefer.take()).await {
            Ok(Stepped::Continue(id)) => {
                prefer = Some(id);
                continue;
            }
            Ok(Stepped::Blocked) => continue,
            Ok(Stepped::Nothing) => {}
            Err(e) => tracing::warn!(error = %e, "a workflow step could not be recorded; retrying"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = notified => {}
            () = tokio::time::sleep(service.config.tick()) => {}
        }
    }
}

/// What one claim did.
enum Stepped {
    /// No run was due.
    Nothing,
    /// A run did a step and can go on now.
    Continue(Uuid),
    /// A run did a step and now waits, or ended.
    Blocked,
}

/// A claimed run, as its row holds it.
#[derive(sqlx::FromRow)]
struct RunRow {
    id: Uuid,
    workflow_id: Uuid,
    workspace_id: Uuid,
    version: i32,
    status: String,
    trigger: sqlx::types::Json<Value>,
    position: Option<sqlx::types::Json<Position>>,
    context: sqlx::types::Json<Value>,
    waiting: Option<sqlx::types::Json<Value>>,
    attempt: i32,
}

const RUN_COLUMNS: &str =
    "id, workflow_id, workspace_id, version, status, trigger, position, context, waiting, attempt";

async fn claim(
    tx: &mut Transaction<'_, Postgres>,
    prefer: Option<Uuid>,
) -> sqlx::Result<Option<RunRow>> {
    let due =
        "status IN ('pending', 'running', 'waiting') AND coalesce(wake_at, created_at) <= now()";
    if let Some(id) = prefer {
        let row = sqlx::query_as(crate::db::audited(&format!(
            "SELECT {RUN_COLUMNS} FROM oneo.workflow_runs WHERE id = $1 AND {due}
             FOR NO KEY UPDATE SKIP LOCKED"
        )))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        if row.is_some() {
            return Ok(row);
        }
    }
    sqlx::query_as(crate::db::audited(&format!(
        "SELECT {RUN_COLUMNS} FROM oneo.workflow_runs WHERE {due}
         ORDER BY coalesce(wake_at, created_at) LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED"
    )))
    .fetch_optional(&mut **tx)
    .await
}

/// What a step came to.
pub(crate) enum Outcome {
    /// Done; its output is what later steps read. `jump` picks a branch.
    Done { output: Value, jump: Option<String> },
    /// A loop's items were read: the run enters it (or passes it, with none).
    Items(Vec<Value>),
    /// Paused until `until` (`None`: until a decision), with what it waits for.
    Wait {
        until: Option<DateTime<Utc>>,
        waiting: Value,
    },
    /// Failed. `retry` is false when trying again could do the step twice. `unknown`: an
    /// email or call went out, or not, from a process that died before it knew; never tried
    /// again, and the run goes on as the step's `on_error` says for a failure.
    Failed {
        reason: String,
        retry: bool,
        unknown: bool,
    },
    /// The run ends here with this status and reason (an approval rejected or timed out
    /// with nowhere to go).
    End {
        status: &'static str,
        reason: String,
    },
}

/// One step of one due run, or nothing when none is due.
async fn step_once(
    pool: &PgPool,
    service: &WorkflowService,
    prefer: Option<Uuid>,
) -> Result<Stepped, String> {
    let err = |e: sqlx::Error| e.to_string();
    let mut tx = pool.begin().await.map_err(err)?;
    let Some(run) = claim(&mut tx, prefer).await.map_err(err)? else {
        return Ok(Stepped::Nothing);
    };
    let span = tracing::info_span!("workflow_step", run = %run.id, workflow = %run.workflow_id);
    async {
        let spec = match service.spec(pool, run.workflow_id, run.version).await {
            Ok(s) => s,
            Err(e) => {
                finish(&mut tx, run.id, "failed", Some(&e)).await.map_err(err)?;
                tx.commit().await.map_err(err)?;
                return Ok(Stepped::Blocked);
            }
        };
        let position = run.position.as_ref().map_or_else(Position::start, |p| p.0);
        let Some(step) = spec.step_at(&position).cloned() else {
            finish(&mut tx, run.id, "succeeded", None).await.map_err(err)?;
            tx.commit().await.map_err(err)?;
            return Ok(Stepped::Blocked);
        };
        let path = spec.path_of(&position).unwrap_or_else(|| step.key.clone());
        if run.status == "pending" {
            sqlx::query("UPDATE oneo.workflow_runs SET status = 'running', started_at = now(), updated_at = now() WHERE id = $1")
                .bind(run.id)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        let ctx = steps::StepContext { pool, service, run: &run, spec: &spec, position, path: &path };
        let outcome = steps::perform(&mut tx, &ctx, &step).await?;
        let next = record(&mut tx, &ctx, &step, outcome).await.map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(next)
    }
    .instrument(span)
    .await
}

/// Writes a step's outcome: its log row, the run's outputs, position and status.
async fn record(
    tx: &mut Transaction<'_, Postgres>,
    ctx: &steps::StepContext<'_>,
    step: &oneo_workflows::Step,
    outcome: Outcome,
) -> sqlx::Result<Stepped> {
    let run = ctx.run;
    let mut context = run.context.0.clone();
    let failed = match &outcome {
        Outcome::Failed { unknown: true, .. } => "unknown",
        _ => "failed",
    };
    let (status, output, error, then) = match outcome {
        Outcome::Done { output, jump } => {
            set_output(&mut context, &step.key, output.clone());
            let items = ctx.items_len(&context);
            let next = ctx.spec.after(&ctx.position, jump.as_deref(), items);
            ("succeeded", Some(output), None, Then::Go(next))
        }
        Outcome::Items(items) => {
            let n = items.len();
            let output = json!({"count": n});
            set_output(&mut context, &step.key, output.clone());
            if let Value::Object(m) = &mut context {
                let all = m.entry("items").or_insert_with(|| json!({}));
                all[&step.key] = Value::Array(items);
            }
            let next = ctx.spec.enter_loop(&ctx.position, n);
            ("succeeded", Some(output), None, Then::Go(next))
        }
        Outcome::Wait { until, waiting } => (
            "waiting",
            None,
            None,
            Then::Pause {
                wake_at: until.unwrap_or_else(steps::never),
                waiting,
                attempt: run.attempt,
            },
        ),
        Outcome::Failed { reason, retry, .. } => match step.on_error {
            OnError::Continue => {
                set_output(&mut context, &step.key, json!({"error": reason}));
                let items = ctx.items_len(&context);
                let next = ctx.spec.after(&ctx.position, None, items);
                (failed, None, Some(reason), Then::Go(next))
            }
            OnError::Retry {
                max_attempts,
                backoff_ms,
            } if retry && u32::try_from(run.attempt).unwrap_or(u32::MAX) < max_attempts => {
                let factor = 1u64 << (run.attempt.max(1) - 1).min(20);
                let wait = backoff_ms.saturating_mul(factor).min(86_400_000);
                let wake_at = Utc::now()
                    + chrono::Duration::milliseconds(i64::try_from(wait).unwrap_or(i64::MAX));
                let waiting = json!({"path": ctx.path, "kind": "retry", "after": reason});
                let then = Then::Pause {
                    wake_at,
                    waiting,
                    attempt: run.attempt + 1,
                };
                (failed, None, Some(reason), then)
            }
            _ => {
                let whole = format!("step `{}` failed: {reason}", ctx.path);
                log_step(tx, ctx, step, failed, None, Some(&reason)).await?;
                finish(tx, run.id, "failed", Some(&whole)).await?;
                return Ok(Stepped::Blocked);
            }
        },
        Outcome::End { status, reason } => {
            log_step(tx, ctx, step, "failed", None, Some(&reason)).await?;
            finish(
                tx,
                run.id,
                status,
                Some(&format!("step `{}`: {reason}", ctx.path)),
            )
            .await?;
            return Ok(Stepped::Blocked);
        }
    };
    log_step(tx, ctx, step, status, output.as_ref(), error.as_deref()).await?;
    match then {
        Then::Go(Next::End) => {
            save(tx, run.id, &context, None, None, None, 1).await?;
            finish(tx, run.id, "succeeded", None).await?;
            Ok(Stepped::Blocked)
        }
        Then::Go(Next::At(p)) => {
            save(tx, run.id, &context, Some(p), None, None, 1).await?;
            Ok(Stepped::Continue(run.id))
        }
        Then::Pause {
            wake_at,
            waiting,
            attempt,
        } => {
            save(
                tx,
                run.id,
                &context,
                Some(ctx.position),
                Some(wake_at),
                Some(&waiting),
                attempt,
            )
            .await?;
            Ok(Stepped::Blocked)
        }
    }
}

/// Where a run goes after a step is logged.
enum Then {
    Go(Next),
    /// It stays at this step until `wake_at`, with the attempt it will make then.
    Pause {
        wake_at: DateTime<Utc>,
        waiting: Value,
        attempt: i32,
    },
}

/// An error as kept: at most 1,000 characters, so it stays in the row (never TOASTed) and
/// every change of the row carries it to the lake.
fn short(e: &str) -> String {
    match e.char_indices().nth(1000) {
        Some((i, _)) => format!("{}…", &e[..i]),
        None => e.to_string(),
    }
}

fn set_output(context: &mut Value, key: &str, output: Value) {
    if !context.is_object() {
        *context = json!({});
    }
    if let Value::Object(m) = context {
        let steps = m
            .entry("steps")
            .or_insert_with(|| Value::Object(Map::new()));
        steps[key] = output;
    }
}

/// The step's log row for this attempt, written or brought up to date.
async fn log_step(
    tx: &mut Transaction<'_, Postgres>,
    ctx: &steps::StepContext<'_>,
    step: &oneo_workflows::Step,
    status: &str,
    output: Option<&Value>,
    error: Option<&str>,
) -> sqlx::Result<()> {
    let finished = status != "waiting";
    sqlx::query(
        "INSERT INTO oneo.workflow_steps
           (run_id, workspace_id, workflow_id, path, step_type, attempt, status, output, error, finished_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, CASE WHEN $10 THEN clock_timestamp() END)
         ON CONFLICT (run_id, path, attempt) DO UPDATE
           SET status = EXCLUDED.status, output = EXCLUDED.output, error = EXCLUDED.error,
               finished_at = EXCLUDED.finished_at, updated_at = clock_timestamp()",
    )
    .bind(ctx.run.id)
    .bind(ctx.run.workspace_id)
    .bind(ctx.run.workflow_id)
    .bind(ctx.path)
    .bind(steps::type_name(&step.action))
    .bind(ctx.run.attempt)
    .bind(status)
    .bind(output.map(sqlx::types::Json))
    .bind(error.map(short))
    .bind(finished)
    .execute(&mut **tx)
    .await
    .map(drop)
}

async fn save(
    tx: &mut Transaction<'_, Postgres>,
    run: Uuid,
    context: &Value,
    position: Option<Position>,
    wake_at: Option<DateTime<Utc>>,
    waiting: Option<&Value>,
    attempt: i32,
) -> sqlx::Result<()> {
    let status = if waiting.is_some() {
        "waiting"
    } else {
        "running"
    };
    sqlx::query(
        "UPDATE oneo.workflow_runs
            SET context = $2, position = coalesce($3, position), wake_at = $4, waiting = $5,
                attempt = $6, status = $7, updated_at = clock_timestamp()
          WHERE id = $1",
    )
    .bind(run)
    .bind(sqlx::types::Json(context))
    .bind(position.map(sqlx::types::Json))
    .bind(wake_at)
    .bind(waiting.map(sqlx::types::Json))
    .bind(attempt)
    .bind(status)
    .execute(&mut **tx)
    .await
    .map(drop)
}

async fn finish(
    tx: &mut Transaction<'_, Postgres>,
    run: Uuid,
    status: &str,
    error: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE oneo.workflow_runs
            SET status = $2, error = $3, finished_at = clock_timestamp(), wake_at = NULL,
                waiting = NULL, updated_at = clock_timestamp()
          WHERE id = $1",
    )
    .bind(run)
    .bind(status)
    .bind(error.map(short))
    .execute(&mut **tx)
    .await
    .map(drop)
}
