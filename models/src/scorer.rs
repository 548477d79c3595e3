//! A trained model as it is deployed: what it reads, how it encodes it, its weights, and
//! the scores it gives with the factors behind each, in words.

use serde::{Deserialize, Serialize};

use crate::drift::Reference;
use crate::encode::{ColumnEncoding, Encoder, RawColumn, RawValues};
use crate::error::ModelError;
use crate::features::{FeatureRows, FeatureSpec};
use crate::logistic::{LogisticModel, LogisticParams};
use crate::metrics::Metrics;
use crate::{Requirements, TrainingSet, fit_and_measure};

/// A version's artifact: plain data, serialised as JSON into the lake's object store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scorer {
    pub spec: FeatureSpec,
    pub encoder: Encoder,
    pub model: LogisticModel,
    /// The F1-best threshold on the training rows: a score at or above it counts as "yes".
    pub threshold: f64,
    /// The training rows' distribution of every model column, for drift.
    #[serde(default)]
    pub reference: Reference,
}

/// What training a version found.
#[derive(Debug, Clone)]
pub struct Training {
    pub scorer: Scorer,
    pub metrics: Metrics,
    pub train_rows: usize,
    pub validation_rows: usize,
    /// Each encoded feature's share of the absolute standardised weights.
    pub importance: Vec<(String, f64)>,
}

/// One record's score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    pub id: String,
    pub probability: f64,
    /// 1–99: the probability in percent, never a certain 0 or 100.
    pub score: u8,
    /// The features that moved it most, strongest first: up to three each way.
    pub factors: Vec<Factor>,
}

/// One feature's effect on a score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Factor {
    pub feature: String,
    /// e.g. "12 activities in the last 30 days".
    pub text: String,
    /// Score points this value alone adds to (or takes from) an even, 50-point record.
    pub points: i32,
}

/// How many factors a score names each way.
const FACTORS_EACH_WAY: usize = 3;

impl Scorer {
    /// Trains on the older 80 % of the labelled rows (by cutoff day) and measures on the
    /// newer 20 %. The encoding (fills, one-hot vocabularies) is learned on the older rows
    /// only, so nothing of the validation rows reaches the model.
    pub fn train(
        spec: &FeatureSpec,
        rows: &FeatureRows,
        requirements: &Requirements,
        params: LogisticParams,
    ) -> Result<Training, ModelError> {
        let labelled: Vec<usize> = (0..rows.len())
            .filter(|i| rows.labels[*i].is_some())
            .collect();
        let mut all = TrainingSet::new(Vec::new());
        for i in &labelled {
            all.push(
                Vec::new(),
                rows.labels[*i] == Some(true),
                i64::from(rows.cutoffs[*i]),
            );
        }
        requirements.check(&all)?;
        let (train, validate) = all.split_by_time();
        let to_rows = |idx: &[usize]| idx.iter().map(|k| labelled[*k]).collect::<Vec<_>>();
        let (train, validate) = (to_rows(&train), to_rows(&validate));
        let encoder = Encoder::fit(&rows.columns, &train);
        let mut set = TrainingSet::new(encoder.feature_names());
        for i in train.iter().chain(&validate) {
            set.push(
                encoder.encode_row(&rows.columns, *i),
                rows.labels[*i] == Some(true),
                i64::from(rows.cutoffs[*i]),
            );
        }
        let (older, newer): (Vec<usize>, Vec<usize>) = (
            (0..train.len()).collect(),
            (train.len()..set.len()).collect(),
        );
        let trained = fit_and_measure(&set, &older, &newer, params)?;
        let importance = trained.model.importance();
        let reference = Reference::fit(&set.features, &set.rows[..train.len()]);
        Ok(Training {
            scorer: Scorer {
                spec: spec.clone(),
                encoder,
                model: trained.model,
                threshold: trained.threshold,
                reference,
            },
            metrics: trained.metrics,
            train_rows: train.len(),
            validation_rows: validate.len(),
            importance,
        })
    }

