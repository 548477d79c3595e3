//! A report's answer as a file: CSV (one row per result row; a matrix as one row per cell) and
//! XLSX with typed cells (numbers, dates, times and booleans as Excel values, not text; a
//! matrix laid out as a pivot with its totals).
//!
//! Excel keeps numbers as doubles: amounts are exact to the cent up to about 10^13, and the
//! JSON and CSV answers keep every digit beyond that.

use chrono::{DateTime, NaiveDate};
use oneo_query::{ColumnInfo, ReportResult};
use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};
use serde_json::Value;

/// A dashboard as one CSV file of sections, one per widget in the dashboard's order: a row
/// with the widget's title, then its table as [`to_csv`] writes a report (a metric: its value
/// and, with a comparison, the previous period's and the change), then an empty line.
pub fn dashboard_csv(widgets: &[(&str, &Value)]) -> Result<Vec<u8>, csv::Error> {
    let mut out = Vec::new();
    for (title, answer) in widgets {
        let mut w = csv::WriterBuilder::new()
            .flexible(true)
            .from_writer(Vec::new());
        w.write_record([title])?;
        if let Some(e) = answer["error"].as_str() {
            w.write_record([format!("This widget could not be computed: {e}")])?;
        } else if answer["widget"] == "metric" {
            let mut header = vec!["value".to_string()];
            let mut values = vec![text(&answer["value"])];
            if let Some(period) = answer["previous_period"].as_str() {
                header.extend([period.to_string(), "change_percent".to_string()]);
                values.extend([text(&answer["previous"]), text(&answer["change_percent"])]);
            }
            w.write_record(&header)?;
            w.write_record(&values)?;
        } else {
            match serde_json::from_value::<ReportResult>(answer["result"].clone()) {
                Ok(result) => {
                    out.extend(
                        w.into_inner()
                            .map_err(|e| csv::Error::from(e.into_error()))?,
                    );
                    out.extend(to_csv(&result)?);
                    out.push(b'\n');
                    continue;
                }
                Err(e) => w.write_record([format!("This widget's answer can't be read: {e}")])?,
            }
        }
        out.extend(
            w.into_inner()
                .map_err(|e| csv::Error::from(e.into_error()))?,
        );
        out.push(b'\n');
    }
    Ok(out)
}

/// A value as CSV text; a list as its items joined by `;`.
fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(";"),
        other => other.to_string(),
    }
}

