//! One delivery's content: the target (a saved report or a dashboard) computed now, its
//! condition checked, its files written, and the mail that carries them.

use chrono::Utc;
use oneo_dashboards::{Condition, Format, PaperSize, ScheduleSpec, Target, display_number, number};
use oneo_query::ReportKind;
use serde::Serialize;
use serde_json::Value;

use super::DeliveryService;
use super::mail::{Mail, Mailer};
use super::store::Held;
use crate::AppState;
use crate::auth::{Caller, Role};
use crate::dashboards::{Recompute, refresh_one};
use crate::routes::saved::{self, RunSaved, file_name, report_file};
use crate::share::{Link, sign};

/// A file of the delivery.
pub(crate) struct File {
    pub name: String,
    pub format: Format,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// The target computed and written.
pub(crate) struct Rendered {
    /// The report's or the dashboard's name.
    title: String,
    /// Lines of the mail's summary: what it is, and its headline numbers.
    summary: Vec<String>,
    files: Vec<File>,
    lsn: Option<String>,
    /// Why the condition was not met, when it was not.
    pub unmet: Option<String>,
}

/// A file as the delivery log records it.
#[derive(Debug, Serialize)]
pub(crate) struct SentFile {
    name: String,
    format: Format,
    bytes: usize,
    /// Sent as a download link, being over the attachment limit.
    linked: bool,
}

/// What a sent delivery records.
pub(crate) struct Sent {
    pub files: Vec<SentFile>,
    pub lsn: Option<String>,
}

fn ext(f: Format) -> &'static str {
    match f {
        Format::Pdf => "pdf",
        Format::Csv => "csv",
        Format::Xlsx => "xlsx",
    }
}

/// Whether `value` satisfies a `crosses` condition; the reason when not.
fn crosses(
    what: &str,
    value: Option<f64>,
    above: Option<f64>,
    below: Option<f64>,
) -> Option<String> {
    let Some(v) = value else {
        return Some(format!("{what} has no number to compare"));
    };
    match (above, below) {
        (Some(t), _) if v <= t => Some(format!("{what} is {v}, not above {t}")),
        (_, Some(t)) if v >= t => Some(format!("{what} is {v}, not below {t}")),
        _ => None,
    }
}

/// Computes the target now and writes each format; the condition is checked on the answer.
pub(crate) async fn render(
    state: &AppState,
    held: &Held,
    spec: &ScheduleSpec,
) -> Result<Rendered, String> {
    match spec.target {
        Target::Report(id) => report(state, held, spec, id).await,
        Target::Dashboard(id) => dashboard(state, held, spec, id).await,
    }
}

async fn report(
    state: &AppState,
    held: &Held,
    spec: &ScheduleSpec,
    id: uuid::Uuid,
) -> Result<Rendered, String> {
    // A delivery reads as any key of its workspace reads: the workspace is the wall.
    let caller = Caller {
        workspace_id: held.workspace_id,
        key_id: uuid::Uuid::nil(),
        role: Role::Viewer,
    };
    let saved = saved::load(state, &caller, id)
        .await
        .map_err(|e| e.to_string())?;
    let result = saved::run_saved(state, &caller, id, RunSaved::default())
        .await
        .map_err(|e| e.to_string())?;
    let groupings = saved.spec["groupings"].as_array().map_or(0, Vec::len);
    let aggregates: Vec<String> = result
        .columns
        .iter()
        .skip(groupings)
        .map(|c| c.name.clone())
        .collect();
    let totals = result.totals.clone().unwrap_or_default();
    let unmet = match &spec.condition {
        Condition::Always => None,
        Condition::HasRows => (result.total == 0).then(|| "the report has no rows".to_string()),
        Condition::Crosses { above, below, .. } => {
            let name = aggregates
                .first()
                .map_or("the report's total".to_string(), |a| {
                    format!("the total of `{a}`")
                });
            crosses(&name, totals.first().and_then(number), *above, *below)
        }
    };
    let mut summary = vec![format!(
        "{}: {} rows{}.",
        saved.name,
        result.total,
        if result.truncated {
            format!(" ({} shown)", result.row_count)
        } else {
            String::new()
        }
    )];
    if !totals.is_empty() {
        let parts: Vec<String> = aggregates
            .iter()
            .zip(&totals)
            .map(|(a, v)| format!("{a} {}", display_number(v)))
            .collect();
        summary.push(format!("Totals: {}.", parts.join(", ")));
    }
    let stem = file_name(&saved.name);
    let mut files = Vec::with_capacity(spec.formats.len());
    if unmet.is_none() {
        for &f in &spec.formats {
            let (body, content_type) = if f == Format::Csv && result.kind == ReportKind::Tabular {
                // Every row, as the CSV export streams them: not only the answer's first page.
                (
                    every_row(state, &caller, &saved.spec).await?,
                    crate::routes::saved::CSV,
                )
            } else {
                report_file(&saved.name, ext(f), &result, groupings).map_err(|e| e.to_string())?
            };
            files.push(File {
                name: format!("{stem}.{}", ext(f)),
                format: f,
                content_type,
                body,
            });
        }
    }
    Ok(Rendered {
        title: saved.name,
        summary,
        files,
        lsn: result.freshness.lsn,
        unmet,
    })
}

