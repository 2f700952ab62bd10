//! What to train and how: [`TrainConfig`] with defaults that work without tuning.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The SAE family being trained and its sparsity mechanism.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrainArch {
    /// ReLU latents with an L1 penalty `l1 · Σ|z|` (weighted by decoder norms when asked).
    Relu {
        /// L1 coefficient (reached after the warm-up).
        l1: f32,
        /// Steps over which the coefficient rises linearly from 0.
        l1_warmup_steps: u64,
        /// Penalise `|z_i|·‖W_dec[i]‖` instead of `|z_i|` (Anthropic, April 2024; SAELens).
        weight_by_decoder_norm: bool,
    },
    /// The `k` largest pre-activations per token, ReLU'd, with the AuxK loss on dead latents.
    TopK {
        /// Active latents per token.
        k: usize,
        /// AuxK: dead latents used to model the residual (`None` = d_in / 2).
        aux_k: Option<usize>,
        /// AuxK loss coefficient (OpenAI: 1/32).
        aux_coef: f32,
    },
    /// The `k·batch` largest activations over the whole batch; at inference a JumpReLU with the
    /// running average of the smallest kept activation as threshold (as SAELens saves it).
    BatchTopK {
        /// Mean active latents per token.
        k: usize,
        /// AuxK: dead latents used to model the residual (`None` = d_in / 2).
        aux_k: Option<usize>,
        /// AuxK loss coefficient.
        aux_coef: f32,
    },
    /// `z = pre · H(pre − θ)` with an L0 penalty, trained with straight-through estimators of
    /// the threshold gradient (Rajamanoharan et al. 2024).
    JumpRelu {
        /// L0 coefficient.
        l0: f32,
        /// Width ε of the rectangle kernel of the pseudo-derivatives.
        bandwidth: f32,
        /// Initial threshold θ for every latent.
        init_threshold: f32,
    },
}

impl TrainArch {
    /// ReLU with L1 coefficient `l1`, weighted by decoder norms (Anthropic, April 2024 update);
    /// [`TrainConfig::new`] sets the warm-up to 5% of the steps and frees the decoder norms.
    pub fn relu(l1: f32) -> Self {
        TrainArch::Relu {
            l1,
            l1_warmup_steps: 0,
            weight_by_decoder_norm: true,
        }
    }

    /// TopK with `k` active latents and default AuxK.
    pub fn topk(k: usize) -> Self {
        TrainArch::TopK {
            k,
            aux_k: None,
            aux_coef: 1.0 / 32.0,
        }
    }

    /// BatchTopK with `k` latents per token on average and default AuxK.
    pub fn batch_topk(k: usize) -> Self {
        TrainArch::BatchTopK {
            k,
            aux_k: None,
            aux_coef: 1.0 / 32.0,
        }
    }

    /// JumpReLU with L0 coefficient `l0` and Gemma Scope's ε = θ₀ = 0.001.
    pub fn jumprelu(l0: f32) -> Self {
        TrainArch::JumpRelu {
            l0,
            bandwidth: 0.001,
            init_threshold: 0.001,
        }
    }

    /// The selection size of TopK and BatchTopK.
    pub(crate) fn k(&self) -> Option<usize> {
        match *self {
            TrainArch::TopK { k, .. } | TrainArch::BatchTopK { k, .. } => Some(k),
            _ => None,
        }
    }

    /// AuxK size and coefficient, for the architectures that have it.
    pub(crate) fn aux(&self, d_in: usize) -> Option<(usize, f32)> {
        match *self {
            TrainArch::TopK {
                aux_k, aux_coef, ..
            }
            | TrainArch::BatchTopK {
                aux_k, aux_coef, ..
            } => Some((aux_k.unwrap_or(d_in / 2).max(1), aux_coef)),
            _ => None,
        }
    }
}

/// How `b_dec` starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BDecInit {
    /// Zeros.
    Zeros,
    /// The mean of the first batches.
    Mean,
    /// The geometric median of the first batches (Weiszfeld iterations).
    GeometricMedian,
}

