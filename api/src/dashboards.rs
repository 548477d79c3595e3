//! Dashboards in the server: their rows in PostgreSQL, their widgets resolved to report
//! specs, and the background refresher that keeps materializations current as ingest
//! commits.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use oneo_catalog::Issues;
use oneo_dashboards::{
    Context, DashboardError, DashboardSpec, MaterializationStore, RefreshPlan, RefreshPolicy,
    ResolvedWidget, WidgetState,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiError, Result};
use crate::routes::reports::{parse_spec, query_error, workspace_schema};

/// How materializations are kept: where, and how often they may be recomputed.
#[derive(Debug)]
pub struct DashboardService {
    pub store: MaterializationStore,
    /// Quiet time after an ingest commit before a refresh runs (more commits reset it).
    pub debounce: Duration,
    /// The least time between two refreshes of one widget.
    pub min_interval: Duration,
    /// A refresh also runs this often without commits (time-relative widgets: "this month").
    pub interval: Duration,
}

impl DashboardService {
    pub fn new(lake_root: &url::Url) -> std::result::Result<Self, DashboardError> {
        Ok(Self {
            store: MaterializationStore::new(lake_root)?,
            debounce: Duration::from_millis(500),
            min_interval: Duration::from_secs(2),
            interval: Duration::from_secs(300),
        })
    }
}

pub(crate) fn service(state: &AppState) -> Result<&Arc<DashboardService>> {
    state.dashboards.as_ref().ok_or_else(|| {
        ApiError::Unavailable("this server has no lake configured, so it has no dashboards".into())
    })
}

pub(crate) fn dashboard_error(e: DashboardError) -> ApiError {
    match e {
        DashboardError::Invalid(issues) => ApiError::Validation(issues),
        // Caller errors became error answers in the widget; what is left is the engine's.
        DashboardError::Widget { widget, source } => match query_error(*source) {
            ApiError::Query(m) => ApiError::Query(format!("widget `{widget}`: {m}")),
            other => other,
        },
        DashboardError::Query(q) => query_error(*q),
        other => ApiError::Query(other.to_string()),
    }
}

/// The spec's widgets with saved reports replaced by their specs (in `workspace` only).
pub(crate) async fn resolve(
    state: &AppState,
    workspace: Uuid,
    spec: &DashboardSpec,
) -> Result<Vec<ResolvedWidget>> {
    let mut out = Vec::with_capacity(spec.widgets.len());
    for (i, w) in spec.widgets.iter().enumerate() {
        let report = match (&w.report, w.saved_report) {
            (Some(r), _) => r.clone(),
            (None, Some(id)) => {
                let saved: Option<(sqlx::types::Json<serde_json::Value>,)> = sqlx::query_as(
                    "SELECT spec FROM oneo.reports WHERE id = $1 AND workspace_id = $2",
                )
                .bind(id)
                .bind(workspace)
                .fetch_optional(&state.pool)
                .await?;
                let Some((json,)) = saved else {
                    return Err(ApiError::Validation(Issues::one(
                        format!("widgets[{i}].saved_report"),
                        format!("there is no report {id} in this workspace"),
                    )));
                };
                let spec = parse_spec(json.0)?;
                oneo_dashboards::check_resolved(w, &spec, i).map_err(ApiError::Validation)?;
                spec
            }
            (None, None) => {
                return Err(ApiError::Validation(Issues::one(
                    format!("widgets[{i}].report"),
                    "name a `report` spec or a `saved_report` id",
                )));
            }
        };
        out.push(ResolvedWidget {
            widget: w.clone(),
            spec: report,
        });
    }
    Ok(out)
}

/// What the widgets of `workspace` read from, at this moment.
pub(crate) struct Reading {
    pub config: Arc<oneo_query::QueryConfig>,
    pub schema: oneo_query::WorkspaceSchema,
    pub dates: oneo_query::DateContext,
}

impl Reading {
    pub async fn open(state: &AppState, workspace: Uuid) -> Result<Self> {
        let (config, schema) = workspace_schema(state, workspace).await?;
        let dates =
            crate::routes::workspace::date_context(state, workspace, chrono::Utc::now()).await?;
        Ok(Self {
            config,
            schema,
            dates,
        })
    }

    pub fn context(&self) -> Context<'_> {
        Context {
            config: &self.config,
            schema: &self.schema,
            dates: &self.dates,
        }
    }
}

/// Which widgets a refresh recomputes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recompute {
    /// Those whose tables changed, unless computed within the minimum interval (opens and
    /// the refresher).
    Stale,
    /// Those whose tables changed, now (an explicit refresh).
    StaleNow,
    /// Every widget.
    All,
}

