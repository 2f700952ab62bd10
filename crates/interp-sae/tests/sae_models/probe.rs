//! `probe`: SAE features at a word of a prompt, on the tiny GPT-2 fixture with hand-built SAEs
//! whose answers are known.
#![cfg(feature = "models")]

use std::path::Path;

use interp_models::prelude::*;
use interp_sae::probe::{
    mean_word_feature_acts, mean_word_feature_acts_each, top_features, word_feature_acts,
    word_feature_acts_each, WordActs, WordPrompt,
};
use interp_sae::{Architecture, Error, Sae, SaeConfig, SaeWeights};
use ndarray::{Array1, Array2};

fn model() -> HookedTransformer<Cpu> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../interp-models/tests/fixtures/gpt2/tiny-gpt2");
    HookedTransformer::<Cpu>::from_dir(&dir, &Default::default()).unwrap()
}

/// `blocks.1.hook_resid_pre` of `text`, `[pos, 32]`, from a full cached run.
fn resid(model: &HookedTransformer<Cpu>, text: &str, bos: bool) -> Array2<f32> {
    let tokens = model.to_tokens(text, bos).unwrap();
    let (_, cache) = model
        .run_with_cache(
            &Batch::single(&tokens),
            NameFilter::patterns(["blocks.1.hook_resid_pre"]),
        )
        .unwrap();
    let t = cache.rank3(&HookPoint::resid_pre(1)).unwrap();
    let [_, pos, d] = t.dims();
    Array2::from_shape_vec((pos, d), t.into_data().into_vec().unwrap()).unwrap()
}

/// A ReLU SAE on `blocks.1.hook_resid_pre` with encoder `w_enc` and bias `b_enc`, no `b_dec`.
fn sae(w_enc: Array2<f32>, b_enc: Array1<f32>) -> Sae {
    let (d_in, d_sae) = w_enc.dim();
    let mut cfg = SaeConfig::new(Architecture::Standard, d_in, d_sae);
    cfg.apply_b_dec_to_input = false;
    let mut sae = Sae::new(
        cfg,
        SaeWeights {
            w_enc,
            w_dec: Array2::eye(d_sae.max(d_in))
                .slice(ndarray::s![..d_sae, ..d_in])
                .to_owned(),
            b_enc,
            b_dec: Array1::zeros(d_in),
            threshold: None,
            gated: None,
        },
    )
    .unwrap();
    sae.set_hook_name("blocks.1.hook_resid_pre");
    sae
}

#[test]
fn only_the_planted_feature_fires_at_a_one_token_word() {
    let model = model();
    let text = "The cat and the dog";
    let positions = model.word_positions(text, "and", true).unwrap();
    assert_eq!(positions.len(), 1);
    assert_eq!(positions[0].len(), 1, "` and` is one token in the fixture");
    let x = resid(&model, text, true).row(positions[0][0]).to_owned();
    // Feature 3 reads `x / |x|²` (activation exactly 1 on `x`); the others never fire.
    let mut w_enc = Array2::<f32>::zeros((32, 8));
    w_enc.column_mut(3).assign(&(&x / x.dot(&x)));
    let mut b_enc = Array1::from_elem(8, -1e3f32);
    b_enc[3] = 0.0;
    let sae = sae(w_enc, b_enc);

    let WordActs {
        positions: got,
        tokens,
        acts,
    } = word_feature_acts(&model, &sae, text, "and", true).unwrap();
    assert_eq!(got, positions[0]);
    assert_eq!(tokens, vec![" and".to_string()]);
    for (i, &a) in acts.iter().enumerate() {
        let want = if i == 3 { 1.0 } else { 0.0 };
        assert!((a - want).abs() < 1e-4, "feature {i}: {a}");
    }
    let top = top_features(acts.as_slice().unwrap(), 3);
    assert_eq!(top.len(), 1);
    assert_eq!(top[0].0, 3);
}

#[test]
fn a_split_word_sums_its_sub_tokens() {
    let model = model();
    let text = "Je suis heureux";
    let positions = model.word_positions(text, "heureux", false).unwrap();
    let positions = positions[0].clone();
    assert!(positions.len() > 1, "`heureux` splits in the fixture");
    // Identity encoder: the activations are relu(x) summed over the word's tokens.
    let sae = sae(Array2::eye(32), Array1::zeros(32));
    let r = resid(&model, text, false);
    let mut want = Array1::<f32>::zeros(32);
    for &p in &positions {
        want += &r.row(p).mapv(|v| v.max(0.0));
    }
    let got = word_feature_acts(&model, &sae, text, "heureux", false).unwrap();
    assert_eq!(got.positions, positions);
    assert_eq!(got.tokens.concat().trim(), "heureux", "{:?}", got.tokens);
    for (g, w) in got.acts.iter().zip(&want) {
        assert!((g - w).abs() < 1e-4, "{g} vs {w}");
    }
}

