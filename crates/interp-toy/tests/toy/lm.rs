//! Training the toy language model with burn autodiff: the loss falls, the saved Hugging Face
//! checkpoint loads back to the same function, and bad settings are typed errors.

use burn_autodiff::Autodiff;
use interp_models::{Batch, Cpu, HookedTransformer, TextTokenizer};
use interp_toy::corpus::{self, CorpusConfig};
use interp_toy::lm::{self, LmConfig};
use interp_toy::tokenizer::{train_tokenizer, END_OF_TEXT};
use interp_toy::Error;

fn tiny() -> (LmConfig, TextTokenizer, Vec<u32>) {
    let docs = corpus::generate(&CorpusConfig {
        seed: 7,
        n_docs: 300,
        ..CorpusConfig::default()
    });
    let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
    let tok = TextTokenizer::new(train_tokenizer(texts.iter().copied(), 320).unwrap());
    let eot = tok.token_to_id(END_OF_TEXT).unwrap();
    let stream = lm::pack(texts.iter().copied(), &tok, eot).unwrap();
    let cfg = LmConfig {
        n_layers: 1,
        d_model: 32,
        n_heads: 2,
        n_ctx: 32,
        steps: 60,
        batch_size: 8,
        lr: 1e-2,
        warmup_steps: 5,
        ..LmConfig::default()
    };
    (cfg, tok, stream)
}

#[test]
fn loss_falls_and_the_checkpoint_round_trips() {
    let (cfg, tok, stream) = tiny();
    let mut curve = Vec::new();
    let (model, report) =
        lm::train::<Autodiff<Cpu>>(&cfg, tok, &stream, &Default::default(), 10, |p| {
            curve.push(p.train_loss)
        })
        .unwrap();
    assert_eq!(report.curve.len(), 6);
    let (first, last) = (curve[0], *curve.last().unwrap());
    // Uniform over 320 tokens is ln 320 ≈ 5.8 nats; templated text is far more predictable.
    assert!(first > 4.5 && last < first - 1.0, "loss {first} → {last}");
    let heldout = lm::eval_loss(&model, &stream[..4 * 33], 4, 2).unwrap();
    assert!(heldout.is_finite() && heldout < first);

    let dir = tempfile::tempdir().unwrap();
    interp_models::models::gpt2::save_pretrained(&model, dir.path()).unwrap();
    let loaded = HookedTransformer::<Cpu>::from_dir(dir.path(), &Default::default()).unwrap();
    let ids = model.to_tokens("I feel so happy today.", true).unwrap();
    assert_eq!(
        loaded.to_tokens("I feel so happy today.", true).unwrap(),
        ids
    );
    let a = model.forward(&Batch::single(&ids)).unwrap().into_data();
    let b = loaded.forward(&Batch::single(&ids)).unwrap().into_data();
    a.assert_approx_eq::<f32>(&b, burn::tensor::Tolerance::absolute(1e-5));
}

#[test]
fn bad_settings_are_typed_errors() {
    let (cfg, tok, stream) = tiny();
    let bad = LmConfig {
        n_heads: 3,
        ..cfg.clone()
    };
    let err =
        lm::train::<Autodiff<Cpu>>(&bad, tok.clone(), &stream, &Default::default(), 1, |_| {})
            .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    let err = lm::train::<Autodiff<Cpu>>(&cfg, tok, &stream[..10], &Default::default(), 1, |_| {})
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}