/// Brings one dashboard's materializations up to date as `which` says.
pub(crate) async fn refresh_one(
    state: &AppState,
    workspace: Uuid,
    dashboard: Uuid,
    spec: &DashboardSpec,
    which: Recompute,
) -> Result<Vec<WidgetState>> {
    let service = service(state)?;
    let widgets = resolve(state, workspace, spec).await?;
    let policy = RefreshPolicy {
        min_interval: if which == Recompute::Stale {
            service.min_interval
        } else {
            Duration::ZERO
        },
        force: which == Recompute::All,
    };
    let config = crate::routes::reports::lake_config(state)?;
    let plan = RefreshPlan::new(
        &config,
        &service.store,
        workspace,
        dashboard,
        &widgets,
        policy,
    )
    .await
    .map_err(dashboard_error)?;
    // The open of a current dashboard: no catalog read, no session, no query.
    if let Some(states) = plan.kept() {
        return Ok(states);
    }
    let reading = Reading::open(state, workspace).await?;
    plan.finish(reading.context(), &service.store, &widgets)
        .await
        .map_err(dashboard_error)
}

/// Refreshes every dashboard of every workspace; a dashboard that fails is logged and the
/// rest go on.
async fn refresh_all(state: &AppState) -> Result<usize> {
    let rows: Vec<(Uuid, Uuid, sqlx::types::Json<serde_json::Value>)> = sqlx::query_as(
        "SELECT id, workspace_id, spec FROM oneo.dashboards ORDER BY workspace_id, id",
    )
    .fetch_all(&state.pool)
    .await?;
    let mut recomputed = 0;
    for (id, workspace, spec) in rows {
        let Ok(spec) = serde_json::from_value::<DashboardSpec>(spec.0) else {
            tracing::warn!(dashboard = %id, "a stored dashboard spec no longer parses");
            continue;
        };
        match refresh_one(state, workspace, id, &spec, Recompute::Stale).await {
            Ok(states) => recomputed += states.iter().filter(|s| s.recomputed).count(),
            Err(e) => tracing::warn!(dashboard = %id, error = %e, "dashboard refresh failed"),
        }
    }
    Ok(recomputed)
}

/// Runs until `stop`: after ingest acknowledges new commits and `debounce` passes without
/// more, or every `interval`, refreshes every dashboard (stale widgets only).
pub(crate) async fn run_refresher(state: AppState, stop: CancellationToken) {
    let Some(service) = state.dashboards.clone() else {
        return;
    };
    let acknowledged = || state.ingest.as_ref().and_then(|i| i.status.acknowledged());
    let mut seen = acknowledged();
    let mut changed_at: Option<tokio::time::Instant> = None;
    let mut last_run = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let now = tokio::time::Instant::now();
        let ack = acknowledged();
        if ack != seen {
            seen = ack;
            changed_at = Some(now);
        }
        let settled = changed_at.is_some_and(|t| now - t >= service.debounce);
        let due = now - last_run >= service.interval;
        if !(settled || due) || now - last_run < service.min_interval {
            continue;
        }
        changed_at = None;
        last_run = now;
        let run = refresh_all(&state).instrument(tracing::info_span!("dashboard_refresh"));
        match run.await {
            Ok(n) if n > 0 => tracing::info!(recomputed = n, "dashboards refreshed"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "dashboard refresh failed"),
        }
    }
}

/// The chosen global filter values from query parameters `f.<field>=value`.
pub(crate) fn chosen_filters(params: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    params
        .iter()
        .filter_map(|(k, v)| {
            let field = k.strip_prefix("f.")?;
            (!v.trim().is_empty()).then(|| (field.to_string(), v.clone()))
        })
        .collect()
}

/// What loading one dashboard file came to.
#[derive(Debug)]
pub struct LoadedFile {
    pub path: std::path::PathBuf,
    /// The dashboard's id, or why the file was not loaded.
    pub outcome: std::result::Result<Uuid, String>,
}

/// Loads every `*.yaml`, `*.yml` and `*.json` file in `dir` (not below it), in name order.
/// Each holds a dashboard spec plus `workspace` (its id); the file's name, without the
/// extension, identifies it, so loading it again replaces the dashboard it made. A file that
/// is wrong is reported and the others still load.
pub async fn load_files(state: &AppState, dir: &std::path::Path) -> Vec<LoadedFile> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<std::path::PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                )
        })
        .collect();
    paths.sort();
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        let outcome = load_file(state, &path).await;
        out.push(LoadedFile { path, outcome });
    }
    out
}

async fn load_file(state: &AppState, path: &std::path::Path) -> std::result::Result<Uuid, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut doc: serde_json::Value = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?
    } else {
        serde_norway::from_str(&text).map_err(|e| format!("not YAML: {e}"))?
    };
    let workspace = doc
        .as_object_mut()
        .and_then(|o| o.remove("workspace"))
        .and_then(|w| w.as_str().and_then(|s| s.parse::<Uuid>().ok()))
        .ok_or("the file names no `workspace` (a workspace id)")?;
    let known: Option<Uuid> = sqlx::query_scalar("SELECT id FROM oneo.workspaces WHERE id = $1")
        .bind(workspace)
        .fetch_optional(&state.pool)
        .await
        .map_err(|e| e.to_string())?;
    if known.is_none() {
        return Err(format!("there is no workspace {workspace}"));
    }
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or("the file name is not UTF-8")?;
    crate::routes::dashboards::upsert_file(state, workspace, &format!("file:{stem}"), doc)
        .await
        .map_err(|e| match e {
            ApiError::Validation(issues) => issues.to_string(),
            other => other.to_string(),
        })
}
