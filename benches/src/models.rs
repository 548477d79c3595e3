//! Training and scoring speed of the models crate on a synthetic matrix with a planted
//! logistic signal: no database, no lake (those are timed by the lake test's feature reads).

use std::time::Instant;

use oneo_models::{
    FeatureRows, FeatureSpec, ModelKind, RawColumn, RawValues, Requirements, Scorer,
};

/// A deterministic stream of uniforms in [0, 1).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `rows` rows of `numbers` numeric features and one 8-valued category, labelled by a
/// logistic model of the first five numbers and the category.
fn matrix(rows: usize, numbers: usize, seed: u64) -> FeatureRows {
    let mut rng = Lcg(seed);
    let mut cols: Vec<Vec<Option<f64>>> = vec![Vec::with_capacity(rows); numbers];
    let mut cat = Vec::with_capacity(rows);
    let mut labels = Vec::with_capacity(rows);
    for _ in 0..rows {
        let mut t = -1.0;
        for (j, c) in cols.iter_mut().enumerate() {
            let x = rng.next() * 4.0 - 2.0;
            if j < 5 {
                t += x * (j as f64 + 1.0) * 0.3;
            }
            c.push(Some(x));
        }
        let k = (rng.next() * 8.0) as usize;
        t += k as f64 * 0.2 - 0.7;
        cat.push(Some(format!("v{k}")));
        labels.push(Some(rng.next() < 1.0 / (1.0 + (-t).exp())));
    }
    let mut columns: Vec<RawColumn> = cols
        .into_iter()
        .enumerate()
        .map(|(j, v)| RawColumn {
            name: format!("x{j}"),
            log: false,
            values: RawValues::Numbers(v),
        })
        .collect();
    columns.push(RawColumn {
        name: "segment".into(),
        log: false,
        values: RawValues::Categories(cat),
    });
    FeatureRows {
        ids: (0..rows).map(|i| i.to_string()).collect(),
        labels,
        cutoffs: (0..rows)
            .map(|i| i32::try_from(i).unwrap_or(i32::MAX))
            .collect(),
        columns,
        versions: Default::default(),
    }
}

pub fn bench(train_rows: usize, numbers: usize, score_rows: usize) -> anyhow::Result<()> {
    let spec = FeatureSpec {
        kind: ModelKind::WinProbability,
        horizon_days: 90,
        fields: vec![],
    };
    let rows = matrix(train_rows, numbers, 7);
    let t = Instant::now();
    let trained = Scorer::train(&spec, &rows, &Requirements::default(), Default::default())?;
    let train_secs = t.elapsed().as_secs_f64();
    let width = trained.scorer.encoder.feature_names().len();
    println!(
        "training              {train_rows} rows x {width} model columns   {train_secs:.2} s  (validation AUC {:.4} on {} rows)",
        trained.metrics.roc_auc, trained.validation_rows
    );

    let batch = matrix(score_rows, numbers, 11);
    let t = Instant::now();
    let scores = trained.scorer.score(&batch);
    let secs = t.elapsed().as_secs_f64();
    println!(
        "batch scoring         {score_rows} rows with factors   {:.0} rows/s",
        scores.len() as f64 / secs
    );
    let t = Instant::now();
    let encoded: Vec<Vec<f64>> = (0..batch.len())
        .map(|i| trained.scorer.encoder.encode_row(&batch.columns, i))
        .collect();
    let encode_secs = t.elapsed().as_secs_f64();
    let x = oneo_models::logistic::matrix(&encoded, width)?;
    let t = Instant::now();
    let p = trained.scorer.model.probabilities(x.view())?;
    let prob_secs = t.elapsed().as_secs_f64();
    println!(
        "batch probabilities   {} rows   {:.0} rows/s (encoding {:.0} rows/s)",
        p.len(),
        p.len() as f64 / prob_secs,
        encoded.len() as f64 / encode_secs
    );

    let single = matrix(1, numbers, 13);
    let mut times: Vec<f64> = (0..10_000)
        .map(|_| {
            let t = Instant::now();
            let s = trained.scorer.score(&single);
            std::hint::black_box(s);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "single-record score   p50 {:.1} µs  p99 {:.1} µs (in process, with factors)",
        times[times.len() / 2],
        times[times.len() * 99 / 100]
    );
    Ok(())
}
