//! Building the toy world, stage by stage, as `examples/build_toy_world.rs` runs it: the
//! corpora, the tokenizer and model, one SAE per hook point, the quality gates on held-out
//! documents, and `world.json`. The seeds and sizes of the shipped world are the constants
//! here.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use burn_autodiff::Autodiff;
use interp_models::models::gpt2::save_pretrained;
use interp_models::{Cpu, HookPoint, HookedTransformer, TextTokenizer};
use interp_sae::formats::saelens;
use interp_sae::splice::{splice_metrics_sae, SpliceMetrics, SpliceOptions};
use interp_sae::Sae;
use serde::Serialize;
use serde_json::{json, Value};

use crate::corpus::{self, CorpusConfig, Document};
use crate::error::{Error, Result};
use crate::eval::{
    mood_feature_auroc, mood_persistence, word_activations, MoodFeature, MoodPersistence,
};
use crate::lm::{self, LmConfig, LmLogPoint, LmReport};
use crate::saes::{self, ToySaeConfig};
use crate::tokenizer::{train_tokenizer, END_OF_TEXT};

/// Seed of the training corpus.
pub const TRAIN_SEED: u64 = 1;
/// Seed of the held-out corpus (every gate).
pub const HELDOUT_SEED: u64 = 2;
/// Training documents.
pub const TRAIN_DOCS: usize = 40_000;
/// Held-out documents.
pub const HELDOUT_DOCS: usize = 600;
/// Tokenizer vocabulary.
pub const VOCAB: usize = 1024;
/// Held-out documents in the CE-loss-recovered gate.
pub const CE_DOCS: usize = 200;

/// The training and held-out corpora of the shipped world.
pub fn corpora() -> (Vec<Document>, Vec<Document>) {
    let docs = |seed, n_docs| {
        corpus::generate(&CorpusConfig {
            seed,
            n_docs,
            ..CorpusConfig::default()
        })
    };
    (
        docs(TRAIN_SEED, TRAIN_DOCS),
        docs(HELDOUT_SEED, HELDOUT_DOCS),
    )
}

/// Trains the byte-level BPE tokenizer and the model on `train` (burn autodiff on the CPU),
/// calling `progress` every 100 steps, and saves the model in Hugging Face layout to `dir`.
///
/// # Errors
/// Tokenizer, training and saving errors.
pub fn train_model(
    train: &[Document],
    cfg: &LmConfig,
    dir: &Path,
    progress: impl FnMut(&LmLogPoint),
) -> Result<(HookedTransformer<Cpu>, LmReport)> {
    let tokenizer = TextTokenizer::new(train_tokenizer(
        train.iter().map(|d| d.text.as_str()),
        VOCAB,
    )?);
    let eot = tokenizer
        .token_to_id(END_OF_TEXT)
        .ok_or_else(|| Error::Tokenizer(format!("no {END_OF_TEXT} token")))?;
    let stream = lm::pack(train.iter().map(|d| d.text.as_str()), &tokenizer, eot)?;
    let (model, report) =
        lm::train::<Autodiff<Cpu>>(cfg, tokenizer, &stream, &Default::default(), 100, progress)?;
    save_pretrained(&model, dir)?;
    Ok((model, report))
}

/// The model's gates: held-out loss (nats per token) and mood persistence.
#[derive(Clone, Debug, Serialize)]
pub struct ModelGates {
    /// Held-out next-token loss.
    pub heldout_loss: f32,
    /// Mood persistence per language.
    pub mood_persistence: MoodPersistence,
}

/// Measures [`ModelGates`] on `heldout`.
///
/// # Errors
/// A model without an EOS token; model errors.
pub fn model_gates(model: &HookedTransformer<Cpu>, heldout: &[Document]) -> Result<ModelGates> {
    let eot = model
        .cfg()
        .eos_token_id
        .ok_or_else(|| Error::InvalidArgument("the model has no EOS token".into()))?;
    let stream = lm::pack(
        heldout.iter().map(|d| d.text.as_str()),
        model.tokenizer()?,
        eot,
    )?;
    Ok(ModelGates {
        heldout_loss: lm::eval_loss(model, &stream, 200, 8)?,
        mood_persistence: mood_persistence(model, heldout)?,
    })
}

