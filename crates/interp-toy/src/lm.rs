//! Training the toy GPT-2 with burn autodiff (any backend; CPU by default).
//!
//! The model is the GPT-2 architecture of `interp-models` ([`HookedTransformer`]), so the
//! trained weights are the very module the hooked forward pass runs; training differentiates
//! that same forward. Documents are packed into one token stream separated by
//! `<|endoftext|>`, and each step reads random `n_ctx`-token windows of it (next-token
//! cross-entropy at every position). AdamW with linear warm-up and cosine decay, per-tensor
//! gradient-norm clipping.

use burn::grad_clipping::GradientClippingConfig;
use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use interp_core::rng::SplitMix64;
use interp_models::config::Activation;
use interp_models::{Batch, HookedTransformer, ModelConfig, TextTokenizer};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Shape and optimisation settings of the toy language model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LmConfig {
    /// Transformer blocks. Default 4.
    pub n_layers: usize,
    /// Residual width. Default 128.
    pub d_model: usize,
    /// Attention heads. Default 4.
    pub n_heads: usize,
    /// Context length (also the training window). Default 128.
    pub n_ctx: usize,
    /// Optimiser steps. Default 1500.
    pub steps: usize,
    /// Windows per step. Default 16.
    pub batch_size: usize,
    /// Peak learning rate. Default 3e-3.
    pub lr: f64,
    /// Linear warm-up steps. Default 100.
    pub warmup_steps: usize,
    /// Final learning rate as a fraction of the peak (cosine decay). Default 0.1.
    pub final_lr_fraction: f64,
    /// AdamW weight decay. Default 0.01.
    pub weight_decay: f32,
    /// Gradient-norm clip per parameter tensor. Default 1.0.
    pub grad_clip: f32,
    /// Seed of the initial weights and of window sampling. Default 0.
    pub seed: u64,
}

impl Default for LmConfig {
    fn default() -> Self {
        LmConfig {
            n_layers: 4,
            d_model: 128,
            n_heads: 4,
            n_ctx: 128,
            steps: 1500,
            batch_size: 16,
            lr: 3e-3,
            warmup_steps: 100,
            final_lr_fraction: 0.1,
            weight_decay: 0.01,
            grad_clip: 1.0,
            seed: 0,
        }
    }
}

impl LmConfig {
    /// The resolved model configuration for a vocabulary of `d_vocab` tokens whose
    /// `<|endoftext|>` id is `eot`.
    pub fn model_config(&self, d_vocab: usize, eot: u32) -> ModelConfig {
        ModelConfig {
            n_layers: self.n_layers,
            d_model: self.d_model,
            n_heads: self.n_heads,
            d_head: self.d_model / self.n_heads.max(1),
            d_mlp: 4 * self.d_model,
            d_vocab,
            n_ctx: self.n_ctx,
            act_fn: Activation::GeluNew,
            eps: 1e-5,
            scale_attn_by_inverse_layer_idx: false,
            bos_token_id: Some(eot),
            eos_token_id: Some(eot),
            ..ModelConfig::gpt2_small()
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidArgument(m.into()));
        if self.n_layers == 0 || self.d_model == 0 || self.n_heads == 0 || self.n_ctx < 2 {
            return bad("n_layers, d_model, n_heads must be positive and n_ctx ≥ 2");
        }
        if !self.d_model.is_multiple_of(self.n_heads) {
            return bad("d_model must be divisible by n_heads");
        }
        if self.batch_size == 0 || self.lr.is_nan() || self.lr <= 0.0 {
            return bad("batch_size and lr must be positive");
        }
        Ok(())
    }

    /// The learning rate at `step` (0-based): linear warm-up, then cosine decay to
    /// `final_lr_fraction · lr`.
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = (self.steps.saturating_sub(self.warmup_steps)).max(1) as f64;
        let t = ((step - self.warmup_steps) as f64 / span).min(1.0);
        let cos = 0.5 * (1.0 + (std::f64::consts::PI * t).cos());
        self.lr * (self.final_lr_fraction + (1.0 - self.final_lr_fraction) * cos)
    }
}

/// Tokenizes `texts` into one stream, each text followed by `eot` (GPT-2's document
/// separator), the stream starting with `eot` too.
///
/// # Errors
/// Tokenizer errors.
pub fn pack<'a>(
    texts: impl IntoIterator<Item = &'a str>,
    tokenizer: &TextTokenizer,
    eot: u32,
) -> Result<Vec<u32>> {
    let mut stream = vec![eot];
    for text in texts {
        stream.extend(tokenizer.encode(text, None)?.ids);
        stream.push(eot);
    }
    Ok(stream)
}

/// One logged point of a training run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LmLogPoint {
    /// Optimiser step (1-based).
    pub step: usize,
    /// Mean training loss over the steps since the previous point (nats/token).
    pub train_loss: f32,
    /// Learning rate at this step.
    pub lr: f64,
}

/// What a training run did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LmReport {
    /// The configuration.
    pub config: LmConfig,
    /// Tokens seen (steps × batch × n_ctx).
    pub tokens_seen: u64,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Training-loss curve.
    pub curve: Vec<LmLogPoint>,
}

