//! The dashboard as one server-rendered page: a CSS grid of tiles, charts as inline SVG, the
//! global filters as a plain form (it works without scripts), and each tile's freshness.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::chart::{ChartData, label, numeric_columns};
use crate::materialize::WidgetState;
use crate::spec::{ChartKind, GlobalFilter, Position, WidgetKind};

/// One tile as the page draws it.
pub struct PageWidget<'a> {
    pub title: &'a str,
    pub kind: WidgetKind,
    pub chart: Option<ChartKind>,
    pub position: Position,
    pub state: &'a WidgetState,
}

/// A global filter's control: its choices where the field has a fixed list.
pub struct FilterControl<'a> {
    pub filter: &'a GlobalFilter,
    pub options: Vec<String>,
    pub is_date: bool,
}

/// The page's parts.
pub struct Page<'a> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub widgets: Vec<PageWidget<'a>>,
    pub filters: Vec<FilterControl<'a>>,
    pub chosen: &'a BTreeMap<String, String>,
    /// Ingest's lag behind PostgreSQL, when known.
    pub lag_ms: Option<u64>,
    /// Links to the exports (already authorised for this viewer).
    pub exports: Vec<(&'a str, String)>,
    /// Parameters the filter form carries along (a share link's token).
    pub keep: Vec<(&'a str, String)>,
    pub now: DateTime<Utc>,
}

/// Escapes text for HTML element content and quoted attributes.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
*{box-sizing:border-box}body{margin:0;font:15px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1f2937;background:#f3f4f6}
header{padding:16px 24px;background:#fff;border-bottom:1px solid #e5e7eb;display:flex;flex-wrap:wrap;gap:12px;align-items:baseline;justify-content:space-between}
h1{font-size:22px;margin:0}header p{margin:4px 0 0;color:#6b7280}
.exports a{margin-left:12px;color:#2563eb}
form.filters{display:flex;flex-wrap:wrap;gap:12px;padding:12px 24px;background:#fff;border-bottom:1px solid #e5e7eb;align-items:end}
form.filters label{display:flex;flex-direction:column;font-size:13px;color:#4b5563;gap:4px}
form.filters input,form.filters select{font:inherit;padding:4px 6px;border:1px solid #d1d5db;border-radius:4px}
form.filters button{font:inherit;padding:5px 14px;border:0;border-radius:4px;background:#2563eb;color:#fff}
main{display:grid;grid-template-columns:repeat(12,1fr);grid-auto-rows:80px;gap:16px;padding:16px 24px}
.tile{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:12px 14px;display:flex;flex-direction:column;overflow:hidden;min-width:0}
.tile h2{font-size:15px;margin:0 0 6px}.tile .body{flex:1;min-height:0;overflow:hidden}.tile .body.table{overflow:auto}
.tile svg{display:block;width:100%;height:100%}
.metric .value{font-size:34px;font-weight:600}.up{color:#047857}.down{color:#b91c1c}.cmp{color:#6b7280;font-size:13px}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{padding:3px 6px;border-bottom:1px solid #f3f4f6;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}tr.total td{font-weight:600;border-top:1px solid #d1d5db}
.fresh{font-size:12px;color:#6b7280;margin-top:6px}.stale{color:#b45309}.error{color:#b91c1c}
@media (max-width:800px){main{grid-template-columns:1fr;grid-auto-rows:auto}.tile{grid-column:auto!important;grid-row:auto!important;min-height:220px}}
";

/// The whole page.
pub fn render_page(page: &Page<'_>) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body>",
        esc(page.name)
    );
    let _ = write!(h, "<header><div><h1>{}</h1>", esc(page.name));
    if let Some(d) = page.description {
        let _ = write!(h, "<p>{}</p>", esc(d));
    }
    let lag = page.lag_ms.map_or_else(
        || "lag unknown".to_string(),
        |l| format!("lake {l} ms behind PostgreSQL"),
    );
    let _ = write!(
        h,
        "<p>Opened {} · {lag}</p></div><nav class=\"exports\">",
        page.now.format("%Y-%m-%d %H:%M:%S UTC")
    );
    for (name, href) in &page.exports {
        let _ = write!(h, "<a href=\"{}\">{}</a>", esc(href), esc(name));
    }
    h.push_str("</nav></header>");
    if !page.filters.is_empty() {
        filters_form(&mut h, page);
    }
    h.push_str("<main>");
    for w in &page.widgets {
        tile(&mut h, w);
    }
    h.push_str("</main></body></html>");
    h
}

fn filters_form(h: &mut String, page: &Page<'_>) {
    h.push_str("<form class=\"filters\" method=\"get\">");
    for (name, value) in &page.keep {
        let _ = write!(
            h,
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            esc(name),
            esc(value)
        );
    }
    for c in &page.filters {
        let name = format!("f.{}", c.filter.field);
        let value = page
            .chosen
            .get(&c.filter.field)
            .map(String::as_str)
            .unwrap_or("");
        let _ = write!(h, "<label>{}", esc(c.filter.label()));
        if c.options.is_empty() {
            let hint = if c.is_date {
                "THIS_QUARTER or 2026-01-01..2026-03-31"
            } else {
                "any"
            };
            let _ = write!(
                h,
                "<input name=\"{}\" value=\"{}\" placeholder=\"{hint}\">",
                esc(&name),
                esc(value)
            );
        } else {
            let _ = write!(
                h,
                "<select name=\"{}\"><option value=\"\">All</option>",
                esc(&name)
            );
            for o in &c.options {
                let selected = if o == value { " selected" } else { "" };
                let _ = write!(h, "<option value=\"{0}\"{selected}>{0}</option>", esc(o));
            }
            h.push_str("</select>");
        }
        h.push_str("</label>");
    }
    h.push_str("<button type=\"submit\">Apply</button></form>");
}

fn tile(h: &mut String, w: &PageWidget<'_>) {
    let p = w.position;
    let class = if w.kind == WidgetKind::Metric {
        "tile metric"
    } else {
        "tile"
    };
    let _ = write!(
        h,
        "<section class=\"{class}\" style=\"grid-column:{} / span {};grid-row:{} / span {}\"><h2>{}</h2><div class=\"body{}\">",
        p.x + 1,
        p.w,
        p.y + 1,
        p.h,
        esc(w.title),
        if is_table(w) { " table" } else { "" }
    );
    let answer = &w.state.materialized.answer;
    if let Some(e) = answer["error"].as_str() {
        let _ = write!(h, "<p class=\"error\">{}</p>", esc(e));
    } else {
        match w.kind {
            WidgetKind::Metric => metric(h, answer),
            WidgetKind::Chart if w.chart != Some(ChartKind::Table) => {
                chart(h, answer, w.chart.unwrap_or(ChartKind::Bar), p)
            }
            _ => table(h, &answer["result"]),
        }
    }
    let m = &w.state.materialized;
    let state = if w.state.current {
        "<span>current</span>".to_string()
    } else {
        "<span class=\"stale\">tables changed since; refresh pending</span>".to_string()
    };
    let _ = write!(
        h,
        "</div><div class=\"fresh\" data-lsn=\"{}\" data-computed-at=\"{}\">Computed {} · LSN {} · {state}</div></section>",
        esc(m.lsn.as_deref().unwrap_or("")),
        m.computed_at.to_rfc3339(),
        m.computed_at.format("%Y-%m-%d %H:%M:%S UTC"),
        esc(m.lsn.as_deref().unwrap_or("none yet")),
    );
}

fn is_table(w: &PageWidget<'_>) -> bool {
    w.kind == WidgetKind::Report || w.chart == Some(ChartKind::Table)
}

/// A number for people: thousands separated, at most two decimals.
pub fn display_number(v: &Value) -> String {
    let Some(n) = crate::materialize::number(v) else {
        return if v.is_null() { "—".into() } else { label(v) };
    };
    let text = if n.fract() == 0.0 {
        format!("{n:.0}")
    } else {
        format!("{n:.2}")
    };
    let (int, frac) = text
        .split_once('.')
        .map_or((text.as_str(), None), |(i, f)| (i, Some(f)));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

fn metric(h: &mut String, answer: &Value) {
    let _ = write!(
        h,
        "<div class=\"value\">{}</div>",
        esc(&display_number(&answer["value"]))
    );
    if let Some(period) = answer["previous_period"].as_str() {
        let change = answer["change_percent"].as_f64();
        let (class, arrow) = match change {
            Some(c) if c > 0.0 => ("up", "▲"),
            Some(c) if c < 0.0 => ("down", "▼"),
            _ => ("cmp", ""),
        };
        let pct = change.map_or_else(|| "n/a".into(), |c| format!("{c:+.1}%"));
        let _ = write!(
            h,
            "<div><span class=\"{class}\">{arrow} {pct}</span> <span class=\"cmp\">vs {} ({})</span></div>",
            esc(&period.to_lowercase().replace('_', " ")),
            esc(&display_number(&answer["previous"]))
        );
    }
}

fn chart(h: &mut String, answer: &Value, kind: ChartKind, p: Position) {
    let groupings = answer["groupings"].as_u64().unwrap_or(1) as usize;
    let Some(data) = ChartData::from_summary(&answer["result"], groupings, kind) else {
        h.push_str("<p class=\"cmp\">No records match.</p>");
        return;
    };
    let (width, height) = (p.w as f32 * 100.0, (p.h as f32 * 96.0 - 60.0).max(160.0));
    match data.svg(kind, width, height) {
        Ok(svg) => h.push_str(&svg),
        Err(e) => {
            let _ = write!(h, "<p class=\"error\">{}</p>", esc(&e.to_string()));
        }
    }
}

/// A report's answer as a table: tabular rows, or a summary's groups and totals. A
/// matrix's pivot is not drawn yet (its `rows` are empty); its XLSX export lays it out.
fn table(h: &mut String, result: &Value) {
    let columns = result["columns"].as_array().cloned().unwrap_or_default();
    let numeric = numeric_columns(&columns);
    h.push_str("<table><thead><tr>");
    for (c, n) in columns.iter().zip(&numeric) {
        let _ = write!(
            h,
            "<th{}>{}</th>",
            if *n { " class=\"n\"" } else { "" },
            esc(c["name"].as_str().unwrap_or(""))
        );
    }
    h.push_str("</tr></thead><tbody>");
    let cell = |h: &mut String, v: &Value, n: bool| {
        let text = if n { display_number(v) } else { label(v) };
        let _ = write!(
            h,
            "<td{}>{}</td>",
            if n { " class=\"n\"" } else { "" },
            esc(&text)
        );
    };
    for row in result["rows"].as_array().into_iter().flatten() {
        h.push_str("<tr>");
        for (v, n) in row.as_array().into_iter().flatten().zip(&numeric) {
            cell(h, v, *n);
        }
        h.push_str("</tr>");
    }
    if let Some(totals) = result["totals"].as_array() {
        let keys = columns.len().saturating_sub(totals.len());
        h.push_str("<tr class=\"total\">");
        for i in 0..keys {
            let _ = write!(h, "<td>{}</td>", if i == 0 { "Total" } else { "" });
        }
        for (v, n) in totals.iter().zip(&numeric[keys..]) {
            cell(h, v, *n);
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table>");
    if result["truncated"].as_bool() == Some(true) {
        let _ = write!(
            h,
            "<p class=\"cmp\">Showing {} of {}.</p>",
            result["row_count"], result["total"]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(
            display_number(&serde_json::json!("1234567.5")),
            "1,234,567.50"
        );
        assert_eq!(display_number(&serde_json::json!(-1000)), "-1,000");
        assert_eq!(display_number(&serde_json::json!(12)), "12");
        assert_eq!(display_number(&Value::Null), "—");
    }

    #[test]
    fn user_text_is_escaped() {
        assert_eq!(esc("<b a=\"x\">&'"), "&lt;b a=&quot;x&quot;&gt;&amp;&#39;");
    }
}
