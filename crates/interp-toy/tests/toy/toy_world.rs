//! The shipped toy world (`assets/toy/`): it loads in one call, transformers computes the same
//! logits from it (fixture from `fixtures/generate_toy_logits.py`), its SAEs are there and
//! typed errors guard the edges, the model still passes its mood-persistence gate and the
//! SAEs still show one feature per mood.

use std::path::Path;

use interp_core::SafetensorsFile;
use interp_models::{Batch, HookPoint};
use interp_toy::corpus::{self, CorpusConfig, Lang, Mood};
use interp_toy::eval::{mood_feature_auroc, mood_persistence, word_activations};
use interp_toy::world::default_dir;
use interp_toy::{Error, ToyWorld};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn world() -> ToyWorld {
    ToyWorld::load().expect("the toy world ships in assets/toy")
}

#[test]
fn transformers_computes_the_same_tokens_and_logits() {
    let world = world();
    let model = world.model();
    let texts: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(FIXTURES).join("toy_logits.json")).unwrap(),
    )
    .unwrap();
    let file = SafetensorsFile::open(&Path::new(FIXTURES).join("toy_logits.safetensors")).unwrap();
    let texts = texts["texts"].as_array().unwrap();
    assert!(!texts.is_empty());
    for (i, text) in texts.iter().enumerate() {
        let (_, expected_ids) = file.read_i64(&format!("tokens_{i}")).unwrap();
        let ids = model.to_tokens(text.as_str().unwrap(), true).unwrap();
        let expected_ids: Vec<u32> = expected_ids.iter().map(|&t| t as u32).collect();
        assert_eq!(ids, expected_ids, "tokens of text {i}");
        let expected = file.read(&format!("logits_{i}")).unwrap();
        let logits = model.forward(&Batch::single(&ids)).unwrap();
        assert_eq!(logits.dims()[1..], expected.shape[..]);
        let got = logits.into_data().to_vec::<f32>().unwrap();
        let max_diff = got
            .iter()
            .zip(&expected.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max_diff < 1e-3, "text {i}: max |Δlogit| = {max_diff}");
    }
}

#[test]
fn every_block_has_its_saes() {
    let world = world();
    let n_layers = world.model().cfg().n_layers;
    let hooks = world.sae_hooks().unwrap();
    assert_eq!(hooks, interp_toy::saes::toy_hooks(n_layers));
    let d_model = world.model().cfg().d_model;
    for hook in [HookPoint::resid_pre(0), HookPoint::mlp_out(n_layers - 1)] {
        let sae = world.sae(&hook.to_string()).unwrap();
        assert_eq!(sae.d_in(), d_model);
        assert_eq!(sae.config().metadata.hook_name, Some(hook.to_string()));
    }
}

#[test]
fn missing_pieces_are_typed_errors() {
    let world = world();
    match world.sae("blocks.0.hook_resid_mid") {
        Err(Error::NoSae { hook, available }) => {
            assert_eq!(hook, "blocks.0.hook_resid_mid");
            assert!(available.contains("blocks.0.hook_resid_pre"));
        }
        other => panic!("expected NoSae, got {other:?}"),
    }
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        ToyWorld::from_dir(empty.path()),
        Err(Error::MissingWorld { .. })
    ));
    assert!(default_dir().join("README.md").is_file());
}

#[test]
fn the_world_directory_is_shown_canonical() {
    // Reports print `world.dir()`: never `…/crates/interp-toy/../../assets/toy`.
    let canonical = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets/toy")
        .canonicalize()
        .unwrap();
    assert_eq!(default_dir(), canonical);
    assert_eq!(world().dir(), canonical);
    let roundabout = canonical.join("model/../saes/..");
    assert_eq!(ToyWorld::from_dir(&roundabout).unwrap().dir(), canonical);
    assert!(!world().dir().display().to_string().contains(".."));
}

#[test]
fn the_model_keeps_the_mood_of_unseen_documents() {
    // Held-out documents from a seed the build never used.
    let docs = corpus::generate(&CorpusConfig {
        seed: 12_345,
        n_docs: 48,
        ..CorpusConfig::default()
    });
    let result = mood_persistence(world().model(), &docs).unwrap();
    for lang in Lang::ALL {
        let (_, total) = result.per_lang[&lang];
        assert!(total > 5, "{lang}: only {total} cases");
        assert!(
            result.accuracy(lang) >= 0.85,
            "{lang}: mood persistence {:.2}",
            result.accuracy(lang)
        );
    }
}

#[test]
fn one_feature_per_mood_marks_its_words_in_both_languages() {
    // The planted ground truth: at blocks.2.hook_resid_pre one SAE feature per mood separates
    // that mood's words (English and French) from every other word of unseen documents.
    let docs = corpus::generate(&CorpusConfig {
        seed: 54_321,
        n_docs: 96,
        ..CorpusConfig::default()
    });
    let world = world();
    let hook = HookPoint::resid_pre(2);
    let words = word_activations(world.model(), &docs, &[hook]).unwrap();
    let sae = world.sae(&hook.to_string()).unwrap();
    let best = mood_feature_auroc(&words, &[(hook, &sae)], 16).unwrap();
    let moods = &best[&hook];
    assert_eq!(moods.len(), Mood::ALL.len());
    for m in moods {
        assert!(
            m.auroc >= 0.9,
            "{}: feature {} AUROC {:.3}",
            m.mood,
            m.feature,
            m.auroc
        );
    }
    // Distinct moods, distinct features.
    let mut features: Vec<usize> = moods.iter().map(|m| m.feature).collect();
    features.sort_unstable();
    features.dedup();
    assert_eq!(features.len(), Mood::ALL.len(), "{moods:?}");
}
