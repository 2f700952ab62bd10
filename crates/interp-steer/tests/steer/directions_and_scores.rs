//! Directions (SAE rows raw, unit and θ-folded; CAA), the model-based scorers, and batched
//! sampling that stops at the end-of-sequence token per sample.

use crate::common::*;

use interp_models::prelude::*;
use interp_steer::prelude::*;
use interp_steer::{kl_from_unsteered, ScoreInput};

fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
}

#[test]
fn sae_directions_are_raw_unit_or_threshold_folded_rows() {
    // A JumpReLU SAE (Gemma Scope layout) has thresholds to fold.
    let sae = interp_sae::load(&here().join("../interp-sae/tests/fixtures/gemma_scope/params.npz"))
        .unwrap();
    let w = sae.weights();
    let theta = w.threshold.as_ref().unwrap();
    let (a, b) = (2usize, 5usize);
    let raw = Direction::from_features(&sae, &[(a, 2.0), (b, -1.0)], Default::default()).unwrap();
    let want: Vec<f32> = (0..sae.d_in())
        .map(|j| 2.0 * w.w_dec[[a, j]] - w.w_dec[[b, j]])
        .collect();
    assert!(close(&raw.vector, &want, 1e-6));
    let unit = FeatureDirectionOptions {
        unit_norm: true,
        ..Default::default()
    };
    let one = Direction::from_features(&sae, &[(a, 3.0)], unit).unwrap();
    assert!((one.norm() - 3.0).abs() < 1e-4);
    let folded = FeatureDirectionOptions {
        fold_threshold: true,
        ..Default::default()
    };
    let f = Direction::from_features(&sae, &[(a, 1.0)], folded).unwrap();
    let want: Vec<f32> = (0..sae.d_in())
        .map(|j| theta[a] * w.w_dec[[a, j]])
        .collect();
    assert!(close(&f.vector, &want, 1e-6));
    assert!(
        theta[a] != 1.0,
        "the fixture's threshold makes folding visible"
    );
    // A ReLU SAE has none.
    let relu = interp_sae::load(&here().join("../interp-sae/tests/fixtures/model_hook")).unwrap();
    assert!(Direction::from_features(&relu, &[(1, 1.0)], folded).is_err());
}

#[test]
fn caa_is_the_mean_difference_of_activations() {
    let model = tiny_model();
    let hook = HookPoint::resid_pre(1);
    let pos = vec![vec![0, 5, 17], vec![0, 42, 99, 7]];
    let neg = vec![vec![0, 150, 33]];
    let last = |t: &[u32]| {
        let (_, cache) = model
            .run_with_cache(&Batch::single(t), NameFilter::patterns([hook.to_string()]))
            .unwrap();
        let v: Vec<f32> = cache.rank3(&hook).unwrap().into_data().to_vec().unwrap();
        v[v.len() - 32..].to_vec()
    };
    let (p0, p1, n0) = (last(&pos[0]), last(&pos[1]), last(&neg[0]));
    let want: Vec<f32> = (0..32).map(|j| (p0[j] + p1[j]) / 2.0 - n0[j]).collect();
    let d = Direction::contrastive(&model, hook, &pos, &neg, &TokenSelection::Last).unwrap();
    assert!(close(&d.vector, &want, 1e-5));
    let all = Direction::contrastive(&model, hook, &pos, &neg, &TokenSelection::All).unwrap();
    assert!(!close(&all.vector, &want, 1e-3));
    // A saved direction reads back.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("caa.json");
    d.save(&path).unwrap();
    assert_eq!(Direction::load(&path).unwrap(), d);
}

#[test]
fn the_model_scorers_measure_what_they_say() {
    let model = tiny_model();
    let prompt = vec![0u32, 5, 17, 42];
    let opts = GenerateOptions {
        max_new_tokens: 6,
        stop_at_eos: false,
        seed: 4,
        ..Default::default()
    };
    let plain = generate_samples(&model, &prompt, &HookSpec::new(), &opts, 3).unwrap();
    // Unsteered, the sampling log-probs are the unsteered model's.
    let input = ScoreInput {
        prompt: &prompt,
        samples: &plain,
    };
    let got = UnsteeredLogProb::new(&model).score(&input).unwrap();
    let want: f64 = plain
        .iter()
        .map(|s| s.log_probs.iter().map(|&l| f64::from(l)).sum::<f64>() / s.log_probs.len() as f64)
        .sum::<f64>()
        / 3.0;
    assert!((got - want).abs() < 1e-4, "{got} vs {want}");
    // KL is 0 without steering and grows with the coefficient.
    let texts = vec![vec![0u32, 5, 17, 42, 99], vec![0, 150, 33]];
    assert!(
        kl_from_unsteered(&model, &HookSpec::new(), &texts)
            .unwrap()
            .abs()
            < 1e-6
    );
    // Not a constant vector: LayerNorm's centring would remove that.
    let v: Vec<f32> = (0..32)
        .map(|j| if j % 2 == 0 { 1.0 } else { -0.5 })
        .collect();
    let d = Direction::new(v, "alternating").unwrap();
    let kl = |c: f32| {
        let spec = SteeringPlan::new()
            .add(HookPoint::resid_pre(1), &d, c, Positions::All)
            .hook_spec(&model, &SaeSet::new())
            .unwrap();
        NeutralKl::new(&model, &spec, &texts).unwrap().value()
    };
    let (small, large) = (kl(0.5), kl(3.0));
    assert!(small > 0.0 && large > small, "{small} {large}");
}

