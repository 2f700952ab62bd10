//! How much of the model's behaviour an SAE keeps when its reconstruction replaces the
//! activation it reads: cross-entropy loss recovered and KL divergence, as SAELens evaluates
//! SAEs (`sae_lens.evals.get_recons_loss` / `get_downstream_reconstruction_metrics`).
//!
//! On token windows, three forward passes: clean, with the SAE's reconstruction spliced in at
//! its hook ([`crate::hooked::run_with_sae`]), and with the hook zero-ablated. Then
//!
//! - `ce_loss_*`: mean next-token cross-entropy over every position that has a next token;
//! - `ce_loss_recovered = (ce_zero − ce_spliced) / (ce_zero − ce_clean)` (SAELens'
//!   `ce_loss_score`): 1 when splicing costs nothing, 0 when it is as bad as ablation;
//! - `kl_spliced`, `kl_zero`: `KL(clean ‖ other)` of the next-token distributions, averaged
//!   over every position.
//!
//! With [`SpliceOptions::ignore_tokens`] (SAELens' `run_evals` ignores the special tokens by
//! default), positions holding those tokens keep their clean activation in the spliced run and
//! are left out of every mean (for the loss: positions whose *input* token is ignored).
//!
//! Checked against SAELens on the tiny GPT-2 fixture (`tests/sae_models/splice.rs`).

use burn::tensor::activation::log_softmax;
use burn::tensor::{backend::Backend, Bool, Int, Tensor, TensorData};
use interp_models::hooks::{Activation as HookActivation, HookPoint, HookSpec, Intervention};
use interp_models::{Batch, HookedTransformer};
use serde::{Deserialize, Serialize};

use crate::device::to_host;
use crate::error::{Error, Result};
use crate::hooked::{run_with_sae, sae_hook_point, DeviceSae};
use crate::sae::Sae;

/// Options of [`splice_metrics`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpliceOptions {
    /// Positions holding these tokens keep the clean activation and are left out of the
    /// metrics. Default none; see [`SpliceOptions::ignoring_special_tokens`].
    pub ignore_tokens: Vec<u32>,
    /// Windows per forward pass. Default 8.
    pub windows_per_forward: usize,
}

impl Default for SpliceOptions {
    fn default() -> Self {
        SpliceOptions {
            ignore_tokens: Vec::new(),
            windows_per_forward: 8,
        }
    }
}

impl SpliceOptions {
    /// Ignores the model's BOS and EOS tokens, as SAELens' `run_evals` does by default
    /// (`exclude_special_tokens=True`).
    pub fn ignoring_special_tokens<B: Backend>(model: &HookedTransformer<B>) -> Self {
        let cfg = model.cfg();
        let mut ignore: Vec<u32> = cfg.bos_token_id.into_iter().collect();
        if let Some(eos) = cfg.eos_token_id.filter(|e| !ignore.contains(e)) {
            ignore.push(eos);
        }
        SpliceOptions {
            ignore_tokens: ignore,
            ..Self::default()
        }
    }
}

/// The result of [`splice_metrics`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpliceMetrics {
    /// The hook the SAE was spliced into.
    pub hook: String,
    /// Mean next-token cross-entropy of the clean model (nats).
    pub ce_loss_clean: f64,
    /// The same with the SAE's reconstruction spliced in.
    pub ce_loss_spliced: f64,
    /// The same with the hook zero-ablated.
    pub ce_loss_zero: f64,
    /// `(ce_zero − ce_spliced) / (ce_zero − ce_clean)`; `None` when the denominator is below
    /// 1e-9 in magnitude (ablating the hook does not change the loss).
    pub ce_loss_recovered: Option<f64>,
    /// Mean `KL(clean ‖ spliced)` per position.
    pub kl_spliced: f64,
    /// Mean `KL(clean ‖ zero-ablated)` per position.
    pub kl_zero: f64,
    /// Positions in the loss means.
    pub ce_positions: u64,
    /// Positions in the KL means.
    pub kl_positions: u64,
}

/// [`splice_metrics`] for an [`Sae`] on the CPU side: copies its weights to the model's device
/// first.
///
/// # Errors
/// As [`splice_metrics`].
pub fn splice_metrics_sae<B: Backend>(
    model: &HookedTransformer<B>,
    sae: &Sae,
    windows: &[Vec<u32>],
    options: &SpliceOptions,
) -> Result<SpliceMetrics> {
    splice_metrics(
        model,
        &DeviceSae::new(sae, model.device()),
        windows,
        options,
    )
}

