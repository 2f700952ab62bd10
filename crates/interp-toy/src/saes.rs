//! Training the toy world's SAEs with `interp-sae`: one forward pass over the corpus collects
//! every hook point at once (an [`ActivationStore`] with several hooks), then one TopK SAE is
//! trained per hook point on those activations.

use std::path::Path;
use std::sync::Arc;

use burn::tensor::backend::Backend;
use interp_models::{BlockHook, HookPoint, HookedTransformer};
use interp_sae::store::{ActivationStore, Corpus, StoreConfig};
use interp_sae::train::{
    ActivationMatrix, DeadPolicy, FitOptions, StepMetrics, TrainArch, TrainConfig, Trainer,
};
use interp_sae::Sae;
use ndarray::{concatenate, Array2, Axis};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How the toy SAEs are trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToySaeConfig {
    /// Latents per SAE. Default 1024 (8 × d_model).
    pub d_sae: usize,
    /// TopK `k`. Default 16.
    pub k: usize,
    /// Training steps per SAE. Default 2000.
    pub steps: u64,
    /// Rows per step. Default 2048.
    pub batch_size: usize,
    /// Peak Adam learning rate. Default 1e-3: `interp_sae::train::default_lr`'s 4e-3 for 1024
    /// latents left up to 31 % of the `hook_attn_out` latents dead (and 19 % with no LR decay,
    /// 18 % with a stronger AuxK); 1e-3 left 3 % at the same FVU ± 0.005.
    pub lr: f32,
    /// Tokens of activations collected per hook point (training cycles over them).
    /// Default 200 000.
    pub tokens: usize,
    /// Context window of the activation store. Default 128.
    pub context_size: usize,
    /// Seed of the store's shuffling and of every SAE's initialisation. Default 0.
    pub seed: u64,
}

impl Default for ToySaeConfig {
    fn default() -> Self {
        ToySaeConfig {
            d_sae: 1024,
            k: 16,
            steps: 2000,
            batch_size: 2048,
            lr: 1e-3,
            tokens: 200_000,
            context_size: 128,
            seed: 0,
        }
    }
}

/// The hook points the toy world has SAEs for: every block's `hook_resid_pre`,
/// `hook_attn_out`, `hook_mlp_out` and `hook_resid_post`, in forward order.
pub fn toy_hooks(n_layers: usize) -> Vec<HookPoint> {
    let mut hooks: Vec<HookPoint> = (0..n_layers)
        .flat_map(|l| {
            [
                HookPoint::resid_pre(l),
                HookPoint::attn_out(l),
                HookPoint::mlp_out(l),
                HookPoint::resid_post(l),
            ]
        })
        .collect();
    hooks.sort();
    hooks
}

/// The earlier hook point whose activations are identical to `hook`'s, if any:
/// `blocks.{l}.hook_resid_pre` is `blocks.{l−1}.hook_resid_post` (nothing runs between them), so
/// one SAE serves both.
pub fn same_activations_as(hook: HookPoint) -> Option<HookPoint> {
    match hook {
        HookPoint::Block {
            layer,
            hook: BlockHook::ResidPre,
        } if layer > 0 => Some(HookPoint::resid_post(layer - 1)),
        _ => None,
    }
}

