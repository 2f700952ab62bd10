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
//! `cargo bench --bench sae_kernels` (add `--features blas` for OpenBLAS GEMM).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use interp::sae::prelude::*;
use ndarray::{Array1, Array2};

const BATCH: usize = 1024;

/// Deterministic uniform values in `[-a, a)` (SplitMix64).
fn uniform(n: usize, a: f32, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * a
        })
        .collect()
}

fn random_sae(arch: Architecture, d_in: usize, d_sae: usize) -> Sae {
    // Uniform on [-a, a) has standard deviation a/√3.
    let a = 0.02 * 3f32.sqrt();
    let weights = SaeWeights {
        w_enc: Array2::from_shape_vec((d_in, d_sae), uniform(d_in * d_sae, a, 1)).unwrap(),
        w_dec: Array2::from_shape_vec((d_sae, d_in), uniform(d_sae * d_in, a, 2)).unwrap(),
        b_enc: Array1::from(uniform(d_sae, a, 3)),
        b_dec: Array1::from(uniform(d_in, a, 4)),
        threshold: (arch == Architecture::JumpRelu).then(|| Array1::from_elem(d_sae, 0.01)),
        gated: None,
    };
    Sae::new(SaeConfig::new(arch, d_in, d_sae), weights).unwrap()
}

/// A copy of `sae` whose encoder bias is shifted so that about `l0` latents fire per token.
fn with_l0(sae: &Sae, x: &Array2<f32>, l0: usize) -> Sae {
    let pre = sae.pre_activations(x.slice(ndarray::s![..64, ..])).unwrap();
    let mut all: Vec<f32> = pre.iter().copied().collect();
    let rank = all.len() - l0 * 64;
    let (_, cut, _) = all.select_nth_unstable_by(rank, |a, b| a.total_cmp(b));
    let cut = *cut;
    let mut w = sae.weights().clone();
    w.b_enc -= cut;
    Sae::new(sae.config().clone(), w).unwrap()
}

fn bench(c: &mut Criterion) {
    let topk = |k| Architecture::TopK {
        k,
        rescale_acts_by_decoder_norm: false,
    };
    let cases = [
        ("relu_768x24576", Architecture::Standard, 768, 24576),
        ("jumprelu_2304x16384", Architecture::JumpRelu, 2304, 16384),
        ("topk32_768x32768", topk(32), 768, 32768),
        ("topk32_768x131072", topk(32), 768, 131072),
    ];
    let filter = std::env::var("SAE_BENCH_CASES").ok();
    let mut group = c.benchmark_group("sae_batch1024");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, arch, d_in, d_sae) in cases {
        if filter
            .as_ref()
            .is_some_and(|f| !f.split(',').any(|c| name.contains(c)))
        {
            continue;
        }
        let sae = random_sae(arch.clone(), d_in, d_sae);
        let x =
            Array2::from_shape_vec((BATCH, d_in), uniform(BATCH * d_in, 3f32.sqrt(), 5)).unwrap();
        if !matches!(arch, Architecture::TopK { .. }) {
            group.bench_function(BenchmarkId::new("encode_dense", name), |b| {
                b.iter(|| sae.encode(x.view()).unwrap())
            });
        }
        let sparse = if matches!(arch, Architecture::TopK { .. }) {
            sae.clone()
        } else {
            with_l0(&sae, &x, 64)
        };
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