/// Cross-entropy and KL of `model` on `windows` clean, with `sae` spliced in at its hook
/// (`metadata.hook_name`), and with that hook zero-ablated. See the
/// [module documentation](self).
///
/// Windows may differ in length (windows of one length share a forward pass); none is padded.
///
/// # Errors
/// [`Error::Data`] for no windows, an empty window, or no position left to average over;
/// [`Error::Unsupported`] for an SAE on a single head (`hook_head_index`); as
/// [`sae_hook_point`]; model errors (e.g. a token outside the vocabulary, a window longer than
/// the context).
pub fn splice_metrics<B: Backend>(
    model: &HookedTransformer<B>,
    sae: &DeviceSae<B>,
    windows: &[Vec<u32>],
    options: &SpliceOptions,
) -> Result<SpliceMetrics> {
    let hook = sae_hook_point(model, sae.config())?;
    if let Some(head) = sae.config().metadata.hook_head_index {
        return Err(Error::Unsupported {
            what: format!("splicing an SAE on one head ({hook}, head {head})"),
        });
    }
    if windows.is_empty() || windows.iter().any(Vec::is_empty) {
        return Err(Error::Data {
            reason: "splice evaluation needs non-empty token windows".into(),
        });
    }
    let per_forward = options.windows_per_forward.max(1);
    let mut sums = Sums::default();
    let mut start = 0;
    while start < windows.len() {
        let len = windows[start].len();
        let mut end = start + 1;
        while end < windows.len() && end - start < per_forward && windows[end].len() == len {
            end += 1;
        }
        evaluate_group(model, sae, hook, &windows[start..end], options, &mut sums)?;
        start = end;
    }
    if sums.ce_n == 0 || sums.kl_n == 0 {
        return Err(Error::Data {
            reason: format!(
                "no position to evaluate ({} with a next token, {} in all, after ignoring {:?})",
                sums.ce_n, sums.kl_n, options.ignore_tokens
            ),
        });
    }
    let ce = |s: f64| s / sums.ce_n as f64;
    let (clean, spliced, zero) = (ce(sums.ce[0]), ce(sums.ce[1]), ce(sums.ce[2]));
    let den = zero - clean;
    Ok(SpliceMetrics {
        hook: hook.to_string(),
        ce_loss_clean: clean,
        ce_loss_spliced: spliced,
        ce_loss_zero: zero,
        ce_loss_recovered: (den.abs() >= 1e-9).then(|| (zero - spliced) / den),
        kl_spliced: sums.kl[0] / sums.kl_n as f64,
        kl_zero: sums.kl[1] / sums.kl_n as f64,
        ce_positions: sums.ce_n,
        kl_positions: sums.kl_n,
    })
}

/// Running sums: losses (clean, spliced, zero), KLs (spliced, zero), position counts.
#[derive(Default)]
struct Sums {
    ce: [f64; 3],
    kl: [f64; 2],
    ce_n: u64,
    kl_n: u64,
}

/// Windows of one length, in one forward pass each way.
fn evaluate_group<B: Backend>(
    model: &HookedTransformer<B>,
    sae: &DeviceSae<B>,
    hook: HookPoint,
    windows: &[Vec<u32>],
    options: &SpliceOptions,
    sums: &mut Sums,
) -> Result<()> {
    let device = model.device();
    let (n, len) = (windows.len(), windows[0].len());
    let batch = Batch::padded(windows, interp_models::PaddingSide::Right);
    let keep: Vec<bool> = windows
        .iter()
        .flatten()
        .map(|t| !options.ignore_tokens.contains(t))
        .collect();

    let clean = log_softmax(model.forward(&batch)?, 2);
    let spliced = if keep.iter().all(|&k| k) {
        run_with_sae(model, &batch, sae, true)?.logits
    } else {
        masked_splice(model, &batch, sae, hook, &keep, [n, len])?
    };
    let spliced = log_softmax(spliced, 2);
    let zero_spec = HookSpec::new().intervene(hook, None, Intervention::Zero);
    let zero = log_softmax(model.run_with_hooks(&batch, &zero_spec)?, 2);

    // KL(clean ‖ other) per position, [n, len].
    let p_clean = clean.clone().exp();
    let kl = |other: &Tensor<B, 3>| -> Result<Vec<f32>> {
        to_host(
            (p_clean.clone() * (clean.clone() - other.clone())).sum_dim(2),
            "KL divergences",
        )
    };
    let kls = [kl(&spliced)?, kl(&zero)?];
    for (i, &k) in keep.iter().enumerate() {
        if k {
            sums.kl_n += 1;
            for (s, v) in sums.kl.iter_mut().zip(&kls) {
                *s += f64::from(v[i]);
            }
        }
    }

    if len < 2 {
        return Ok(());
    }
    // Next-token losses at positions 0..len-1, [n, len-1].
    let targets: Vec<i64> = windows
        .iter()
        .flat_map(|w| w[1..].iter().map(|&t| i64::from(t)))
        .collect();
    let targets = Tensor::<B, 3, Int>::from_data(TensorData::new(targets, [n, len - 1, 1]), device);
    let nll = |lp: &Tensor<B, 3>| -> Result<Vec<f32>> {
        to_host(
            lp.clone()
                .narrow(1, 0, len - 1)
                .gather(2, targets.clone())
                .neg(),
            "token losses",
        )
    };
    let losses = [nll(&clean)?, nll(&spliced)?, nll(&zero)?];
    for w in 0..n {
        for p in 0..len - 1 {
            if keep[w * len + p] {
                sums.ce_n += 1;
                let i = w * (len - 1) + p;
                for (s, v) in sums.ce.iter_mut().zip(&losses) {
                    *s += f64::from(v[i]);
                }
            }
        }
    }
    Ok(())
}

