//! Validation metrics of a binary classifier's probabilities: what a model version reports.

use serde::Serialize;

/// One decile of the calibration table: predicted against observed rate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalibrationBin {
    /// Rows in the bin.
    pub rows: usize,
    /// Mean predicted probability in the bin.
    pub predicted: f64,
    /// Share of positives in the bin.
    pub observed: f64,
}

/// The metrics of one model version on its validation rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    pub rows: usize,
    pub positives: usize,
    pub roc_auc: f64,
    /// Average precision: the area under the precision–recall curve, step-wise.
    pub pr_auc: f64,
    pub log_loss: f64,
    pub brier: f64,
    pub threshold: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Ten bins by predicted probability, lowest first (fewer when there are fewer rows).
    pub calibration: Vec<CalibrationBin>,
}

impl Metrics {
    /// Every metric of `probabilities` against `labels`, with precision, recall and F1 at
    /// `threshold` (a row is predicted positive when its probability is at least that).
    pub fn of(probabilities: &[f64], labels: &[bool], threshold: f64) -> Metrics {
        let (precision, recall, f1) = at_threshold(probabilities, labels, threshold);
        Metrics {
            rows: labels.len(),
            positives: labels.iter().filter(|l| **l).count(),
            roc_auc: roc_auc(probabilities, labels),
            pr_auc: average_precision(probabilities, labels),
            log_loss: log_loss(probabilities, labels),
            brier: brier(probabilities, labels),
            threshold,
            precision,
            recall,
            f1,
            calibration: calibration(probabilities, labels, 10),
        }
    }
}

/// Area under the ROC curve: the chance a random positive scores above a random negative,
/// ties counting half (the Mann–Whitney statistic over average ranks). NaN without both
/// classes.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        // Ranks i+1..=j+1 share their average.
        let avg = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += avg * order[i..=j].iter().filter(|k| labels[**k]).count() as f64;
        i = j + 1;
    }
    let pos = labels.iter().filter(|l| **l).count() as f64;
    let neg = labels.len() as f64 - pos;
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

