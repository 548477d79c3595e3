//! Predictive scores for CRM records: a labelled feature matrix in, a validated logistic model
//! out, with the metrics a model version reports.
//!
//! ```
//! use oneo_models::{Requirements, TrainingSet, train_and_validate};
//!
//! // Deals with more meetings win more often; `cutoff` orders the rows in time.
//! let mut set = TrainingSet::new(vec!["meetings".into()]);
//! for i in 0..400 {
//!     let meetings = f64::from(i % 8);
//!     set.push(vec![meetings], i % 8 >= 4 || i % 13 == 0, i64::from(i));
//! }
//! let small = Requirements { min_rows: 100, min_per_class: 20 };
//! let trained = train_and_validate(&set, &small, Default::default()).unwrap();
//! assert!(trained.metrics.roc_auc > 0.8);
//! assert!(trained.model.probability(&[7.0]) > trained.model.probability(&[0.0]));
//! ```
//!
//! Training splits by time: the older 80 % of rows (by cutoff) train, the newer 20 %
//! validate, as scores are always used on rows newer than anything trained on.

pub mod artifact;
pub mod drift;
pub mod encode;
pub mod error;
pub mod features;
pub mod logistic;
pub mod metrics;
pub mod scorer;

pub use artifact::ArtifactStore;
pub use encode::{Encoder, RawColumn, RawValues};
pub use error::ModelError;
pub use features::{FeatureRows, FeatureSpec, ModelKind, Purpose, check, extract};
pub use logistic::{LogisticModel, LogisticParams, train_logistic};
pub use metrics::Metrics;
pub use scorer::{Factor, Score, Scorer, Training};

/// Labelled rows: each one's feature values (in `features` order), label and cutoff (the
/// instant its features were read as of, as microseconds or any ordered number).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainingSet {
    pub features: Vec<String>,
    pub rows: Vec<Vec<f64>>,
    pub labels: Vec<bool>,
    pub cutoffs: Vec<i64>,
}

impl TrainingSet {
    pub fn new(features: Vec<String>) -> Self {
        TrainingSet {
            features,
            ..Default::default()
        }
    }

    pub fn push(&mut self, row: Vec<f64>, label: bool, cutoff: i64) {
        self.rows.push(row);
        self.labels.push(label);
        self.cutoffs.push(cutoff);
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Row positions, older 80 % first then newer 20 % (ties keep insertion order).
    pub fn split_by_time(&self) -> (Vec<usize>, Vec<usize>) {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_by_key(|i| self.cutoffs[*i]);
        let cut = self.len() * 4 / 5;
        let validate = order.split_off(cut);
        (order, validate)
    }
}

/// How much data a model needs before it is trained at all.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Requirements {
    pub min_rows: usize,
    pub min_per_class: usize,
}

impl Default for Requirements {
    fn default() -> Self {
        Requirements {
            min_rows: 1000,
            min_per_class: 100,
        }
    }
}

impl Requirements {
    /// Refuses too little data, saying how much there is and how much is needed.
    pub fn check(&self, set: &TrainingSet) -> Result<(), ModelError> {
        let positives = set.labels.iter().filter(|l| **l).count();
        let negatives = set.len() - positives;
        if set.len() < self.min_rows
            || positives < self.min_per_class
            || negatives < self.min_per_class
        {
            return Err(ModelError::NotEnoughData(format!(
                "{} labelled rows ({positives} positive, {negatives} negative); training needs at least {} rows and {} of each class",
                set.len(),
                self.min_rows,
                self.min_per_class
            )));
        }
        Ok(())
    }
}

/// A model and how it did on the rows it did not see.
#[derive(Debug, Clone)]
pub struct Trained {
    pub model: LogisticModel,
    pub metrics: Metrics,
    pub train_rows: usize,
    /// The F1-best threshold on the training rows.
    pub threshold: f64,
}

/// Checks the data is enough, trains on the older rows, picks the F1-best threshold on them
/// and measures everything on the newer rows.
pub fn train_and_validate(
    set: &TrainingSet,
    requirements: &Requirements,
    params: LogisticParams,
) -> Result<Trained, ModelError> {
    requirements.check(set)?;
    let (train, validate) = set.split_by_time();
    fit_and_measure(set, &train, &validate, params)
}

/// Trains on the rows at `train`, measures on those at `validate`.
pub(crate) fn fit_and_measure(
    set: &TrainingSet,
    train: &[usize],
    validate: &[usize],
    params: LogisticParams,
) -> Result<Trained, ModelError> {
    let pick = |idx: &[usize]| -> (Vec<Vec<f64>>, Vec<bool>) {
        idx.iter()
            .map(|i| (set.rows[*i].clone(), set.labels[*i]))
            .unzip()
    };
    let (train_rows, train_labels) = pick(train);
    let (valid_rows, valid_labels) = pick(validate);
    for (what, labels) in [("training", &train_labels), ("validation", &valid_labels)] {
        if labels.iter().all(|l| *l) || labels.iter().all(|l| !*l) {
            return Err(ModelError::NotEnoughData(format!(
                "the {what} rows ({}) hold only one class; the split is by time, so both classes must occur in the older and the newer rows",
                labels.len()
            )));
        }
    }
    let width = set.features.len();
    let x = logistic::matrix(&train_rows, width)?;
    let model = train_logistic(&set.features, x.view(), &train_labels, params)?;
    let threshold = metrics::best_f1_threshold(&model.probabilities(x.view())?, &train_labels);
    let v = logistic::matrix(&valid_rows, width)?;
    let metrics = Metrics::of(&model.probabilities(v.view())?, &valid_labels, threshold);
    Ok(Trained {
        model,
        metrics,
        train_rows: train.len(),
        threshold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_little_data_is_refused_with_the_numbers() {
        let mut set = TrainingSet::new(vec!["x".into()]);
        for i in 0..1500 {
            set.push(vec![f64::from(i)], i < 60, i64::from(i));
        }
        let err = train_and_validate(&set, &Requirements::default(), Default::default())
            .expect_err("refused");
        assert_eq!(
            err.to_string(),
            "not enough data: 1500 labelled rows (60 positive, 1440 negative); training needs at least 1000 rows and 100 of each class"
        );
    }

    #[test]
    fn the_split_trains_on_older_rows_and_validates_on_newer() {
        let mut set = TrainingSet::new(vec!["x".into()]);
        for c in [5, 1, 9, 3, 7, 2, 8, 4, 6, 0] {
            set.push(vec![0.0], c % 2 == 0, c);
        }
        let (train, validate) = set.split_by_time();
        let newest_trained = train.iter().map(|i| set.cutoffs[*i]).max();
        let oldest_validated = validate.iter().map(|i| set.cutoffs[*i]).min();
        assert_eq!((train.len(), validate.len()), (8, 2));
        assert!(newest_trained < oldest_validated);
    }
}
