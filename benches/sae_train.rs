#![allow(missing_docs)]
//! One SAE training step (forward, backward, Adam) at batch 4096 on random activations: the
//! shapes of `../shared/anchors/saelens_train.py` (run it on the same machine, in the same
//! session): ReLU-L1 768×6144 and TopK32 768×24576.
//!
//! Like the anchor, no latent counts as dead (no AuxK term) and nothing is resampled.
//! `cargo bench --bench sae_train` (add `--features blas` for OpenBLAS GEMM);
//! `SAE_TRAIN_CASES=topk` runs only the cases whose name contains `topk`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use interp::sae::train::{
    ActivationMatrix, DeadPolicy, SplitMix64, TrainArch, TrainConfig, Trainer,
};
use ndarray::Array2;

const BATCH: usize = 4096;

fn bench_train(c: &mut Criterion) {
    let filter = std::env::var("SAE_TRAIN_CASES").unwrap_or_default();
    let cases = [
        ("relu-l1 768x6144", TrainArch::relu(5.0), 6144),
        ("topk32 768x24576", TrainArch::topk(32), 24576),
    ];
    let mut group = c.benchmark_group("sae_train_step");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, arch, d_sae) in cases {
        if !name.contains(filter.as_str()) {
            continue;
        }
        let mut rng = SplitMix64::new(0);
        let x = Array2::from_shape_simple_fn((BATCH, 768), || rng.normal());
        let mut source = ActivationMatrix::new(x.clone(), 0).unwrap();
        let mut cfg = TrainConfig::new(arch, 768, d_sae, 1_000_000_000);
        cfg.batch_size = BATCH;
        cfg.lr = 1e-4;
        cfg.dead = DeadPolicy::None;
        cfg.dead_after_steps = u64::MAX;
        let mut trainer = Trainer::new(cfg, &mut source).unwrap();
        group.bench_function(name, |b| b.iter(|| trainer.step(x.view()).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, bench_train);
criterion_main!(benches);