    /// Each model column's population stability index between the training rows and `rows`.
    pub fn drift(&self, rows: &FeatureRows) -> Vec<(String, f64)> {
        let encoded: Vec<Vec<f64>> = (0..rows.len())
            .map(|i| self.encoder.encode_row(&rows.columns, i))
            .collect();
        self.reference.psi(&encoded)
    }

    /// Every row's score, in the rows' order.
    pub fn score(&self, rows: &FeatureRows) -> Vec<Score> {
        (0..rows.len()).map(|i| self.score_row(rows, i)).collect()
    }

    fn score_row(&self, rows: &FeatureRows, i: usize) -> Score {
        let encoded = self.encoder.encode_row(&rows.columns, i);
        let contributions = self.model.contributions(&encoded);
        let logit = self.model.intercept + contributions.iter().sum::<f64>();
        let probability = sigmoid(logit);
        // Contributions (log-odds) grouped back to the raw feature they came from (a
        // category's columns are one feature), in score points as each one alone would move
        // an even, 50-point record: symmetric, and the same for a record whose other
        // features already pushed it near 1 or 99, where probability differences vanish.
        let mut factors = Vec::new();
        let mut at = 0;
        for (enc, raw) in self.encoder.columns.iter().zip(&rows.columns) {
            let width = match enc {
                ColumnEncoding::Number { .. } => 1,
                ColumnEncoding::OneHot { values, .. } => values.len(),
            };
            let c: f64 = contributions[at..at + width].iter().sum();
            at += width;
            let points = (100.0 * (sigmoid(c) - 0.5)).round() as i32;
            if points != 0 {
                factors.push(Factor {
                    feature: raw.name.clone(),
                    text: describe(raw, i),
                    points,
                });
            }
        }
        factors.sort_by(|a, b| {
            b.points
                .abs()
                .cmp(&a.points.abs())
                .then(a.feature.cmp(&b.feature))
        });
        let (mut up, mut down): (Vec<Factor>, Vec<Factor>) =
            factors.into_iter().partition(|f| f.points > 0);
        up.truncate(FACTORS_EACH_WAY);
        down.truncate(FACTORS_EACH_WAY);
        up.extend(down);
        Score {
            id: rows.ids[i].clone(),
            probability,
            score: (probability * 100.0).round().clamp(1.0, 99.0) as u8,
            factors: up,
        }
    }
}

fn sigmoid(t: f64) -> f64 {
    1.0 / (1.0 + (-t).exp())
}

/// A raw feature's value in words.
fn describe(raw: &RawColumn, i: usize) -> String {
    match &raw.values {
        RawValues::Categories(v) => match v.get(i).and_then(Option::as_deref) {
            Some(s) => format!("{} is {s}", raw.name),
            None => format!("{} is not set", raw.name),
        },
        RawValues::Numbers(v) => {
            let Some(x) = v.get(i).copied().flatten() else {
                return match raw.name.as_str() {
                    "days_since_last_activity" => "no activity yet".into(),
                    name => format!("{name} is not set"),
                };
            };
            let n = if x.fract() == 0.0 && x.abs() < 1e15 {
                format!("{}", x as i64)
            } else {
                format!("{x:.2}")
            };
            let one = x == 1.0;
            let plural = |word: &str| {
                if one {
                    word.to_string()
                } else {
                    format!("{word}s")
                }
            };
            match raw.name.as_str() {
                "activities" => format!("{n} {}", if one { "activity" } else { "activities" }),
                "activities_30d" | "activities_90d" => format!(
                    "{n} {} in the last {} days",
                    if one { "activity" } else { "activities" },
                    if raw.name.ends_with("30d") { 30 } else { 90 }
                ),
                "meetings" => format!("{n} {}", plural("meeting")),
                "days_since_last_activity" => {
                    format!("{n} {} since the last activity", plural("day"))
                }
                "stage_changes" => format!("{n} stage {}", plural("change")),
                "days_in_stage" => format!("{n} {} in this stage", plural("day")),
                name => format!("{name} is {n}"),
            }
        }
    }
}
