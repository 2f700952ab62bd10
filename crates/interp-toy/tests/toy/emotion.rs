//! The emotion study (seed 001 §1.1, §1.2.1) on the shipped toy world: each section's numbers
//! against the probe run directly, the report's files, and the typed errors.

use interp_core::report::Report;
use interp_models::HookPoint;
use interp_sae::probe::{mean_word_feature_acts, top_features};
use interp_sae::source::SaeSource;
use interp_toy::corpus::EmotionPrompts;
use interp_toy::emotion::{EmotionStudy, StudyOptions};
use interp_toy::{Error, ToyWorld};

#[test]
fn the_study_reports_every_section_with_the_probes_numbers() {
    let world = ToyWorld::load().unwrap();
    let (saes, prompts) = (world.saes(), EmotionPrompts::toy());
    let opts = StudyOptions::default();
    let study = EmotionStudy::new(world.model(), &saes, &prompts, "toy", opts).unwrap();
    let layer = world.model().cfg().n_layers / 2;
    assert_eq!(study.hook(), HookPoint::resid_pre(layer).to_string());
    let dir = tempfile::tempdir().unwrap();
    let mut out = Report::new(dir.path()).unwrap();
    study.setup(&mut out).unwrap();
    let tops = study.top_features(&mut out).unwrap();
    // §1.1.1 against the probe on the same SAE.
    let sae = world.sae(study.hook()).unwrap();
    for (set, top) in prompts.english.iter().zip(&tops.tops) {
        let mean = mean_word_feature_acts(world.model(), &sae, &set.word_prompts(), true).unwrap();
        assert_eq!(
            top,
            &top_features(mean.as_slice().unwrap(), 3),
            "{}",
            set.name
        );
    }
    // §1.1.2: the features in both the happy and the excited top 3.
    let shared = study.shared_features(&tops, &mut out).unwrap();
    let (h, x) = (
        prompts.index("happy").unwrap(),
        prompts.index("excited").unwrap(),
    );
    let in_x: Vec<usize> = tops.tops[x].iter().map(|t| t.0).collect();
    let want: Vec<usize> = tops.tops[h]
        .iter()
        .map(|t| t.0)
        .filter(|f| in_x.contains(f))
        .collect();
    assert_eq!(shared, want);
    let sim = study.happy_similarity(&tops, &mut out).unwrap();
    assert_eq!(sim.features.len(), 3 + interp_toy::emotion::N_RANDOM);
    let across = study
        .across_layers(&mut out)
        .unwrap()
        .expect("features fire");
    assert!(!across.best.is_empty());
    let french = study.french_vs_english(&tops, &mut out).unwrap();
    assert_eq!(french.english_top, tops.tops[h]);
    assert!((-1.0..=1.0).contains(&french.activation_cosine));
    out.write().unwrap();

    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    for section in ["## 1.1.1", "## 1.1.2", "## 1.1.3", "## 1.1.4", "## 1.2.1"] {
        assert!(md.contains(section), "{section}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("results.json")).unwrap())
            .unwrap();
    for key in [
        "setup",
        "top_features",
        "shared_happy_excited",
        "happy_similarity",
        "layers",
    ] {
        assert!(json.get(key).is_some(), "{key}");
    }
    assert_eq!(
        json["french_vs_english"]["overlap"],
        serde_json::json!(french.overlap)
    );
    for fig in [
        "fig1_happy.png",
        "fig4_happy_feature_similarity.svg",
        "fig7_french_token_probabilities.png",
    ] {
        assert!(dir.path().join(fig).is_file(), "{fig}");
    }
}

#[test]
fn a_layer_past_the_model_or_a_hook_without_an_sae_is_a_typed_error() {
    let world = ToyWorld::load().unwrap();
    let (saes, prompts) = (world.saes(), EmotionPrompts::toy());
    let opts = StudyOptions {
        layer: Some(99),
        ..Default::default()
    };
    let err = EmotionStudy::new(world.model(), &saes, &prompts, "toy", opts).err();
    assert!(
        matches!(err, Some(Error::LayerOutOfRange { layer: 99, .. })),
        "{err:?}"
    );
    let empty = tempfile::tempdir().unwrap();
    let none = SaeSource::dir(empty.path());
    let err = EmotionStudy::new(
        world.model(),
        &none,
        &prompts,
        "toy",
        StudyOptions::default(),
    )
    .err();
    assert!(matches!(err, Some(Error::NoSae { .. })), "{err:?}");
}