/// What to do with latents that stop firing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeadPolicy {
    /// Nothing (TopK/BatchTopK still have AuxK).
    None,
    /// Anthropic's resampling: every `every` steps, latents that fired at most
    /// `threshold · tokens` times over the last `window` steps get a new direction taken from an
    /// input sampled with probability ∝ its squared reconstruction loss; the encoder row is that
    /// direction scaled to `0.2 ×` the mean alive encoder norm, the bias 0, and their Adam
    /// state is reset.
    Resample {
        /// Steps between checks.
        every: u64,
        /// Steps of firing history considered.
        window: u64,
        /// Highest firing frequency that still counts as dead.
        threshold: f64,
        /// Stop resampling after this many rounds.
        max_rounds: u32,
        /// Inputs scored to choose new directions.
        sample_size: usize,
    },
    /// Seed 002's re-initialisation: every `every` steps, latents whose firing frequency over the
    /// last `window` steps is below `threshold` get a fresh N(0, 1/d_in) encoder row (the seed
    /// draws N(0,1); we scale by 1/√d_in so new rows match the others), bias 0, Adam state reset.
    Reinit {
        /// Steps between checks.
        every: u64,
        /// Steps of firing history considered.
        window: u64,
        /// Firing frequency below which a latent is re-initialised.
        threshold: f64,
    },
}

/// The default peak learning rate: `2e-3 · √(4096 / d_sae)`, clamped to `[1e-4, 1e-2]`.
///
/// Inputs are normalised to `E‖x‖² = d_in`, so the scale depends only on the dictionary size;
/// the `1/√d_sae` law is Gao et al.'s (2024) fit for TopK SAEs. On the synthetic benchmark
/// (d 64, 512 latents) it gives 5.7e-3.
pub fn default_lr(d_sae: usize) -> f32 {
    (2e-3 * (4096.0 / d_sae.max(1) as f32).sqrt()).clamp(1e-4, 1e-2)
}

/// Everything about a training run. [`TrainConfig::new`] gives defaults that work untuned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Architecture and sparsity mechanism.
    pub arch: TrainArch,
    /// Input width.
    pub d_in: usize,
    /// Number of latents.
    pub d_sae: usize,
    /// Tokens per step.
    pub batch_size: usize,
    /// Optimiser steps.
    pub steps: u64,
    /// Peak Adam learning rate.
    pub lr: f32,
    /// Linear LR warm-up steps.
    pub lr_warmup_steps: u64,
    /// Fraction of the steps at the end over which the LR decays linearly to 0.
    pub lr_decay_fraction: f32,
    /// Adam β₁.
    pub beta1: f32,
    /// Adam β₂.
    pub beta2: f32,
    /// Adam ε.
    pub eps: f32,
    /// Clip the global gradient norm to this value.
    pub grad_clip: Option<f32>,
    /// Keep decoder rows at unit norm: project the radial part out of their gradient, and
    /// renormalise after each step.
    pub unit_norm_decoder: bool,
    /// How `b_dec` starts.
    pub b_dec_init: BDecInit,
    /// Subtract `b_dec` from inputs before encoding (the tied input bias of seed 002).
    pub apply_b_dec_to_input: bool,
    /// Dead-latent handling.
    pub dead: DeadPolicy,
    /// A latent that has not fired for this many steps counts as dead (AuxK, the dead fraction).
    pub dead_after_steps: u64,
    /// Log metrics every this many steps.
    pub log_every: u64,
    /// Write a checkpoint every this many steps (0 = only at the end).
    pub checkpoint_every: u64,
    /// Seed of initialisation and sampling.
    pub seed: u64,
}

impl TrainConfig {
    /// Defaults: batch 4096, lr [`default_lr`] with 1% warm-up and 20% linear decay, Adam (0.9, 0.999),
    /// unit-norm decoder (free norms for the decoder-norm-weighted ReLU L1, whose coefficient
    /// warms up over 5% of the steps), b_dec at the geometric median, tied input bias, dead after 100 steps,
    /// resampling every 25% of the steps for the ReLU/JumpReLU families (TopK relies on AuxK).
    pub fn new(mut arch: TrainArch, d_in: usize, d_sae: usize, steps: u64) -> Self {
        // The decoder-norm-weighted L1 needs free decoder norms (it is what keeps them in
        // check); it is also what recovers a planted dictionary best (docs/training.md).
        let mut unit_norm_decoder = true;
        if let TrainArch::Relu {
            l1_warmup_steps,
            weight_by_decoder_norm,
            ..
        } = &mut arch
        {
            unit_norm_decoder = !*weight_by_decoder_norm;
            if *l1_warmup_steps == 0 {
                *l1_warmup_steps = steps / 20;
            }
        }
        let dead = match arch {
            TrainArch::Relu { .. } | TrainArch::JumpRelu { .. } => DeadPolicy::Resample {
                every: (steps / 4).max(1),
                window: (steps / 8).max(1),
                threshold: 0.0,
                max_rounds: 3,
                sample_size: 16_384,
            },
            _ => DeadPolicy::None,
        };
        TrainConfig {
            arch,
            d_in,
            d_sae,
            batch_size: 4096,
            steps,
            lr: default_lr(d_sae),
            lr_warmup_steps: steps / 100,
            lr_decay_fraction: 0.2,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            grad_clip: None,
            unit_norm_decoder,
            b_dec_init: BDecInit::GeometricMedian,
            apply_b_dec_to_input: true,
            dead,
            dead_after_steps: 100,
            log_every: 50,
            checkpoint_every: 0,
            seed: 0,
        }
    }

