//! A dashboard as data: a grid of widgets, each backed by a report spec or a saved report,
//! and global filters that apply to every widget whose object has the field.

use oneo_catalog::{Issue, Issues};
use oneo_query::{Filter, FilterOp, ReportKind, ReportSpec};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Widgets a dashboard may hold.
pub const MAX_WIDGETS: usize = 50;
/// Columns of the layout grid.
pub const GRID_COLUMNS: u32 = 12;

/// What `POST /v1/dashboards` takes and a file in `dashboards/` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardSpec {
    /// 1 to 200 characters.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub widgets: Vec<Widget>,
    /// Controls shown above the widgets; a value chosen for one filters every widget whose
    /// report object has the field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<GlobalFilter>,
}

/// One tile of the grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Widget {
    /// Unique within the dashboard: letters, digits, `_` and `-`; names its materialization.
    pub key: String,
    pub title: String,
    #[serde(rename = "type")]
    pub kind: WidgetKind,
    /// For a chart: how it is drawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<ChartKind>,
    /// The report behind it, inline …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<ReportSpec>,
    /// … or a saved report's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_report: Option<Uuid>,
    /// For a metric: compare this period with the one before, on a date field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<ComparePeriod>,
    /// Where it sits; by default the next free place, half the grid wide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WidgetKind {
    /// One number (a summary without groupings, its first aggregate).
    Metric,
    /// A summary drawn as a chart.
    Chart,
    /// A report's answer as a table.
    Report,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChartKind {
    Bar,
    StackedBar,
    Line,
    Pie,
    Donut,
    Funnel,
    Table,
}

impl ChartKind {
    /// How many groupings the chart's summary takes: (at least, at most).
    fn groupings(self) -> (usize, usize) {
        match self {
            Self::StackedBar => (2, 2),
            Self::Table => (1, 3),
            _ => (1, 1),
        }
    }
}

/// A metric's comparison: its value in the current period against the previous one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComparePeriod {
    /// A date or datetime field of the report's object.
    pub field: String,
    pub period: Period,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Week,
    Month,
    Quarter,
    Year,
    FiscalQuarter,
    FiscalYear,
}

impl Period {
    /// The relative dates of the current and the previous period.
    pub fn relative(self) -> (&'static str, &'static str) {
        match self {
            Self::Week => ("THIS_WEEK", "LAST_WEEK"),
            Self::Month => ("THIS_MONTH", "LAST_MONTH"),
            Self::Quarter => ("THIS_QUARTER", "LAST_QUARTER"),
            Self::Year => ("THIS_YEAR", "LAST_YEAR"),
            Self::FiscalQuarter => ("THIS_FISCAL_QUARTER", "LAST_FISCAL_QUARTER"),
            Self::FiscalYear => ("THIS_FISCAL_YEAR", "LAST_FISCAL_YEAR"),
        }
    }
}

/// A widget's place on the grid (columns 0–11, rows from 0), in grid cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Position {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// A control above the widgets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalFilter {
    /// A field API name (`close_date`, `owner`, `lead_source`); widgets whose object lacks it
    /// are left as they are.
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl GlobalFilter {
    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.field)
    }
}

