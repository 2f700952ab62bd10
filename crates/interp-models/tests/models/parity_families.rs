//! Parity of Gemma-2, Llama, Qwen2 and Phi with the reference stack: tiny random models of the
//! real architectures, saved by HF transformers (bf16, sharded f32, f16 and f32 checkpoints),
//! every hook against TransformerLens raw and TransformerLens-processed, logits against HF,
//! greedy generation against `transformers.generate`, and each family's tokenizer kind against
//! the HF tokenizer. Fixtures and the script that makes them: `tests/fixtures/families/`.

use std::path::{Path, PathBuf};

use interp_models::io::SafetensorsFile;
use interp_models::prelude::*;
use serde_json::Value;

const TOL: f32 = 1e-4;
const FAMILIES: [&str; 4] = ["gemma2", "llama", "qwen2", "phi"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/families")
}

fn load(family: &str) -> HookedTransformer<Cpu> {
    HookedTransformer::from_dir(&fixtures().join(family).join("model"), &Default::default())
        .unwrap_or_else(|e| panic!("{family}: {e}"))
}

fn expected_json(family: &str) -> Value {
    let path = fixtures().join(family).join("expected.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
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

/// Every hook TransformerLens cached, and only those, fires here with the same values; the
/// logits equal TransformerLens' and (raw) HF's.
fn check_all_hooks(family: &str, model: &HookedTransformer<Cpu>, expected_file: &str) {
    let expected = SafetensorsFile::open(&fixtures().join(family).join(expected_file)).unwrap();
    let tokens = fixture_tokens(&expected);
    let (logits, cache) = model
        .run_with_cache(&Batch::single(&tokens), NameFilter::All)
        .unwrap();
    let theirs: Vec<String> = expected
        .shapes()
        .unwrap()
        .into_keys()
        .filter(|k| k.starts_with("blocks.") || k.starts_with("hook_") || k.starts_with("ln_final"))
        .collect();
    let mut ours: Vec<String> = cache.points().map(ToString::to_string).collect();
    ours.sort();
    assert_eq!(ours, theirs, "{family}: the hooks that fire");
    for (point, act) in cache.iter() {
        let name = point.to_string();
        let want = expected.read(&name).unwrap();
        assert_eq!(act.dims(), want.shape, "{family} {name}: shape");
        let got: Vec<f32> = act.to_data().into_vec().unwrap();
        let d = max_diff(&name, &got, &want.data);
        assert!(d <= TOL, "{family} {expected_file} {name}: max diff {d}");
    }
    let got = values(logits);
    // HF's logits only for the raw model: centring the unembedding shifts each position's
    // logits by a constant.
    let processed = model.processing() != ProcessingOptions::NONE;
    for key in ["logits", "logits_hf"] {
        if !expected.contains(key) || (processed && key == "logits_hf") {
            continue;
        }
        let want = expected.read(key).unwrap();
        let d = max_diff(key, &got, &want.data);
        assert!(d <= TOL, "{family} {expected_file} {key}: max diff {d}");
    }
}

#[test]
fn every_hook_matches_transformer_lens_raw() {
    for family in FAMILIES {
        check_all_hooks(family, &load(family), "expected_raw.safetensors");
    }
}

#[test]
fn every_hook_matches_transformer_lens_processed() {
    for family in FAMILIES {
        let model = load(family).process_weights(ProcessingOptions::TRANSFORMER_LENS);
        check_all_hooks(family, &model, "expected_tl.safetensors");
    }
}

#[test]
fn token_log_probs_match_transformer_lens_per_token_loss() {
    for family in FAMILIES {
        let model = load(family);
        let path = fixtures().join(family).join("expected_raw.safetensors");
        let expected = SafetensorsFile::open(&path).unwrap();
        let tokens = fixture_tokens(&expected);
        let want = expected.read("loss_per_token").unwrap();
        let got: Vec<f32> = model
            .token_log_probs(&tokens)
            .unwrap()
            .iter()
            .map(|lp| -lp)
            .collect();
        let d = max_diff("loss_per_token", &got, &want.data);
        assert!(d <= TOL, "{family} per-token loss: max diff {d}");
    }
}

#[test]
fn greedy_generation_matches_transformers() {
    for family in FAMILIES {
        let model = load(family);
        let exp = &expected_json(family)["generate"];
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
            assert_eq!(got, want, "{family}, use_kv_cache = {use_kv_cache}");
        }
    }
}

#[test]
fn hook_widths_follow_grouped_kv_heads() {
    let model = load("llama");
    let cfg = model.cfg();
    assert!(
        cfg.n_kv_heads() < cfg.n_heads,
        "the llama fixture groups its KV heads"
    );
    let q = HookPoint::block(0, BlockHook::AttnQ);
    let k = HookPoint::block(0, BlockHook::AttnK);
    assert_eq!(cfg.hook_width(&q), Some(cfg.n_heads * cfg.d_head));
    assert_eq!(cfg.hook_width(&k), Some(cfg.n_kv_heads() * cfg.d_head));
    // Phi's parallel block has no resid_mid; GPT-2-only hooks are errors naming what fires.
    let phi = load("phi");
    match phi.cfg().parse_hook("blocks.0.hook_resid_mid") {
        Err(Error::HookNotFired { fired, .. }) => assert!(fired.contains("hook_rot_q"), "{fired}"),
        other => panic!("{other:?}"),
    }
    assert!(phi.cfg().parse_hook("hook_pos_embed").is_err());
}

#[test]
fn tokenizers_match_hf() {
    let dir = fixtures().join("tokenizers");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    for (kind, exp) in expected.as_object().unwrap() {
        let tok = TextTokenizer::from_dir(&dir.join(kind)).unwrap();
        // The BOS rule: whatever HF's tokenizer(text) puts before the text's own tokens.
        let first = &exp["texts"][0];
        let (with, without) = (
            ids(&first["input_ids"]),
            ids(&first["input_ids_no_special"]),
        );
        let want_bos = (with.len() == without.len() + 1).then(|| with[0]);
        assert_eq!(tok.default_bos(), want_bos, "{kind}: BOS rule");
        for case in exp["texts"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            // As `tokenizer(text)` with the family's own special-token rule.
            let got = tok.encode(text, tok.default_bos()).unwrap().ids;
            assert_eq!(got, ids(&case["input_ids"]), "{kind}: {text:?}");
            let bare = tok.encode(text, None).unwrap().ids;
            assert_eq!(
                bare,
                ids(&case["input_ids_no_special"]),
                "{kind}: {text:?} (no specials)"
            );
            let pieces: Vec<String> = got
                .iter()
                .map(|&i| tok.inner().id_to_token(i).unwrap())
                .collect();
            let want: Vec<String> = case["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
                .collect();
            assert_eq!(pieces, want, "{kind}: token strings");
            let decoded = tok.decode(&bare).unwrap();
            assert_eq!(
                decoded,
                case["decode_skip_special"].as_str().unwrap(),
                "{kind}: decode"
            );
        }
    }
}
