//! What each kind of step does, given the run it belongs to. Record writes go through
//! `/v1/records`' validation and write path in the run's transaction; email and HTTP calls
//! commit their attempt as `started` first (see the module above).

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use oneo_workflows::{Action, Position, Scope, Step, WorkflowSpec};
use serde_json::{Map, Value, json};
use sqlx::{Connection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::{Outcome, RunRow, WorkflowService};
use crate::db::run_writes;
use crate::schedules::mail::Mail;

/// A response body kept in the step's output, at most.
const BODY_LIMIT: usize = 64 * 1024;

/// The step being done and what it reads.
pub(super) struct StepContext<'a> {
    pub pool: &'a PgPool,
    pub service: &'a WorkflowService,
    pub run: &'a RunRow,
    pub spec: &'a WorkflowSpec,
    pub position: Position,
    pub path: &'a str,
}

/// The instant an approval without a timeout waits until: only a decision wakes it.
pub(super) fn never() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(9999, 12, 31, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

pub(super) fn type_name(a: &Action) -> &'static str {
    match a {
        Action::UpdateRecord { .. } => "update_record",
        Action::CreateRecord { .. } => "create_record",
        Action::SendEmail { .. } => "send_email",
        Action::HttpRequest { .. } => "http_request",
        Action::Condition { .. } => "condition",
        Action::Wait { .. } => "wait",
        Action::Loop { .. } => "loop",
        Action::Approval { .. } => "approval",
    }
}

impl StepContext<'_> {
    /// The trigger record (after the change; before it, for a delete) or the webhook body.
    fn trigger_record(&self) -> &Value {
        let t = &self.run.trigger.0;
        ["new", "old", "fields"]
            .iter()
            .filter_map(|k| t.get(*k))
            .find(|v| !v.is_null())
            .unwrap_or(&Value::Null)
    }

    fn trigger_object(&self) -> Option<&str> {
        self.run.trigger.0.get("object").and_then(Value::as_str)
    }

    fn trigger_id(&self) -> Option<Uuid> {
        self.run
            .trigger
            .0
            .get("record_id")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
    }

    fn loop_key(&self) -> Option<&str> {
        self.position
            .item
            .map(|_| self.spec.steps[self.position.step].key.as_str())
    }

    /// How many items the loop the run is in has.
    pub(super) fn items_len(&self, context: &Value) -> usize {
        self.loop_key()
            .and_then(|k| context.get("items")?.get(k)?.as_array().map(Vec::len))
            .unwrap_or(0)
    }

    fn with_scope<T>(&self, f: impl FnOnce(&Scope<'_>) -> T) -> T {
        let empty = Map::new();
        let ctx = &self.run.context.0;
        let steps = ctx
            .get("steps")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let item = match (self.loop_key(), self.position.item) {
            (Some(k), Some((i, _))) => ctx.get("items").and_then(|m| m.get(k)?.get(i)),
            _ => None,
        };
        f(&Scope {
            trigger: self.trigger_record(),
            steps,
            item,
        })
    }

    fn waiting(&self) -> Option<&Value> {
        self.run
            .waiting
            .as_ref()
            .map(|w| &w.0)
            .filter(|w| w.get("path").and_then(Value::as_str) == Some(self.path))
    }

    fn waiting_kind(&self) -> Option<&str> {
        self.waiting()?.get("kind")?.as_str()
    }

    fn idempotency_key(&self) -> String {
        format!("{}:{}", self.run.id, self.path)
    }
}

fn failed(reason: impl Into<String>) -> Outcome {
    Outcome::Failed {
        reason: reason.into(),
        retry: true,
        unknown: false,
    }
}

fn done(output: Value) -> Outcome {
    Outcome::Done { output, jump: None }
}

