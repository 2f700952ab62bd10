#![allow(missing_docs)]
//! Steered generation on the GPT-2-small-shaped random model: 8 samples × 64 new tokens from a
//! 16-token prompt at temperature 1, KV cache on, a vector added at `blocks.6.hook_resid_pre`
//! at every position and step (an interp-steer plan). Against TransformerLens `generate` with
//! the same hook, interleaved call by call: `python3 benches/paired_anchors.py steer`.
//!
//! `cargo bench --bench steer_generate`.

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let case = common::SteerCase::new();
    let mut group = c.benchmark_group("steer_gpt2_small");
    group.sample_size(10);
    group.throughput(Throughput::Elements(
        (common::STEER_SAMPLES * common::STEER_NEW_TOKENS) as u64,
    ));
    group.bench_function("generate_8x64_add_resid_pre6", |b| {
        b.iter(|| case.run().unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
