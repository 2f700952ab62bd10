//! Text generation with hooks active: greedy, temperature, top-k, top-p, frequency penalty, a
//! seeded RNG, and a KV cache.

use burn::tensor::backend::Backend;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};
use crate::hooks::HookSpec;
use crate::transformer::{Batch, HookedTransformer, KvCache, PaddingSide, Pass};

/// When the hooks of a [`HookSpec`] run during generation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HookMode {
    /// On every forward pass: the prompt and each new token.
    #[default]
    EveryStep,
    /// On the forward pass over the prompt only. With the KV cache (the default) their effect
    /// on the prompt's keys and values persists; without it, later steps recompute the prompt
    /// without hooks.
    PromptOnly,
    /// On the positions of generated tokens only (every hook as if it had
    /// [`crate::hooks::Positions::Generated`]): the prompt is read unsteered, with or without
    /// the KV cache.
    GeneratedOnly,
}

/// Generation settings. `temperature = 0` is greedy decoding.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateOptions {
    /// Tokens to generate at most.
    pub max_new_tokens: usize,
    /// Softmax temperature; `0` picks the argmax. Default 1.
    pub temperature: f32,
    /// Sample only among the `k` most likely tokens.
    pub top_k: Option<usize>,
    /// Sample only from the smallest set of tokens whose probability reaches `p`.
    pub top_p: Option<f32>,
    /// Subtracted from a token's logit once per earlier occurrence (TransformerLens
    /// `freq_penalty`). Default 0.
    pub freq_penalty: f32,
    /// RNG seed: the same seed gives the same text.
    pub seed: u64,
    /// Stop after the end-of-sequence token. Default true.
    pub stop_at_eos: bool,
    /// Reuse keys and values of earlier positions (default). Off recomputes the whole sequence
    /// at every step.
    pub use_kv_cache: bool,
    /// When hooks run.
    pub hook_mode: HookMode,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_new_tokens: 20,
            temperature: 1.0,
            top_k: None,
            top_p: None,
            freq_penalty: 0.0,
            seed: 0,
            stop_at_eos: true,
            use_kv_cache: true,
            hook_mode: HookMode::EveryStep,
        }
    }
}

impl GenerateOptions {
    /// Greedy decoding of `max_new_tokens` tokens.
    pub fn greedy(max_new_tokens: usize) -> Self {
        GenerateOptions {
            max_new_tokens,
            temperature: 0.0,
            ..Default::default()
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |name, value: f64| Err(Error::InvalidSampling { name, value });
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad("temperature", self.temperature as f64);
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return bad("top_p", p as f64);
            }
        }
        if self.top_k == Some(0) {
            return bad("top_k", 0.0);
        }
        if !self.freq_penalty.is_finite() {
            return bad("freq_penalty", self.freq_penalty as f64);
        }
        Ok(())
    }
}

/// One continuation from [`HookedTransformer::generate_batch`].
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    /// The generated token ids (the prompt not included; ends with the end-of-sequence token
    /// when generation stopped there).
    pub tokens: Vec<u32>,
    /// `log p(tokens[i] | prompt, tokens[..i])` under the model as run (hooks active), from
    /// its raw logits: before the frequency penalty, temperature, top-k and top-p.
    pub log_probs: Vec<f32>,
}

impl<B: Backend> HookedTransformer<B> {
    /// Continues `prompt` and returns prompt + generated tokens, with the hooks of `spec`
    /// active as `opts.hook_mode` says.
    ///
    /// # Errors
    /// Invalid settings, an empty prompt, token ids out of range, or a sequence that would
    /// exceed `n_ctx` (generation stops at `n_ctx` rather than failing when the prompt fits).
    pub fn generate(
        &self,
        prompt: &[u32],
        opts: &GenerateOptions,
        spec: &HookSpec<B>,
    ) -> Result<Vec<u32>> {
        let generated = self.generate_batch(prompt, 1, opts, spec)?;
        let mut tokens = prompt.to_vec();
        tokens.extend(&generated[0].tokens);
        Ok(tokens)
    }