/// Runs `model` over the corpus file `corpus` (JSONL with a `text` field, or plain text) and
/// returns `tokens` shuffled activation rows at each of `hooks` (one forward pass feeds all).
///
/// # Errors
/// Store and model errors.
pub fn collect_activations<B: Backend>(
    model: Arc<HookedTransformer<B>>,
    corpus: &Path,
    hooks: &[HookPoint],
    cfg: &ToySaeConfig,
) -> Result<Vec<Array2<f32>>> {
    let mut store_cfg = StoreConfig::new(hooks.iter().map(ToString::to_string));
    store_cfg.context_size = cfg.context_size;
    store_cfg.seed = cfg.seed;
    store_cfg.buffer_rows = 32_768;
    let mut store = ActivationStore::new(model, Corpus::open(corpus)?, store_cfg)?;
    let chunk = 8192;
    let mut parts: Vec<Vec<Array2<f32>>> = vec![Vec::new(); hooks.len()];
    let mut rows = 0;
    while rows < cfg.tokens {
        let n = chunk.min(cfg.tokens - rows);
        for (dst, batch) in parts.iter_mut().zip(store.next_batches(n)?) {
            dst.push(batch);
        }
        rows += n;
    }
    parts
        .into_iter()
        .map(|p| {
            let views: Vec<_> = p.iter().map(|a| a.view()).collect();
            concatenate(Axis(0), &views).map_err(|e| Error::InvalidArgument(e.to_string()))
        })
        .collect()
}

/// One trained toy SAE.
#[derive(Debug)]
pub struct TrainedSae {
    /// The SAE, its hook name set.
    pub sae: Sae,
    /// log10 firing density per latent (SAELens' `sparsity.safetensors`).
    pub log10_density: Option<Vec<f32>>,
    /// The last logged training metrics.
    pub last: StepMetrics,
}

/// Trains a TopK SAE for `hook` on `acts`, writing metrics, plots and the SAELens directory
/// under `work_dir`.
///
/// # Errors
/// Training errors.
pub fn train_sae(
    acts: Array2<f32>,
    hook: HookPoint,
    cfg: &ToySaeConfig,
    work_dir: &Path,
    progress: bool,
) -> Result<TrainedSae> {
    let d_in = acts.ncols();
    let mut source = ActivationMatrix::new(acts, cfg.seed)?;
    let mut train_cfg = TrainConfig::new(TrainArch::topk(cfg.k), d_in, cfg.d_sae, cfg.steps);
    train_cfg.batch_size = cfg.batch_size;
    train_cfg.lr = cfg.lr;
    train_cfg.seed = cfg.seed;
    train_cfg.log_every = (cfg.steps / 20).max(1);
    train_cfg.checkpoint_every = 0;
    // Resampling (three rounds) on top of AuxK revives latents that die early.
    train_cfg.dead = DeadPolicy::Resample {
        every: (cfg.steps / 5).max(1),
        window: (cfg.steps / 10).max(1),
        threshold: 0.0,
        max_rounds: 3,
        sample_size: 16_384,
    };
    let mut trainer = Trainer::new(train_cfg, &mut source)?;
    let report = trainer.fit(
        &mut source,
        FitOptions {
            out_dir: Some(work_dir.to_path_buf()),
            progress,
            ..FitOptions::default()
        },
    )?;
    let dir = report
        .sae_dir
        .ok_or_else(|| Error::InvalidArgument("training wrote no SAE".into()))?;
    let mut sae = interp_sae::formats::saelens::load(&dir)?;
    sae.set_hook_name(&hook.to_string());
    let log10_density = interp_sae::formats::saelens::load_sparsity(&dir)?;
    let last = report
        .history
        .last()
        .cloned()
        .ok_or_else(|| Error::InvalidArgument("training logged no metrics".into()))?;
    Ok(TrainedSae {
        sae,
        log10_density,
        last,
    })
}

/// Mean number of active latents per row of `x`.
///
/// # Errors
/// SAE errors (shape mismatch, non-finite input).
pub fn mean_l0(sae: &Sae, x: &Array2<f32>) -> Result<f64> {
    let codes = sae.encode(x.view())?;
    let active = codes.iter().filter(|&&v| v > 0.0).count();
    Ok(active as f64 / x.nrows().max(1) as f64)
}

/// Fraction of latents that never fired in the training window, from the per-latent log10
/// firing density the trainer saves (`sparsity.safetensors`, −10 for never).
pub fn dead_fraction(log10_density: &[f32]) -> f64 {
    let dead = log10_density.iter().filter(|&&d| d <= -10.0).count();
    dead as f64 / log10_density.len().max(1) as f64
}