/// An SAE of the world: its hook, the SAE and its training log10 feature densities.
pub type WorldSae = (HookPoint, Sae, Option<Vec<f32>>);

/// The hooks with activations of their own (`blocks.{l}.hook_resid_pre` has those of
/// `blocks.{l-1}.hook_resid_post`).
pub fn distinct_hooks(n_layers: usize) -> Vec<HookPoint> {
    saes::toy_hooks(n_layers)
        .into_iter()
        .filter(|h| saes::same_activations_as(*h).is_none())
        .collect()
}

/// Trains one SAE per distinct hook from one activation pass over the corpus at
/// `corpus_path`, and saves every hook's SAE (twins share one, under both names) in SAELens
/// layout under `saes_dir/<hook>`; `log` gets one line per hook.
///
/// # Errors
/// Activation-store, training and saving errors.
pub fn train_saes(
    model: Arc<HookedTransformer<Cpu>>,
    corpus_path: &Path,
    cfg: &ToySaeConfig,
    work: &Path,
    saes_dir: &Path,
    mut log: impl FnMut(String),
) -> Result<Vec<WorldSae>> {
    let hooks = saes::toy_hooks(model.cfg().n_layers);
    let distinct = distinct_hooks(model.cfg().n_layers);
    let acts = saes::collect_activations(model, corpus_path, &distinct, cfg)?;
    let mut acts: BTreeMap<HookPoint, _> = distinct.iter().copied().zip(acts).collect();
    let mut trained: Vec<WorldSae> = Vec::new();
    for hook in hooks {
        let twin = saes::same_activations_as(hook)
            .and_then(|h| trained.iter().find(|(t, _, _)| *t == h).cloned());
        let (sae, density) = match (twin, acts.remove(&hook)) {
            (Some((twin, mut sae, density)), _) => {
                sae.set_hook_name(&hook.to_string());
                log(format!("{hook:28} same activations as {twin}: same SAE"));
                (sae, density)
            }
            (None, Some(x)) => {
                let t = saes::train_sae(x, hook, cfg, &work.join(hook.to_string()), false)?;
                log(format!(
                    "{hook:28} L0 {:5.1}  train FVU {:.4}",
                    t.last.l0, t.last.fvu
                ));
                (t.sae, t.log10_density)
            }
            (None, None) => {
                return Err(Error::InvalidArgument(format!("no activations for {hook}")))
            }
        };
        saelens::save(&sae, &saes_dir.join(hook.to_string()), density.as_deref())?;
        trained.push((hook, sae, density));
    }
    Ok(trained)
}

/// The SAEs saved under `saes_dir`, one per toy hook of a model of `n_layers`.
///
/// # Errors
/// Loading errors.
pub fn load_saes(saes_dir: &Path, n_layers: usize) -> Result<Vec<WorldSae>> {
    saes::toy_hooks(n_layers)
        .into_iter()
        .map(|hook| {
            let dir = saes_dir.join(hook.to_string());
            Ok((hook, saelens::load(&dir)?, saelens::load_sparsity(&dir)?))
        })
        .collect()
}

/// One SAE's gates on held-out documents.
#[derive(Clone, Debug, Serialize)]
pub struct SaeGate {
    /// The hook.
    pub hook: String,
    /// Fraction of variance unexplained on held-out tokens.
    pub heldout_fvu: f64,
    /// Mean L0 on held-out tokens.
    pub heldout_l0: f64,
    /// Latents dead in training.
    pub dead_fraction: f64,
    /// CE loss with the SAE spliced in (under this hook's name).
    pub splice: SpliceMetrics,
    /// The best single feature per mood, with its word AUROC.
    pub moods: Vec<MoodFeature>,
}

