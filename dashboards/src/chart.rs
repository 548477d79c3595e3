//! A chart widget's answer drawn by charts-rs: SVG for the page, PNG (the same SVG through
//! resvg) for PDF pages.

use charts_rs::{BarChart, FunnelChart, LineChart, PieChart, Series};
use serde_json::Value;

use crate::error::DashboardError;
use crate::materialize::number;
use crate::spec::ChartKind;

/// What a chart draws: one label per category and one series per value column (a stacked
/// bar: per value of its second grouping).
#[derive(Debug, Clone, PartialEq)]
pub struct ChartData {
    pub categories: Vec<String>,
    pub series: Vec<(String, Vec<Option<f32>>)>,
}

impl ChartData {
    /// The data of a summary answer (`result` as `/v1/reports/run` gives it) with
    /// `groupings` groupings; `None` when it has no rows.
    pub fn from_summary(result: &Value, groupings: usize, kind: ChartKind) -> Option<Self> {
        let columns = result["columns"].as_array()?;
        let rows = result["rows"].as_array()?;
        if rows.is_empty() || columns.len() <= groupings {
            return None;
        }
        let name = |i: usize| columns[i]["name"].as_str().unwrap_or_default().to_string();
        if kind == ChartKind::StackedBar && groupings == 2 {
            // Categories by the first grouping, a series per value of the second, the first
            // aggregate stacked.
            let mut categories: Vec<String> = Vec::new();
            let mut stacks: Vec<String> = Vec::new();
            for r in rows {
                push_unique(&mut categories, label(&r[0]));
                push_unique(&mut stacks, label(&r[1]));
            }
            let mut series: Vec<(String, Vec<Option<f32>>)> = stacks
                .iter()
                .map(|s| (s.clone(), vec![None; categories.len()]))
                .collect();
            for r in rows {
                let c = categories.iter().position(|x| *x == label(&r[0]))?;
                let s = stacks.iter().position(|x| *x == label(&r[1]))?;
                series[s].1[c] = number(&r[2]).map(|v| v as f32);
            }
            return Some(Self { categories, series });
        }
        let categories = rows.iter().map(|r| label(&r[0])).collect();
        let series = (groupings..columns.len())
            .map(|j| {
                let values = rows
                    .iter()
                    .map(|r| number(&r[j]).map(|v| v as f32))
                    .collect();
                (name(j), values)
            })
            .collect();
        Some(Self { categories, series })
    }

    /// The chart as SVG, `width` × `height` pixels (scaled by the page).
    pub fn svg(&self, kind: ChartKind, width: f32, height: f32) -> Result<String, DashboardError> {
        let render = |e: charts_rs::Error| DashboardError::Render(e.to_string());
        let series = || -> Vec<Series> {
            self.series
                .iter()
                .map(|(n, v)| Series::new_nullable(n.clone(), v.clone()))
                .collect()
        };
        // One slice (or funnel step) per category, of the first value column.
        let slices = || -> Vec<Series> {
            let values = self.series.first().map(|s| s.1.clone()).unwrap_or_default();
            self.categories
                .iter()
                .zip(values)
                .map(|(c, v)| Series::new(c.clone(), vec![v.unwrap_or(0.0)]))
                .collect()
        };
        match kind {
            ChartKind::Bar | ChartKind::StackedBar | ChartKind::Table => {
                let mut s = series();
                if kind == ChartKind::StackedBar {
                    for one in &mut s {
                        one.stack = Some("total".into());
                    }
                }
                let mut c = BarChart::new(s, self.categories.clone());
                c.width = width;
                c.height = height;
                c.svg().map_err(render)
            }
            ChartKind::Line => {
                let mut c = LineChart::new(series(), self.categories.clone());
                c.width = width;
                c.height = height;
                c.svg().map_err(render)
            }
            ChartKind::Pie | ChartKind::Donut => {
                let mut c = PieChart::new(slices());
                c.width = width;
                c.height = height;
                let r = (height.min(width) / 2.0 - 40.0).max(40.0);
                c.radius = r;
                c.inner_radius = if kind == ChartKind::Donut {
                    r * 0.55
                } else {
                    0.0
                };
                // charts-rs defaults to a rose (radius by value); a share is an angle only.
                c.rose_type = Some(false);
                c.svg().map_err(render)
            }
            ChartKind::Funnel => {
                let mut c = FunnelChart::new(slices());
                c.width = width;
                c.height = height;
                c.svg().map_err(render)
            }
        }
    }

