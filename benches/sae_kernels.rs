#![allow(missing_docs)]
//! SAE encode / decode / forward throughput on CPU, batch 1024, the shapes of
//! `../shared/anchors/saelens_kernels.py` (run it on the same machine, in the same session):
//! ReLU 768×24576, JumpReLU 2304×16384, TopK32 768×32768 and 768×131072.
//!
//! Weights are uniform with the anchor's standard deviation (0.02), thresholds 0.01.
//! - `encode_dense`: the anchor's `sae.encode(x)` (dense `[n, d_sae]` output).
//! - `encode_sparse`: the same with sparse output (what `forward` uses).
//! - `decode_sparse`: codes at a realistic L0 — TopK's own k = 32; for ReLU/JumpReLU the
//!   encoder bias is shifted so that L0 ≈ 64 (SAELens' decode is a dense GEMM whatever the L0).
//! - `forward`: encode_sparse + decode_sparse.
//!
//! `cargo bench --bench sae_kernels` (add `--features blas` for OpenBLAS GEMM); or interleaved
//! with SAELens call by call: `python3 benches/paired_anchors.py sae`.

mod common;

use common::SAE_BATCH as BATCH;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let filter = std::env::var("SAE_BENCH_CASES").ok();
    let mut group = c.benchmark_group("sae_batch1024");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, arch, d_in, d_sae) in common::sae_cases() {
        if filter
            .as_ref()
            .is_some_and(|f| !f.split(',').any(|c| name.contains(c)))
        {
            continue;
        }
        let case = common::SaeCase::new(name, arch, d_in, d_sae);
        eprintln!("{name}: decode benchmarked at mean L0 {:.1}", case.l0());
        for &op in case.ops() {
            group.bench_function(BenchmarkId::new(op, name), |b| {
                b.iter(|| case.run(op).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
