#![allow(missing_docs)]
//! Feature-geometry kernels on CPU: all-pairs extremes (top 10 each end), per-feature top-10
//! neighbours, antipodality, Gram statistics and cross-SAE top-1 matching, on random
//! directions (uniform entries, the distribution does not change the cost).
//!
//! Cases: `4096x768` (quick), `16384x2304` (Gemma Scope 16k; compare with
//! `../shared/anchors/geometry_allpairs.py 16384 2304` run on the same machine, in the same
//! session), `131072x768` (OpenAI 128k; one iteration takes minutes). Only the quick case runs by
//! default; choose with `GEOMETRY_BENCH_CASES=4096x768,16384x2304,131072x768` (substring
//! match) and `GEOMETRY_BENCH_KERNELS=extremes,neighbors,antipodality,gram,match`.
//!
//! `cargo bench --bench geometry` (add `--features blas` for OpenBLAS GEMM).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use interp::geometry::prelude::*;
use interp_core::rng::SplitMix64;
use ndarray::Array2;

/// Deterministic uniform values in `[-1, 1)`.
fn uniform(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = SplitMix64::new(seed);
    Array2::from_shape_simple_fn((rows, cols), || {
        (rng.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    })
}

fn selected(var: &str, name: &str, default: bool) -> bool {
    match std::env::var(var) {
        Ok(f) => f.split(',').any(|c| !c.is_empty() && name.contains(c)),
        Err(_) => default,
    }
}

fn bench(c: &mut Criterion) {
    let cases = [
        ("4096x768", 4096, 768, true),
        ("16384x2304", 16384, 2304, false),
        ("131072x768", 131072, 768, false),
    ];
    let mut group = c.benchmark_group("geometry");
    group.sample_size(10);
    for (name, f, d, default) in cases {
        if !selected("GEOMETRY_BENCH_CASES", name, default) {
            continue;
        }
        let dirs = Directions::from_rows(uniform(f, d, 1).view()).unwrap();
        // Upper-triangle GEMM flops (F²·d multiply-adds).
        group.throughput(Throughput::Elements((f as u64) * (f as u64) / 2));
        let kernel = |k: &str| selected("GEOMETRY_BENCH_KERNELS", k, true);
        if kernel("extremes") {
            group.bench_function(BenchmarkId::new("all_pairs_extremes_top10", name), |b| {
                b.iter(|| all_pairs_extremes(&dirs, 10))
            });
        }
        if kernel("neighbors") {
            group.bench_function(BenchmarkId::new("nearest_neighbors_k10", name), |b| {
                b.iter(|| nearest_neighbors(&dirs, 10))
            });
        }
        if kernel("antipodality") {
            let enc = Directions::from_rows(uniform(f, d, 2).view()).unwrap();
            group.bench_function(BenchmarkId::new("antipodality", name), |b| {
                b.iter(|| antipodality(&enc, &dirs).unwrap())
            });
        }
        if kernel("gram") {
            let w = uniform(f, d, 3);
            group.bench_function(BenchmarkId::new("gram_stats", name), |b| {
                b.iter(|| gram_stats(w.view()))
            });
        }
        if kernel("match") {
            let other = Directions::from_rows(uniform(f, d, 4).view()).unwrap();
            group.throughput(Throughput::Elements((f as u64) * (f as u64)));
            group.bench_function(BenchmarkId::new("top_k_matches_k1", name), |b| {
                b.iter(|| top_k_matches(&dirs, &other, 1).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
