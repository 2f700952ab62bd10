#![allow(missing_docs)]
//! Forward of one 256-token sequence through a Gemma-2-2B-shaped model (6 of its 26 layers) and
//! a Llama-3.2-1B-shaped one (all 16 layers), random weights. Compare with HF transformers
//! interleaved call by call: `python3 benches/paired_anchors.py families`.
//!
//! `cargo bench --bench family_forward` (add `--features blas` for OpenBLAS matmul).

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    for name in ["gemma2", "llama"] {
        let (model, batch) = common::family_model(name).expect("a known family");
        let mut group = c.benchmark_group(format!("{name}_forward_1x{}", common::FAMILY_POS));
        group.sample_size(10);
        group.throughput(Throughput::Elements(common::FAMILY_POS as u64));
        group.bench_function("forward", |b| b.iter(|| model.forward(&batch).unwrap()));
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
