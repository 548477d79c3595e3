//! Logistic regression with linfa on standardised features, L2-penalised, and what a trained
//! model answers: probabilities, each feature's contribution, its importance.

use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::error::ModelError;

/// How a logistic model is fitted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogisticParams {
    /// The L2 penalty on the standardised weights: `alpha / 2 · ‖w‖²` beside the summed log
    /// loss, so `1.0` is scikit-learn's default `C = 1`.
    pub l2: f64,
    pub max_iterations: u64,
}

impl Default for LogisticParams {
    fn default() -> Self {
        LogisticParams {
            l2: 1.0,
            max_iterations: 200,
        }
    }
}

/// A fitted model: the standardisation it learned and the weights over standardised
/// features. Plain data, so it serialises as the version's artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticModel {
    pub features: Vec<String>,
    pub means: Vec<f64>,
    pub scales: Vec<f64>,
    pub weights: Vec<f64>,
    pub intercept: f64,
}

/// Fits `P(label) = σ(w · z + b)` where `z` is `x` standardised column by column.
pub fn train_logistic(
    features: &[String],
    x: ArrayView2<f64>,
    labels: &[bool],
    params: LogisticParams,
) -> Result<LogisticModel, ModelError> {
    if x.nrows() != labels.len() || x.ncols() != features.len() {
        return Err(ModelError::Shape(format!(
            "{} rows × {} columns for {} labels and {} features",
            x.nrows(),
            x.ncols(),
            labels.len(),
            features.len()
        )));
    }
    let means = x
        .mean_axis(Axis(0))
        .unwrap_or_else(|| Array1::zeros(x.ncols()));
    // A constant column keeps scale 1: its standardised value is 0 and its weight stays 0.
    let scales = x
        .std_axis(Axis(0), 0.0)
        .mapv(|s| if s > 1e-12 { s } else { 1.0 });
    let z = (&x - &means) / &scales;
    let targets: Array1<bool> = labels.iter().copied().collect();
    let data = Dataset::new(z, targets);
    let fitted = LogisticRegression::default()
        .alpha(params.l2)
        .max_iterations(params.max_iterations)
        .fit(&data)
        .map_err(|e| ModelError::Training(e.to_string()))?;
    // linfa 0.8.1 makes the class it saw more of the positive one (fixed upstream later):
    // when that is `false`, its weights point the other way.
    let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
    Ok(LogisticModel {
        features: features.to_vec(),
        means: means.to_vec(),
        scales: scales.to_vec(),
        weights: fitted.params().iter().map(|w| sign * w).collect(),
        intercept: sign * fitted.intercept(),
    })
}

fn sigmoid(t: f64) -> f64 {
    1.0 / (1.0 + (-t).exp())
}

impl LogisticModel {
    /// Each feature's term `w · z` for one row: what pushed its score up or down.
    pub fn contributions(&self, row: &[f64]) -> Vec<f64> {
        row.iter()
            .zip(&self.means)
            .zip(&self.scales)
            .zip(&self.weights)
            .map(|(((v, m), s), w)| w * (v - m) / s)
            .collect()
    }

    /// The probability of the positive label for one row (its values in `features` order).
    pub fn probability(&self, row: &[f64]) -> f64 {
        sigmoid(self.intercept + self.contributions(row).iter().sum::<f64>())
    }

    /// Probabilities of a matrix's rows.
    pub fn probabilities(&self, x: ArrayView2<f64>) -> Result<Vec<f64>, ModelError> {
        if x.ncols() != self.features.len() {
            return Err(ModelError::Shape(format!(
                "{} columns for a model of {} features",
                x.ncols(),
                self.features.len()
            )));
        }
        Ok(x.rows()
            .into_iter()
            .map(|r| {
                let t: f64 = r
                    .iter()
                    .zip(&self.means)
                    .zip(&self.scales)
                    .zip(&self.weights)
                    .map(|(((v, m), s), w)| w * (v - m) / s)
                    .sum();
                sigmoid(self.intercept + t)
            })
            .collect())
    }

    /// Each feature's share of the absolute standardised weights; they sum to 1 (all 0 for a
    /// model that learned nothing).
    pub fn importance(&self) -> Vec<(String, f64)> {
        let total: f64 = self.weights.iter().map(|w| w.abs()).sum();
        self.features
            .iter()
            .zip(&self.weights)
            .map(|(f, w)| {
                let share = if total > 0.0 { w.abs() / total } else { 0.0 };
                (f.clone(), share)
            })
            .collect()
    }
}

/// A matrix of `rows` (each `features` long) as ndarray wants it.
pub fn matrix(rows: &[Vec<f64>], features: usize) -> Result<Array2<f64>, ModelError> {
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    Array2::from_shape_vec((rows.len(), features), flat)
        .map_err(|e| ModelError::Shape(format!("rows of unequal length: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::roc_auc;

    /// Rows where `x0` raises the chance of a positive and `x1` is noise; positives are
    /// the rarer class, the case linfa 0.8.1 turns around.
    fn rare_positives(n: usize) -> (Vec<Vec<f64>>, Vec<bool>) {
        let mut state = 42u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                let (a, b) = (next() * 10.0, next() * 100.0);
                let label = next() < sigmoid(a - 8.0);
                (vec![a, b], label)
            })
            .unzip()
    }

    #[test]
    fn the_positive_class_is_true_even_when_it_is_the_rarer_one() {
        let (rows, labels) = rare_positives(2000);
        let positives = labels.iter().filter(|l| **l).count();
        assert!(
            positives < 1000,
            "{positives} of 2000: the test needs them rare"
        );
        let names = vec!["signal".to_string(), "noise".to_string()];
        let x = matrix(&rows, 2).expect("matrix");
        let model =
            train_logistic(&names, x.view(), &labels, LogisticParams::default()).expect("trained");
        assert!(
            model.weights[0] > 0.0,
            "more signal, more positives: {model:?}"
        );
        let p = model.probabilities(x.view()).expect("scored");
        assert!(roc_auc(&p, &labels) > 0.85);
        // A row with much signal is likely positive; one without, unlikely.
        assert!(model.probability(&[9.9, 50.0]) > 0.7);
        assert!(model.probability(&[0.1, 50.0]) < 0.05);
        let importance = model.importance();
        assert!(importance[0].1 > 0.9, "{importance:?}");
        // Same input, same answer: the model is plain arithmetic once fitted.
        assert_eq!(
            model.probability(&[5.0, 1.0]),
            model.probability(&[5.0, 1.0])
        );
    }

    #[test]
    fn shapes_that_disagree_are_refused() {
        let x = matrix(&[vec![1.0, 2.0]], 2).expect("matrix");
        let err = train_logistic(&["a".into()], x.view(), &[true], LogisticParams::default())
            .expect_err("refused");
        assert!(err.to_string().contains("1 rows × 2 columns"), "{err}");
        assert!(matrix(&[vec![1.0], vec![1.0, 2.0]], 2).is_err());
    }
}