/// Tabular and summary: the columns and rows. Matrix: one row per cell, its row and column
/// groupings then its aggregates.
pub fn to_csv(result: &ReportResult) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(result.columns.iter().map(|c| c.name.as_str()))?;
    if let Some(m) = &result.matrix {
        for (i, r) in m.row_headers.iter().enumerate() {
            for (j, c) in m.column_headers.iter().enumerate() {
                if let Some(values) = &m.cells[i][j] {
                    w.write_record(r.iter().chain(c).chain(values).map(text))?;
                }
            }
        }
    } else {
        for row in &result.rows {
            w.write_record(row.iter().map(text))?;
        }
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

/// CSV text of one record batch's rows.
fn csv_rows(batch: &datafusion::arrow::record_batch::RecordBatch) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::with_capacity(batch.num_rows() * 64));
    let mut record = Vec::with_capacity(batch.num_columns());
    for r in 0..batch.num_rows() {
        record.clear();
        record.extend(
            batch
                .columns()
                .iter()
                .map(|c| text(&oneo_query::cell(c, r))),
        );
        w.write_record(&record)?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

/// A header row of `columns`, then every batch's rows as CSV, as the batches come.
pub fn csv_stream(
    columns: &[ColumnInfo],
    batches: datafusion::execution::SendableRecordBatchStream,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    use futures::StreamExt;
    let header = {
        let mut w = csv::Writer::from_writer(Vec::new());
        let written = w
            .write_record(columns.iter().map(|c| c.name.as_str()))
            .map_err(std::io::Error::other)
            .and_then(|()| w.into_inner().map_err(|e| e.into_error()));
        written.map(bytes::Bytes::from)
    };
    let rows = batches.map(|batch| {
        let batch = batch.map_err(std::io::Error::other)?;
        csv_rows(&batch)
            .map(bytes::Bytes::from)
            .map_err(std::io::Error::other)
    });
    futures::stream::once(async move { header }).chain(rows)
}

/// The formats cells are written with.
struct Formats {
    header: Format,
    total: Format,
    money: Format,
    money_total: Format,
    date: Format,
    datetime: Format,
}

impl Formats {
    fn new() -> Self {
        Formats {
            header: Format::new().set_bold(),
            total: Format::new().set_bold(),
            money: Format::new().set_num_format("#,##0.00"),
            money_total: Format::new().set_bold().set_num_format("#,##0.00"),
            date: Format::new().set_num_format("yyyy-mm-dd"),
            datetime: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
        }
    }
}

/// One cell, typed by its column's kind: numbers as numbers, dates and datetimes (UTC) as
/// Excel dates, booleans as booleans, lists as their items joined by `;`, the rest as text.
fn write_cell(
    ws: &mut Worksheet,
    (row, col): (u32, u16),
    kind: &str,
    v: &Value,
    bold: bool,
    f: &Formats,
) -> Result<(), XlsxError> {
    let plain = if bold { Some(&f.total) } else { None };
    let with = |ws: &mut Worksheet, s: &str| match plain {
        Some(fmt) => ws.write_string_with_format(row, col, s, fmt).map(|_| ()),
        None => ws.write_string(row, col, s).map(|_| ()),
    };
    match v {
        Value::Null => Ok(()),
        Value::Bool(b) => ws.write_boolean(row, col, *b).map(|_| ()),
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            match plain {
                Some(fmt) => ws.write_number_with_format(row, col, x, fmt),
                None => ws.write_number(row, col, x),
            }
            .map(|_| ())
        }
        Value::String(s) => match kind {
            "currency" => match s.parse::<f64>() {
                Ok(x) => {
                    let fmt = if bold { &f.money_total } else { &f.money };
                    ws.write_number_with_format(row, col, x, fmt).map(|_| ())
                }
                Err(_) => with(ws, s),
            },
            "number" | "percent" | "decimal" | "integer" | "autonumber" => match s.parse::<f64>() {
                Ok(x) => match plain {
                    Some(fmt) => ws.write_number_with_format(row, col, x, fmt).map(|_| ()),
                    None => ws.write_number(row, col, x).map(|_| ()),
                },
                Err(_) => with(ws, s),
            },
            "date" => match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                Ok(d) => ws
                    .write_datetime_with_format(row, col, d, &f.date)
                    .map(|_| ()),
                Err(_) => with(ws, s),
            },
            "datetime" => match DateTime::parse_from_rfc3339(s) {
                Ok(t) => ws
                    .write_datetime_with_format(row, col, t.naive_utc(), &f.datetime)
                    .map(|_| ()),
                Err(_) => with(ws, s),
            },
            _ => with(ws, s),
        },
        other => with(ws, &text(other)),
    }
}

fn header(
    ws: &mut Worksheet,
    row: u32,
    columns: &[ColumnInfo],
    f: &Formats,
) -> Result<(), XlsxError> {
    for (c, info) in columns.iter().enumerate() {
        ws.write_string_with_format(row, c as u16, &info.name, &f.header)?;
    }
    Ok(())
}

/// The report as a workbook: sheet "Report" (rows, then the subtotals and the total of a
/// summary; or a matrix's pivot) and, for a matrix with two-level groupings, "Subtotals".
/// `groupings` is the number of row groupings a summary has.
pub fn to_xlsx(result: &ReportResult, groupings: usize) -> Result<Vec<u8>, XlsxError> {
    let f = Formats::new();
    let mut book = Workbook::new();
    let ws = book.add_worksheet();
    ws.set_name("Report")?;
    match &result.matrix {
        Some(_) => pivot(ws, result, &f)?,
        None => table(ws, result, groupings, &f)?,
    }
    ws.autofit();
    if let Some(m) = result.matrix.as_ref().filter(|m| !m.subtotals.is_empty()) {
        let n_rows = m.row_headers.first().map_or(0, Vec::len);
        let n_cols = m.column_headers.first().map_or(0, Vec::len);
        let ws = book.add_worksheet();
        ws.set_name("Subtotals")?;
        header(ws, 0, &result.columns, &f)?;
        let kinds: Vec<&str> = result.columns.iter().map(|c| c.kind.as_str()).collect();
        for (i, s) in m.subtotals.iter().enumerate() {
            let r = i as u32 + 1;
            let mut cells: Vec<Value> = Vec::with_capacity(kinds.len());
            cells.extend((0..n_rows).map(|k| s.row.get(k).cloned().unwrap_or(Value::Null)));
            cells.extend((0..n_cols).map(|k| s.column.get(k).cloned().unwrap_or(Value::Null)));
            cells.extend(s.values.iter().cloned());
            for (c, v) in cells.iter().enumerate() {
                write_cell(
                    ws,
                    (r, c as u16),
                    kinds.get(c).copied().unwrap_or(""),
                    v,
                    false,
                    &f,
                )?;
            }
        }
        ws.autofit();
    }
    book.save_to_buffer()
}