/// Average precision (scikit-learn's definition): the sum over thresholds of precision
/// weighted by the recall gained, thresholds at each distinct score.
pub fn average_precision(scores: &[f64], labels: &[bool]) -> f64 {
    let pos = labels.iter().filter(|l| **l).count() as f64;
    if pos == 0.0 {
        return f64::NAN;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    let (mut tp, mut fp, mut last_recall, mut ap, mut i) = (0.0, 0.0, 0.0, 0.0, 0);
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        for k in &order[i..=j] {
            if labels[*k] {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
        }
        let recall = tp / pos;
        ap += (recall - last_recall) * tp / (tp + fp);
        last_recall = recall;
        i = j + 1;
    }
    ap
}

/// Mean negative log-likelihood, probabilities clipped away from 0 and 1 as scikit-learn
/// does, so one confident mistake is large but finite.
pub fn log_loss(probabilities: &[f64], labels: &[bool]) -> f64 {
    let eps = 1e-15;
    let total: f64 = probabilities
        .iter()
        .zip(labels)
        .map(|(p, y)| {
            let p = p.clamp(eps, 1.0 - eps);
            if *y { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum();
    total / labels.len() as f64
}

/// Mean squared error of the probabilities.
pub fn brier(probabilities: &[f64], labels: &[bool]) -> f64 {
    let total: f64 = probabilities
        .iter()
        .zip(labels)
        .map(|(p, y)| (p - f64::from(u8::from(*y))).powi(2))
        .sum();
    total / labels.len() as f64
}

/// Precision, recall and F1 when rows at or above `threshold` are called positive; each is
/// 0 where it has nothing to count.
pub fn at_threshold(probabilities: &[f64], labels: &[bool], threshold: f64) -> (f64, f64, f64) {
    let (mut tp, mut fp, mut fneg) = (0.0, 0.0, 0.0);
    for (p, y) in probabilities.iter().zip(labels) {
        match (*p >= threshold, *y) {
            (true, true) => tp += 1.0,
            (true, false) => fp += 1.0,
            (false, true) => fneg += 1.0,
            (false, false) => {}
        }
    }
    let precision = if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 };
    let recall = if tp + fneg > 0.0 {
        tp / (tp + fneg)
    } else {
        0.0
    };
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    (precision, recall, f1)
}

/// The threshold among the rows' probabilities with the best F1: chosen on training rows,
/// then reported on validation rows.
pub fn best_f1_threshold(probabilities: &[f64], labels: &[bool]) -> f64 {
    let mut candidates: Vec<f64> = probabilities.to_vec();
    candidates.sort_by(f64::total_cmp);
    candidates.dedup();
    // Ninety-nine quantiles are plenty to place a threshold and keep this linear-ish.
    let step = (candidates.len() / 99).max(1);
    candidates
        .iter()
        .step_by(step)
        .map(|t| (*t, at_threshold(probabilities, labels, *t).2))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(0.5, |(t, _)| t)
}

/// Rows sorted by predicted probability and cut into `bins` groups of (nearly) equal size.
pub fn calibration(probabilities: &[f64], labels: &[bool], bins: usize) -> Vec<CalibrationBin> {
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    order.sort_by(|a, b| probabilities[*a].total_cmp(&probabilities[*b]));
    let n = order.len();
    let bins = bins.min(n);
    (0..bins)
        .map(|b| {
            let rows = &order[b * n / bins..(b + 1) * n / bins];
            let count = rows.len() as f64;
            CalibrationBin {
                rows: rows.len(),
                predicted: rows.iter().map(|i| probabilities[*i]).sum::<f64>() / count,
                observed: rows.iter().filter(|i| labels[**i]).count() as f64 / count,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ordered_pairs_and_ties_as_half() {
        let labels = [false, false, true, true];
        assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &labels), 1.0);
        assert_eq!(roc_auc(&[0.9, 0.8, 0.2, 0.1], &labels), 0.0);
        // Pairs (neg, pos): (0.1,0.4) ok, (0.1,0.35) ok, (0.35,0.4) ok, (0.35,0.35) tie.
        assert_eq!(roc_auc(&[0.1, 0.35, 0.35, 0.4], &labels), 0.875);
    }

    #[test]
    fn average_precision_matches_scikit_learns_worked_example() {
        // sklearn.metrics.average_precision_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        // is 0.8333…
        let ap = average_precision(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]);
        assert!((ap - 5.0 / 6.0).abs() < 1e-12, "{ap}");
    }

    #[test]
    fn losses_reward_confident_right_answers() {
        let labels = [true, false];
        assert!(log_loss(&[0.9, 0.1], &labels) < log_loss(&[0.6, 0.4], &labels));
        assert!((brier(&[0.9, 0.1], &labels) - 0.01).abs() < 1e-12);
        // A certain wrong answer is large but finite.
        assert!(log_loss(&[0.0, 1.0], &labels).is_finite());
    }

    #[test]
    fn threshold_metrics_and_calibration_bins() {
        let p = [0.1, 0.2, 0.3, 0.6, 0.7, 0.8, 0.9, 0.95, 0.4, 0.05];
        let y = [
            false, false, true, true, false, true, true, true, false, false,
        ];
        let (precision, recall, f1) = at_threshold(&p, &y, 0.5);
        assert!((precision - 0.8).abs() < 1e-12);
        assert!((recall - 0.8).abs() < 1e-12);
        assert!((f1 - 0.8).abs() < 1e-12);
        let bins = calibration(&p, &y, 5);
        assert_eq!(bins.len(), 5);
        assert!(bins.iter().all(|b| b.rows == 2));
        assert!(bins[0].predicted < bins[4].predicted);
        assert_eq!(bins[4].observed, 1.0);
        let m = Metrics::of(&p, &y, best_f1_threshold(&p, &y));
        assert_eq!((m.rows, m.positives), (10, 5));
        assert!(m.f1 >= 0.8, "{m:?}");
    }
}
