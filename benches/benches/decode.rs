//! Ingest's innermost loop: every cell of every change arrives as PostgreSQL's text output and
//! is parsed into the lake column's Arrow type.
//!
//! `cargo bench -p oneo-benches --bench decode`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use deltalake::arrow::datatypes::{DataType, TimeUnit};
use oneo_ingest::decode::ColumnBuilder;

const CELLS: usize = 50_000;

fn decode(c: &mut Criterion) {
    let columns: [(&str, DataType, Vec<String>); 4] = [
        (
            "currency (decimal 18,2)",
            DataType::Decimal128(18, 2),
            (0..CELLS)
                .map(|i| format!("{}.{:02}", 1_000 + i * 37, i % 100))
                .collect(),
        ),
        (
            "datetime (timestamptz)",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            (0..CELLS)
                .map(|i| {
                    format!(
                        "2026-{:02}-{:02} 10:{:02}:12.{:06}+00",
                        i % 12 + 1,
                        i % 28 + 1,
                        i % 60,
                        i
                    )
                })
                .collect(),
        ),
        (
            "date",
            DataType::Date32,
            (0..CELLS)
                .map(|i| format!("2026-{:02}-{:02}", i % 12 + 1, i % 28 + 1))
                .collect(),
        ),
        (
            "text",
            DataType::Utf8,
            (0..CELLS).map(|i| format!("Deal {i}")).collect(),
        ),
    ];
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(CELLS as u64));
    for (name, data_type, cells) in &columns {
        g.bench_function(*name, |b| {
            b.iter(|| {
                let mut builder = ColumnBuilder::new(data_type, CELLS).expect("a lake column type");
                for cell in cells {
                    builder.append(Some(cell)).expect("a valid value");
                }
                black_box(builder.finish())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