/// Tabular and summary: a header row and the rows; a summary then lists its subtotals (the
/// outer groups' values, their aggregates) and a total row, in bold.
fn table(
    ws: &mut Worksheet,
    result: &ReportResult,
    groupings: usize,
    f: &Formats,
) -> Result<(), XlsxError> {
    let kinds: Vec<&str> = result.columns.iter().map(|c| c.kind.as_str()).collect();
    let kind = |c: usize| kinds.get(c).copied().unwrap_or("");
    header(ws, 0, &result.columns, f)?;
    ws.set_freeze_panes(1, 0)?;
    let mut r = 1u32;
    for row in &result.rows {
        for (c, v) in row.iter().enumerate() {
            write_cell(ws, (r, c as u16), kind(c), v, false, f)?;
        }
        r += 1;
    }
    let Some(totals) = &result.totals else {
        return Ok(());
    };
    for s in result.subtotals.iter().flatten() {
        for (c, v) in s.groups.iter().enumerate() {
            write_cell(ws, (r, c as u16), kind(c), v, true, f)?;
        }
        if s.groups.len() < groupings {
            ws.write_string_with_format(r, s.groups.len() as u16, "Subtotal", &f.total)?;
        }
        for (a, v) in s.values.iter().enumerate() {
            let c = groupings + a;
            write_cell(ws, (r, c as u16), kind(c), v, true, f)?;
        }
        r += 1;
    }
    ws.write_string_with_format(r, 0, "Total", &f.total)?;
    for (a, v) in totals.iter().enumerate() {
        let c = groupings + a;
        write_cell(ws, (r, c as u16), kind(c), v, true, f)?;
    }
    Ok(())
}

/// A matrix as a pivot: the column groupings' values across the top (one column per
/// aggregate under each), the row groupings' values down the left, each row's totals in the
/// right-hand "Total" columns, and the column totals and grand total in the bottom "Total" row.
fn pivot(ws: &mut Worksheet, result: &ReportResult, f: &Formats) -> Result<(), XlsxError> {
    let Some(m) = &result.matrix else {
        return Ok(());
    };
    let n_rows = m.row_headers.first().map_or(0, Vec::len);
    let n_cols = m.column_headers.first().map_or(0, Vec::len);
    let cols = &result.columns;
    let aggs = &cols[(n_rows + n_cols).min(cols.len())..];
    let a = aggs.len().max(1);
    let kind_of = |c: &ColumnInfo| c.kind.clone();
    let first = n_rows as u16;
    // Header rows: one per column grouping, then the aggregate names.
    for level in 0..n_cols {
        let r = level as u32;
        if let Some(name) = cols.get(n_rows + level) {
            ws.write_string_with_format(r, first.saturating_sub(1), &name.name, &f.header)?;
        }
        for (j, header) in m.column_headers.iter().enumerate() {
            let c = first + (j * a) as u16;
            let kind = cols.get(n_rows + level).map(kind_of).unwrap_or_default();
            write_cell(ws, (r, c), &kind, &header[level], true, f)?;
        }
    }
    let total_col = first + (m.column_headers.len() * a) as u16;
    ws.write_string_with_format(0, total_col, "Total", &f.header)?;
    let names_row = n_cols as u32;
    for (g, info) in cols.iter().take(n_rows).enumerate() {
        ws.write_string_with_format(names_row, g as u16, &info.name, &f.header)?;
    }
    for block in 0..=m.column_headers.len() {
        for (k, info) in aggs.iter().enumerate() {
            let c = first + (block * a + k) as u16;
            ws.write_string_with_format(names_row, c, &info.name, &f.header)?;
        }
    }
    ws.set_freeze_panes(names_row + 1, first)?;
    let agg_kinds: Vec<String> = aggs.iter().map(kind_of).collect();
    let values = |ws: &mut Worksheet, r: u32, block: usize, vals: &[Value], bold: bool| {
        for (k, v) in vals.iter().enumerate() {
            let c = first + (block * a + k) as u16;
            write_cell(
                ws,
                (r, c),
                agg_kinds.get(k).map_or("", String::as_str),
                v,
                bold,
                f,
            )?;
        }
        Ok::<(), XlsxError>(())
    };
    let mut r = names_row + 1;
    for (i, header) in m.row_headers.iter().enumerate() {
        for (g, v) in header.iter().enumerate() {
            let kind = cols.get(g).map(kind_of).unwrap_or_default();
            write_cell(ws, (r, g as u16), &kind, v, true, f)?;
        }
        for (j, cell) in m.cells[i].iter().enumerate() {
            if let Some(vals) = cell {
                values(ws, r, j, vals, false)?;
            }
        }
        values(ws, r, m.column_headers.len(), &m.row_totals[i], true)?;
        r += 1;
    }
    ws.write_string_with_format(r, 0, "Total", &f.total)?;
    for (j, vals) in m.column_totals.iter().enumerate() {
        values(ws, r, j, vals, true)?;
    }
    values(ws, r, m.column_headers.len(), &m.grand_total, true)?;
    Ok(())
}