impl DashboardSpec {
    /// Checks the shape; what needs the catalog (fields, the reports themselves) is checked
    /// by running the widgets.
    pub fn validate(&self) -> Result<(), Issues> {
        let mut issues = Found::default();
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            issues.push("name", "must be 1 to 200 characters");
        }
        if self.widgets.is_empty() || self.widgets.len() > MAX_WIDGETS {
            issues.push(
                "widgets",
                format!("a dashboard holds 1 to {MAX_WIDGETS} widgets"),
            );
        }
        let mut keys = std::collections::HashSet::new();
        for (i, w) in self.widgets.iter().enumerate() {
            let at = |part: &str| format!("widgets[{i}].{part}");
            let key_ok = !w.key.is_empty()
                && w.key.len() <= 64
                && w.key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !key_ok {
                issues.push(at("key"), "must be 1 to 64 letters, digits, `_` or `-`");
            } else if !keys.insert(w.key.as_str()) {
                issues.push(at("key"), format!("`{}` is used by another widget", w.key));
            }
            if w.title.trim().is_empty() || w.title.chars().count() > 200 {
                issues.push(at("title"), "must be 1 to 200 characters");
            }
            match (&w.report, &w.saved_report) {
                (None, None) => {
                    issues.push(at("report"), "name a `report` spec or a `saved_report` id")
                }
                (Some(_), Some(_)) => issues.push(
                    at("report"),
                    "give either `report` or `saved_report`, not both",
                ),
                _ => {}
            }
            if w.kind == WidgetKind::Chart && w.chart.is_none() {
                issues.push(
                    at("chart"),
                    "a chart widget names its chart: bar, stacked_bar, line, pie, donut, funnel or table",
                );
            }
            if w.kind != WidgetKind::Chart && w.chart.is_some() {
                issues.push(at("chart"), "only a chart widget has a chart kind");
            }
            if w.kind != WidgetKind::Metric && w.compare.is_some() {
                issues.push(at("compare"), "only a metric widget compares periods");
            }
            if let Some(spec) = &w.report {
                check_report_shape(w, spec, &mut issues, i);
            }
            if let Some(p) = w.position
                && (p.w == 0 || p.h == 0 || p.x + p.w > GRID_COLUMNS || p.h > 12)
            {
                issues.push(
                    at("position"),
                    format!(
                        "w and h must be at least 1, h at most 12, and x + w at most {GRID_COLUMNS}"
                    ),
                );
            }
        }
        let mut fields = std::collections::HashSet::new();
        for (i, f) in self.filters.iter().enumerate() {
            if f.field.trim().is_empty() || f.field.contains('.') {
                issues.push(
                    format!("filters[{i}].field"),
                    "must be a field API name of the widgets' objects (no paths)",
                );
            } else if !fields.insert(f.field.as_str()) {
                issues.push(
                    format!("filters[{i}].field"),
                    format!("`{}` has a filter already", f.field),
                );
            }
        }
        issues.into_result()
    }
}

/// Issues gathered while checking, so the caller can fix them all at once.
#[derive(Default)]
struct Found(Vec<Issue>);

impl Found {
    fn push(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push(Issue::new(field, reason));
    }

    fn into_result(self) -> Result<(), Issues> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Issues(self.0))
        }
    }
}

/// What a widget's kind asks of its report (a saved report is checked the same way once
/// resolved, by [`check_resolved`]).
fn check_report_shape(w: &Widget, spec: &ReportSpec, issues: &mut Found, i: usize) {
    let at = |part: &str| format!("widgets[{i}].{part}");
    match w.kind {
        WidgetKind::Metric => {
            if spec.kind != ReportKind::Summary || !spec.groupings.is_empty() {
                issues.push(
                    at("report"),
                    "a metric is a summary report without groupings (its first aggregate is the number)",
                );
            }
        }
        WidgetKind::Chart => {
            let Some(chart) = w.chart else { return };
            let (min, max) = chart.groupings();
            if spec.kind != ReportKind::Summary
                || spec.groupings.len() < min
                || spec.groupings.len() > max
            {
                let wanted = if min == max {
                    format!("{min}")
                } else {
                    format!("{min} to {max}")
                };
                issues.push(
                    at("report"),
                    format!("a {chart:?} chart draws a summary report with {wanted} grouping(s)")
                        .to_lowercase(),
                );
            }
        }
        WidgetKind::Report => {}
    }
}

/// Checks a widget once its saved report is resolved to `spec`.
pub fn check_resolved(widget: &Widget, spec: &ReportSpec, index: usize) -> Result<(), Issues> {
    let mut issues = Found::default();
    check_report_shape(widget, spec, &mut issues, index);
    issues.into_result()
}