/// Logits with the reconstruction spliced in only where `keep` is true (SAELens'
/// replacement hook with an ignore mask); elsewhere the clean activation stays.
fn masked_splice<B: Backend>(
    model: &HookedTransformer<B>,
    batch: &Batch,
    sae: &DeviceSae<B>,
    hook: HookPoint,
    keep: &[bool],
    [n, len]: [usize; 2],
) -> Result<Tensor<B, 3>> {
    let device = model.device();
    let ignored: Vec<bool> = keep.iter().map(|k| !k).collect();
    let ignored = Tensor::<B, 3, Bool>::from_data(TensorData::new(ignored, [n, len, 1]), device);
    let module = sae.clone();
    let spec = HookSpec::new().hook(hook, move |act, _| {
        let dims = act.dims();
        let width: usize = dims[2..].iter().product();
        let flat: Tensor<B, 3> = match act.clone() {
            HookActivation::Rank3(t) => t,
            HookActivation::Rank4(t) => t.reshape([n, len, width]),
        };
        let (_, recon) = module
            .forward(flat.clone().reshape([n * len, width]))
            .expect("width checked by sae_hook_point before the run");
        let recon: Tensor<B, 3> = recon.reshape([n, len, width]);
        let mixed = recon.mask_where(ignored.clone().expand([n, len, width]), flat);
        match act {
            HookActivation::Rank3(_) => HookActivation::Rank3(mixed),
            HookActivation::Rank4(_) => {
                HookActivation::Rank4(mixed.reshape([n, len, dims[2], dims[3]]))
            }
        }
    });
    Ok(model.run_with_hooks(batch, &spec)?)
}

/// A [`crate::train::Evaluator`] that reports [`SpliceMetrics`] of the SAE being trained, spliced
/// at `hook` into `model` on fixed evaluation windows (`ce_loss_recovered`, `kl_spliced`, …
/// appear under `eval` in `metrics.jsonl`).
pub struct SpliceEvaluator<B: Backend> {
    model: std::sync::Arc<HookedTransformer<B>>,
    hook: String,
    windows: Vec<Vec<u32>>,
    options: SpliceOptions,
}

impl<B: Backend> SpliceEvaluator<B> {
    /// Evaluates at `hook` on `windows` (e.g. the first windows of [`crate::store::token_windows`]
    /// over a held-out corpus), ignoring BOS/EOS positions as SAELens' `run_evals` does.
    ///
    /// # Errors
    /// [`Error::Data`] when there are no windows.
    pub fn new(
        model: std::sync::Arc<HookedTransformer<B>>,
        hook: impl Into<String>,
        windows: Vec<Vec<u32>>,
    ) -> Result<Self> {
        if windows.is_empty() {
            return Err(Error::Data {
                reason: "no evaluation windows".into(),
            });
        }
        let options = SpliceOptions::ignoring_special_tokens(&model);
        Ok(SpliceEvaluator {
            model,
            hook: hook.into(),
            windows,
            options,
        })
    }
}

impl<B: Backend> crate::train::Evaluator for SpliceEvaluator<B> {
    fn evaluate(&mut self, sae: &Sae) -> Result<serde_json::Map<String, serde_json::Value>> {
        let mut sae = sae.clone();
        sae.set_hook_name(&self.hook);
        let m = splice_metrics_sae(&self.model, &sae, &self.windows, &self.options)?;
        match serde_json::to_value(m).expect("metrics serialise") {
            serde_json::Value::Object(map) => Ok(map),
            _ => unreachable!("a struct serialises to an object"),
        }
    }
}
