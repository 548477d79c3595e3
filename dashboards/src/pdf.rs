//! A dashboard (or one report) as a PDF on A4 or Letter pages, drawn with printpdf's own
//! operations: titles, numbers and tables as real text in the built-in Helvetica (found by
//! search and by `pdftotext`), charts as the page's own charts rendered to PNG.

use printpdf::{
    BuiltinFont, Color, Mm, Op, PdfDocument, PdfFontHandle, PdfPage, PdfSaveOptions, Point, Pt,
    RawImage, Rect, Rgb, TextItem, XObjectTransform,
};
use serde_json::Value;

use crate::chart::{ChartData, label, numeric_columns};
use crate::error::DashboardError;
use crate::html::display_number;
use crate::spec::{ChartKind, WidgetKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaperSize {
    A4,
    Letter,
}

impl PaperSize {
    /// Width and height in points.
    fn points(self) -> (f32, f32) {
        match self {
            Self::A4 => (595.3, 841.9),
            Self::Letter => (612.0, 792.0),
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "a4" => Some(Self::A4),
            "letter" => Some(Self::Letter),
            _ => None,
        }
    }
}

/// One block of the document: a widget's title and its answer.
pub struct PdfWidget<'a> {
    pub title: &'a str,
    pub kind: WidgetKind,
    pub chart: Option<ChartKind>,
    pub answer: &'a Value,
    /// "Computed … · LSN …".
    pub footnote: String,
}

const MARGIN: f32 = 40.0;
/// A chart's picture on the page, in points.
const CHART_HEIGHT: f32 = 230.0;
/// Table rows a block shows before it says how many it left out.
const MAX_TABLE_ROWS: usize = 200;

/// The document: `title`, a line under it, then every widget in order, flowing onto new
/// pages as they fill.
pub fn render_pdf(
    title: &str,
    subtitle: &str,
    widgets: &[PdfWidget<'_>],
    paper: PaperSize,
) -> Result<Vec<u8>, DashboardError> {
    let mut doc = PdfDocument::new(title);
    let mut w = Writer::new(paper);
    w.text(title, 18.0, true);
    w.gap(4.0);
    w.text(subtitle, 9.0, false);
    w.gap(14.0);
    for widget in widgets {
        // A title stays on the page of what it heads: a chart needs room for its picture.
        let is_chart = widget.kind == WidgetKind::Chart && widget.chart != Some(ChartKind::Table);
        w.ensure(if is_chart { CHART_HEIGHT + 40.0 } else { 60.0 });
        w.text(widget.title, 13.0, true);
        w.gap(4.0);
        if let Some(e) = widget.answer["error"].as_str() {
            w.text(
                &format!("This widget could not be computed: {e}"),
                9.0,
                false,
            );
        } else {
            match widget.kind {
                WidgetKind::Metric => metric(&mut w, widget.answer),
                WidgetKind::Chart if widget.chart != Some(ChartKind::Table) => {
                    chart(&mut doc, &mut w, widget)?
                }
                _ => table(&mut w, &widget.answer["result"]),
            }
        }
        w.gap(2.0);
        w.text(&widget.footnote, 7.5, false);
        w.gap(16.0);
    }
    let pages = w.finish();
    let mut warnings = Vec::new();
    Ok(doc
        .with_pages(pages)
        .save(&PdfSaveOptions::default(), &mut warnings))
}

/// Lays ops out top to bottom, starting a new page when the next block does not fit.
struct Writer {
    width: f32,
    height: f32,
    y: f32,
    ops: Vec<Op>,
    pages: Vec<PdfPage>,
}

impl Writer {
    fn new(paper: PaperSize) -> Self {
        let (width, height) = paper.points();
        Self {
            width,
            height,
            y: height - MARGIN,
            ops: Vec::new(),
            pages: Vec::new(),
        }
    }

    fn usable_width(&self) -> f32 {
        self.width - 2.0 * MARGIN
    }

    /// Room for `needed` points below, or a new page.
    fn ensure(&mut self, needed: f32) {
        if self.y - needed < MARGIN {
            self.break_page();
        }
    }

    fn break_page(&mut self) {
        let ops = std::mem::take(&mut self.ops);
        self.pages.push(page(self.width, self.height, ops));
        self.y = self.height - MARGIN;
    }

    fn gap(&mut self, pt: f32) {
        self.y -= pt;
    }

    /// One line of text at the left margin.
    fn text(&mut self, s: &str, size: f32, bold: bool) {
        self.ensure(size * 1.3);
        self.y -= size;
        self.put(MARGIN, s, size, bold);
        self.y -= size * 0.3;
    }

    /// Text at `x` on the current baseline.
    fn put(&mut self, x: f32, s: &str, size: f32, bold: bool) {
        let font = if bold {
            BuiltinFont::HelveticaBold
        } else {
            BuiltinFont::Helvetica
        };
        self.ops.extend([
            Op::StartTextSection,
            Op::SetFont {
                font: PdfFontHandle::Builtin(font),
                size: Pt(size),
            },
            Op::SetTextCursor {
                pos: Point {
                    x: Pt(x),
                    y: Pt(self.y),
                },
            },
            Op::ShowText {
                items: vec![TextItem::Text(winansi(s))],
            },
            Op::EndTextSection,
        ]);
    }

    fn finish(mut self) -> Vec<PdfPage> {
        if !self.ops.is_empty() || self.pages.is_empty() {
            self.break_page();
        }
        self.pages
    }
}

fn page(width: f32, height: f32, ops: Vec<Op>) -> PdfPage {
    PdfPage::new(Mm(width * 25.4 / 72.0), Mm(height * 25.4 / 72.0), ops)
}

/// The built-in fonts cover Latin-1: other characters print as `?`.
fn winansi(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '—' | '–' => '-',
            c if (c as u32) < 0x100 => c,
            _ => '?',
        })
        .collect()
}

