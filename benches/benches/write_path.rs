//! The catalog's share of every record write: each value checked against its field's type
//! and brought to its scale, and a formula field evaluated per record read.
//!
//! `cargo bench -p oneo-benches --bench write_path`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use oneo_catalog::formula::Formula;
use oneo_catalog::standard::standard_objects;
use oneo_catalog::{FieldDef, Value};
use serde_json::{Value as Json, json};

const RECORDS: usize = 1_000;

fn deal_fields() -> Vec<FieldDef> {
    standard_objects()
        .into_iter()
        .find(|o| o.api_name == "deal")
        .expect("the standard deal object")
        .fields
}

fn deals() -> Vec<Json> {
    (0..RECORDS)
        .map(|i| {
            json!({
                "name": format!("Deal {i}"),
                "amount": format!("{}.{:02}", 1_000 + i * 37 % 90_000, i % 100),
                "stage": "proposal",
                "close_date": "2026-12-31",
                "probability": 40,
                "lead_source": "web",
                "owner": "Ann",
                "company": "0190f5a8-3c2e-7a51-9d7e-2b1c8e4f6a01",
                "contact": null,
            })
        })
        .collect()
}

fn parse_records(c: &mut Criterion) {
    let fields = deal_fields();
    let records = deals();
    let mut g = c.benchmark_group("write_path");
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.bench_function("parse 1,000 deal records", |b| {
        b.iter(|| {
            for r in &records {
                for f in &fields {
                    let v = f.parse_value(&r[f.api_name.as_str()]);
                    black_box(v.expect("a valid value"));
                }
            }
        })
    });
    g.finish();
}

fn evaluate_formula(c: &mut Criterion) {
    let formula = Formula::parse(
        "CASE WHEN stage = 'closed_won' THEN amount ELSE amount * probability / 100 END",
    )
    .expect("a valid formula");
    let rows: Vec<(Value, Value, Value)> = (0..RECORDS)
        .map(|i| {
            (
                Value::Decimal(rust_decimal::Decimal::new(100_000 + i as i64 * 37, 2)),
                Value::Decimal(rust_decimal::Decimal::from(i as i64 % 100)),
                Value::Text(if i % 3 == 0 { "closed_won" } else { "proposal" }.into()),
            )
        })
        .collect();
    let mut g = c.benchmark_group("read_path");
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.bench_function("weighted amount formula, 1,000 records", |b| {
        b.iter(|| {
            for (amount, probability, stage) in &rows {
                let v = formula.eval(&|name| match name {
                    "amount" => amount.clone(),
                    "probability" => probability.clone(),
                    "stage" => stage.clone(),
                    _ => Value::Null,
                });
                black_box(v);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, parse_records, evaluate_formula);
criterion_main!(benches);
