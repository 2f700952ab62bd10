//! Bad input gets a typed error, never a panic.

use crate::common::*;

use interp_models::prelude::*;
use interp_steer::prelude::*;
use interp_steer::Error;

fn spec_err(plan: &SteeringPlan, saes: &SaeSet) -> Error {
    plan.hook_spec(&tiny_model(), saes).unwrap_err()
}

#[test]
fn a_feature_index_at_or_past_d_sae_is_an_error() {
    let sae = tiny_sae();
    let e = Direction::from_features(&sae, &[(64, 1.0)], Default::default()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::FeatureOutOfRange {
                feature: 64,
                d_sae: 64,
                ..
            }
        ),
        "{e}"
    );
    let saes = SaeSet::new().with("sae", sae);
    let hook = HookPoint::resid_pre(1);
    let clamp =
        SteeringPlan::new().clamp(hook, "sae", &[(3, 1.0), (99, 1.0)], false, Positions::All);
    assert!(matches!(
        spec_err(&clamp, &saes),
        Error::FeatureOutOfRange { feature: 99, .. }
    ));
    let rescale = SteeringPlan::new().rescale(
        hook,
        "sae",
        &[1000],
        0.0,
        RescaleBasis::UnitDecoder,
        Positions::All,
    );
    let e = spec_err(&rescale, &saes);
    assert!(
        e.to_string().contains("feature 1000 is out of range"),
        "{e}"
    );
}

#[test]
fn an_sae_whose_width_is_not_the_hooks_is_an_error() {
    let saes = SaeSet::new().with("sae", tiny_sae());
    // mlp.hook_post of the tiny model is 128 wide; the SAE reads 32.
    let hook = HookPoint::block(0, BlockHook::MlpPost);
    let plan = SteeringPlan::new().clamp(hook, "sae", &[(3, 1.0)], false, Positions::All);
    match spec_err(&plan, &saes) {
        Error::SaeWidth {
            d_in: 32,
            width: 128,
            ..
        } => {}
        e => panic!("{e}"),
    }
    let d = Direction::new(vec![1.0; 32], "d").unwrap();
    let plan = SteeringPlan::new().add(hook, &d, 1.0, Positions::All);
    assert!(matches!(
        spec_err(&plan, &saes),
        Error::DirectionWidth {
            len: 32,
            width: 128,
            ..
        }
    ));
}

#[test]
fn an_sae_at_another_hook_than_its_own_must_be_allowed_explicitly() {
    // The SAE was trained on blocks.1.hook_resid_pre; blocks.0.hook_resid_post has its width.
    let saes = SaeSet::new().with("sae", tiny_sae());
    let elsewhere = HookPoint::block(0, BlockHook::ResidPost);
    let clamp = SteeringPlan::new().clamp(elsewhere, "sae", &[(3, 1.0)], false, Positions::All);
    let rescale = SteeringPlan::new().rescale(
        elsewhere,
        "sae",
        &[3],
        2.0,
        RescaleBasis::UnitDecoder,
        Positions::All,
    );
    for plan in [&clamp, &rescale] {
        match spec_err(plan, &saes) {
            Error::SaeHookMismatch {
                sae,
                trained_on,
                hook,
            } => {
                assert_eq!(sae, "sae");
                assert_eq!(trained_on, "blocks.1.hook_resid_pre");
                assert_eq!(hook, "blocks.0.hook_resid_post");
            }
            e => panic!("{e}"),
        }
        let allowed = plan.clone().allow_hook_mismatch(elsewhere);
        assert!(allowed.steps[0].allow_hook_mismatch);
        allowed.hook_spec(&tiny_model(), &saes).unwrap();
        // The permission is part of the plan's value: it survives a save and a load.
        let json = serde_json::to_string(&allowed).unwrap();
        assert!(json.contains(r#""allow_hook_mismatch":true"#), "{json}");
        let back: SteeringPlan = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, &allowed);
        assert!(!serde_json::to_string(plan)
            .unwrap()
            .contains("allow_hook_mismatch"));
    }
    // At its own hook nothing needs allowing; allowing one hook leaves the others checked.
    let own = HookPoint::resid_pre(1);
    let both = SteeringPlan::new()
        .clamp(own, "sae", &[(3, 1.0)], false, Positions::All)
        .clamp(elsewhere, "sae", &[(3, 1.0)], false, Positions::All);
    assert!(matches!(
        spec_err(&both.clone().allow_hook_mismatch(own), &saes),
        Error::SaeHookMismatch { .. }
    ));
    both.allow_hook_mismatch(elsewhere)
        .hook_spec(&tiny_model(), &saes)
        .unwrap();
}

#[test]
fn unknown_and_unsteerable_hooks_are_errors() {
    let d = Direction::new(vec![1.0; 32], "d").unwrap();
    let mut plan = SteeringPlan::new().add(HookPoint::resid_pre(0), &d, 1.0, Positions::All);
    plan.steps[0].hook = "blocks.0.hook_resid".into();
    let e = spec_err(&plan, &SaeSet::new());
    assert!(
        matches!(e, Error::Model(interp_models::Error::UnknownHook { .. })),
        "{e}"
    );
    plan.steps[0].hook = "blocks.7.hook_resid_pre".into();
    let e = spec_err(&plan, &SaeSet::new());
    assert!(
        matches!(
            e,
            Error::Model(interp_models::Error::HookLayerOutOfRange { .. })
        ),
        "{e}"
    );
    plan.steps[0].hook = "blocks.0.attn.hook_pattern".into();
    assert!(matches!(
        spec_err(&plan, &SaeSet::new()),
        Error::UnsteerableHook { .. }
    ));
    let plan = SteeringPlan::new().clamp(
        HookPoint::resid_pre(1),
        "missing",
        &[(1, 1.0)],
        false,
        Positions::All,
    );
    assert!(matches!(
        spec_err(&plan, &SaeSet::new()),
        Error::UnknownSae { .. }
    ));
}

#[test]
fn nan_and_infinite_numbers_are_errors() {
    let sae = tiny_sae();
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let e = Direction::from_features(&sae, &[(1, bad)], Default::default()).unwrap_err();
        assert!(matches!(e, Error::NonFinite { .. }), "{e}");
        assert!(matches!(
            Direction::new(vec![0.0, bad], "v"),
            Err(Error::NonFinite { .. })
        ));
        let d = Direction::new(vec![1.0; 32], "d").unwrap();
        let plan = SteeringPlan::new().add(HookPoint::resid_pre(0), &d, bad, Positions::All);
        assert!(matches!(
            spec_err(&plan, &SaeSet::new()),
            Error::NonFinite { .. }
        ));
        let saes = SaeSet::new().with("sae", sae.clone());
        let plan = SteeringPlan::new().clamp(
            HookPoint::resid_pre(1),
            "sae",
            &[(1, bad)],
            true,
            Positions::All,
        );
        assert!(matches!(spec_err(&plan, &saes), Error::NonFinite { .. }));
    }
}

