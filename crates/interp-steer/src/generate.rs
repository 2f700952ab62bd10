//! Steered generation: seeded samples with the plan's hooks active, and coefficient sweeps.

use burn::tensor::backend::Backend;
use interp_models::{GenerateOptions, HookSpec, HookedTransformer};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::plan::SteeringPlan;
use crate::sae_set::SaeSet;
use crate::score::{ScoreInput, Scorer};

/// One generated continuation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The generated token ids (the prompt not included).
    pub tokens: Vec<u32>,
    /// The generated tokens decoded (empty when the model has no tokenizer).
    pub text: String,
    /// `log p(token | everything before it)` of each generated token under the steered
    /// model, from its raw logits (before penalty, temperature, top-k and top-p).
    pub log_probs: Vec<f32>,
    /// The RNG seed the sample was drawn with.
    pub seed: u64,
}

/// `n_samples` continuations of `prompt` with `spec`'s hooks active, generated as one batch
/// with the KV cache (see [`HookedTransformer::generate_batch`]): sample `i` uses seed
/// `opts.seed + i`.
///
/// # Errors
/// The model's errors (bad settings, tokens out of range, a hook that fails).
pub fn generate_samples<B: Backend>(
    model: &HookedTransformer<B>,
    prompt: &[u32],
    spec: &HookSpec<B>,
    opts: &GenerateOptions,
    n_samples: usize,
) -> Result<Vec<Sample>> {
    let generations = model.generate_batch(prompt, n_samples, opts, spec)?;
    generations
        .into_iter()
        .enumerate()
        .map(|(i, g)| {
            let text = match model.tokenizer() {
                Ok(tok) => tok.decode(&g.tokens)?,
                Err(_) => String::new(),
            };
            Ok(Sample {
                tokens: g.tokens,
                text,
                log_probs: g.log_probs,
                seed: opts.seed.wrapping_add(i as u64),
            })
        })
        .collect()
}

/// Samples and scores of one steering setting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SettingResult {
    /// A name for the setting (`"happy ×8"`).
    pub label: String,
    /// The coefficient the setting was run at, for sweeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coefficient: Option<f32>,
    /// The plan that was active.
    pub plan: SteeringPlan,
    /// The continuations.
    pub samples: Vec<Sample>,
    /// Each scorer's score, by [`Scorer::name`].
    pub scores: std::collections::BTreeMap<String, f64>,
}

/// Runs one setting: `plan` compiled on `model`, `n_samples` continuations of `prompt`, each
/// scorer applied to them.
///
/// # Errors
/// The plan's validation errors, the model's errors, the scorers' errors.
#[allow(clippy::too_many_arguments)]
pub fn run_setting<B: Backend>(
    model: &HookedTransformer<B>,
    saes: &SaeSet,
    label: impl Into<String>,
    plan: &SteeringPlan,
    prompt: &[u32],
    opts: &GenerateOptions,
    n_samples: usize,
    scorers: &[&dyn Scorer],
) -> Result<SettingResult> {
    let spec = plan.hook_spec(model, saes)?;
    let samples = generate_samples(model, prompt, &spec, opts, n_samples)?;
    let input = ScoreInput {
        prompt,
        samples: &samples,
    };
    let mut scores = std::collections::BTreeMap::new();
    for scorer in scorers {
        scores.insert(scorer.name(), scorer.score(&input)?);
    }
    Ok(SettingResult {
        label: label.into(),
        coefficient: None,
        plan: plan.clone(),
        samples,
        scores,
    })
}

/// A coefficient sweep: `plan` with every `Add` coefficient multiplied by each of
/// `coefficients` ([`SteeringPlan::scaled`]), one [`SettingResult`] per coefficient.
///
/// # Errors
/// As [`run_setting`].
#[allow(clippy::too_many_arguments)]
pub fn sweep<B: Backend>(
    model: &HookedTransformer<B>,
    saes: &SaeSet,
    plan: &SteeringPlan,
    coefficients: &[f32],
    prompt: &[u32],
    opts: &GenerateOptions,
    n_samples: usize,
    scorers: &[&dyn Scorer],
) -> Result<Vec<SettingResult>> {
    coefficients
        .iter()
        .map(|&c| {
            let scaled = plan.clone().scaled(c);
            let mut r = run_setting(
                model,
                saes,
                format!("×{c}"),
                &scaled,
                prompt,
                opts,
                n_samples,
                scorers,
            )?;
            r.coefficient = Some(c);
            Ok(r)
        })
        .collect()
}
