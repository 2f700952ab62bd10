//! The toy world's quality gates, scored against the corpus labels.
//!
//! - [`mood_persistence`]: after a prefix that stated a mood, does the model rank that mood's
//!   words above the other moods' at the next mood slot? A mood's score is the log of the
//!   total probability of its words (each word's tokens scored in sequence); the prediction
//!   is the best-scoring mood.
//! - [`mood_feature_auroc`]: for each SAE and mood, the single feature that best separates
//!   that mood's words (happy, glad, joyful, cheerful, heureux, ravi, … in held-out text) from
//!   every other word, by AUROC over word activations ([`word_activations`]: the sum over a
//!   word's sub-tokens).

use std::collections::BTreeMap;

use burn::tensor::backend::Backend;
use interp_models::{Batch, HookPoint, HookedTransformer, NameFilter, PaddingSide};
use interp_sae::Sae;
use ndarray::{Array2, Axis};
use serde::{Deserialize, Serialize};

use crate::corpus::{mood_words, Document, Label, Lang, Mood};
use crate::error::{Error, Result};

/// Mood-persistence accuracy per language.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MoodPersistence {
    /// `(correct, total)` per language.
    pub per_lang: BTreeMap<Lang, (usize, usize)>,
    /// Confusion counts `true mood → predicted mood → count`.
    pub confusion: BTreeMap<Mood, BTreeMap<Mood, usize>>,
}

impl MoodPersistence {
    /// Fraction correct in `lang` (0 when it had no cases).
    pub fn accuracy(&self, lang: Lang) -> f64 {
        match self.per_lang.get(&lang) {
            Some(&(c, t)) if t > 0 => c as f64 / t as f64,
            _ => 0.0,
        }
    }
}