async fn dashboard(
    state: &AppState,
    held: &Held,
    spec: &ScheduleSpec,
    id: uuid::Uuid,
) -> Result<Rendered, String> {
    let ws = held.workspace_id;
    let (_, dspec) = crate::routes::dashboards::load(state, ws, id)
        .await
        .map_err(|e| e.to_string())?;
    // Current numbers: whatever changed is recomputed now, not after the minimum interval.
    let states = refresh_one(state, ws, id, &dspec, Recompute::StaleNow)
        .await
        .map_err(|e| e.to_string())?;
    let answers: Vec<&Value> = states.iter().map(|s| &s.materialized.answer).collect();
    let unmet = match &spec.condition {
        Condition::Always => None,
        Condition::HasRows => {
            let any = answers.iter().any(|a| {
                a["result"]["total"].as_u64().is_some_and(|n| n > 0) || !a["value"].is_null()
            });
            (!any).then(|| "no widget of the dashboard has rows".to_string())
        }
        Condition::Crosses {
            widget,
            above,
            below,
        } => {
            let key = widget.as_deref().unwrap_or_default();
            match dspec.widgets.iter().position(|w| w.key == key) {
                None => Some(format!("the dashboard has no widget `{key}`")),
                Some(i) => {
                    let a = answers.get(i).copied().unwrap_or(&Value::Null);
                    let v = number(&a["value"])
                        .or_else(|| a["result"]["totals"].get(0).and_then(number));
                    crosses(&format!("`{}`", dspec.widgets[i].title), v, *above, *below)
                }
            }
        }
    };
    let mut summary = vec![format!(
        "{}: a dashboard of {} widgets.",
        dspec.name,
        dspec.widgets.len()
    )];
    for (w, a) in dspec.widgets.iter().zip(&answers) {
        if !a["value"].is_null() {
            summary.push(format!("{}: {}", w.title, display_number(&a["value"])));
        }
    }
    // The lowest position any widget reflects: the whole dashboard is at least that fresh.
    let lsn = states
        .iter()
        .filter_map(|s| s.materialized.lsn.as_deref())
        .filter_map(|l| oneo_catalog::lake::parse_lsn(l).map(|n| (n, l)))
        .min()
        .map(|(_, l)| l.to_string());
    let stem = file_name(&dspec.name);
    let mut files = Vec::with_capacity(spec.formats.len());
    if unmet.is_none() {
        for &f in &spec.formats {
            let (body, content_type) =
                crate::routes::dashboards::dashboard_file(&dspec, &states, ext(f), PaperSize::A4)
                    .map_err(|e| e.to_string())?;
            files.push(File {
                name: format!("{stem}.{}", ext(f)),
                format: f,
                content_type,
                body,
            });
        }
    }
    Ok(Rendered {
        title: dspec.name,
        summary,
        files,
        lsn,
        unmet,
    })
}

