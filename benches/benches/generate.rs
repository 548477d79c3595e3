//! The synthetic data set's generation, which every load, demo and benchmark starts with.
//!
//! `cargo bench -p oneo-benches --bench generate`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn generate(c: &mut Criterion) {
    let scale = 2_000;
    let mut g = c.benchmark_group("generate");
    g.sample_size(10);
    // Contacts, companies (N/10), deals (N/2) and activities (5N): records per iteration.
    g.throughput(Throughput::Elements(
        (scale + scale / 10 + scale / 2 + 5 * scale) as u64,
    ));
    g.bench_function("scale 2,000", |b| {
        b.iter(|| black_box(oneo_data::generate(scale, 42)))
    });
    g.finish();
}

criterion_group!(benches, generate);
criterion_main!(benches);