/// Does the step at the run's position.
pub(super) async fn perform(
    tx: &mut Transaction<'_, Postgres>,
    ctx: &StepContext<'_>,
    step: &Step,
) -> Result<Outcome, String> {
    match &step.action {
        Action::UpdateRecord {
            object,
            record,
            values,
        } => {
            let Some(object) = object.as_deref().or(ctx.trigger_object()) else {
                return Ok(failed("no object to update"));
            };
            let id = match record {
                Some(r) => {
                    let text = ctx.with_scope(|s| s.text(r));
                    match Uuid::parse_str(text.trim()) {
                        Ok(id) => id,
                        Err(_) => return Ok(failed(format!("`{text}` is not a record id"))),
                    }
                }
                None => match ctx.trigger_id() {
                    Some(id) => id,
                    None => return Ok(failed("the trigger has no record to update")),
                },
            };
            write_record(tx, ctx, object, id, false, values).await
        }
        Action::CreateRecord { object, values } => {
            write_record(tx, ctx, object, Uuid::now_v7(), true, values).await
        }
        Action::SendEmail { to, subject, body } => send_email(ctx, to, subject, body).await,
        Action::HttpRequest {
            method,
            url,
            headers,
            body,
            timeout_ms,
        } => http_request(ctx, method, url, headers, body.as_ref(), *timeout_ms).await,
        Action::Condition {
            when,
            then,
            otherwise,
        } => {
            let holds = match condition(tx, ctx, when).await {
                Ok(h) => h,
                Err(e) => return Ok(failed(e)),
            };
            Ok(Outcome::Done {
                output: json!({"result": holds}),
                jump: if holds {
                    Some(then.clone())
                } else {
                    otherwise.clone()
                },
            })
        }
        Action::Wait {
            seconds,
            until,
            until_condition,
        } => {
            wait(
                tx,
                ctx,
                *seconds,
                until.as_deref(),
                until_condition.as_deref(),
            )
            .await
        }
        Action::Loop {
            object, via, max, ..
        } => {
            let Some(id) = ctx.trigger_id() else {
                return Ok(failed("the trigger has no record to loop from"));
            };
            let limit = i64::from(*max) + 1;
            match run_writes::related(tx, ctx.run.workspace_id, object, via, id, limit).await {
                Ok(mut items) => {
                    items.truncate(*max as usize);
                    Ok(Outcome::Items(items))
                }
                Err(e) => Ok(failed(e)),
            }
        }
        Action::Approval {
            role,
            timeout_seconds,
            on_reject,
            on_timeout,
        } => Ok(approval(
            ctx,
            role,
            *timeout_seconds,
            on_reject.as_deref(),
            on_timeout.as_deref(),
        )),
    }
}

async fn write_record(
    tx: &mut Transaction<'_, Postgres>,
    ctx: &StepContext<'_>,
    object: &str,
    id: Uuid,
    create: bool,
    values: &Map<String, Value>,
) -> Result<Outcome, String> {
    let body: Map<String, Value> = ctx.with_scope(|s| {
        values
            .iter()
            .map(|(k, v)| (k.clone(), s.render(v)))
            .collect()
    });
    // A savepoint: a refused write leaves the run's own transaction usable for its log.
    let mut sp = tx.begin().await.map_err(|e| e.to_string())?;
    match run_writes::write(&mut sp, ctx.run.workspace_id, object, id, create, &body).await {
        Ok(record) => {
            sp.commit().await.map_err(|e| e.to_string())?;
            Ok(done(record))
        }
        Err(reason) => {
            sp.rollback().await.map_err(|e| e.to_string())?;
            Ok(failed(reason))
        }
    }
}

/// Commits the attempt as `started` before anything goes out, or finds that a process
/// before this one did and never learned the outcome.
async fn begin_attempt(
    ctx: &StepContext<'_>,
    step_type: &str,
    input: &Value,
) -> Result<Option<Outcome>, String> {
    let before: Option<String> = sqlx::query_scalar(
        "SELECT status FROM oneo.workflow_steps WHERE run_id = $1 AND path = $2 AND attempt = $3",
    )
    .bind(ctx.run.id)
    .bind(ctx.path)
    .bind(ctx.run.attempt)
    .fetch_optional(ctx.pool)
    .await
    .map_err(|e| e.to_string())?;
    if before.as_deref() == Some("started") {
        return Ok(Some(Outcome::Failed {
            reason: "the server stopped while this was being sent, so whether it arrived is unknown; it is not sent again".into(),
            retry: false,
            unknown: true,
        }));
    }
    sqlx::query(
        "INSERT INTO oneo.workflow_steps (run_id, workspace_id, workflow_id, path, step_type, attempt, status, input)
         VALUES ($1, $2, $3, $4, $5, $6, 'started', $7)",
    )
    .bind(ctx.run.id)
    .bind(ctx.run.workspace_id)
    .bind(ctx.run.workflow_id)
    .bind(ctx.path)
    .bind(step_type)
    .bind(ctx.run.attempt)
    .bind(sqlx::types::Json(input))
    .execute(ctx.pool)
    .await
    .map_err(|e| e.to_string())?;
    Ok(None)
}