    /// The chart as a PNG image (for PDF pages).
    pub fn png(&self, kind: ChartKind, width: f32, height: f32) -> Result<Vec<u8>, DashboardError> {
        let svg = self.svg(kind, width, height)?;
        // Twice the size: sharp when printed.
        charts_rs::svg_to_png_with_size(
            &svg,
            Some((width * 2.0) as u32),
            Some((height * 2.0) as u32),
        )
        .map_err(|e| DashboardError::Render(e.to_string()))
    }
}

fn push_unique(list: &mut Vec<String>, s: String) {
    if !list.contains(&s) {
        list.push(s);
    }
}

/// Which of a report answer's columns hold numbers (right-aligned, formatted as numbers).
pub fn numeric_columns(columns: &[Value]) -> Vec<bool> {
    columns
        .iter()
        .map(|c| {
            matches!(
                c["type"].as_str(),
                Some("integer" | "decimal" | "currency" | "number" | "percent")
            )
        })
        .collect()
}

/// A grouping's value as a label: a missing value reads "(none)".
pub fn label(v: &Value) -> String {
    match v {
        Value::Null => "(none)".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn summary() -> Value {
        json!({
            "columns": [{"name": "stage", "type": "picklist"}, {"name": "sum_amount", "type": "currency"}, {"name": "count", "type": "integer"}],
            "rows": [["proposal", "1200.50", 3], ["closed_won", "900.00", 2], [null, null, 1]]
        })
    }

    #[test]
    fn a_summary_becomes_categories_and_a_series_per_aggregate() {
        let d = ChartData::from_summary(&summary(), 1, ChartKind::Bar).expect("data");
        assert_eq!(d.categories, ["proposal", "closed_won", "(none)"]);
        assert_eq!(
            d.series[0],
            ("sum_amount".into(), vec![Some(1200.5), Some(900.0), None])
        );
        assert_eq!(d.series[1].1, vec![Some(3.0), Some(2.0), Some(1.0)]);
    }

    #[test]
    fn a_stacked_bar_has_a_series_per_inner_group() {
        let r = json!({
            "columns": [{"name": "stage"}, {"name": "source"}, {"name": "count"}],
            "rows": [["a", "web", 1], ["a", "ads", 2], ["b", "web", 3]]
        });
        let d = ChartData::from_summary(&r, 2, ChartKind::StackedBar).expect("data");
        assert_eq!(d.categories, ["a", "b"]);
        assert_eq!(
            d.series,
            vec![
                ("web".into(), vec![Some(1.0), Some(3.0)]),
                ("ads".into(), vec![Some(2.0), None])
            ]
        );
    }

    #[test]
    fn every_kind_draws_svg_with_the_labels() {
        let d = ChartData::from_summary(&summary(), 1, ChartKind::Bar).expect("data");
        for kind in [
            ChartKind::Bar,
            ChartKind::StackedBar,
            ChartKind::Line,
            ChartKind::Pie,
            ChartKind::Donut,
            ChartKind::Funnel,
        ] {
            let svg = d.svg(kind, 600.0, 320.0).expect("svg");
            assert!(svg.starts_with("<svg"), "{kind:?}");
            assert!(
                svg.contains("closed_won"),
                "{kind:?} lacks a category label"
            );
        }
        assert!(
            ChartData::from_summary(&json!({"columns": [], "rows": []}), 1, ChartKind::Bar)
                .is_none()
        );
    }

    #[test]
    fn png_is_an_image() {
        let d = ChartData::from_summary(&summary(), 1, ChartKind::Bar).expect("data");
        let png = d.png(ChartKind::Bar, 300.0, 200.0).expect("png");
        assert_eq!(&png[1..4], b"PNG");
    }
}
