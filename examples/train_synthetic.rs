//! Seed 002, part 2, on ground truth: train SAEs on activations built from a known dictionary in
//! superposition and measure how much of it they recover.
//!
//! 512 random unit directions in 64 dimensions; each activation is a sparse non-negative
//! combination (about 5 active, magnitudes in [0.5, 1.5)). A TopK SAE (k = 5) and a ReLU-L1
//! SAE (decoder-norm-weighted L1 = 1.5) with 512 latents each are trained with the library
//! defaults; the score is the mean over
//! true features of the best cosine similarity with a learned decoder row (MMCS).
//!
//! `cargo run --release --example train_synthetic [steps]` (default 6000 steps of 1024 tokens).

use interp::sae::train::synthetic::{mean_max_cosine, superposition};
use interp::sae::train::{ActivationMatrix, FitOptions, TrainArch, TrainConfig, Trainer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let steps: u64 = std::env::args().nth(1).map_or(Ok(6000), |s| s.parse())?;
    let data = superposition(64, 512, 5.0, 200_000, 0);
    println!(
        "{} activations, d = 64, 512 true features, ~5 active",
        data.activations.nrows()
    );
    for (name, arch) in [
        ("TopK k=5", TrainArch::topk(5)),
        ("ReLU L1=1.5", TrainArch::relu(1.5)),
    ] {
        let mut source = ActivationMatrix::new(data.activations.clone(), 0)?;
        let mut cfg = TrainConfig::new(arch, 64, 512, steps);
        cfg.batch_size = 1024;
        let mut trainer = Trainer::new(cfg, &mut source)?;
        let start = std::time::Instant::now();
        let report = trainer.fit(&mut source, FitOptions::default())?;
        let sae = trainer.to_sae()?;
        let mmcs = mean_max_cosine(data.dictionary.view(), sae.weights().w_dec.view());
        let last = report.history.last().expect("at least one log");
        println!(
            "{name:10}  MMCS {mmcs:.4}  dead {:.2}%  L0 {:.2}  FVU {:.4}  ({:.1?})",
            100.0 * last.dead_fraction,
            last.l0,
            last.fvu,
            start.elapsed()
        );
    }
    Ok(())
}