/// A tabular report's every row as CSV.
async fn every_row(state: &AppState, caller: &Caller, spec: &Value) -> Result<Vec<u8>, String> {
    let spec = crate::routes::reports::parse_spec(spec.clone()).map_err(|e| e.to_string())?;
    let body = crate::routes::reports::stream_csv(state, caller, &spec)
        .await
        .map_err(|e| e.to_string())?;
    axum::body::to_bytes(body, usize::MAX)
        .await
        .map(|b| b.to_vec())
        .map_err(|e| format!("the CSV stopped early: {e}"))
}

fn size(bytes: usize) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / 1024.0 / 1024.0)
    } else {
        format!("{:.1} KiB", b / 1024.0)
    }
}

/// Attaches what fits, links what does not, and sends the mail.
pub(crate) async fn finish(
    state: &AppState,
    service: &DeliveryService,
    held: &Held,
    spec: &ScheduleSpec,
    rendered: Rendered,
    mailer: &Mailer,
) -> Result<Sent, String> {
    let limit = usize::try_from(service.config.attachment_limit_kb.saturating_mul(1024))
        .unwrap_or(usize::MAX);
    let expires = Utc::now() + chrono::Duration::hours(service.config.link_hours.max(1));
    // A retry links afresh; the files of an earlier attempt are not kept.
    sqlx::query("DELETE FROM oneo.delivery_files WHERE delivery_id = $1")
        .bind(held.id)
        .execute(&state.pool)
        .await
        .map_err(|e| e.to_string())?;
    let mut attached = Vec::new();
    let mut linked = Vec::new();
    let mut sent = Vec::new();
    for f in &rendered.files {
        let over = f.body.len() > limit;
        sent.push(SentFile {
            name: f.name.clone(),
            format: f.format,
            bytes: f.body.len(),
            linked: over,
        });
        if !over {
            attached.push((f.name.clone(), f.content_type, f.body.as_slice()));
            continue;
        }
        let id = uuid::Uuid::now_v7();
        sqlx::query(
            "INSERT INTO oneo.delivery_files (id, delivery_id, workspace_id, name, content_type, body, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(held.id)
        .bind(held.workspace_id)
        .bind(&f.name)
        .bind(f.content_type)
        .bind(&f.body)
        .bind(expires)
        .execute(&state.pool)
        .await
        .map_err(|e| e.to_string())?;
        let token = sign(
            &state.pool,
            Link::DeliveryFile,
            held.workspace_id,
            id,
            expires,
        )
        .await
        .map_err(|e| e.to_string())?;
        linked.push(format!(
            "  {} ({}): {}/deliveries/files/{id}?token={token}",
            f.name,
            size(f.body.len()),
            service.public_url
        ));
    }
    let mut body = rendered.summary.join("\n");
    body.push_str(&format!(
        "\n\nNumbers as of {} (lake position {}).\n",
        Utc::now().format("%Y-%m-%d %H:%M UTC"),
        rendered.lsn.as_deref().unwrap_or("none yet")
    ));
    if !attached.is_empty() {
        let names: Vec<String> = attached
            .iter()
            .map(|(n, _, b)| format!("{n} ({})", size(b.len())))
            .collect();
        body.push_str(&format!("Attached: {}.\n", names.join(", ")));
    }
    if !linked.is_empty() {
        body.push_str(&format!(
            "Too large to attach; download until {}:\n{}\n",
            expires.format("%Y-%m-%d %H:%M UTC"),
            linked.join("\n")
        ));
    }
    if held.missed > 0 {
        body.push_str(&format!(
            "This delivery stands for {} earlier fires missed while no server was running.\n",
            held.missed
        ));
    }
    body.push_str(&format!(
        "\nSent by the schedule \"{}\" (`{}`, {}).\n",
        held.schedule_name, spec.cron, spec.time_zone
    ));
    let zone: chrono_tz::Tz = spec.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let subject = format!(
        "{}: {} ({})",
        held.schedule_name,
        rendered.title,
        held.fire_at.with_timezone(&zone).format("%Y-%m-%d %H:%M")
    );
    mailer
        .send(Mail {
            message_id: format!("{}@oneo.delivery", held.id),
            to: &spec.recipients,
            subject,
            body,
            attachments: attached,
        })
        .await?;
    Ok(Sent {
        files: sent,
        lsn: rendered.lsn,
    })
}
