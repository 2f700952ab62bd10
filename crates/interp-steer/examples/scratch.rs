use interp_models::prelude::*;
use interp_sae::probe::{mean_word_feature_acts, top_features, WordPrompt};
use interp_steer::prelude::*;
use interp_toy::corpus::{emotion_prompts, mood_words, Lang, Mood};

fn main() {
    let world = interp_toy::ToyWorld::load().unwrap();
    let model = world.model();
    let hook = std::env::args()
        .nth(1)
        .unwrap_or("blocks.2.hook_resid_pre".into());
    let sae = world.sae(&hook).unwrap();
    let point: HookPoint = hook.parse().unwrap();
    let all_mood: Vec<&str> = Mood::ALL
        .iter()
        .flat_map(|&m| {
            Lang::ALL
                .iter()
                .flat_map(move |&l| mood_words(m, l).iter().copied())
        })
        .collect();
    let prompt_text = std::env::args().nth(2).unwrap_or("The weather".into());
    let prompt = model.to_tokens(&prompt_text, true).unwrap();
    for mood in [Mood::Happy, Mood::Sad] {
        let ctx = |m: Mood| -> Vec<String> {
            emotion_prompts(m, Lang::En)
                .iter()
                .map(|t| format!("{t} I am still"))
                .collect()
        };
        let mean = |m: Mood| {
            let t = ctx(m);
            let prompts: Vec<WordPrompt> = t.iter().map(|t| WordPrompt::new(t, "still")).collect();
            mean_word_feature_acts(model, &sae, &prompts, true).unwrap()
        };
        let mine = mean(mood);
        let mut others = mine.clone() * 0.0;
        for m in Mood::ALL {
            if m != mood {
                others = others + mean(m) / 5.0;
            }
        }
        let diff = &mine - &others;
        let top = top_features(diff.as_slice().unwrap(), 3);
        println!(
            "at still: mine {:?} others {:?}",
            top.iter().map(|t| mine[t.0]).collect::<Vec<_>>(),
            top.iter().map(|t| others[t.0]).collect::<Vec<_>>()
        );
        println!("{mood:?} top {top:?}");
        let f = top[0].0;
        let words: Vec<&str> = Lang::ALL
            .iter()
            .flat_map(|&l| mood_words(mood, l).iter().copied())
            .collect();
        let rate = LexiconRate::among(format!("{mood:?}"), words.clone(), all_mood.clone());
        let plain = LexiconRate::new("all", words.clone());
        let lp = UnsteeredLogProb::new(model);
        let d = Direction::from_features(&sae, &[(f, 1.0)], Default::default()).unwrap();
        let unit = Direction::from_features(
            &sae,
            &[(f, 1.0)],
            FeatureDirectionOptions {
                unit_norm: true,
                fold_threshold: false,
            },
        )
        .unwrap();
        println!("norm {}", d.norm());
        let plan = SteeringPlan::new().add(point, &unit, 1.0, Positions::All);
        let opts = GenerateOptions {
            max_new_tokens: 30,
            temperature: 1.0,
            seed: 1,
            ..Default::default()
        };
        let res = sweep(
            model,
            &SaeSet::new(),
            &plan,
            &[0.0, 4.0, 8.0, 12.0, 16.0, 24.0],
            &prompt,
            &opts,
            20,
            &[&rate, &plain, &lp, &DistinctN(2)],
        )
        .unwrap();
        for r in &res {
            println!("{:?} {:?}", r.coefficient, r.scores);
            println!("   {}", r.samples[0].text.replace('\n', " "));
        }
    }
}
