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
use interp::sae::prelude::*;

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
        let sae = common::random_sae(arch.clone(), d_in, d_sae);
        let x = common::sae_inputs(d_in);
        if !matches!(arch, Architecture::TopK { .. }) {
            group.bench_function(BenchmarkId::new("encode_dense", name), |b| {
                b.iter(|| sae.encode(x.view()).unwrap())
            });
        }
        let sparse = common::at_realistic_l0(&sae, &x);
        let codes = sparse.encode_sparse(x.view()).unwrap();
        let l0 = codes.nnz() as f64 / BATCH as f64;
        eprintln!("{name}: decode benchmarked at mean L0 {l0:.1}");
        group.bench_function(BenchmarkId::new("encode_sparse", name), |b| {
            b.iter(|| sparse.encode_sparse(x.view()).unwrap())
        });
        group.bench_function(BenchmarkId::new("decode_sparse", name), |b| {
            b.iter(|| sparse.decode_sparse(&codes).unwrap())
        });
        group.bench_function(BenchmarkId::new("forward", name), |b| {
            b.iter(|| sparse.forward(x.view()).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
