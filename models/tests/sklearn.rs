//! The linfa logistic model against scikit-learn's `LogisticRegression` on one feature matrix:
//! the generator's closed deals (meetings, activities, amount, lead source, owner → won),
//! written to Parquet, trained by both, compared on the newer rows both validate on.

use std::process::Command;
use std::sync::Arc;

use deltalake::arrow::array::{ArrayRef, BooleanArray, Float64Array, StringArray};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::parquet::arrow::ArrowWriter;
use oneo_models::{Requirements, TrainingSet, metrics::roc_auc, train_and_validate};

/// The closed deals of a generated data set as a training set, one column per feature.
fn closed_deals(scale: usize) -> TrainingSet {
    let data = oneo_data::generate(scale, 7);
    let mut meetings = vec![0.0; data.deals.len()];
    let mut touches = vec![0.0; data.deals.len()];
    for a in &data.activities {
        if let Some(d) = a.deal {
            touches[d] += 1.0;
            if a.kind == "meeting" {
                meetings[d] += 1.0;
            }
        }
    }
    // `stage_reached`: how far the deal got before it closed (what the history holds just
    // before the closing write), as the open stage's position.
    let mut names: Vec<String> = vec![
        "meetings".into(),
        "activities".into(),
        "log_amount".into(),
        "stage_reached".into(),
    ];
    // One-hot, the first category left out as the baseline.
    names.extend(
        oneo_data::LEAD_SOURCES[1..]
            .iter()
            .map(|(s, _, _)| format!("lead_source={s}")),
    );
    names.extend(
        oneo_data::OWNERS[1..]
            .iter()
            .map(|(o, _)| format!("owner={o}")),
    );
    let mut set = TrainingSet::new(names);
    for (i, d) in data.deals.iter().enumerate() {
        let Some(outcome) = d.stages.last().filter(|s| s.starts_with("closed_")) else {
            continue;
        };
        let reached = d.stages[d.stages.len().saturating_sub(2)];
        let stage = oneo_data::OPEN_STAGES
            .iter()
            .position(|s| *s == reached)
            .unwrap_or_default();
        let mut row = vec![
            meetings[i],
            touches[i],
            (d.amount_cents as f64 / 100.0).ln(),
            stage as f64,
        ];
        row.extend(
            oneo_data::LEAD_SOURCES[1..]
                .iter()
                .map(|(s, _, _)| f64::from(u8::from(*s == d.lead_source))),
        );
        row.extend(
            oneo_data::OWNERS[1..]
                .iter()
                .map(|(o, _)| f64::from(u8::from(*o == d.owner))),
        );
        let cutoff = d.close_date.and_hms_opt(0, 0, 0).unwrap_or_default();
        set.push(row, *outcome == "closed_won", cutoff.and_utc().timestamp());
    }
    set
}

#[test]
fn linfa_matches_scikit_learn_on_the_same_matrix() {
    let set = closed_deals(6000);
    let trained =
        train_and_validate(&set, &Requirements::default(), Default::default()).expect("trained");
    assert!(
        trained.metrics.roc_auc > 0.7,
        "the planted signal is learnable: {:?}",
        trained.metrics
    );
    // The meetings the generator plants as the win driver weigh most, and positively.
    let meetings = trained.model.weights[0];
    assert!(meetings > 0.0, "{:?}", trained.model);

    // The same rows, the same split, to Parquet for scikit-learn.
    let (train, validate) = set.split_by_time();
    let order: Vec<usize> = train.iter().chain(&validate).copied().collect();
    let mut columns: Vec<(String, ArrayRef)> = (0..set.features.len())
        .map(|j| {
            let values: Float64Array = order.iter().map(|i| Some(set.rows[*i][j])).collect();
            (format!("f_{j}"), Arc::new(values) as ArrayRef)
        })
        .collect();
    let labels: BooleanArray = order.iter().map(|i| Some(set.labels[*i])).collect();
    let split: StringArray = order
        .iter()
        .enumerate()
        .map(|(k, _)| Some(if k < train.len() { "train" } else { "validate" }))
        .collect();
    columns.push(("label".into(), Arc::new(labels)));
    columns.push(("split".into(), Arc::new(split)));
    let batch = RecordBatch::try_from_iter(columns).expect("batch");
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("matrix.parquet");
    let file = std::fs::File::create(&path).expect("file");
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sklearn_logistic.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "scikit-learn: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let sklearn_auc = reference["auc"].as_f64().expect("auc");
    let ours = trained.metrics.roc_auc;
    assert!(
        (ours - sklearn_auc).abs() <= 0.01,
        "linfa AUC {ours:.4} against scikit-learn's {sklearn_auc:.4}"
    );
    // Not only the ranking: the probabilities themselves agree row by row.
    let theirs: Vec<f64> = reference["p"]
        .as_array()
        .expect("p")
        .iter()
        .filter_map(serde_json::Value::as_f64)
        .collect();
    let valid_rows: Vec<Vec<f64>> = validate.iter().map(|i| set.rows[*i].clone()).collect();
    let ours_p: Vec<f64> = valid_rows
        .iter()
        .map(|r| trained.model.probability(r))
        .collect();
    assert_eq!(ours_p.len(), theirs.len());
    let worst = ours_p
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 0.01, "largest probability gap {worst:.4}");
    let labels: Vec<bool> = validate.iter().map(|i| set.labels[*i]).collect();
    assert!((roc_auc(&ours_p, &labels) - ours).abs() < 1e-12);
    println!(
        "validation AUC: linfa {ours:.4}, scikit-learn {sklearn_auc:.4}; largest probability gap {worst:.5}"
    );
}