async fn send_email(
    ctx: &StepContext<'_>,
    to: &[String],
    subject: &str,
    body: &str,
) -> Result<Outcome, String> {
    let (to, subject, body): (Vec<String>, String, String) = ctx.with_scope(|s| {
        (
            to.iter().map(|t| s.text(t)).collect(),
            s.text(subject),
            s.text(body),
        )
    });
    let mailer = match &ctx.service.mailer {
        Ok(m) => m,
        Err(e) => return Ok(failed(e.clone())),
    };
    // Only letters, digits and `-` before the `@`: the path may hold `[` and `.`.
    let local: String = ctx
        .idempotency_key()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let message_id = format!("{local}@oneo.workflow");
    let input = json!({"to": to, "subject": subject, "message_id": message_id});
    if let Some(unknown) = begin_attempt(ctx, "send_email", &input).await? {
        return Ok(unknown);
    }
    let mail = Mail {
        message_id: message_id.clone(),
        to: &to,
        subject,
        body,
        attachments: vec![],
    };
    Ok(match mailer.send(mail).await {
        Ok(()) => done(json!({"to": to, "message_id": message_id})),
        Err(e) => failed(e),
    })
}

async fn http_request(
    ctx: &StepContext<'_>,
    method: &str,
    url: &str,
    headers: &std::collections::BTreeMap<String, String>,
    body: Option<&Value>,
    timeout_ms: u64,
) -> Result<Outcome, String> {
    let (url, headers, body) = ctx.with_scope(|s| {
        (
            s.text(url),
            headers
                .iter()
                .map(|(k, v)| (k.clone(), s.text(v)))
                .collect::<Vec<_>>(),
            body.map(|b| s.render(b)),
        )
    });
    let Ok(method) = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
        return Ok(failed(format!("`{method}` is not an HTTP method")));
    };
    let input = json!({"method": method.as_str(), "url": url, "body": body});
    if let Some(unknown) = begin_attempt(ctx, "http_request", &input).await? {
        return Ok(unknown);
    }
    let mut req = ctx
        .service
        .http
        .request(method, &url)
        .timeout(std::time::Duration::from_millis(timeout_ms))
        // The same key on every attempt of this step, so the receiver can tell a retry.
        .header("Idempotency-Key", ctx.idempotency_key());
    for (k, v) in &headers {
        req = req.header(k, v);
    }
    if let Some(b) = &body {
        req = req.json(b);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        // Refused before anything was sent: safe to try again.
        Err(e) if e.is_connect() => return Ok(failed(format!("can't connect: {e}"))),
        Err(e) if e.is_timeout() => {
            return Ok(Outcome::Failed {
                reason: format!(
                    "no answer within {timeout_ms} ms; not tried again, as it may have arrived"
                ),
                retry: false,
                unknown: false,
            });
        }
        Err(e) => return Ok(failed(e.to_string())),
    };
    let status = resp.status();
    let bytes = resp.bytes().await.unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(BODY_LIMIT)]).into_owned();
    let body = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text.clone()));
    let output = json!({"status": status.as_u16(), "body": body});
    Ok(if status.is_success() {
        done(output)
    } else {
        Outcome::Failed {
            reason: format!(
                "HTTP {status}: {}",
                text.chars().take(300).collect::<String>()
            ),
            // The receiver answered: only an overload or a server fault is worth another try.
            retry: status.is_server_error() || status.as_u16() == 429,
            unknown: false,
        }
    })
}