/// Trains a GPT-2-architecture model on `stream` (see [`pack`]) with burn autodiff on backend
/// `B`, calling `on_log` every `log_every` steps, and returns the trained weights on `B`'s inner
/// backend together with the run's report.
///
/// # Errors
/// [`Error::InvalidArgument`] for a bad config or a stream shorter than one window; model
/// errors; a non-finite loss.
pub fn train<B: AutodiffBackend>(
    cfg: &LmConfig,
    tokenizer: TextTokenizer,
    stream: &[u32],
    device: &B::Device,
    log_every: usize,
    mut on_log: impl FnMut(&LmLogPoint),
) -> Result<(HookedTransformer<B::InnerBackend>, LmReport)> {
    cfg.validate()?;
    let window = cfg.n_ctx + 1;
    if stream.len() < window {
        return Err(Error::InvalidArgument(format!(
            "token stream of {} tokens is shorter than one window ({window})",
            stream.len()
        )));
    }
    let eot = cfg_eot(&tokenizer)?;
    let model_cfg = cfg.model_config(tokenizer.vocab_size(), eot);
    let init = HookedTransformer::<B>::random(model_cfg.clone(), cfg.seed, device);
    let mut weights = init.weights().clone();
    // GPT-2 has no unembedding bias: keep it at zero.
    weights.b_u = weights.b_u.set_require_grad(false);
    let mut optim = AdamWConfig::new()
        .with_beta_2(0.95)
        .with_epsilon(1e-8)
        .with_weight_decay(cfg.weight_decay)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(cfg.grad_clip)))
        .init::<B, _>();
    let mut rng = SplitMix64::stream(cfg.seed, 1);
    let start = std::time::Instant::now();
    let mut curve = Vec::new();
    let (mut loss_sum, mut loss_n) = (0.0f64, 0usize);
    for step in 0..cfg.steps {
        let (inputs, targets) = sample_windows(stream, cfg.batch_size, window, &mut rng);
        let model = HookedTransformer::new(model_cfg.clone(), weights.clone(), device);
        let logits = model.forward(&Batch::padded(&inputs, Default::default()))?;
        let loss = cross_entropy(logits, &targets, device);
        let value: f32 = loss.clone().into_scalar().elem();
        if !value.is_finite() {
            return Err(Error::InvalidArgument(format!(
                "training loss became {value} at step {}",
                step + 1
            )));
        }
        loss_sum += f64::from(value);
        loss_n += 1;
        let grads = GradientsParams::from_grads(loss.backward(), &weights);
        let lr = cfg.lr_at(step);
        weights = optim.step(lr, weights, grads);
        if (step + 1) % log_every.max(1) == 0 || step + 1 == cfg.steps {
            let point = LmLogPoint {
                step: step + 1,
                train_loss: (loss_sum / loss_n as f64) as f32,
                lr,
            };
            on_log(&point);
            curve.push(point);
            (loss_sum, loss_n) = (0.0, 0);
        }
    }
    let trained =
        HookedTransformer::new(model_cfg, weights.valid(), device).with_tokenizer(tokenizer);
    let report = LmReport {
        config: cfg.clone(),
        tokens_seen: (cfg.steps * cfg.batch_size * cfg.n_ctx) as u64,
        seconds: start.elapsed().as_secs_f64(),
        curve,
    };
    Ok((trained, report))
}

/// Mean next-token loss (nats/token) of `model` over consecutive `n_ctx`-token windows of
/// `stream`, at most `max_windows` of them, `batch` windows per forward.
///
/// # Errors
/// [`Error::InvalidArgument`] when the stream holds no full window; model errors.
pub fn eval_loss<B: Backend>(
    model: &HookedTransformer<B>,
    stream: &[u32],
    max_windows: usize,
    batch: usize,
) -> Result<f32> {
    let window = model.cfg().n_ctx + 1;
    let n = (stream.len().saturating_sub(1) / (window - 1)).min(max_windows);
    if n == 0 {
        return Err(Error::InvalidArgument(
            "held-out stream is shorter than one window".into(),
        ));
    }
    let (mut total, mut count) = (0.0f64, 0usize);
    let starts: Vec<usize> = (0..n).map(|i| i * (window - 1)).collect();
    for chunk in starts.chunks(batch.max(1)) {
        let (inputs, targets): (Vec<Vec<u32>>, Vec<Vec<u32>>) = chunk
            .iter()
            .map(|&s| input_and_targets(&stream[s..s + window]))
            .unzip();
        let logits = model.forward(&Batch::padded(&inputs, Default::default()))?;
        let loss: f32 = cross_entropy(logits, &targets, model.device())
            .into_scalar()
            .elem();
        total += f64::from(loss) * chunk.len() as f64;
        count += chunk.len();
    }
    Ok((total / count as f64) as f32)
}

fn cfg_eot(tokenizer: &TextTokenizer) -> Result<u32> {
    tokenizer
        .token_to_id(crate::tokenizer::END_OF_TEXT)
        .ok_or_else(|| Error::Tokenizer("the tokenizer has no <|endoftext|> token".into()))
}

/// Random windows of `window` tokens: inputs are the first `window − 1`, targets the last.
fn sample_windows(
    stream: &[u32],
    n: usize,
    window: usize,
    rng: &mut SplitMix64,
) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    (0..n)
        .map(|_| {
            let s = rng.below(stream.len() - window + 1);
            input_and_targets(&stream[s..s + window])
        })
        .unzip()
}

/// A window's model input (all but its last token) and next-token targets (all but its first).
fn input_and_targets(window: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let n = window.len();
    (window[..n - 1].to_vec(), window[1..].to_vec())
}

/// Mean cross-entropy of `logits` `[b, p, v]` against `targets` (`b` rows of `p` ids).
fn cross_entropy<B: Backend>(
    logits: Tensor<B, 3>,
    targets: &[Vec<u32>],
    device: &B::Device,
) -> Tensor<B, 1> {
    let [b, p, v] = logits.dims();
    let ids: Vec<i64> = targets.iter().flatten().map(|&t| i64::from(t)).collect();
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [b * p, 1]), device);
    let logp = log_softmax(logits.reshape([b * p, v]), 1);
    logp.gather(1, ids).mean().neg()
}