    /// Checks every field; [`Error::TrainConfig`] names the first impossible one.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::TrainConfig { reason });
        if self.d_in == 0 || self.d_sae == 0 {
            return bad(format!(
                "d_in = {} and d_sae = {} must be positive",
                self.d_in, self.d_sae
            ));
        }
        if self.batch_size == 0 {
            return bad("batch_size must be positive".into());
        }
        if self.steps == 0 {
            return bad("steps must be positive".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr = {} must be positive", self.lr));
        }
        if !(0.0..=1.0).contains(&self.lr_decay_fraction) {
            return bad(format!(
                "lr_decay_fraction = {} not in [0, 1]",
                self.lr_decay_fraction
            ));
        }
        if !((0.0..1.0).contains(&self.beta1) && (0.0..1.0).contains(&self.beta2)) {
            return bad(format!(
                "Adam betas ({}, {}) must be in [0, 1)",
                self.beta1, self.beta2
            ));
        }
        if self.eps.is_nan() || self.eps <= 0.0 {
            return bad(format!("Adam eps = {} must be positive", self.eps));
        }
        if let Some(c) = self.grad_clip {
            if !(c.is_finite() && c > 0.0) {
                return bad(format!("grad_clip = {c} must be positive"));
            }
        }
        if self.log_every == 0 {
            return bad("log_every must be positive".into());
        }
        match self.arch {
            TrainArch::Relu { l1, .. } if !(l1.is_finite() && l1 >= 0.0) => {
                return bad(format!("l1 = {l1} must be ≥ 0"));
            }
            TrainArch::TopK { k, aux_coef, .. } | TrainArch::BatchTopK { k, aux_coef, .. } => {
                if k == 0 || k > self.d_sae {
                    return bad(format!("k = {k} must be in 1..={}", self.d_sae));
                }
                if !(aux_coef.is_finite() && aux_coef >= 0.0) {
                    return bad(format!("aux_coef = {aux_coef} must be ≥ 0"));
                }
            }
            TrainArch::JumpRelu {
                l0,
                bandwidth,
                init_threshold,
            } => {
                if !(l0.is_finite() && l0 >= 0.0) {
                    return bad(format!("l0 = {l0} must be ≥ 0"));
                }
                if !(bandwidth.is_finite() && bandwidth > 0.0) {
                    return bad(format!("bandwidth = {bandwidth} must be positive"));
                }
                if !(init_threshold.is_finite() && init_threshold > 0.0) {
                    return bad(format!(
                        "init_threshold = {init_threshold} must be positive"
                    ));
                }
            }
            _ => {}
        }
        match self.dead {
            DeadPolicy::Resample {
                every,
                window,
                threshold,
                sample_size,
                ..
            } => {
                if every == 0 || window == 0 || window > every || sample_size == 0 {
                    return bad(format!(
                        "resampling needs 0 < window ({window}) ≤ every ({every}) and sample_size > 0"
                    ));
                }
                if !(0.0..1.0).contains(&threshold) {
                    return bad(format!("resample threshold {threshold} not in [0, 1)"));
                }
            }
            DeadPolicy::Reinit {
                every,
                window,
                threshold,
            } => {
                if every == 0 || window == 0 || window > every {
                    return bad(format!(
                        "reinit needs 0 < window ({window}) ≤ every ({every})"
                    ));
                }
                if !(0.0..1.0).contains(&threshold) {
                    return bad(format!("reinit threshold {threshold} not in [0, 1)"));
                }
            }
            DeadPolicy::None => {}
        }
        if self.dead_after_steps == 0 {
            return bad("dead_after_steps must be positive".into());
        }
        Ok(())
    }
}