#[test]
fn the_mean_over_prompts_is_the_mean_of_each() {
    let model = model();
    let sae = sae(Array2::eye(32), Array1::zeros(32));
    let prompts = [
        WordPrompt::new("I was so happy", "happy"),
        WordPrompt::new("The dog was happy and so was I", "happy"),
        WordPrompt::new("Je suis heureux", "heureux"),
    ];
    let mean = mean_word_feature_acts(&model, &sae, &prompts, true).unwrap();
    let mut want = Array1::<f32>::zeros(32);
    for p in &prompts {
        want += &word_feature_acts(&model, &sae, p.text, p.word, true)
            .unwrap()
            .acts;
    }
    want /= 3.0;
    for (g, w) in mean.iter().zip(&want) {
        assert!((g - w).abs() < 1e-5, "{g} vs {w}");
    }
}

#[test]
fn missing_words_and_no_prompts_are_typed_errors() {
    let model = model();
    let sae = sae(Array2::eye(32), Array1::zeros(32));
    let err = word_feature_acts(&model, &sae, "I'm so glad", "happy", true).unwrap_err();
    assert!(
        matches!(&err, Error::WordNotFound { word, text } if word == "happy" && text == "I'm so glad"),
        "{err}"
    );
    let err = mean_word_feature_acts(&model, &sae, &[], true).unwrap_err();
    assert!(matches!(err, Error::NoPrompts), "{err}");
    // An SAE whose hook the model lacks.
    let mut far = sae.clone();
    far.set_hook_name("blocks.9.hook_resid_pre");
    assert!(word_feature_acts(&model, &far, "so happy", "happy", true).is_err());
}

/// `blocks.{layer}.hook_resid_pre` of `text`, `[pos, 32]`, from a full cached run.
fn resid_at(model: &HookedTransformer<Cpu>, text: &str, bos: bool, layer: usize) -> Array2<f32> {
    let tokens = model.to_tokens(text, bos).unwrap();
    let hook = HookPoint::resid_pre(layer);
    let (_, cache) = model
        .run_with_cache(
            &Batch::single(&tokens),
            NameFilter::patterns([hook.to_string()]),
        )
        .unwrap();
    let t = cache.rank3(&hook).unwrap();
    let [_, pos, d] = t.dims();
    Array2::from_shape_vec((pos, d), t.into_data().into_vec().unwrap()).unwrap()
}

#[test]
fn several_saes_read_from_one_forward_each_with_its_own_bos() {
    let model = model();
    // Identity SAEs at two layers; the layer-0 one was trained without BOS.
    let mut early = sae(Array2::eye(32), Array1::zeros(32));
    early.set_hook_name("blocks.0.hook_resid_pre");
    let mut cfg = early.config().clone();
    cfg.metadata.prepend_bos = Some(false);
    let early = Sae::new(cfg, early.weights().clone()).unwrap();
    let late = sae(Array2::eye(32), Array1::zeros(32));
    let prompts = [
        WordPrompt::new("Je suis heureux", "heureux"),
        WordPrompt::new("The dog was happy and so was I", "happy"),
    ];
    let want = |layer: usize, bos: bool, p: &WordPrompt<'_>| {
        let positions = model.word_positions(p.text, p.word, bos).unwrap()[0].clone();
        let r = resid_at(&model, p.text, bos, layer);
        let mut sum = Array1::<f32>::zeros(32);
        for &pos in &positions {
            sum += &r.row(pos).mapv(|v| v.max(0.0));
        }
        (positions, sum)
    };
    let each =
        word_feature_acts_each(&model, &[&late, &early], prompts[0].text, prompts[0].word).unwrap();
    assert_eq!(each.len(), 2);
    for (got, (layer, bos)) in each.iter().zip([(1, true), (0, false)]) {
        let (positions, acts) = want(layer, bos, &prompts[0]);
        assert_eq!(got.positions, positions, "layer {layer}");
        for (g, w) in got.acts.iter().zip(&acts) {
            assert!((g - w).abs() < 1e-4, "layer {layer}: {g} vs {w}");
        }
    }
    // With and without BOS the word sits at different positions.
    assert_ne!(each[0].positions, each[1].positions);

    let means = mean_word_feature_acts_each(&model, &[&early, &late], &prompts).unwrap();
    for (mean, (layer, bos)) in means.iter().zip([(0, false), (1, true)]) {
        let mut sum = Array1::<f32>::zeros(32);
        for p in &prompts {
            sum += &want(layer, bos, p).1;
        }
        for (g, w) in mean.iter().zip(&(sum / 2.0)) {
            assert!((g - w).abs() < 1e-4, "layer {layer}: {g} vs {w}");
        }
    }
    assert!(matches!(
        word_feature_acts_each(&model, &[], "so happy", "happy"),
        Err(Error::NoSaes)
    ));
    assert!(matches!(
        mean_word_feature_acts_each(&model, &[&late], &[]),
        Err(Error::NoPrompts)
    ));
}