    /// `n_samples` continuations of `prompt`, generated together as one batch (one forward per
    /// step for all of them). Sample `i` draws from its own RNG seeded `opts.seed + i`, so
    /// sample 0 is what [`Self::generate`] returns with the same options, and each sample is
    /// the same whatever `n_samples` is. With `stop_at_eos` a sample ends at its
    /// end-of-sequence token; the batch ends when every sample has.
    ///
    /// With the KV cache (the default) the prompt runs once, as a batch of one, and its cache
    /// is shared by the samples: hooks see one row at step 0 and `n_samples` rows after.
    ///
    /// # Errors
    /// As [`Self::generate`]; [`Error::EmptyInput`] for `n_samples == 0`.
    pub fn generate_batch(
        &self,
        prompt: &[u32],
        n_samples: usize,
        opts: &GenerateOptions,
        spec: &HookSpec<B>,
    ) -> Result<Vec<Generation>> {
        opts.validate()?;
        if prompt.is_empty() {
            return Err(Error::EmptyInput { what: "prompt" });
        }
        if n_samples == 0 {
            return Err(Error::EmptyInput {
                what: "generate_batch needs at least one sample",
            });
        }
        if prompt.len() > self.cfg.n_ctx {
            return Err(Error::SequenceTooLong {
                len: prompt.len(),
                n_ctx: self.cfg.n_ctx,
            });
        }
        let mut rngs: Vec<StdRng> = (0..n_samples as u64)
            .map(|i| StdRng::seed_from_u64(opts.seed.wrapping_add(i)))
            .collect();
        let no_hooks = HookSpec::new();
        let mut rows: Vec<Vec<u32>> = vec![prompt.to_vec(); n_samples];
        let mut out = vec![
            Generation {
                tokens: Vec::new(),
                log_probs: Vec::new(),
            };
            n_samples
        ];
        let mut done = vec![false; n_samples];
        let mut kv = KvCache::new(self.cfg.n_layers);
        let budget = opts
            .max_new_tokens
            .min(self.cfg.n_ctx.saturating_sub(prompt.len()));
        for step in 0..budget {
            let step_spec = match opts.hook_mode {
                HookMode::PromptOnly if step > 0 => &no_hooks,
                _ => spec,
            };
            let pass = Pass {
                step,
                prompt_len: Some(prompt.len()),
                generated_only: opts.hook_mode == HookMode::GeneratedOnly,
            };
            let logits = if opts.use_kv_cache {
                let new: Vec<Vec<u32>> = if step == 0 {
                    vec![prompt.to_vec()]
                } else {
                    rows.iter().map(|r| vec![r[r.len() - 1]]).collect()
                };
                let batch = Batch::padded(&new, PaddingSide::Right);
                let logits = self.run_pass(&batch, step_spec, Some(&mut kv), pass)?.0;
                kv.repeat_single_row(n_samples);
                logits
            } else {
                let batch = Batch::padded(&rows, PaddingSide::Right);
                self.run_pass(&batch, step_spec, None, pass)?.0
            };
            let [n_rows, n_pos, d_vocab] = logits.dims();
            let last: Vec<f32> = crate::kernels::last_position(&logits).unwrap_or_else(|| {
                logits
                    .slice([0..n_rows, n_pos - 1..n_pos, 0..d_vocab])
                    .into_data()
                    .convert::<f32>()
                    .into_vec()
                    .expect("f32 data")
            });
            for i in 0..n_samples {
                // One row of logits when the prompt ran once for every sample.
                let row = if n_rows == 1 { 0 } else { i };
                let row_logits = &last[row * d_vocab..(row + 1) * d_vocab];
                if done[i] {
                    // Finished rows keep the batch rectangular; what they read is discarded.
                    let last = *rows[i].last().expect("non-empty");
                    rows[i].push(last);
                    continue;
                }
                let next = sample(row_logits.to_vec(), &rows[i], opts, &mut rngs[i]);
                out[i].tokens.push(next);
                out[i].log_probs.push(log_prob(row_logits, next));
                rows[i].push(next);
                done[i] = opts.stop_at_eos && Some(next) == self.cfg.eos_token_id;
            }
            if done.iter().all(|&d| d) {
                break;
            }
        }
        Ok(out)
    }