/// Scores mood persistence on `docs` at the first predictable mood slot of each.
///
/// # Errors
/// Tokenizer and model errors.
pub fn mood_persistence<B: Backend>(
    model: &HookedTransformer<B>,
    docs: &[Document],
) -> Result<MoodPersistence> {
    let tok = model.tokenizer()?;
    let mut out = MoodPersistence::default();
    for doc in docs {
        let Some(slot) = doc.predictable_mood_spans().next() else {
            continue;
        };
        let prefix = doc.text[..slot.start].trim_end();
        let prefix_ids = model.to_tokens(prefix, true)?;
        // Every candidate word of every mood, as continuation tokens.
        let mut rows = Vec::new();
        let mut owners = Vec::new();
        for mood in Mood::ALL {
            for word in mood_words(mood, doc.lang) {
                let cont = tok.encode(&format!(" {word}"), None)?.ids;
                let mut row = prefix_ids.clone();
                row.extend(&cont);
                rows.push(row);
                owners.push((mood, cont.len()));
            }
        }
        let logits = model.forward(&Batch::padded(&rows, PaddingSide::Right))?;
        let [n, p, v] = logits.dims();
        let data = host(logits, "logits")?;
        let mut by_mood: BTreeMap<Mood, Vec<f64>> = BTreeMap::new();
        for (r, (row, &(mood, len))) in rows.iter().zip(&owners).enumerate().take(n) {
            let mut lp = 0.0f64;
            for k in 0..len {
                // The token at position prefix+k is predicted at position prefix+k−1.
                let pos = prefix_ids.len() + k - 1;
                let logit_row = &data[(r * p + pos) * v..(r * p + pos + 1) * v];
                lp += log_softmax_at(logit_row, row[pos + 1] as usize);
            }
            by_mood.entry(mood).or_default().push(lp);
        }
        let predicted = by_mood
            .iter()
            .map(|(m, lps)| (*m, log_sum_exp(lps)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(m, _)| m)
            .unwrap_or(doc.mood);
        let e = out.per_lang.entry(doc.lang).or_default();
        e.0 += usize::from(predicted == doc.mood);
        e.1 += 1;
        *out.confusion
            .entry(doc.mood)
            .or_default()
            .entry(predicted)
            .or_default() += 1;
    }
    Ok(out)
}

fn log_softmax_at(logits: &[f32], i: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    logits[i] as f64 - max - sum.ln()
}

fn log_sum_exp(v: &[f64]) -> f64 {
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    max + v.iter().map(|x| (x - max).exp()).sum::<f64>().ln()
}

/// SAE-ready activations of every word of a set of documents at several hook points, with the
/// corpus label of each word.
///
/// A word's row is the sum of its sub-tokens' activations (seed 001 §1.2.1 sums the tokens of
/// French "heureux" the same way), so English words (mostly one token) and French words
/// (often several) are compared alike.
#[derive(Debug)]
pub struct WordActivations {
    /// `[words, d]` per hook point.
    pub acts: BTreeMap<HookPoint, Array2<f32>>,
    /// The mood of each word when it is a mood word (`None` for every other word).
    pub moods: Vec<Option<Mood>>,
    /// The language of each word's document.
    pub langs: Vec<Lang>,
    /// The corpus label of each word (mood, topic or antonym word; `None` for the rest).
    pub labels: Vec<Option<Label>>,
    /// Each word's text.
    pub words: Vec<String>,
}

/// Byte spans of the words (maximal runs of alphabetic characters) of `text`.
fn words(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_alphabetic(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

/// Runs `model` over `docs` (each from BOS, cut to `n_ctx`) and returns the activations of
/// every word at `hooks`, labelled with its mood when it is a mood word.
///
/// # Errors
/// Tokenizer and model errors.
pub fn word_activations<B: Backend>(
    model: &HookedTransformer<B>,
    docs: &[Document],
    hooks: &[HookPoint],
) -> Result<WordActivations> {
    let tok = model.tokenizer()?;
    let bos = model.cfg().bos_token_id;
    let filter = NameFilter::patterns(hooks.iter().map(ToString::to_string));
    let mut rows: BTreeMap<HookPoint, Vec<f32>> = BTreeMap::new();
    let (mut moods, mut langs) = (Vec::new(), Vec::new());
    let (mut labels, mut words_text) = (Vec::new(), Vec::new());
    for doc in docs {
        let enc = tok.encode(&doc.text, bos)?;
        let n = enc.ids.len().min(model.cfg().n_ctx);
        let first = usize::from(bos.is_some());
        // The tokens of each word (a token belongs to the first word it overlaps).
        let spans = words(&doc.text);
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
        for (i, &(s, e)) in enc.offsets.iter().enumerate().take(n).skip(first) {
            if let Some(w) = spans.iter().position(|&(ws, we)| s < we && e > ws) {
                members[w].push(i);
            }
        }
        let (_, cache) = model.run_with_cache(&Batch::single(&enc.ids[..n]), filter.clone())?;
        for &hook in hooks {
            let act = cache
                .rank3(&hook)
                .ok_or_else(|| Error::InvalidArgument(format!("hook `{hook}` was not cached")))?;
            let d = act.dims()[2];
            let data = host(act, "activations")?;
            let dst = rows.entry(hook).or_default();
            for tokens in members.iter().filter(|m| !m.is_empty()) {
                let mut sum = vec![0.0f32; d];
                for &i in tokens {
                    for (acc, v) in sum.iter_mut().zip(&data[i * d..(i + 1) * d]) {
                        *acc += v;
                    }
                }
                dst.extend_from_slice(&sum);
            }
        }
        for (&(ws, we), tokens) in spans.iter().zip(&members) {
            if tokens.is_empty() {
                continue;
            }
            let label = doc
                .spans
                .iter()
                .find(|sp| sp.start == ws && sp.end == we)
                .map(|sp| sp.label);
            moods.push(match label {
                Some(Label::Mood(m)) => Some(m),
                _ => None,
            });
            labels.push(label);
            words_text.push(doc.text[ws..we].to_string());
            langs.push(doc.lang);
        }
    }
    let n = moods.len();
    let acts = rows
        .into_iter()
        .map(|(h, v)| {
            let d = v.len() / n.max(1);
            let a = Array2::from_shape_vec((n, d), v)
                .map_err(|e| Error::InvalidArgument(format!("activations: {e}")))?;
            Ok((h, a))
        })
        .collect::<Result<_>>()?;
    Ok(WordActivations {
        acts,
        moods,
        langs,
        labels,
        words: words_text,
    })
}

/// The best single feature of one SAE for one mood.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MoodFeature {
    /// The mood.
    pub mood: Mood,
    /// The feature index.
    pub feature: usize,
    /// AUROC of the feature's activation, this mood's words against all other words.
    pub auroc: f64,
    /// Fraction of this mood's words on which the feature fires.
    pub firing_rate: f64,
}

/// For each mood, the feature that best separates that mood's rows of `codes` (`[words, d_sae]`
/// SAE activations, `moods` their labels) from all other rows by AUROC. Candidates are the
/// `candidates` features with the largest difference of mean activation.
///
/// # Errors
/// [`Error::InvalidArgument`] when `moods` and `codes` disagree in length or a mood has no rows.
pub fn best_mood_features(
    codes: &Array2<f32>,
    moods: &[Option<Mood>],
    candidates: usize,
) -> Result<Vec<MoodFeature>> {
    if codes.nrows() != moods.len() {
        return Err(Error::InvalidArgument(format!(
            "{} rows of codes but {} mood labels",
            codes.nrows(),
            moods.len()
        )));
    }
    let mut out = Vec::new();
    for mood in Mood::ALL {
        let is_pos: Vec<bool> = moods.iter().map(|m| *m == Some(mood)).collect();
        let n_pos = is_pos.iter().filter(|&&p| p).count();
        if n_pos == 0 || n_pos == moods.len() {
            return Err(Error::InvalidArgument(format!(
                "mood {mood} needs both positive and negative words"
            )));
        }
        let best = separating_features(codes, &is_pos, candidates)?
            .into_iter()
            .next()
            .map(|s| MoodFeature {
                mood,
                feature: s.feature,
                auroc: s.auroc,
                firing_rate: s.firing_rate,
            });
        out.extend(best);
    }
    Ok(out)
}

/// A feature that separates a set of words from the others.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Separating {
    /// The feature.
    pub feature: usize,
    /// AUROC of its activation, the set's words against all others.
    pub auroc: f64,
    /// Fraction of the set's words where it fires.
    pub firing_rate: f64,
}

/// The `candidates` features with the largest mean difference between the rows where
/// `is_pos` holds and the others, best AUROC first (ties: the larger mean difference).
///
/// # Errors
/// [`Error::InvalidArgument`] when `is_pos` and `codes` disagree in length or one side is
/// empty.
pub fn separating_features(
    codes: &Array2<f32>,
    is_pos: &[bool],
    candidates: usize,
) -> Result<Vec<Separating>> {
    let n_pos = is_pos.iter().filter(|&&p| p).count();
    if codes.nrows() != is_pos.len() || n_pos == 0 || n_pos == is_pos.len() {
        return Err(Error::InvalidArgument(format!(
            "{} rows of codes, {} labels of which {n_pos} positive: both sides need rows",
            codes.nrows(),
            is_pos.len()
        )));
    }
    let mut diff: Vec<(usize, f64)> = codes
        .axis_iter(Axis(1))
        .enumerate()
        .map(|(f, col)| {
            let (pos, neg) = split_by(col, is_pos);
            (f, mean(&pos) - mean(&neg))
        })
        .collect();
    diff.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut out = Vec::new();
    for &(f, _) in diff.iter().take(candidates.max(1)) {
        let (pos, neg) = split_by(codes.column(f), is_pos);
        let auroc = interp_geometry::stats::mann_whitney_u(&pos, &neg)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?
            .effect;
        let firing_rate = pos.iter().filter(|&&v| v > 0.0).count() as f64 / pos.len() as f64;
        out.push(Separating {
            feature: f,
            auroc,
            firing_rate,
        });
    }
    // Stable: equal AUROCs keep the mean-difference order.
    out.sort_by(|a, b| b.auroc.total_cmp(&a.auroc));
    Ok(out)
}

/// The values of `col` where `is_pos` holds, and the others.
fn split_by(col: ndarray::ArrayView1<'_, f32>, is_pos: &[bool]) -> (Vec<f64>, Vec<f64>) {
    let (mut pos, mut neg) = (Vec::new(), Vec::new());
    for (v, &p) in col.iter().zip(is_pos) {
        if p {
            pos.push(f64::from(*v))
        } else {
            neg.push(f64::from(*v))
        }
    }
    (pos, neg)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// A tensor's values on the host.
fn host<B: Backend, const D: usize>(t: burn::tensor::Tensor<B, D>, what: &str) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| Error::InvalidArgument(format!("{what}: {e:?}")))
}

/// [`best_mood_features`] for each `(hook, sae)` over the word activations.
///
/// # Errors
/// A hook missing from `acts`; SAE encoding errors.
pub fn mood_feature_auroc(
    acts: &WordActivations,
    saes: &[(HookPoint, &Sae)],
    candidates: usize,
) -> Result<BTreeMap<HookPoint, Vec<MoodFeature>>> {
    let mut out = BTreeMap::new();
    for (hook, sae) in saes {
        let x = acts.acts.get(hook).ok_or_else(|| {
            Error::InvalidArgument(format!("no activations collected at `{hook}`"))
        })?;
        let codes = sae.encode(x.view())?;
        out.insert(*hook, best_mood_features(&codes, &acts.moods, candidates)?);
    }
    Ok(out)
}
