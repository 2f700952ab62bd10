//! Scoring steered continuations without a remote judge.
//!
//! A [`Scorer`] turns a setting's samples into one number. Built in: the share of words from
//! a word list ([`LexiconRate`], optionally among the words of a wider list), distinct-n
//! ([`DistinctN`], a repetition proxy), the mean log-prob of the continuations under the
//! unsteered model ([`UnsteeredLogProb`], a coherence proxy), and the KL divergence from the
//! unsteered model on neutral text ([`NeutralKl`]). An LLM judge can implement the same trait.

use std::collections::{BTreeSet, HashSet};

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use interp_models::{Batch, HookSpec, HookedTransformer};

use crate::error::{Error, Result};
use crate::generate::Sample;

/// What a scorer sees: the prompt and the continuations of one setting.
#[derive(Clone, Copy, Debug)]
pub struct ScoreInput<'a> {
    /// The prompt's token ids.
    pub prompt: &'a [u32],
    /// The continuations.
    pub samples: &'a [Sample],
}

/// Scores a setting's continuations.
pub trait Scorer {
    /// The score's name, used as its key in reports.
    fn name(&self) -> String;
    /// The score.
    ///
    /// # Errors
    /// Whatever the scorer needs to compute fails (a model forward, say).
    fn score(&self, input: &ScoreInput<'_>) -> Result<f64>;
}

/// Lower-cased words of `text`: maximal runs of letters (accented ones included).
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The share of generated words that are in a word list, over all samples' words: with
/// [`LexiconRate::among`], the share among the words of a wider list instead (for example
/// one mood's words among all mood words). No counted word at all scores 0.
#[derive(Clone, Debug)]
pub struct LexiconRate {
    name: String,
    target: HashSet<String>,
    among: Option<HashSet<String>>,
}

impl LexiconRate {
    /// The share of all generated words that are in `words` (compared lower-cased).
    pub fn new<S: AsRef<str>>(name: impl Into<String>, words: impl IntoIterator<Item = S>) -> Self {
        LexiconRate {
            name: name.into(),
            target: lower(words),
            among: None,
        }
    }

    /// The share of the generated words in `universe` that are in `words` (`words` are added
    /// to `universe`).
    pub fn among<S: AsRef<str>, T: AsRef<str>>(
        name: impl Into<String>,
        words: impl IntoIterator<Item = S>,
        universe: impl IntoIterator<Item = T>,
    ) -> Self {
        let target = lower(words);
        let mut among = lower(universe);
        among.extend(target.iter().cloned());
        LexiconRate {
            name: name.into(),
            target,
            among: Some(among),
        }
    }

    /// `(words in the list, words counted)` over `samples`.
    pub fn counts(&self, samples: &[Sample]) -> (usize, usize) {
        let mut hits = 0;
        let mut total = 0;
        for w in samples.iter().flat_map(|s| words(&s.text)) {
            if self.among.as_ref().is_none_or(|u| u.contains(&w)) {
                total += 1;
                hits += usize::from(self.target.contains(&w));
            }
        }
        (hits, total)
    }
}

fn lower<S: AsRef<str>>(words: impl IntoIterator<Item = S>) -> HashSet<String> {
    words
        .into_iter()
        .map(|w| w.as_ref().to_lowercase())
        .collect()
}

impl Scorer for LexiconRate {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn score(&self, input: &ScoreInput<'_>) -> Result<f64> {
        let (hits, total) = self.counts(input.samples);
        Ok(if total == 0 {
            0.0
        } else {
            hits as f64 / total as f64
        })
    }
}

/// Labels each continuation by which word list it uses most (seed 004's happy / sad /
/// neutral tallies): the label whose words occur most often in the sample, or
/// [`LexiconVote::NEUTRAL`] when none occurs or the top two tie.
#[derive(Clone, Debug)]
pub struct LexiconVote {
    labels: Vec<(String, HashSet<String>)>,
}

impl LexiconVote {
    /// The label of samples with no majority.
    pub const NEUTRAL: &'static str = "neutral";

    /// A vote between `labels`, each `(name, words)`.
    pub fn new<S: AsRef<str>>(labels: impl IntoIterator<Item = (String, Vec<S>)>) -> Self {
        LexiconVote {
            labels: labels.into_iter().map(|(n, w)| (n, lower(w))).collect(),
        }
    }

