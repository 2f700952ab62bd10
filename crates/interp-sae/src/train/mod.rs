//! Training sparse autoencoders: ReLU + L1, TopK + AuxK, BatchTopK and JumpReLU.
//!
//! [`Trainer`] owns the parameters and Adam state; [`Trainer::fit`] pulls batches from an
//! [`ActivationSource`] (an [`ActivationMatrix`] read from a file, or a model's activation
//! store with the `models` feature), handles dead latents, logs [`StepMetrics`] to
//! `metrics.jsonl`, checkpoints atomically, and saves the result in SAELens layout.
//! The default backward pass is written by hand and sparse for TopK/BatchTopK (only the `k`
//! active latents of each token carry gradient); with the `burn` feature,
//! [`Trainer::with_burn_backend`] takes the gradients from burn autodiff on any backend instead
//! (GPUs included), with the same losses.
//!
//! Files: `config.rs` (the configuration), `source.rs` (where batches come from), `params.rs`
//! (parameters and Adam), `step.rs` (losses and the hand-derived backward pass), `autodiff.rs`
//! (the burn one), `metrics.rs` ([`StepMetrics`] and the density bins), `trainer.rs` (the
//! loop, checkpoints, resume) and `plots.rs` (the figures of a finished run). The trainer
//! uses the plots and both use the metrics; the metrics use neither.

#[cfg(feature = "burn")]
mod autodiff;
mod config;
mod metrics;
mod params;
mod plots;
mod source;
mod step;
pub mod synthetic;
mod trainer;

pub use config::{default_lr, BDecInit, DeadPolicy, TrainArch, TrainConfig};
pub use interp_core::rng::SplitMix64;
pub use metrics::{StepMetrics, METRICS_FILE};
pub use source::{ActivationMatrix, ActivationSource};
pub use step::fvu;
pub use trainer::{
    geometric_median, Evaluator, FitOptions, Gradients, TrainReport, Trainer, CHECKPOINT_FILE,
};
