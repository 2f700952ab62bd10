#![allow(missing_docs)]
//! GPT-2-small-shaped forward (random weights, 8 × 128 tokens): plain logits, and
//! `run_with_cache` of all 12 `hook_resid_pre`. Compare with `../shared/anchors/tl_forward.py`
//! run on the same machine (HF transformers forward, TransformerLens run_with_cache).
//!
//! `cargo bench --bench gpt2_forward` (add `--features blas` for OpenBLAS matmul).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use interp::models::prelude::*;

const BATCH: usize = 8;
const POS: usize = 128;

fn bench(c: &mut Criterion) {
    let device = Default::default();
    let cfg = ModelConfig::gpt2_small();
    let model = HookedTransformer::<Cpu>::random(cfg.clone(), 0, &device);
    // Deterministic pseudo-random token ids.
    let seqs: Vec<Vec<u32>> = (0..BATCH)
        .map(|b| {
            (0..POS)
                .map(|p| ((b * 7919 + p * 104_729) % cfg.d_vocab) as u32)
                .collect()
        })
        .collect();
    let batch = Batch::padded(&seqs, PaddingSide::Right);
    let resid_pre = NameFilter::patterns(["blocks.*.hook_resid_pre"]);

    let mut group = c.benchmark_group("gpt2_small_8x128");
    group.sample_size(10);
    group.throughput(Throughput::Elements((BATCH * POS) as u64));
    group.bench_function("forward", |b| b.iter(|| model.forward(&batch).unwrap()));
    group.bench_function("run_with_cache_resid_pre_x12", |b| {
        b.iter(|| model.run_with_cache(&batch, resid_pre.clone()).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
