//! On the toy world: steering with the best "happy" (then "sad") SAE feature raises the share of
//! that mood's words in continuations of a neutral prompt, at a coefficient where the
//! coherence proxies stay within stated bounds.

use interp_models::prelude::*;
use interp_steer::prelude::*;
use interp_toy::corpus::{
    mood_contexts_against_others, neutral_prompt, words_of_moods, Lang, Mood,
};

const HOOK: &str = "blocks.2.hook_resid_pre";
/// The largest drop of the continuations' mean log-prob under the unsteered model, in nats per
/// token, at which a setting still counts as coherent.
const MAX_LOG_PROB_DROP: f64 = 0.5;
/// The smallest distinct-2 (token bigrams) at which a setting still counts as coherent.
const MIN_DISTINCT_2: f64 = 0.9;

#[test]
fn the_best_mood_feature_raises_its_moods_share_by_40_points_at_a_coherent_coefficient() {
    let world = interp_toy::ToyWorld::load().unwrap();
    let model = world.model();
    let sae = world.sae(HOOK).unwrap();
    let hook: HookPoint = HOOK.parse().unwrap();
    let prompt = model.to_tokens(neutral_prompt(Lang::En), true).unwrap();
    let opts = GenerateOptions {
        max_new_tokens: 30,
        temperature: 1.0,
        seed: 7,
        ..Default::default()
    };
    let out = tempfile::tempdir().unwrap();
    for mood in [Mood::Happy, Mood::Sad] {
        // The best feature: the most active at the end of this mood's contexts, against the
        // other moods' (the features of the mood word itself predict its emoticon instead).
        let (mine, others) = mood_contexts_against_others(mood, Lang::En);
        let positive = model.to_tokens_each(&mine, true).unwrap();
        let negative = model.to_tokens_each(&others, true).unwrap();
        let best =
            contrastive_features(model, &sae, &positive, &negative, &TokenSelection::Last, 1)
                .unwrap()[0];
        let unit = FeatureDirectionOptions {
            unit_norm: true,
            ..Default::default()
        };
        let direction = Direction::from_features(&sae, &[(best.0, 1.0)], unit).unwrap();
        let plan = SteeringPlan::new().add(hook, &direction, 1.0, Positions::All);
        let share = LexiconRate::among(
            mood.name(),
            words_of_moods(&[mood]),
            words_of_moods(&Mood::ALL),
        );
        let fluency = UnsteeredLogProb::new(model);
        let exp = Experiment::new(model, prompt.clone())
            .options(opts.clone())
            .samples(128)
            .scorers(vec![&share, &fluency, &DistinctN(2)]);
        let results = exp
            .sweep(&plan, &[0.0, 8.0, 12.0, 16.0, 20.0, 24.0])
            .unwrap();
        let base = &results[0].scores;
        let coherent = |s: &std::collections::BTreeMap<String, f64>| {
            base["unsteered_log_prob"] - s["unsteered_log_prob"] <= MAX_LOG_PROB_DROP
                && s["distinct_2"] >= MIN_DISTINCT_2
        };
        let gains: Vec<(f32, f64, bool)> = results
            .iter()
            .map(|r| {
                let gain = r.scores[mood.name()] - base[mood.name()];
                (r.coefficient.unwrap(), gain, coherent(&r.scores))
            })
            .collect();
        eprintln!(
            "{} (feature {}): (coefficient, gain, coherent) {gains:?}",
            mood.name(),
            best.0
        );
        for r in &results {
            eprintln!("  ×{:?} {:?}", r.coefficient, r.scores);
        }
        assert!(
            gains.iter().any(|&(_, gain, ok)| ok && gain >= 0.40),
            "{}: feature {} gives (coefficient, gain in share, coherent) {gains:?}",
            mood.name(),
            best.0
        );
        let report = SteeringReport::new(
            format!("toy world: steering {} (feature {})", mood.name(), best.0),
            neutral_prompt(Lang::En),
            results,
        );
        let png = out.path().join(format!("{}.png", mood.name()));
        report
            .plot_sweep(&png, &[mood.name(), "distinct_2"])
            .unwrap();
        assert!(std::fs::metadata(&png).unwrap().len() > 1000);
        let md = report.to_markdown(2);
        assert!(md.contains("| ×16 | 128 |"), "{md}");
    }
}
