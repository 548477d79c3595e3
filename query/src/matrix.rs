//! A matrix answer laid out as a pivot: row headers, column headers, a cell per pair, and the
//! subtotals and totals the engine computed with GROUPING SETS.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value as Json;

use crate::levels::Levels;

/// A matrix report's answer. Every value list holds the report's aggregates in order.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct MatrixResult {
    /// One entry per row: the values of the row groupings.
    pub row_headers: Vec<Vec<Json>>,
    /// One entry per column: the values of the column groupings.
    pub column_headers: Vec<Vec<Json>>,
    /// `cells[row][column]`: the aggregates of that pair, or null where no record falls.
    pub cells: Vec<Vec<Option<Vec<Json>>>>,
    /// Per row header: its aggregates over every column.
    pub row_totals: Vec<Vec<Json>>,
    /// Per column header: its aggregates over every row.
    pub column_totals: Vec<Vec<Json>>,
    /// With two row or column groupings: the outer groups' aggregates, each keyed by the
    /// row-grouping and column-grouping values it is grouped by (shorter than the headers).
    pub subtotals: Vec<MatrixSubtotal>,
    /// Over every record.
    pub grand_total: Vec<Json>,
    #[serde(skip)]
    pub truncated: bool,
    #[serde(skip)]
    pub total_rows: usize,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct MatrixSubtotal {
    pub row: Vec<Json>,
    pub column: Vec<Json>,
    pub values: Vec<Json>,
}

/// Places each grouping-sets row; rows beyond `limit` row headers are left out (and said so).
pub(crate) fn shape_matrix(
    levels: Levels,
    n_rows: usize,
    n_cols: usize,
    limit: usize,
) -> MatrixResult {
    let prefix =
        |by: &[bool], from: usize, n: usize| by[from..from + n].iter().filter(|b| **b).count();
    // The engine sorted the rows, so first appearance is the display order. Headers are
    // indexed by their JSON text, so placing each answer row is a lookup, not a scan.
    let mut row_headers: Vec<Vec<Json>> = Vec::new();
    let mut column_headers: Vec<Vec<Json>> = Vec::new();
    let mut row_index: HashMap<String, usize> = HashMap::new();
    let mut col_index: HashMap<String, usize> = HashMap::new();
    for r in &levels.rows {
        let (rr, cc) = (prefix(&r.by, 0, n_rows), prefix(&r.by, n_rows, n_cols));
        if rr == n_rows {
            let key = header_key(&r.keys[..n_rows]);
            row_index.entry(key).or_insert_with(|| {
                row_headers.push(r.keys[..n_rows].to_vec());
                row_headers.len() - 1
            });
        }
        if cc == n_cols {
            let key = header_key(&r.keys[n_rows..]);
            col_index.entry(key).or_insert_with(|| {
                column_headers.push(r.keys[n_rows..].to_vec());
                column_headers.len() - 1
            });
        }
    }
    let total_rows = row_headers.len();
    let truncated = total_rows > limit;
    row_headers.truncate(limit);
    let mut out = MatrixResult {
        cells: vec![vec![None; column_headers.len()]; row_headers.len()],
        row_totals: vec![Vec::new(); row_headers.len()],
        column_totals: vec![Vec::new(); column_headers.len()],
        row_headers,
        column_headers,
        subtotals: Vec::new(),
        grand_total: Vec::new(),
        truncated,
        total_rows,
    };
    for r in levels.rows {
        let (rr, cc) = (prefix(&r.by, 0, n_rows), prefix(&r.by, n_rows, n_cols));
        let row_key = &r.keys[..n_rows];
        let col_key = &r.keys[n_rows..];
        let ri = row_index
            .get(&header_key(row_key))
            .copied()
            .filter(|&i| i < out.row_headers.len());
        let ci = col_index.get(&header_key(col_key)).copied();
        match (rr == n_rows, cc == n_cols, rr == 0, cc == 0) {
            (true, true, _, _) => {
                if let (Some(i), Some(j)) = (ri, ci) {
                    out.cells[i][j] = Some(r.values);
                }
            }
            (true, _, _, true) => {
                if let Some(i) = ri {
                    out.row_totals[i] = r.values;
                }
            }
            (_, true, true, _) => {
                if let Some(j) = ci {
                    out.column_totals[j] = r.values;
                }
            }
            (_, _, true, true) => out.grand_total = r.values,
            _ => out.subtotals.push(MatrixSubtotal {
                row: row_key[..rr].to_vec(),
                column: col_key[..cc].to_vec(),
                values: r.values,
            }),
        }
    }
    out
}

fn header_key(values: &[Json]) -> String {
    serde_json::to_string(values).unwrap_or_default()
}