    /// Tokenizes `prompt` (no BOS), generates, and decodes the whole sequence.
    pub fn generate_text(
        &self,
        prompt: &str,
        opts: &GenerateOptions,
        spec: &HookSpec<B>,
    ) -> Result<String> {
        let tokens = self.to_tokens(prompt, false)?;
        let out = self.generate(&tokens, opts, spec)?;
        self.tokenizer()?.decode(&out)
    }
}

/// `log softmax(logits)[token]`, accumulated in f64.
fn log_prob(logits: &[f32], token: u32) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    (f64::from(logits[token as usize] - max) - sum.ln()) as f32
}

/// Picks the next token from the last position's logits.
fn sample(mut logits: Vec<f32>, history: &[u32], opts: &GenerateOptions, rng: &mut StdRng) -> u32 {
    if opts.freq_penalty != 0.0 {
        for &t in history {
            logits[t as usize] -= opts.freq_penalty;
        }
    }
    if opts.temperature == 0.0 {
        return argmax(&logits);
    }
    for l in logits.iter_mut() {
        *l /= opts.temperature;
    }
    // Candidates by logit, descending (stable: ties keep the lower id first). Only top-k and
    // top-p need the order; without them every token is a candidate, in id order.
    let by_logit = |a: &u32, b: &u32| {
        let (la, lb) = (logits[*a as usize], logits[*b as usize]);
        lb.total_cmp(&la).then(a.cmp(b))
    };
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    if let Some(k) = opts.top_k {
        let k = k.max(1);
        if k < order.len() {
            order.select_nth_unstable_by(k - 1, by_logit);
            order.truncate(k);
        }
        order.sort_by(by_logit);
    } else if opts.top_p.is_some() {
        order.sort_by(by_logit);
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut probs: Vec<f32> = order
        .iter()
        .map(|&t| (logits[t as usize] - max).exp())
        .collect();
    let total: f32 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if let Some(top_p) = opts.top_p {
        let mut acc = 0.0;
        let keep = probs
            .iter()
            .position(|&p| {
                acc += p;
                acc >= top_p
            })
            .map_or(probs.len(), |i| i + 1);
        order.truncate(keep);
        probs.truncate(keep);
    }
    let total: f32 = probs.iter().sum();
    let mut u = rng.random::<f32>() * total;
    for (t, p) in order.iter().zip(&probs) {
        if u < *p {
            return *t;
        }
        u -= p;
    }
    *order.last().expect("at least one candidate")
}

fn argmax(xs: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in xs.iter().enumerate() {
        if *x > xs[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_one_is_greedy_and_seeds_repeat() {
        let logits = vec![0.1, 2.0, 0.5, 1.9];
        let mut rng = StdRng::seed_from_u64(1);
        let opts = GenerateOptions {
            top_k: Some(1),
            ..Default::default()
        };
        assert_eq!(sample(logits.clone(), &[], &opts, &mut rng), 1);
        let opts = GenerateOptions {
            temperature: 5.0,
            ..Default::default()
        };
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..50)
                .map(|_| sample(logits.clone(), &[], &opts, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert!(
            draw(7)
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                > 1
        );
    }

    #[test]
    fn top_p_keeps_the_nucleus_and_penalty_applies() {
        // p(1) ≈ 0.9997: a nucleus of 0.5 keeps only token 1.
        let logits = vec![0.0, 10.0, 1.0];
        let opts = GenerateOptions {
            top_p: Some(0.5),
            ..Default::default()
        };
        let mut rng = StdRng::seed_from_u64(3);
        assert!((0..100).all(|_| sample(logits.clone(), &[], &opts, &mut rng) == 1));
        let opts = GenerateOptions {
            temperature: 0.0,
            freq_penalty: 20.0,
            ..Default::default()
        };
        assert_eq!(sample(logits, &[1], &opts, &mut rng), 2);
    }

    #[test]
    fn invalid_settings_are_errors() {
        for opts in [
            GenerateOptions {
                temperature: -1.0,
                ..Default::default()
            },
            GenerateOptions {
                top_p: Some(0.0),
                ..Default::default()
            },
            GenerateOptions {
                top_k: Some(0),
                ..Default::default()
            },
            GenerateOptions {
                freq_penalty: f32::NAN,
                ..Default::default()
            },
        ] {
            assert!(matches!(
                opts.validate(),
                Err(Error::InvalidSampling { .. })
            ));
        }
    }
}