#[test]
fn samples_stop_at_their_own_end_of_sequence_token() {
    let world = interp_toy::ToyWorld::load().unwrap();
    let model = world.model();
    let eos = model.cfg().eos_token_id.unwrap();
    let prompt = model.to_tokens("The cake was", true).unwrap();
    let opts = GenerateOptions {
        max_new_tokens: 80,
        seed: 2,
        ..Default::default()
    };
    let batch = generate_samples(model, &prompt, &HookSpec::new(), &opts, 6).unwrap();
    let ended = batch
        .iter()
        .filter(|s| s.tokens.last() == Some(&eos))
        .count();
    assert!(
        ended >= 2,
        "toy documents end with <|endoftext|>: {ended} of 6 did"
    );
    let lengths: std::collections::BTreeSet<usize> = batch.iter().map(|s| s.tokens.len()).collect();
    assert!(lengths.len() > 1, "samples end at different lengths");
    for (i, s) in batch.iter().enumerate() {
        assert_eq!(
            s.tokens.iter().filter(|&&t| t == eos).count(),
            usize::from(s.tokens.last() == Some(&eos))
        );
        let one = GenerateOptions {
            seed: 2 + i as u64,
            ..opts.clone()
        };
        let single = generate_samples(model, &prompt, &HookSpec::new(), &one, 1).unwrap();
        assert_eq!(single[0].tokens, s.tokens, "sample {i}");
        assert_eq!(single[0].text, s.text);
    }
}

#[test]
fn per_head_hooks_are_steered_flattened_over_heads() {
    use interp_models::Activation;
    let model = tiny_model();
    let point = HookPoint::block(0, BlockHook::AttnZ);
    let (h, dh) = (model.cfg().n_heads, model.cfg().d_head);
    let v: Vec<f32> = (0..h * dh).map(|j| (j as f32 * 0.37).sin()).collect();
    let plan = SteeringPlan::new().add(
        point,
        &Direction::new(v.clone(), "z").unwrap(),
        2.0,
        Positions::All,
    );
    let spec = plan.hook_spec(&model, &SaeSet::new()).unwrap();
    let batch = Batch::single(&[0, 5, 17, 42]);
    let got: Vec<f32> = model
        .run_with_hooks(&batch, &spec)
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap();
    let t = Tensor::<Cpu, 1>::from_floats(v.as_slice(), &Default::default()).reshape([1, 1, h, dh])
        * 2.0;
    let manual = HookSpec::new().hook(point, move |act, _| match act {
        Activation::Rank4(z) => Activation::Rank4(z + t.clone()),
        other => other,
    });
    let want: Vec<f32> = model
        .run_with_hooks(&batch, &manual)
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap();
    assert!(close(&got, &want, 1e-5));
    let plain: Vec<f32> = model.forward(&batch).unwrap().into_data().to_vec().unwrap();
    assert!(!close(&got, &plain, 1e-3));
}

#[test]
fn a_plan_across_layers_equals_its_interventions_merged() {
    let model = tiny_model();
    let d = model.cfg().d_model;
    let v: Vec<f32> = (0..d).map(|j| (j as f32 * 0.61).cos()).collect();
    let dir = Direction::new(v.clone(), "v").unwrap();
    let hooks = [
        HookPoint::resid_pre(0),
        HookPoint::resid_pre(1),
        HookPoint::resid_post(1),
    ];
    let per_layer: Vec<(HookPoint, Direction)> = hooks.iter().map(|&h| (h, dir.clone())).collect();
    let schedule = Schedule::Exponential { alpha: -0.5 };
    let plan = SteeringPlan::new().add_across_layers(&per_layer, 3.0, schedule, Positions::All);
    let spec = plan.hook_spec(&model, &SaeSet::new()).unwrap();
    let device = Default::default();
    let manual = hooks.iter().fold(HookSpec::new(), |spec, &h| {
        let c = schedule.coefficient(3.0, h.layer().unwrap());
        let t = Tensor::<Cpu, 1>::from_floats(v.as_slice(), &device) * c;
        spec.merge(HookSpec::new().intervene(h, None, Intervention::AddVector(t)))
    });
    let batch = Batch::single(&[0, 5, 17, 42]);
    let got: Vec<f32> = model
        .run_with_hooks(&batch, &spec)
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap();
    let want: Vec<f32> = model
        .run_with_hooks(&batch, &manual)
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap();
    assert!(close(&got, &want, 1e-5));
}