/// Measures every SAE's [`SaeGate`] on `heldout` (written to `work/heldout.jsonl` for the
/// activation pass); twins are measured once and reported under both names.
///
/// # Errors
/// Activation, splicing and evaluation errors.
pub fn sae_gates(
    model: Arc<HookedTransformer<Cpu>>,
    heldout: &[Document],
    trained: &[WorldSae],
    cfg: &ToySaeConfig,
    work: &Path,
) -> Result<Vec<SaeGate>> {
    let distinct = distinct_hooks(model.cfg().n_layers);
    let heldout_path = work.join("heldout.jsonl");
    corpus::write_jsonl(heldout, &heldout_path)?;
    let eval_cfg = ToySaeConfig {
        tokens: 16_384,
        ..cfg.clone()
    };
    let acts = saes::collect_activations(model.clone(), &heldout_path, &distinct, &eval_cfg)?;
    let words = word_activations(model.as_ref(), heldout, &distinct)?;
    let measured: Vec<&WorldSae> = distinct
        .iter()
        .map(|h| {
            trained
                .iter()
                .find(|(t, _, _)| t == h)
                .ok_or_else(|| Error::InvalidArgument(format!("no SAE at {h}")))
        })
        .collect::<Result<_>>()?;
    let pairs: Vec<_> = measured.iter().map(|(h, sae, _)| (*h, sae)).collect();
    let aurocs = mood_feature_auroc(&words, &pairs, 16)?;
    let windows = heldout
        .iter()
        .take(CE_DOCS)
        .map(|d| {
            let mut ids = model.to_tokens(&d.text, true)?;
            ids.truncate(model.cfg().n_ctx);
            Ok(ids)
        })
        .collect::<Result<Vec<_>>>()?;
    let splice_opts = SpliceOptions::ignoring_special_tokens(model.as_ref());
    let mut by_hook = BTreeMap::new();
    for ((hook, sae, density), x) in measured.iter().zip(&acts) {
        let gate = SaeGate {
            hook: hook.to_string(),
            heldout_fvu: interp_sae::train::fvu(sae, x.view())?,
            heldout_l0: saes::mean_l0(sae, x)?,
            dead_fraction: density.as_deref().map_or(f64::NAN, saes::dead_fraction),
            splice: splice_metrics_sae(model.as_ref(), sae, &windows, &splice_opts)?,
            moods: aurocs[hook].clone(),
        };
        by_hook.insert(*hook, gate);
    }
    Ok(saes::toy_hooks(model.cfg().n_layers)
        .into_iter()
        .map(|hook| {
            let source = saes::same_activations_as(hook).unwrap_or(hook);
            let mut gate = by_hook[&source].clone();
            // Splicing at the twin hook is the same operation: reported under this name.
            gate.hook = hook.to_string();
            gate.splice.hook = hook.to_string();
            gate
        })
        .collect())
}

/// `world.json`: seeds, sizes, training settings, every gate and the seconds per stage.
///
/// # Errors
/// [`Error::Json`] when a setting does not serialise.
pub fn world_json(
    lm: &LmConfig,
    sae: &ToySaeConfig,
    model: &ModelGates,
    saes: &[SaeGate],
    seconds: &Value,
) -> Result<Value> {
    Ok(json!({
        "seeds": {"train_corpus": TRAIN_SEED, "heldout_corpus": HELDOUT_SEED},
        "corpus": {"train_docs": TRAIN_DOCS, "heldout_docs": HELDOUT_DOCS},
        "vocab_size": VOCAB,
        "lm": serde_json::to_value(lm)?,
        "sae": serde_json::to_value(sae)?,
        "gates": {
            "heldout_loss": model.heldout_loss,
            "mood_persistence": serde_json::to_value(&model.mood_persistence)?,
            "saes": serde_json::to_value(saes)?,
        },
        "seconds": seconds,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_layer_world_has_thirteen_distinct_sae_hooks() {
        let hooks = distinct_hooks(4);
        assert_eq!(saes::toy_hooks(4).len(), 16);
        assert_eq!(hooks.len(), 13, "{hooks:?}");
        assert!(hooks.contains(&HookPoint::resid_pre(0)));
        assert!(
            !hooks.contains(&HookPoint::resid_pre(1)),
            "resid_pre(1) is resid_post(0)"
        );
    }
}
