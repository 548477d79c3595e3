//! Computing widgets' answers, and keeping them current: a widget is recomputed only when a
//! table it read has a newer Delta version than the one its answer was computed from (or
//! its definition changed), and not more often than a minimum interval.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use oneo_catalog::FieldType;
use oneo_query::{
    DateContext, Filter, FilterOp, QueryConfig, ReportKind, ReportSpec, WorkspaceSchema,
    WorkspaceSession, run_report,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tracing::Instrument;
use uuid::Uuid;

use crate::error::DashboardError;
use crate::spec::{GlobalFilter, Widget, WidgetKind, filter_for};
use crate::store::{MaterializationStore, Materialized, Widgets};

/// A widget with the report it shows (a saved report resolved to its spec).
#[derive(Debug, Clone)]
pub struct ResolvedWidget {
    pub widget: Widget,
    pub spec: ReportSpec,
}

impl ResolvedWidget {
    /// SHA-256 over what decides the answer: kind, chart, comparison and report.
    pub fn fingerprint(&self) -> String {
        let w = &self.widget;
        let text = json!([w.kind, w.chart, w.compare, self.spec]).to_string();
        let digest = Sha256::digest(text.as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Where a dashboard's widgets read from.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub config: &'a QueryConfig,
    pub schema: &'a WorkspaceSchema,
    pub dates: &'a DateContext,
}

/// Runs one widget (with `extra` filters ANDed in) in a session of its own, so the tables
/// it read are its alone. A report that fails becomes an error answer: one broken widget
/// doesn't blank the dashboard, and it is retried when its tables or definition change.
pub async fn compute(
    cx: Context<'_>,
    resolved: &ResolvedWidget,
    extra: Vec<Filter>,
) -> Result<Materialized, DashboardError> {
    let w = &resolved.widget;
    let span = tracing::info_span!("widget", key = %w.key, object = %resolved.spec.object);
    compute_in(cx, resolved, extra).instrument(span).await
}

async fn compute_in(
    cx: Context<'_>,
    resolved: &ResolvedWidget,
    extra: Vec<Filter>,
) -> Result<Materialized, DashboardError> {
    let w = &resolved.widget;
    let session = WorkspaceSession::new(cx.config, cx.schema.clone()).map_err(|source| {
        DashboardError::Widget {
            widget: w.key.clone(),
            source: Box::new(source),
        }
    })?;
    let spec = resolved.spec.clone().with_filters(extra);
    let answer = match answer(&session, w, spec, cx.dates).await {
        Ok(a) => a,
        Err(e) if e.is_caller_error() => json!({"widget": w.kind, "error": e.to_string()}),
        Err(source) => {
            return Err(DashboardError::Widget {
                widget: w.key.clone(),
                source: Box::new(source),
            });
        }
    };
    Ok(Materialized {
        key: w.key.clone(),
        fingerprint: resolved.fingerprint(),
        answer,
        versions: session.read_versions(),
        lsn: session.applied_lsn().map(oneo_query::format_lsn),
        computed_at: Utc::now(),
    })
}

async fn answer(
    session: &WorkspaceSession,
    w: &Widget,
    spec: ReportSpec,
    dates: &DateContext,
) -> Result<Value, oneo_query::QueryError> {
    if w.kind != WidgetKind::Metric {
        let groupings = spec.groupings.len();
        let result = run_report(session, &spec, dates).await?;
        return Ok(
            json!({"widget": w.kind, "chart": w.chart, "groupings": groupings, "result": result}),
        );
    }
    let first = |r: &oneo_query::ReportResult| {
        r.totals
            .as_ref()
            .and_then(|t| t.first().cloned())
            .unwrap_or(Value::Null)
    };
    let Some(compare) = &w.compare else {
        let result = run_report(session, &spec, dates).await?;
        return Ok(
            json!({"widget": "metric", "column": result.columns.first(), "value": first(&result)}),
        );
    };
    let (this, last) = compare.period.relative();
    let within = |period: &str| Filter {
        field: compare.field.clone(),
        op: FilterOp::Equals,
        value: period.into(),
    };
    let now = run_report(
        session,
        &spec.clone().with_filters(vec![within(this)]),
        dates,
    )
    .await?;
    let before = run_report(session, &spec.with_filters(vec![within(last)]), dates).await?;
    let (value, previous) = (first(&now), first(&before));
    let change = match (number(&value), number(&previous)) {
        (Some(v), Some(p)) if p != 0.0 => Some(((v - p) / p.abs() * 1000.0).round() / 10.0),
        _ => None,
    };
    Ok(json!({
        "widget": "metric",
        "column": now.columns.first(),
        "value": value,
        "previous": previous,
        "change_percent": change,
        "period": this,
        "previous_period": last,
    }))
}

/// A cell as a number: counts are JSON numbers, decimals strings.
pub fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The filters a dashboard's chosen global values put on one widget: those whose field its
/// report's object has (a joined report, over several objects, takes none).
pub fn global_filters(
    schema: &WorkspaceSchema,
    spec: &ReportSpec,
    declared: &[GlobalFilter],
    chosen: &BTreeMap<String, String>,
) -> Vec<Filter> {
    if spec.kind == ReportKind::Joined {
        return Vec::new();
    }
    let Some(object) = schema.object(&spec.object) else {
        return Vec::new();
    };
    declared
        .iter()
        .filter_map(|g| {
            let value = chosen.get(&g.field).filter(|v| !v.trim().is_empty())?;
            let field = object.field(&g.field)?;
            let is_date = matches!(field.field_type, FieldType::Date | FieldType::Datetime);
            Some(filter_for(&g.field, value, is_date))
        })
        .collect()
}

/// How often materializations may be recomputed.
#[derive(Debug, Clone, Copy)]
pub struct RefreshPolicy {
    /// A stale widget computed less than this long ago is served as it is (and says so).
    pub min_interval: Duration,
    /// Recompute every widget, current or not (an explicit refresh with `force`).
    pub force: bool,
}

/// A widget's materialized answer, and whether its tables have changed since.
#[derive(Debug, Clone)]
pub struct WidgetState {
    pub materialized: Arc<Materialized>,
    /// No table it read has a newer version.
    pub current: bool,
    /// Computed by this call.
    pub recomputed: bool,
}

/// Brings a dashboard's materializations up to date as `policy` allows and returns each
/// widget's state, in the dashboard's order. Runs no query for a widget that is current.
pub async fn refresh(
    cx: Context<'_>,
    store: &MaterializationStore,
    dashboard: Uuid,
    widgets: &[ResolvedWidget],
    policy: RefreshPolicy,
) -> Result<Vec<WidgetState>, DashboardError> {
    let plan = RefreshPlan::new(
        cx.config,
        store,
        cx.schema.workspace_id,
        dashboard,
        widgets,
        policy,
    )
    .await?;
    plan.finish(cx, store, widgets).await
}

/// What a refresh keeps and what it recomputes, decided from Delta versions alone: opening
/// a dashboard whose widgets are all current needs no catalog, no session and no query
/// ([`RefreshPlan::kept`]), only the lake's version numbers.
#[derive(Debug)]
pub struct RefreshPlan {
    workspace: Uuid,
    dashboard: Uuid,
    /// Per widget, in order: its kept state, or `None` where it must be recomputed.
    kept: Vec<Option<WidgetState>>,
    /// A stored widget is no longer on the dashboard.
    dropped: bool,
}

impl RefreshPlan {
    /// Compares each widget's stored versions with the tables' newest ones.
    pub async fn new(
        config: &QueryConfig,
        store: &MaterializationStore,
        workspace: Uuid,
        dashboard: Uuid,
        widgets: &[ResolvedWidget],
        policy: RefreshPolicy,
    ) -> Result<Self, DashboardError> {
        let stored = store.get(workspace, dashboard).await?;
        let now = Utc::now();
        let min = chrono::Duration::from_std(policy.min_interval).unwrap_or_default();
        let mut kept_states = Vec::with_capacity(widgets.len());
        let mut latest: BTreeMap<String, Option<u64>> = BTreeMap::new();
        for resolved in widgets {
            let kept = stored
                .get(&resolved.widget.key)
                .filter(|m| m.fingerprint == resolved.fingerprint());
            let state = match kept {
                // Recomputed whatever its tables say.
                Some(_) if policy.force => None,
                Some(m) => {
                    // Each table's newest version is looked up once per refresh.
                    let unknown: Vec<&String> = m
                        .versions
                        .keys()
                        .filter(|p| !latest.contains_key(*p))
                        .collect();
                    latest.extend(config.current_versions(unknown).await?);
                    let current = m.versions.iter().all(|(p, v)| latest.get(p) == Some(v));
                    // Stale, but recomputed too recently: served as it is, marked stale.
                    (current || now - m.computed_at < min).then(|| WidgetState {
                        materialized: Arc::clone(m),
                        current,
                        recomputed: false,
                    })
                }
                None => None,
            };
            kept_states.push(state);
        }
        let dropped = stored
            .keys()
            .any(|k| !widgets.iter().any(|w| &w.widget.key == k));
        Ok(Self {
            workspace,
            dashboard,
            kept: kept_states,
            dropped,
        })
    }

    /// Every widget's state when none needs recomputing (and nothing needs storing).
    pub fn kept(&self) -> Option<Vec<WidgetState>> {
        if self.dropped {
            return None;
        }
        self.kept.iter().cloned().collect()
    }

    /// Recomputes what the plan says (the same `widgets` it was made for) and stores the
    /// dashboard's materializations when anything changed.
    pub async fn finish(
        self,
        cx: Context<'_>,
        store: &MaterializationStore,
        widgets: &[ResolvedWidget],
    ) -> Result<Vec<WidgetState>, DashboardError> {
        let mut states = Vec::with_capacity(widgets.len());
        let mut changed = self.dropped;
        for (resolved, kept) in widgets.iter().zip(self.kept) {
            if let Some(state) = kept {
                states.push(state);
                continue;
            }
            let m = Arc::new(compute(cx, resolved, Vec::new()).await?);
            changed = true;
            states.push(WidgetState {
                materialized: m,
                current: true,
                recomputed: true,
            });
        }
        if changed {
            let all: Widgets = states
                .iter()
                .map(|s| (s.materialized.key.clone(), Arc::clone(&s.materialized)))
                .collect();
            store.put(self.workspace, self.dashboard, all).await?;
        }
        Ok(states)
    }
}

/// Runs every widget live with the chosen global filter values; nothing is stored.
pub async fn live(
    cx: Context<'_>,
    widgets: &[ResolvedWidget],
    declared: &[GlobalFilter],
    chosen: &BTreeMap<String, String>,
) -> Result<Vec<WidgetState>, DashboardError> {
    let mut states = Vec::with_capacity(widgets.len());
    for resolved in widgets {
        let extra = global_filters(cx.schema, &resolved.spec, declared, chosen);
        let m = compute(cx, resolved, extra).await?;
        states.push(WidgetState {
            materialized: Arc::new(m),
            current: true,
            recomputed: true,
        });
    }
    Ok(states)
}