/// A sheet name Excel accepts (at most 31 characters, none of `[]:*?/\`), unique in `used`.
fn sheet_name(title: &str, used: &mut Vec<String>) -> String {
    let clean: String = title
        .chars()
        .map(|c| if "[]:*?/\\".contains(c) { ' ' } else { c })
        .collect();
    let base: String = clean.trim().chars().take(28).collect();
    let base = if base.is_empty() {
        "Widget".to_string()
    } else {
        base
    };
    let mut name = base.clone();
    let mut n = 2;
    while used.iter().any(|u| u.eq_ignore_ascii_case(&name)) {
        name = format!("{base} {n}");
        n += 1;
    }
    used.push(name.clone());
    name
}

/// A dashboard as a workbook: a sheet per widget, named by its title. A metric's sheet holds
/// its value (and the previous period's, with the change); a chart's or report's, its report
/// as `/v1/reports/{id}/export?format=xlsx` lays it out. A widget that could not be computed
/// gets a sheet saying why.
pub fn dashboard_xlsx(widgets: &[(&str, &Value)]) -> Result<Vec<u8>, XlsxError> {
    let f = Formats::new();
    let mut book = Workbook::new();
    let mut used = Vec::new();
    for (title, answer) in widgets {
        let ws = book.add_worksheet();
        ws.set_name(sheet_name(title, &mut used))?;
        if let Some(e) = answer["error"].as_str() {
            ws.write_string(0, 0, format!("This widget could not be computed: {e}"))?;
            continue;
        }
        if answer["widget"] == "metric" {
            let kind = answer["column"]["type"].as_str().unwrap_or("");
            ws.write_string_with_format(0, 0, "Value", &f.header)?;
            write_cell(ws, (0, 1), kind, &answer["value"], false, &f)?;
            if let Some(period) = answer["previous_period"].as_str() {
                ws.write_string_with_format(1, 0, period, &f.header)?;
                write_cell(ws, (1, 1), kind, &answer["previous"], false, &f)?;
                ws.write_string_with_format(2, 0, "Change %", &f.header)?;
                write_cell(ws, (2, 1), "decimal", &answer["change_percent"], false, &f)?;
            }
            ws.autofit();
            continue;
        }
        let result: ReportResult = match serde_json::from_value(answer["result"].clone()) {
            Ok(r) => r,
            Err(e) => {
                ws.write_string(0, 0, format!("This widget's answer can't be read: {e}"))?;
                continue;
            }
        };
        let groupings = answer["groupings"].as_u64().unwrap_or(0) as usize;
        match &result.matrix {
            Some(_) => pivot(ws, &result, &f)?,
            None => table(ws, &result, groupings, &f)?,
        }
        ws.autofit();
    }
    book.save_to_buffer()
}