    /// The label of one continuation.
    pub fn label(&self, sample: &Sample) -> &str {
        let words = words(&sample.text);
        let mut counts: Vec<(usize, &str)> = self
            .labels
            .iter()
            .map(|(name, list)| {
                (
                    words.iter().filter(|w| list.contains(*w)).count(),
                    name.as_str(),
                )
            })
            .collect();
        counts.sort_by_key(|c| std::cmp::Reverse(c.0));
        match counts.as_slice() {
            [(0, _), ..] | [] => Self::NEUTRAL,
            [(a, _), (b, _), ..] if a == b => Self::NEUTRAL,
            [(_, name), ..] => name,
        }
    }

    /// How many samples get each label (every label and `neutral` present, possibly 0).
    pub fn tally(&self, samples: &[Sample]) -> std::collections::BTreeMap<String, usize> {
        let mut out: std::collections::BTreeMap<String, usize> = self
            .labels
            .iter()
            .map(|(n, _)| (n.clone(), 0))
            .chain([(Self::NEUTRAL.to_string(), 0)])
            .collect();
        for s in samples {
            *out.entry(self.label(s).to_string()).or_default() += 1;
        }
        out
    }
}

/// Distinct-n: the number of distinct token n-grams of a continuation over its number of
/// n-grams, averaged over samples (1 = no repetition; degenerate loops score near 0).
/// Samples shorter than `n` are skipped.
#[derive(Clone, Copy, Debug)]
pub struct DistinctN(pub usize);

impl Scorer for DistinctN {
    fn name(&self) -> String {
        format!("distinct_{}", self.0)
    }
    fn score(&self, input: &ScoreInput<'_>) -> Result<f64> {
        let n = self.0;
        if n == 0 {
            return Err(Error::invalid("distinct-n", "n must be at least 1"));
        }
        let ratios: Vec<f64> = input
            .samples
            .iter()
            .filter(|s| s.tokens.len() >= n)
            .map(|s| {
                let grams: BTreeSet<&[u32]> = s.tokens.windows(n).collect();
                grams.len() as f64 / (s.tokens.len() - n + 1) as f64
            })
            .collect();
        Ok(mean(&ratios))
    }
}

/// Coherence proxy: the mean log-probability per generated token of the continuations under
/// the **unsteered** model (higher is more fluent by the model's own standard), averaged over
/// samples.
pub struct UnsteeredLogProb<'m, B: Backend> {
    model: &'m HookedTransformer<B>,
}

impl<'m, B: Backend> UnsteeredLogProb<'m, B> {
    /// Scores with `model` run without hooks.
    pub fn new(model: &'m HookedTransformer<B>) -> Self {
        UnsteeredLogProb { model }
    }
}

impl<B: Backend> Scorer for UnsteeredLogProb<'_, B> {
    fn name(&self) -> String {
        "unsteered_log_prob".into()
    }
    fn score(&self, input: &ScoreInput<'_>) -> Result<f64> {
        let mut per_sample = Vec::with_capacity(input.samples.len());
        for s in input.samples.iter().filter(|s| !s.tokens.is_empty()) {
            let mut tokens = input.prompt.to_vec();
            tokens.extend(&s.tokens);
            let lp = self.model.token_log_probs(&tokens)?;
            let generated = &lp[input.prompt.len() - 1..];
            per_sample.push(
                generated.iter().map(|&v| f64::from(v)).sum::<f64>() / generated.len() as f64,
            );
        }
        Ok(mean(&per_sample))
    }
}

/// How far steering moves the model on neutral text: the mean over positions of
/// `KL(p_unsteered ‖ p_steered)` of the next-token distributions on fixed texts. It does not
/// depend on the samples; computed once, when the scorer is made.
#[derive(Clone, Copy, Debug)]
pub struct NeutralKl {
    value: f64,
}

impl NeutralKl {
    /// The KL of `spec` on `model` over the token sequences `texts`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for no texts; the model's errors.
    pub fn new<B: Backend>(
        model: &HookedTransformer<B>,
        spec: &HookSpec<B>,
        texts: &[Vec<u32>],
    ) -> Result<Self> {
        Ok(NeutralKl {
            value: kl_from_unsteered(model, spec, texts)?,
        })
    }

