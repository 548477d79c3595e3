//! Population stability: how far today's records have moved from the rows a model was
//! trained on, per feature, as the population stability index (PSI) over the training
//! rows' deciles. Rule of thumb: below 0.1 stable, 0.1–0.25 shifting, above 0.25 moved.

use serde::{Deserialize, Serialize};

/// The share of a bin no row fell in, so the logarithm stays finite.
const EMPTY_SHARE: f64 = 1e-4;

/// One model column's training distribution: bin upper edges (the last bin is open) and
/// the share of training rows in each bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnReference {
    pub feature: String,
    pub edges: Vec<f64>,
    pub shares: Vec<f64>,
}

/// Every model column's training distribution.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    pub columns: Vec<ColumnReference>,
}

fn bin(edges: &[f64], x: f64) -> usize {
    edges.partition_point(|e| *e < x)
}

fn shares(edges: &[f64], values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut counts = vec![0usize; edges.len() + 1];
    let mut n = 0usize;
    for x in values {
        counts[bin(edges, x)] += 1;
        n += 1;
    }
    counts
        .into_iter()
        .map(|c| if n == 0 { 0.0 } else { c as f64 / n as f64 })
        .collect()
}

impl Reference {
    /// The deciles of each column of `rows` (as many distinct edges as the values allow: a
    /// 0/1 column gets two bins).
    pub fn fit(features: &[String], rows: &[Vec<f64>]) -> Self {
        let columns = features
            .iter()
            .enumerate()
            .map(|(j, feature)| {
                let mut values: Vec<f64> = rows.iter().map(|r| r[j]).collect();
                values.sort_by(f64::total_cmp);
                let mut edges: Vec<f64> = Vec::new();
                for q in 1..10 {
                    if let Some(v) = values.get(values.len() * q / 10)
                        && edges.last() != Some(v)
                    {
                        edges.push(*v);
                    }
                }
                // Bins are `(edge[i-1], edge[i]]`; the largest value needs no edge of its own.
                if edges.last() == values.last() {
                    edges.pop();
                }
                let shares = shares(&edges, values.iter().copied());
                ColumnReference {
                    feature: feature.clone(),
                    edges,
                    shares,
                }
            })
            .collect();
        Reference { columns }
    }

    /// Each column's PSI between the training rows and `rows` (encoded the same way).
    pub fn psi(&self, rows: &[Vec<f64>]) -> Vec<(String, f64)> {
        self.columns
            .iter()
            .enumerate()
            .map(|(j, c)| {
                let now = shares(&c.edges, rows.iter().filter_map(|r| r.get(j).copied()));
                let psi = c
                    .shares
                    .iter()
                    .zip(&now)
                    .map(|(e, a)| {
                        let (e, a) = (e.max(EMPTY_SHARE), a.max(EMPTY_SHARE));
                        (a - e) * (a / e).ln()
                    })
                    .sum();
                (c.feature.clone(), psi)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_population_is_stable_and_a_shifted_one_is_not() {
        let names = vec!["x".to_string(), "flag".to_string()];
        let train: Vec<Vec<f64>> = (0..1000)
            .map(|i| vec![f64::from(i), f64::from(i % 2)])
            .collect();
        let reference = Reference::fit(&names, &train);
        assert_eq!(
            reference.columns[1].edges,
            vec![0.0],
            "a 0/1 column has two bins"
        );
        let same = reference.psi(&train);
        assert!(same.iter().all(|(_, p)| p.abs() < 1e-12), "{same:?}");
        let shifted: Vec<Vec<f64>> = (0..1000).map(|i| vec![f64::from(i) + 500.0, 1.0]).collect();
        let moved = reference.psi(&shifted);
        assert!(moved[0].1 > 0.25 && moved[1].1 > 0.25, "{moved:?}");
    }
}