#[test]
fn invalid_plan_files_are_errors_that_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("not json", "{"),
        ("no steps", r#"{"saes": {}}"#),
        (
            "unknown op",
            r#"{"steps": [{"hook": "blocks.0.hook_resid_pre", "op": "boost", "direction": [1.0]}]}"#,
        ),
        (
            "misspelt field",
            r#"{"steps": [{"hook": "blocks.0.hook_resid_pre", "op": "add", "direction": [1.0], "coeficient": 2.0}]}"#,
        ),
        (
            "bad positions",
            r#"{"steps": [{"hook": "blocks.0.hook_resid_pre", "positions": "middle", "op": "add", "direction": [1.0], "coefficient": 2.0}]}"#,
        ),
        (
            "overflowing number",
            r#"{"steps": [{"hook": "blocks.0.hook_resid_pre", "op": "add", "direction": [1.0], "coefficient": 1e39}]}"#,
        ),
        (
            "empty features",
            r#"{"steps": [{"hook": "blocks.0.hook_resid_pre", "op": "clamp", "sae": "s", "features": []}]}"#,
        ),
        (
            "zero ablation",
            r#"{"steps": [{"hook": "blocks.0.hook_resid_pre", "op": "ablate", "direction": [0.0, 0.0]}]}"#,
        ),
    ];
    for (name, json) in cases {
        let path = dir.path().join(format!("{}.json", name.replace(' ', "_")));
        std::fs::write(&path, json).unwrap();
        match SteeringPlan::load(&path) {
            Err(Error::File { path: p, .. }) => assert_eq!(p, path, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    assert!(matches!(
        SteeringPlan::load(&dir.path().join("absent.json")),
        Err(Error::Io { .. })
    ));
    let ok = r#"{"steps": [{"hook": "blocks.0.hook_resid_pre", "positions": {"at": [1, 2]}, "op": "add", "direction": [1.0], "coefficient": 2.0}]}"#;
    let plan = SteeringPlan::from_json(ok).unwrap();
    assert_eq!(plan.steps[0].positions, Positions::At(vec![1, 2]));
}

#[test]
fn bad_directions_and_positions_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in [
        ("a.json", "[1.0, \"x\"]"),
        ("b.json", "[]"),
        ("c.json", "{\"vector\": 3}"),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        assert!(
            matches!(Direction::load(&p), Err(Error::File { .. })),
            "{name}"
        );
    }
    let model = tiny_model();
    let hook = HookPoint::resid_pre(1);
    let e = Direction::contrastive(&model, hook, &[vec![1, 2]], &[], &TokenSelection::Last)
        .unwrap_err();
    assert!(matches!(e, Error::Invalid { .. }), "{e}");
    let e = Direction::contrastive(
        &model,
        hook,
        &[vec![1, 2]],
        &[vec![3]],
        &TokenSelection::At(vec![5]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("position 5"), "{e}");
    // A positional step past the sequence, outside generation.
    let d = Direction::new(vec![1.0; 32], "d").unwrap();
    let spec = SteeringPlan::new()
        .add(hook, &d, 1.0, Positions::At(vec![40]))
        .hook_spec(&model, &SaeSet::new())
        .unwrap();
    let e = model
        .run_with_hooks(&Batch::single(&[1, 2, 3]), &spec)
        .unwrap_err();
    assert!(
        matches!(
            e,
            interp_models::Error::PositionOutOfRange { position: 40, .. }
        ),
        "{e}"
    );
}