/// Cuts `s` to what fits `width` points at `size` (Helvetica averages about half an em).
fn fit(s: &str, width: f32, size: f32) -> String {
    let max = ((width / (size * 0.52)) as usize).max(3);
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max - 3).collect();
        format!("{cut}...")
    }
}

fn metric(w: &mut Writer, answer: &Value) {
    w.text(&display_number(&answer["value"]), 22.0, true);
    if let Some(period) = answer["previous_period"].as_str() {
        let pct = answer["change_percent"]
            .as_f64()
            .map_or_else(|| "n/a".into(), |c| format!("{c:+.1}%"));
        w.text(
            &format!(
                "{pct} vs {} ({})",
                period.to_lowercase().replace('_', " "),
                display_number(&answer["previous"])
            ),
            9.0,
            false,
        );
    }
}

fn chart(
    doc: &mut PdfDocument,
    w: &mut Writer,
    widget: &PdfWidget<'_>,
) -> Result<(), DashboardError> {
    let kind = widget.chart.unwrap_or(ChartKind::Bar);
    let groupings = widget.answer["groupings"].as_u64().unwrap_or(1) as usize;
    let Some(data) = ChartData::from_summary(&widget.answer["result"], groupings, kind) else {
        w.text("No records match.", 9.0, false);
        return Ok(());
    };
    let (cw, ch) = (w.usable_width(), CHART_HEIGHT);
    let png = data.png(kind, cw, ch)?;
    let mut warnings = Vec::new();
    let image = RawImage::decode_from_bytes(&png, &mut warnings).map_err(DashboardError::Render)?;
    let id = doc.add_image(&image);
    w.ensure(ch);
    w.y -= ch;
    w.ops.push(Op::UseXobject {
        id,
        transform: XObjectTransform {
            translate_x: Some(Pt(MARGIN)),
            translate_y: Some(Pt(w.y)),
            // The PNG is drawn at twice the size: 144 dpi puts it back at `cw` points.
            dpi: Some(144.0),
            ..Default::default()
        },
    });
    w.gap(6.0);
    // The numbers behind the picture, as text: readable by search and by people who
    // can't tell the colours apart.
    let mut rows = Vec::new();
    for (i, c) in data.categories.iter().enumerate() {
        let values: Vec<String> = data
            .series
            .iter()
            .map(|(name, v)| {
                let shown = v[i].map_or_else(
                    || "-".into(),
                    |x| display_number(&Value::from(f64::from(x))),
                );
                format!("{name} {shown}")
            })
            .collect();
        rows.push(format!("{c}: {}", values.join(", ")));
    }
    for r in rows.iter().take(12) {
        w.text(&fit(r, w.usable_width(), 8.0), 8.0, false);
    }
    if rows.len() > 12 {
        w.text(&format!("... and {} more", rows.len() - 12), 8.0, false);
    }
    Ok(())
}

