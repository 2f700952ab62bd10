//! The toy world, a small corpus of it, and one pass over it.

use std::path::Path;

use interp_dashboard::{gather_corpus, FeatureData, GatherOptions, StatsShape};
use interp_models::{Cpu, HookedTransformer};
use interp_sae::store::Corpus;
use interp_sae::Sae;
use interp_toy::corpus::{generate, write_jsonl, CorpusConfig};
use interp_toy::ToyWorld;

pub const HOOK: &str = "blocks.2.hook_resid_post";

pub fn world() -> (HookedTransformer<Cpu>, Sae) {
    let world = ToyWorld::load().expect("the toy world loads");
    let sae = world.sae(HOOK).expect("the toy SAE loads");
    (world.into_model(), sae)
}

/// `n` held-out-style documents (seed 11) as JSONL in `dir`.
pub fn corpus(dir: &Path, n: usize) -> Corpus {
    let docs = generate(&CorpusConfig {
        seed: 11,
        n_docs: n,
        ..CorpusConfig::default()
    });
    let path = dir.join("docs.jsonl");
    write_jsonl(&docs, &path).unwrap();
    Corpus::open(&path).unwrap()
}

/// Small shapes, so that tops, bands and histograms are exercised on a small corpus.
pub fn options() -> GatherOptions {
    GatherOptions {
        shape: StatsShape {
            top_k: 6,
            bins: 16,
            bands: 4,
            per_band: 3,
        },
        context: 3,
        max_tokens: 48 * 64,
        context_size: Some(64),
        windows_per_forward: 5,
        progress: false,
        ..GatherOptions::default()
    }
}

pub fn pass(model: &HookedTransformer<Cpu>, sae: &Sae, corpus: &Corpus) -> FeatureData {
    gather_corpus(model, sae, corpus, &options()).unwrap()
}
