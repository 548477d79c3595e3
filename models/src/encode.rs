//! Raw feature columns (numbers, categories) into the numeric matrix a model trains on, with
//! the vocabulary and fill values learned from the training rows kept beside the model, so a
//! record scored later is encoded exactly as the rows it was trained on.

use serde::{Deserialize, Serialize};

/// A raw feature's values, one per row, as the lake query returned them.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValues {
    Numbers(Vec<Option<f64>>),
    Categories(Vec<Option<String>>),
}

impl RawValues {
    pub fn len(&self) -> usize {
        match self {
            RawValues::Numbers(v) => v.len(),
            RawValues::Categories(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A named raw feature column.
#[derive(Debug, Clone, PartialEq)]
pub struct RawColumn {
    pub name: String,
    /// Numbers spanning orders of magnitude (amounts) are taken as `ln(1 + x)`.
    pub log: bool,
    pub values: RawValues,
}

/// Most one-hot columns a category gets: the most frequent values in training; the rest
/// (and values never seen) fall to the baseline, all zeros.
pub const MAX_CATEGORIES: usize = 20;

/// How one raw column becomes model columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "encoding", rename_all = "snake_case")]
pub enum ColumnEncoding {
    /// One column; a missing value takes `fill`, the training rows' mean, so it adds
    /// nothing to a score once standardised.
    Number { name: String, log: bool, fill: f64 },
    /// One 0/1 column per value kept.
    OneHot { name: String, values: Vec<String> },
}

/// The learned encoding of every raw column, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Encoder {
    pub columns: Vec<ColumnEncoding>,
}

fn number(x: f64, log: bool) -> f64 {
    if log { x.max(0.0).ln_1p() } else { x }
}

impl Encoder {
    /// Learns fills and vocabularies from the rows at `train` (positions into the columns).
    pub fn fit(columns: &[RawColumn], train: &[usize]) -> Self {
        let columns = columns
            .iter()
            .map(|c| match &c.values {
                RawValues::Numbers(v) => {
                    let seen: Vec<f64> = train
                        .iter()
                        .filter_map(|i| v.get(*i).copied().flatten())
                        .map(|x| number(x, c.log))
                        .collect();
                    let fill = if seen.is_empty() {
                        0.0
                    } else {
                        seen.iter().sum::<f64>() / seen.len() as f64
                    };
                    ColumnEncoding::Number {
                        name: c.name.clone(),
                        log: c.log,
                        fill,
                    }
                }
                RawValues::Categories(v) => {
                    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
                    for s in train
                        .iter()
                        .filter_map(|i| v.get(*i).and_then(Option::as_deref))
                    {
                        *counts.entry(s).or_default() += 1;
                    }
                    let mut ranked: Vec<(&str, usize)> = counts.into_iter().collect();
                    // Most frequent first; ties by value, so the same rows give the same model.
                    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
                    // The most frequent value is the baseline, left out so the one-hot
                    // columns aren't collinear with the intercept.
                    let values = ranked
                        .into_iter()
                        .skip(1)
                        .take(MAX_CATEGORIES)
                        .map(|(s, _)| s.to_string())
                        .collect();
                    ColumnEncoding::OneHot {
                        name: c.name.clone(),
                        values,
                    }
                }
            })
            .collect();
        Encoder { columns }
    }

    /// The model's column names: a number keeps its name, a category value is `name=value`.
    pub fn feature_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.columns {
            match c {
                ColumnEncoding::Number { name, .. } => out.push(name.clone()),
                ColumnEncoding::OneHot { name, values } => {
                    out.extend(values.iter().map(|v| format!("{name}={v}")));
                }
            }
        }
        out
    }

    /// The encoded row at `row`, reading each raw column by position (`columns` in the
    /// order the encoder was fitted on).
    pub fn encode_row(&self, columns: &[RawColumn], row: usize) -> Vec<f64> {
        let mut out = Vec::new();
        for (enc, raw) in self.columns.iter().zip(columns) {
            match (enc, &raw.values) {
                (ColumnEncoding::Number { log, fill, .. }, RawValues::Numbers(v)) => {
                    let x = v.get(row).copied().flatten().map(|x| number(x, *log));
                    out.push(x.filter(|x| x.is_finite()).unwrap_or(*fill));
                }
                (ColumnEncoding::OneHot { values, .. }, RawValues::Categories(v)) => {
                    let s = v.get(row).and_then(Option::as_deref);
                    out.extend(values.iter().map(|k| f64::from(u8::from(s == Some(k)))));
                }
                // A column whose kind changed since training (a field retyped) reads as
                // missing: fills and zeros.
                (ColumnEncoding::Number { fill, .. }, _) => out.push(*fill),
                (ColumnEncoding::OneHot { values, .. }, _) => {
                    out.extend(std::iter::repeat_n(0.0, values.len()));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> Vec<RawColumn> {
        vec![
            RawColumn {
                name: "amount".into(),
                log: true,
                values: RawValues::Numbers(vec![Some(99.0), None, Some(9.0), Some(-5.0)]),
            },
            RawColumn {
                name: "stage".into(),
                log: false,
                values: RawValues::Categories(vec![
                    Some("proposal".into()),
                    Some("prospecting".into()),
                    Some("proposal".into()),
                    None,
                ]),
            },
        ]
    }

    #[test]
    fn missing_numbers_take_the_training_mean_and_unseen_categories_the_baseline() {
        let cols = raw();
        let enc = Encoder::fit(&cols, &[0, 1, 2]);
        // Baseline is the most frequent stage (proposal), so only prospecting gets a column.
        assert_eq!(enc.feature_names(), ["amount", "stage=prospecting"]);
        let fill = (100f64.ln() + 10f64.ln()) / 2.0;
        assert_eq!(enc.encode_row(&cols, 1), vec![fill, 1.0]);
        assert_eq!(enc.encode_row(&cols, 0), vec![100f64.ln(), 0.0]);
        // Negative amounts clamp to 0 before the log; a missing stage is the baseline.
        assert_eq!(enc.encode_row(&cols, 3), vec![0.0, 0.0]);
    }

    #[test]
    fn a_column_never_set_in_training_is_constant() {
        let cols = vec![RawColumn {
            name: "later".into(),
            log: false,
            values: RawValues::Numbers(vec![None, None, Some(1.0)]),
        }];
        let enc = Encoder::fit(&cols, &[0, 1]);
        // Row 2 was not trained on: its value still encodes, but training saw only fills.
        assert_eq!(enc.encode_row(&cols, 0), vec![0.0]);
        assert_eq!(enc.encode_row(&cols, 2), vec![1.0]);
    }
}
