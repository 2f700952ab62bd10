#![allow(missing_docs)]
//! GPT-2-small-shaped forward (random weights, 8 × 128 tokens): plain logits, and
//! `run_with_cache` of all 12 `hook_resid_pre`. Compare with `../shared/anchors/tl_forward.py`
//! run on the same machine (HF transformers forward, TransformerLens run_with_cache), or
//! interleaved with it call by call: `python3 benches/paired_anchors.py forward`.
//!
//! `cargo bench --bench gpt2_forward` (add `--features blas` for OpenBLAS matmul).

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let (model, batch) = common::gpt2_small();
    let resid_pre = common::resid_pre();
    let mut group = c.benchmark_group("gpt2_small_8x128");
    group.sample_size(10);
    group.throughput(Throughput::Elements(
        (common::GPT2_BATCH * common::GPT2_POS) as u64,
    ));
    group.bench_function("forward", |b| b.iter(|| model.forward(&batch).unwrap()));
    group.bench_function("run_with_cache_resid_pre_x12", |b| {
        b.iter(|| model.run_with_cache(&batch, resid_pre.clone()).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