    /// The divergence, in nats per position.
    pub fn value(&self) -> f64 {
        self.value
    }
}

impl Scorer for NeutralKl {
    fn name(&self) -> String {
        "neutral_kl".into()
    }
    fn score(&self, _: &ScoreInput<'_>) -> Result<f64> {
        Ok(self.value)
    }
}

/// The mean over every position of `texts` of `KL(p_unsteered ‖ p_steered)`, in nats.
///
/// # Errors
/// [`Error::Invalid`] for no texts; the model's errors.
pub fn kl_from_unsteered<B: Backend>(
    model: &HookedTransformer<B>,
    spec: &HookSpec<B>,
    texts: &[Vec<u32>],
) -> Result<f64> {
    if texts.is_empty() {
        return Err(Error::invalid("neutral texts", "no text given"));
    }
    let mut total = 0.0f64;
    let mut n = 0usize;
    for tokens in texts {
        let batch = Batch::single(tokens);
        let clean = log_softmax(model.forward(&batch)?, 2);
        let steered = log_softmax(model.run_with_hooks(&batch, spec)?, 2);
        let kl = (clean.clone().exp() * (clean - steered)).sum_dim(2);
        let values: Vec<f32> = kl
            .into_data()
            .convert::<f32>()
            .into_vec()
            .expect("f32 data");
        total += values.iter().map(|&v| f64::from(v)).sum::<f64>();
        n += values.len();
    }
    Ok(total / n as f64)
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.iter().sum::<f64>() / xs.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, tokens: Vec<u32>) -> Sample {
        Sample {
            tokens,
            text: text.into(),
            log_probs: vec![],
            seed: 0,
        }
    }

    #[test]
    fn words_are_lower_cased_letter_runs() {
        assert_eq!(
            words(" I'm so Happy :) — ravi, enchanté!"),
            ["i", "m", "so", "happy", "ravi", "enchanté"]
        );
    }

    #[test]
    fn lexicon_rates_count_words_in_the_list() {
        let samples = [
            sample(" happy happy sad dog", vec![]),
            sample(" cat glad", vec![]),
        ];
        let input = ScoreInput {
            prompt: &[],
            samples: &samples,
        };
        let happy = LexiconRate::new("happy", ["Happy", "glad"]);
        assert_eq!(happy.counts(&samples), (3, 6));
        assert!((happy.score(&input).unwrap() - 0.5).abs() < 1e-12);
        let among = LexiconRate::among("happy", ["happy", "glad"], ["sad", "angry"]);
        assert_eq!(among.counts(&samples), (3, 4));
        let none = LexiconRate::among("x", ["zebra"], ["yak"]);
        assert_eq!(none.score(&input).unwrap(), 0.0);
    }

    #[test]
    fn votes_pick_the_majority_list_or_neutral() {
        let vote = LexiconVote::new([
            ("happy".to_string(), vec!["happy", "glad"]),
            ("sad".to_string(), vec!["sad"]),
        ]);
        let samples = [
            sample(" glad and happy, a bit sad", vec![]),
            sample(" sad", vec![]),
            sample(" happy sad", vec![]),
            sample(" nothing", vec![]),
        ];
        let labels: Vec<&str> = samples.iter().map(|s| vote.label(s)).collect();
        assert_eq!(labels, ["happy", "sad", "neutral", "neutral"]);
        let tally = vote.tally(&samples);
        assert_eq!((tally["happy"], tally["sad"], tally["neutral"]), (1, 1, 2));
    }

    #[test]
    fn distinct_n_sees_repetition() {
        let samples = [
            sample("", vec![1, 2, 3, 4, 5]),
            sample("", vec![7, 7, 7, 7, 7]),
            sample("", vec![9]),
        ];
        let input = ScoreInput {
            prompt: &[],
            samples: &samples,
        };
        // 4/4 distinct bigrams, then 1/4; the one-token sample is skipped.
        assert!((DistinctN(2).score(&input).unwrap() - 0.625).abs() < 1e-12);
        assert!(DistinctN(0).score(&input).is_err());
    }
}
