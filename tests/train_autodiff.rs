//! SAE training through burn autodiff: the hand-derived CPU gradients against burn's, and a
//! planted dictionary recovered with the burn engine.

use burn_autodiff::Autodiff;
use burn_ndarray::NdArray;
use interp::sae::train::synthetic::{mean_max_cosine, superposition};
use interp::sae::train::{
    ActivationMatrix, FitOptions, Gradients, TrainArch, TrainConfig, Trainer, CHECKPOINT_FILE,
};
use ndarray::{Array2, ArrayView2};

type Engine = Autodiff<NdArray>;

const D_IN: usize = 16;
const D_SAE: usize = 96;

fn data() -> Array2<f32> {
    superposition(D_IN, 64, 3.0, 4096, 7).activations
}

/// Largest |a − b| relative to the largest |b| (at least 1e-3, so all-but-zero gradients are
/// compared in absolute terms).
fn rel_diff<'a>(a: impl IntoIterator<Item = &'a f32>, b: &[f32]) -> f32 {
    let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    a.into_iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
        / scale
}

fn flat(a: ArrayView2<'_, f32>) -> Vec<f32> {
    a.iter().copied().collect()
}

/// Trains `cfg` for a few steps on the CPU, checkpoints, and resumes twice from the same state:
/// one trainer with the hand-derived step, one with burn autodiff. Returns both gradients of
/// the next batch and the hand trainer's last AuxK loss.
fn both_gradients(cfg: TrainConfig) -> (Gradients, Gradients, f64) {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join(CHECKPOINT_FILE);
    let mut source = ActivationMatrix::new(data(), 1).unwrap();
    let mut warm = Trainer::new(cfg, &mut source).unwrap();
    let opts = FitOptions {
        stop_after: Some(12),
        ..FitOptions::default()
    };
    let report = warm.fit(&mut source, opts).unwrap();
    warm.save_checkpoint(&checkpoint).unwrap();
    let batch = data().slice(ndarray::s![..64, ..]).to_owned();
    let mut source = ActivationMatrix::new(data(), 1).unwrap();
    let mut hand = Trainer::resume(&checkpoint, &mut source).unwrap();
    let mut burn = Trainer::resume(&checkpoint, &mut source)
        .unwrap()
        .with_burn_backend::<Engine>(Default::default());
    assert!(burn.gradient_engine().starts_with("burn autodiff"));
    let aux = report.history.last().map_or(0.0, |m| m.aux_loss);
    (
        hand.loss_and_gradients(batch.view()).unwrap(),
        burn.loss_and_gradients(batch.view()).unwrap(),
        aux,
    )
}

fn config(arch: TrainArch, tied_input_bias: bool) -> TrainConfig {
    let mut cfg = TrainConfig::new(arch, D_IN, D_SAE, 100);
    cfg.batch_size = 32;
    cfg.log_every = 1;
    cfg.apply_b_dec_to_input = tied_input_bias;
    // Latents that missed the last step are dead: AuxK has candidates.
    cfg.dead_after_steps = 1;
    cfg
}

fn assert_same(name: &str, hand: &Gradients, burn: &Gradients) {
    let rel_loss = ((hand.loss - burn.loss) / hand.loss).abs();
    assert!(
        rel_loss < 1e-4,
        "{name}: loss {} vs {}",
        hand.loss,
        burn.loss
    );
    let pairs = [
        ("W_enc", flat(hand.w_enc.view()), flat(burn.w_enc.view())),
        ("W_dec", flat(hand.w_dec.view()), flat(burn.w_dec.view())),
        ("b_enc", hand.b_enc.to_vec(), burn.b_enc.to_vec()),
        ("b_dec", hand.b_dec.to_vec(), burn.b_dec.to_vec()),
    ];
    for (tensor, h, b) in pairs {
        assert!(
            h.iter().any(|&v| v != 0.0),
            "{name}: zero {tensor} gradient"
        );
        let diff = rel_diff(&h, &b);
        assert!(diff < 2e-4, "{name}: {tensor} gradients differ by {diff}");
    }
    assert_eq!(hand.log_threshold.is_some(), burn.log_threshold.is_some());
    if let (Some(h), Some(b)) = (&hand.log_threshold, &burn.log_threshold) {
        assert!(
            h.iter().any(|&v| v != 0.0),
            "{name}: zero threshold gradient"
        );
        let diff = rel_diff(h, b.as_slice().unwrap());
        assert!(diff < 2e-4, "{name}: threshold gradients differ by {diff}");
    }
}

#[test]
fn hand_derived_gradients_equal_burn_autodiff_for_every_architecture() {
    let unweighted_relu = TrainArch::Relu {
        l1: 0.05,
        l1_warmup_steps: 0,
        weight_by_decoder_norm: false,
    };
    // A wide kernel so that many pre-activations fall in the threshold's window.
    let jumprelu = TrainArch::JumpRelu {
        l0: 0.05,
        bandwidth: 0.5,
        init_threshold: 0.3,
    };
    let cases = [
        ("topk", TrainArch::topk(3), true),
        ("batchtopk", TrainArch::batch_topk(3), true),
        (
            "relu, decoder-norm-weighted L1",
            TrainArch::relu(0.05),
            true,
        ),
        ("relu, plain L1", unweighted_relu, false),
        ("jumprelu", jumprelu, true),
        ("topk, untied input bias", TrainArch::topk(3), false),
    ];
    for (name, arch, tied) in cases {
        let sparse = matches!(arch, TrainArch::TopK { .. } | TrainArch::BatchTopK { .. });
        let (hand, burn, aux) = both_gradients(config(arch, tied));
        if sparse {
            assert!(aux > 0.0, "{name}: AuxK was not exercised");
        }
        assert_same(name, &hand, &burn);
    }
}

#[test]
fn the_burn_engine_recovers_a_planted_dictionary() {
    let data = superposition(32, 128, 3.0, 20_000, 1);
    let mut source = ActivationMatrix::new(data.activations.clone(), 0).unwrap();
    let mut cfg = TrainConfig::new(TrainArch::topk(3), 32, 128, 1500);
    cfg.batch_size = 256;
    let mut trainer = Trainer::new(cfg, &mut source)
        .unwrap()
        .with_burn_backend::<Engine>(Default::default());
    let report = trainer.fit(&mut source, FitOptions::default()).unwrap();
    let sae = trainer.to_sae().unwrap();
    let mmcs = mean_max_cosine(data.dictionary.view(), sae.weights().w_dec.view());
    let last = report.history.last().unwrap();
    assert!(mmcs > 0.97, "MMCS {mmcs}");
    assert!(last.dead_fraction <= 0.02, "{last:?}");
}

#[test]
fn a_burn_trainer_rejects_bad_input_with_typed_errors() {
    let mut source = ActivationMatrix::new(data(), 0).unwrap();
    let mut trainer = Trainer::new(config(TrainArch::topk(3), true), &mut source)
        .unwrap()
        .with_burn_backend::<Engine>(Default::default());
    let wrong = Array2::<f32>::zeros((4, D_IN + 1));
    assert!(matches!(
        trainer.loss_and_gradients(wrong.view()),
        Err(interp::sae::Error::InputWidth { .. })
    ));
    let mut nan = Array2::<f32>::zeros((4, D_IN));
    nan[[1, 2]] = f32::NAN;
    assert!(matches!(
        trainer.step(nan.view()),
        Err(interp::sae::Error::NonFinite { .. })
    ));
    let ok: ArrayView2<'_, f32> = nan.slice(ndarray::s![2.., ..]);
    assert!(trainer.step(ok).unwrap().is_finite());
}