/// A formula over the trigger record as it is now (as it was, once deleted).
async fn condition(
    tx: &mut Transaction<'_, Postgres>,
    ctx: &StepContext<'_>,
    formula: &str,
) -> Result<bool, String> {
    let Some(object) = ctx.trigger_object() else {
        return Err("the trigger has no record a condition could read".into());
    };
    let fields = run_writes::fields(tx, ctx.run.workspace_id, object).await?;
    let now = match ctx.trigger_id() {
        Some(id) => run_writes::read(tx, ctx.run.workspace_id, object, id).await?,
        None => None,
    };
    let json = now.as_ref().unwrap_or_else(|| ctx.trigger_record());
    let record = run_writes::typed(&fields, json);
    oneo_workflows::holds(Some(formula), Some(&record))
}

async fn wait(
    tx: &mut Transaction<'_, Postgres>,
    ctx: &StepContext<'_>,
    seconds: Option<u64>,
    until: Option<&str>,
    until_condition: Option<&str>,
) -> Result<Outcome, String> {
    let now = Utc::now();
    if ctx.waiting_kind() == Some("wait") {
        return Ok(done(json!({"woke_at": now})));
    }
    let at = |t: DateTime<Utc>| json!({"path": ctx.path, "kind": "wait", "until": t});
    if let Some(s) = seconds {
        let t = now + chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000));
        return Ok(Outcome::Wait {
            until: Some(t),
            waiting: at(t),
        });
    }
    if let Some(u) = until {
        let text = ctx.with_scope(|s| s.text(u));
        let t = DateTime::parse_from_rfc3339(text.trim())
            .map(|t| t.with_timezone(&Utc))
            .or_else(|_| {
                NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
                    .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
            });
        return Ok(match t {
            Ok(t) if t <= now => done(json!({"woke_at": now})),
            Ok(t) => Outcome::Wait {
                until: Some(t),
                waiting: at(t),
            },
            Err(_) => Outcome::Failed {
                reason: format!("`{text}` is not an instant (RFC 3339) or a date (YYYY-MM-DD)"),
                retry: false,
                unknown: false,
            },
        });
    }
    let formula = until_condition.unwrap_or("true");
    Ok(match condition(tx, ctx, formula).await {
        Ok(true) => done(json!({"woke_at": now})),
        Ok(false) => {
            let poll = chrono::Duration::from_std(ctx.service.config.condition_poll())
                .unwrap_or(chrono::Duration::seconds(5));
            Outcome::Wait {
                until: Some(now + poll),
                waiting: json!({"path": ctx.path, "kind": "condition"}),
            }
        }
        Err(e) => failed(e),
    })
}

fn approval(
    ctx: &StepContext<'_>,
    role: &str,
    timeout_seconds: Option<u64>,
    on_reject: Option<&str>,
    on_timeout: Option<&str>,
) -> Outcome {
    if ctx.waiting_kind() == Some("approval") {
        let decision = ctx
            .waiting()
            .and_then(|w| w.get("decision"))
            .filter(|d| !d.is_null());
        return match decision {
            Some(d) if d.get("approved") == Some(&Value::Bool(true)) => done(d.clone()),
            Some(d) => match on_reject {
                Some(k) => Outcome::Done {
                    output: d.clone(),
                    jump: Some(k.to_string()),
                },
                None => Outcome::End {
                    status: "failed",
                    reason: format!(
                        "rejected by key {}",
                        d.get("by").and_then(Value::as_str).unwrap_or("?")
                    ),
                },
            },
            None => match on_timeout {
                Some(k) => Outcome::Done {
                    output: json!({"timed_out": true}),
                    jump: Some(k.to_string()),
                },
                None => Outcome::End {
                    status: "failed",
                    reason: format!(
                        "no decision within {} s",
                        timeout_seconds.unwrap_or_default()
                    ),
                },
            },
        };
    }
    let until = timeout_seconds.map(|t| {
        Utc::now() + chrono::Duration::seconds(i64::try_from(t).unwrap_or(i64::MAX / 1000))
    });
    Outcome::Wait {
        until,
        waiting: json!({"path": ctx.path, "kind": "approval", "role": role, "deadline": until, "decision": null}),
    }
}
