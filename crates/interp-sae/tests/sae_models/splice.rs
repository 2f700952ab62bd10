//! CE loss recovered and KL with an SAE spliced into the forward pass, against SAELens'
//! `get_downstream_reconstruction_metrics` on the tiny GPT-2 (fixtures/splice, made by
//! fixtures/generate_splice.py).
#![cfg(feature = "models")]

use std::path::{Path, PathBuf};

use interp_models::prelude::*;
use interp_sae::hooked::DeviceSae;
use interp_sae::splice::{splice_metrics, splice_metrics_sae, SpliceMetrics, SpliceOptions};
use interp_sae::Error;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn model() -> HookedTransformer<Cpu> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../interp-models/tests/fixtures/gpt2/tiny-gpt2");
    HookedTransformer::from_dir(&dir, &Default::default()).unwrap()
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures().join("splice/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn windows(expected: &Value) -> Vec<Vec<u32>> {
    serde_json::from_value(expected["tokens"].clone()).unwrap()
}

#[track_caller]
fn close(what: &str, got: f64, want: &Value) {
    let want = want.as_f64().unwrap();
    assert!(
        (got - want).abs() <= 2e-5 * want.abs().max(1.0),
        "{what}: got {got}, SAELens {want}"
    );
}

#[test]
fn matches_saelens_downstream_reconstruction_metrics() {
    let model = model();
    let expected = expected();
    let windows = windows(&expected);
    let cases = expected["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        let sae_dir = match case["sae"].as_str().unwrap() {
            "model_hook" => fixtures().join("model_hook"),
            other => fixtures().join("splice").join(other),
        };
        let sae = interp_sae::load(&sae_dir).unwrap();
        let options = SpliceOptions {
            ignore_tokens: serde_json::from_value(case["ignore_tokens"].clone()).unwrap(),
            windows_per_forward: 3, // a full batch of 3 and one of 1
        };
        let m = splice_metrics_sae(&model, &sae, &windows, &options).unwrap();
        let what = format!("{} ignoring {:?}", case["sae"], options.ignore_tokens);
        let r = &case["saelens"];
        assert_eq!(m.hook, case["hook_name"].as_str().unwrap());
        close(
            &format!("{what} ce clean"),
            m.ce_loss_clean,
            &r["ce_loss_without_sae"],
        );
        close(
            &format!("{what} ce spliced"),
            m.ce_loss_spliced,
            &r["ce_loss_with_sae"],
        );
        close(
            &format!("{what} ce zero"),
            m.ce_loss_zero,
            &r["ce_loss_with_ablation"],
        );
        close(
            &format!("{what} recovered"),
            m.ce_loss_recovered.unwrap(),
            &r["ce_loss_score"],
        );
        close(
            &format!("{what} kl spliced"),
            m.kl_spliced,
            &r["kl_div_with_sae"],
        );
        close(
            &format!("{what} kl zero"),
            m.kl_zero,
            &r["kl_div_with_ablation"],
        );
        let ignored = windows
            .iter()
            .flatten()
            .filter(|t| options.ignore_tokens.contains(t));
        assert_eq!(m.kl_positions as usize, 4 * 16 - ignored.count());

        // Serialisable, for metrics logs.
        let json = serde_json::to_string(&m).unwrap();
        let back: SpliceMetrics = serde_json::from_str(&json).unwrap();
        assert_eq!(
            (back.hook.as_str(), back.ce_positions),
            (m.hook.as_str(), m.ce_positions)
        );
        assert!((back.ce_loss_recovered.unwrap() - m.ce_loss_recovered.unwrap()).abs() < 1e-12);
    }
}

#[test]
fn special_tokens_option_and_bad_input() {
    let model = model();
    let opts = SpliceOptions::ignoring_special_tokens(&model);
    assert_eq!(opts.ignore_tokens, [0]);

    let device = Default::default();
    let sae = interp_sae::load(&fixtures().join("model_hook")).unwrap();
    let sae = DeviceSae::<Cpu>::new(&sae, &device);
    let none: Vec<Vec<u32>> = vec![];
    assert!(matches!(
        splice_metrics(&model, &sae, &none, &opts),
        Err(Error::Data { .. })
    ));
    assert!(matches!(
        splice_metrics(&model, &sae, &[vec![]], &opts),
        Err(Error::Data { .. })
    ));
    // Nothing left once BOS is ignored.
    assert!(matches!(
        splice_metrics(&model, &sae, &[vec![0, 0, 0]], &opts),
        Err(Error::Data { .. })
    ));
    assert!(matches!(
        splice_metrics(&model, &sae, &[vec![0, 5, 300]], &opts),
        Err(Error::Model(_))
    ));
    // Windows of different lengths are fine (no padding is involved).
    let m = splice_metrics(&model, &sae, &[vec![0, 5, 9, 7], vec![0, 3]], &opts).unwrap();
    // Loss at positions 1, 2 of the first window (input token not BOS); KL at 3 + 1 positions.
    assert_eq!((m.ce_positions, m.kl_positions), (2, 4));

    // An SAE on a head, and one of the wrong width for its hook, are typed errors.
    let mut cfg_sae = interp_sae::load(&fixtures().join("model_hook")).unwrap();
    let mut with_head = cfg_sae.config().clone();
    with_head.metadata.hook_head_index = Some(1);
    cfg_sae = interp_sae::Sae::new(with_head, cfg_sae.weights().clone()).unwrap();
    assert!(matches!(
        splice_metrics_sae(&model, &cfg_sae, &[vec![0, 5, 9]], &opts),
        Err(Error::Unsupported { .. })
    ));
    let narrow = interp_sae::load(&fixtures().join("saelens/standard")).unwrap();
    assert!(matches!(
        splice_metrics_sae(&model, &narrow, &[vec![0, 5, 9]], &opts),
        Err(Error::HookWidth { .. })
    ));
}
