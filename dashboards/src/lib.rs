//! Dashboards: reports assembled into a grid of widgets whose answers are materialized, so a
//! dashboard opens without running a query while its tables are unchanged.
//!
//! ```no_run
//! # async fn example(cx: oneo_dashboards::Context<'_>, store: &oneo_dashboards::MaterializationStore,
//! #     widgets: Vec<oneo_dashboards::ResolvedWidget>) -> Result<(), oneo_dashboards::DashboardError> {
//! use std::time::Duration;
//! use oneo_dashboards::{RefreshPolicy, refresh};
//!
//! let policy = RefreshPolicy { min_interval: Duration::from_secs(5), force: false };
//! // Recomputes only widgets whose tables have a newer Delta version than their answer.
//! let states = refresh(cx, store, uuid::Uuid::now_v7(), &widgets, policy).await?;
//! for s in &states {
//!     println!("{}: computed {} (current: {})", s.materialized.key, s.materialized.computed_at, s.current);
//! }
//! # Ok(()) }
//! ```

mod chart;
mod error;
mod html;
mod materialize;
mod pdf;
mod schedule;
mod spec;
mod store;

pub use chart::{ChartData, label};
pub use error::DashboardError;
pub use html::{FilterControl, Page, PageWidget, display_number, render_page};
pub use materialize::{
    Context, RefreshPlan, RefreshPolicy, ResolvedWidget, WidgetState, compute, global_filters,
    live, number, refresh,
};
pub use pdf::{PaperSize, PdfWidget, render_pdf};
pub use schedule::{
    Condition, Due, FireTimes, Format, MAX_RECIPIENTS, Missed, ScheduleSpec, Target,
};
pub use spec::{
    ChartKind, ComparePeriod, DashboardSpec, GRID_COLUMNS, GlobalFilter, MAX_WIDGETS, Period,
    Position, Widget, WidgetKind, check_resolved, filter_for, layout,
};
pub use store::{MaterializationStore, Materialized, Widgets};