/// A report's answer as a table with a shaded header, its columns sharing the width.
fn table(w: &mut Writer, result: &Value) {
    let columns = result["columns"].as_array().cloned().unwrap_or_default();
    if columns.is_empty() {
        w.text("No columns.", 9.0, false);
        return;
    }
    let size = 8.0;
    let col_w = w.usable_width() / columns.len() as f32;
    let numeric = numeric_columns(&columns);
    let header: Vec<String> = columns
        .iter()
        .map(|c| c["name"].as_str().unwrap_or("").to_string())
        .collect();
    let line = |w: &mut Writer, cells: &[String], bold: bool, shade: bool| {
        w.ensure(size * 1.6);
        if shade {
            w.ops.extend([
                Op::SetFillColor {
                    col: Color::Rgb(Rgb::new(0.93, 0.94, 0.96, None)),
                },
                Op::DrawRectangle {
                    rectangle: Rect {
                        x: Pt(MARGIN),
                        y: Pt(w.y - size * 1.45),
                        width: Pt(w.usable_width()),
                        height: Pt(size * 1.6),
                        mode: Some(printpdf::PaintMode::Fill),
                        winding_order: None,
                    },
                },
                Op::SetFillColor {
                    col: Color::Rgb(Rgb::new(0.0, 0.0, 0.0, None)),
                },
            ]);
        }
        w.y -= size * 1.1;
        for (i, c) in cells.iter().enumerate() {
            w.put(
                MARGIN + i as f32 * col_w + 2.0,
                &fit(c, col_w - 4.0, size),
                size,
                bold,
            );
        }
        w.y -= size * 0.5;
    };
    line(w, &header, true, true);
    let rows = result["rows"].as_array().cloned().unwrap_or_default();
    for row in rows.iter().take(MAX_TABLE_ROWS) {
        let cells: Vec<String> = row
            .as_array()
            .into_iter()
            .flatten()
            .zip(&numeric)
            .map(|(v, n)| if *n { display_number(v) } else { label(v) })
            .collect();
        line(w, &cells, false, false);
    }
    if let Some(totals) = result["totals"].as_array() {
        let keys = columns.len().saturating_sub(totals.len());
        let mut cells: Vec<String> = (0..keys)
            .map(|i| {
                if i == 0 {
                    "Total".into()
                } else {
                    String::new()
                }
            })
            .collect();
        cells.extend(totals.iter().map(display_number));
        line(w, &cells, true, true);
    }
    let shown = rows.len().min(MAX_TABLE_ROWS);
    let total = result["total"].as_u64().unwrap_or(rows.len() as u64);
    if (shown as u64) < total {
        w.text(&format!("Showing {shown} of {total} rows."), 8.0, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_table_renders() {
        let rows: Vec<Value> = (0..150)
            .map(|i| serde_json::json!([format!("row {i}"), i]))
            .collect();
        let answer = serde_json::json!({"result": {"columns": [{"name": "name", "type": "text"}, {"name": "n", "type": "integer"}], "rows": rows, "total": 150}});
        let widgets = [PdfWidget {
            title: "Many rows",
            kind: WidgetKind::Report,
            chart: None,
            answer: &answer,
            footnote: "Computed now".into(),
        }];
        let pdf = render_pdf("Title", "sub", &widgets, PaperSize::A4).expect("pdf");
        assert!(pdf.starts_with(b"%PDF"));
    }

    #[test]
    fn text_outside_latin1_is_replaced() {
        assert_eq!(winansi("Café — 東京"), "Café - ??");
        assert_eq!(fit("abcdefghijklmnopqrstuvwxyz", 25.0, 8.0), "abc...");
    }
}