/// The widgets' places: given ones kept, the rest flowed into the next free row, six
/// columns wide (a metric three) and four rows high (a metric two).
pub fn layout(widgets: &[Widget]) -> Vec<Position> {
    let mut next = (0u32, 0u32);
    let mut row_height = 0u32;
    let below_given = widgets
        .iter()
        .filter_map(|w| w.position)
        .map(|p| p.y + p.h)
        .max()
        .unwrap_or(0);
    next.1 = below_given;
    widgets
        .iter()
        .map(|w| {
            if let Some(p) = w.position {
                return p;
            }
            let (width, height) = if w.kind == WidgetKind::Metric {
                (3, 2)
            } else {
                (6, 4)
            };
            if next.0 + width > GRID_COLUMNS {
                next = (0, next.1 + row_height);
                row_height = 0;
            }
            let p = Position {
                x: next.0,
                y: next.1,
                w: width,
                h: height,
            };
            next.0 += width;
            row_height = row_height.max(height);
            p
        })
        .collect()
}

/// A global filter's value as chosen on the page: a relative date (`THIS_QUARTER`), a range
/// `FROM..TO` (either end may be open), or a plain value.
pub fn filter_for(field: &str, value: &str, is_date: bool) -> Filter {
    let value = value.trim();
    if is_date && let Some((from, to)) = value.split_once("..") {
        let (from, to) = (from.trim(), to.trim());
        return match (from.is_empty(), to.is_empty()) {
            (false, false) => Filter {
                field: field.into(),
                op: FilterOp::Between,
                value: serde_json::json!([from, to]),
            },
            (false, true) => Filter {
                field: field.into(),
                op: FilterOp::Ge,
                value: from.into(),
            },
            _ => Filter {
                field: field.into(),
                op: FilterOp::Le,
                value: to.into(),
            },
        };
    }
    Filter {
        field: field.into(),
        op: FilterOp::Equals,
        value: value.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> DashboardSpec {
        serde_json::from_value(json).expect("spec")
    }

    #[test]
    fn each_bad_part_is_named() {
        let d = spec(serde_json::json!({
            "name": "",
            "widgets": [
                {"key": "a b", "title": "x", "type": "chart",
                 "report": {"type": "summary", "object": "deal", "groupings": [{"field": "stage"}]}},
                {"key": "m", "title": "Won", "type": "metric",
                 "report": {"type": "summary", "object": "deal", "groupings": [{"field": "stage"}]}},
                {"key": "m", "title": "t", "type": "report"},
            ],
            "filters": [{"field": "owner"}, {"field": "owner"}]
        }));
        let issues = d.validate().expect_err("invalid");
        let parts: Vec<String> = issues.0.iter().map(|i| i.field.clone()).collect();
        for part in [
            "name",
            "widgets[0].key",
            "widgets[0].chart",
            "widgets[1].report",
            "widgets[2].key",
            "widgets[2].report",
            "filters[1].field",
        ] {
            assert!(
                parts.iter().any(|p| p == part),
                "{part} missing from {parts:?}"
            );
        }
    }

    #[test]
    fn layout_flows_unplaced_widgets_below_placed_ones() {
        let d = spec(serde_json::json!({
            "name": "d",
            "widgets": [
                {"key": "a", "title": "A", "type": "metric", "position": {"x": 0, "y": 0, "w": 12, "h": 2},
                 "report": {"type": "summary", "object": "deal"}},
                {"key": "b", "title": "B", "type": "report", "report": {"type": "tabular", "object": "deal"}},
                {"key": "c", "title": "C", "type": "report", "report": {"type": "tabular", "object": "deal"}},
                {"key": "d", "title": "D", "type": "report", "report": {"type": "tabular", "object": "deal"}},
            ]
        }));
        d.validate().expect("valid");
        let p = layout(&d.widgets);
        assert_eq!((p[1].x, p[1].y), (0, 2));
        assert_eq!((p[2].x, p[2].y), (6, 2));
        assert_eq!((p[3].x, p[3].y), (0, 6));
    }

    #[test]
    fn date_ranges_become_bounds() {
        assert_eq!(
            filter_for("d", "2026-01-01..2026-03-31", true).op,
            FilterOp::Between
        );
        assert_eq!(filter_for("d", "2026-01-01..", true).op, FilterOp::Ge);
        assert_eq!(filter_for("d", "..2026-01-01", true).op, FilterOp::Le);
        assert_eq!(filter_for("d", "THIS_QUARTER", true).op, FilterOp::Equals);
        assert_eq!(filter_for("o", "a..b", false).op, FilterOp::Equals);
    }
}
