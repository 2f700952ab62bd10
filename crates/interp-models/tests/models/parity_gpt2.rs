//! Parity with the reference stack: every hook of a tiny random GPT-2 against TransformerLens
//! (raw and TL-processed), logits against HF transformers, greedy generation against
//! `transformers.generate`, tokenization against the HF tokenizer. Fixtures and the script that
//! makes them: `tests/fixtures/gpt2/`.

use std::path::{Path, PathBuf};

use interp_models::io::SafetensorsFile;
use interp_models::prelude::*;
use serde_json::Value;

const TOL: f32 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2")
}

fn load(dir: &str) -> HookedTransformer<Cpu> {
    HookedTransformer::from_dir(&fixtures().join(dir), &Default::default()).unwrap()
}

fn expected_json() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap())
        .unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn fixture_tokens(file: &SafetensorsFile) -> Vec<u32> {
    file.read_i64("tokens")
        .unwrap()
        .1
        .into_iter()
        .map(|t| t as u32)
        .collect()
}

/// Max |a - b| over finite entries; infinities must coincide exactly.
fn max_diff(name: &str, ours: &[f32], theirs: &[f32]) -> f32 {
    assert_eq!(ours.len(), theirs.len(), "{name}: length");
    let mut worst = 0f32;
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        if a.is_infinite() || b.is_infinite() {
            assert_eq!(a, b, "{name}[{i}]: infinities differ");
            continue;
        }
        assert!(a.is_finite(), "{name}[{i}] = {a}");
        worst = worst.max((a - b).abs());
    }
    worst
}

fn values<const D: usize>(t: Tensor<Cpu, D>) -> Vec<f32> {
    t.into_data().into_vec().unwrap()
}

fn check_all_hooks(model: &HookedTransformer<Cpu>, expected_file: &str) {
    let expected = SafetensorsFile::open(&fixtures().join(expected_file)).unwrap();
    let tokens = fixture_tokens(&expected);
    let (logits, cache) = model
        .run_with_cache(&Batch::single(&tokens), NameFilter::All)
        .unwrap();
    let all = model.cfg().hook_points();
    assert_eq!(
        cache.points().copied().collect::<Vec<_>>(),
        all,
        "every hook fires once"
    );
    for point in &all {
        let name = point.to_string();
        let want = expected.read(&name).unwrap();
        let act = cache.get(point).unwrap();
        assert_eq!(act.dims(), want.shape, "{name}: shape");
        let got: Vec<f32> = act.to_data().into_vec().unwrap();
        let d = max_diff(&name, &got, &want.data);
        assert!(d <= TOL, "{expected_file} {name}: max diff {d}");
    }
    let want = expected.read("logits").unwrap();
    assert_eq!(logits.dims().to_vec(), want.shape);
    let d = max_diff("logits", &values(logits), &want.data);
    assert!(d <= TOL, "{expected_file} logits: max diff {d}");
}

#[test]
fn every_hook_matches_transformer_lens_raw() {
    check_all_hooks(&load("tiny-gpt2"), "expected_raw.safetensors");
}

#[test]
fn every_hook_matches_transformer_lens_processed() {
    let model = load("tiny-gpt2").process_weights(ProcessingOptions::TRANSFORMER_LENS);
    check_all_hooks(&model, "expected_tl.safetensors");
}

#[test]
fn token_log_probs_match_transformer_lens_per_token_loss() {
    let model = load("tiny-gpt2");
    let expected = SafetensorsFile::open(&fixtures().join("expected_raw.safetensors")).unwrap();
    let tokens = fixture_tokens(&expected);
    let want = expected.read("loss_per_token").unwrap();
    assert_eq!(want.shape, vec![1, tokens.len() - 1]);
    let got: Vec<f32> = model
        .token_log_probs(&tokens)
        .unwrap()
        .iter()
        .map(|lp| -lp)
        .collect();
    let d = max_diff("loss_per_token", &got, &want.data);
    assert!(d <= TOL, "per-token loss: max diff {d}");
    assert!(matches!(
        model.token_log_probs(&tokens[..1]),
        Err(Error::EmptyInput { .. })
    ));
}

#[test]
fn legacy_checkpoint_layout_loads_to_the_same_model() {
    let expected = SafetensorsFile::open(&fixtures().join("expected_raw.safetensors")).unwrap();
    let tokens = fixture_tokens(&expected);
    let logits = load("tiny-gpt2-legacy")
        .forward(&Batch::single(&tokens))
        .unwrap();
    let d = max_diff(
        "logits",
        &values(logits),
        &expected.read("logits").unwrap().data,
    );
    assert!(d <= TOL, "legacy layout logits: max diff {d}");
}

#[test]
fn tokenizer_matches_hf() {
    let model = load("tiny-gpt2");
    let exp = expected_json();
    let text = exp["text"].as_str().unwrap();
    let tokens = model.to_tokens(text, false).unwrap();
    assert_eq!(tokens, ids(&exp["token_ids"]));
    let str_tokens: Vec<String> = exp["str_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert_eq!(model.to_str_tokens(&tokens).unwrap(), str_tokens);
    for (word, occurrences) in exp["word_positions"].as_object().unwrap() {
        let want: Vec<Vec<usize>> = occurrences
            .as_array()
            .unwrap()
            .iter()
            .map(|o| ids(o).into_iter().map(|i| i as usize).collect())
            .collect();
        assert_eq!(
            model.word_positions(text, word, false).unwrap(),
            want,
            "{word}"
        );
        // With BOS every position shifts by one.
        let shifted: Vec<Vec<usize>> = want
            .iter()
            .map(|o| o.iter().map(|i| i + 1).collect())
            .collect();
        assert_eq!(
            model.word_positions(text, word, true).unwrap(),
            shifted,
            "{word} + BOS"
        );
    }
    assert!(matches!(
        model.word_positions(text, "absent", false),
        Err(Error::WordNotFound { .. })
    ));
}

#[test]
fn greedy_generation_matches_transformers() {
    let model = load("tiny-gpt2");
    let exp = &expected_json()["generate"];
    let prompt = ids(&exp["prompt"]);
    let n = exp["max_new_tokens"].as_u64().unwrap() as usize;
    let want = ids(&exp["greedy"]);
    for use_kv_cache in [true, false] {
        let opts = GenerateOptions {
            stop_at_eos: false,
            use_kv_cache,
            ..GenerateOptions::greedy(n)
        };
        let got = model.generate(&prompt, &opts, &HookSpec::new()).unwrap();
        assert_eq!(got, want, "use_kv_cache = {use_kv_cache}");
    }
}
