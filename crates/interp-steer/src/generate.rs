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

/// One prompt, sampling settings and scorers, against which plans are run: each
/// [`Experiment::run`] compiles a plan, generates `samples` continuations and scores them.
///
/// ```no_run
/// # use interp_models::prelude::*;
/// # use interp_steer::prelude::*;
/// # fn demo(model: &HookedTransformer<Cpu>, plan: &SteeringPlan) -> interp_steer::Result<()> {
/// let prompt = model.to_tokens("Today I am", true)?;
/// let fluency = UnsteeredLogProb::new(model);
/// let exp = Experiment::new(model, prompt).samples(20).scorers(vec![&fluency, &DistinctN(2)]);
/// let base = exp.run("unsteered", &SteeringPlan::new())?;
/// let swept = exp.sweep(plan, &[0.0, 4.0, 8.0])?;
/// # Ok(()) }
/// ```
pub struct Experiment<'a, B: Backend> {
    /// The model.
    pub model: &'a HookedTransformer<B>,
    /// The SAEs the plans' SAE steps name.
    pub saes: SaeSet,
    /// The prompt's token ids.
    pub prompt: Vec<u32>,
    /// Sampling settings (default: temperature 1, 20 new tokens, seed 0).
    pub opts: GenerateOptions,
    /// Continuations per setting (default 1).
    pub n_samples: usize,
    /// The scorers applied to each setting.
    pub scorers: Vec<&'a dyn Scorer>,
}

impl<'a, B: Backend> Experiment<'a, B> {
    /// An experiment on `prompt` with default settings, no SAEs and no scorers.
    pub fn new(model: &'a HookedTransformer<B>, prompt: Vec<u32>) -> Self {
        Experiment {
            model,
            saes: SaeSet::new(),
            prompt,
            opts: GenerateOptions::default(),
            n_samples: 1,
            scorers: Vec::new(),
        }
    }

    /// With these SAEs.
    pub fn saes(mut self, saes: SaeSet) -> Self {
        self.saes = saes;
        self
    }

    /// With these sampling settings.
    pub fn options(mut self, opts: GenerateOptions) -> Self {
        self.opts = opts;
        self
    }

    /// With `n` continuations per setting.
    pub fn samples(mut self, n: usize) -> Self {
        self.n_samples = n;
        self
    }

    /// With these scorers.
    pub fn scorers(mut self, scorers: Vec<&'a dyn Scorer>) -> Self {
        self.scorers = scorers;
        self
    }

    /// Runs `plan`: compiled on the model, `n_samples` continuations of the prompt, each scorer
    /// applied to them.
    ///
    /// # Errors
    /// The plan's validation errors, the model's errors, the scorers' errors.
    pub fn run(&self, label: impl Into<String>, plan: &SteeringPlan) -> Result<SettingResult> {
        let spec = plan.hook_spec(self.model, &self.saes)?;
        let samples =
            generate_samples(self.model, &self.prompt, &spec, &self.opts, self.n_samples)?;
        let input = ScoreInput {
            prompt: &self.prompt,
            samples: &samples,
        };
        let mut scores = std::collections::BTreeMap::new();
        for scorer in &self.scorers {
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
    /// As [`Self::run`].
    pub fn sweep(&self, plan: &SteeringPlan, coefficients: &[f32]) -> Result<Vec<SettingResult>> {
        coefficients
            .iter()
            .map(|&c| {
                let mut r = self.run(format!("×{c}"), &plan.clone().scaled(c))?;
                r.coefficient = Some(c);
                Ok(r)
            })
            .collect()
    }
}
