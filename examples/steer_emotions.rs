//! Seed 001 §1.2.3, reproduced: steering a prompt, English and French, with "happy" and "sad"
//! SAE features.
//!
//! The write-up adds GPT-2's happy feature 2392 (then sad 2045) of `blocks.7.hook_resid_pre`
//! while generating from "Today is Tuesday and I am" and " C'est mardi et je suis ", and lists
//! four generations each. Here: the same lists, each scored by the share of happy and sad
//! words and by two coherence proxies, and a coefficient sweep of the happy feature.
//!
//! On the toy world the steering features are the SAE features most active at the last token of
//! mood contexts ("I'm so happy :) … I am still"), against the other moods: the features of the
//! mood word itself predict its emoticon, not the mood (docs/steering.md). The write-up's
//! coefficient is not given; the toy world adds unit-norm directions ×20, the real model raw
//! decoder rows ×`--coefficient`.
//!
//! ```text
//! cargo run --release --example steer_emotions [-- --out DIR]
//! cargo run --release --features hub --example steer_emotions -- --model gpt2 \
//!     --sae-release gpt2-small-res-jb --sae-id blocks.7.hook_resid_pre --happy 2392 --sad 2045
//! ```

use std::error::Error;
use std::path::PathBuf;

use clap::Parser;
use interp::models::prelude::*;
use interp::steer::lexicon::{NEGATIVE, POSITIVE};
use interp::steer::prelude::*;
use interp::subject::SubjectArgs;
use interp::toy::corpus::{neutral_prompt, words_of_moods, Lang, Mood};

/// Steering with emotion features (seed 001 §1.2.3).
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    subject: SubjectArgs,
    /// The happy feature (default on the toy world: found from mood contexts).
    #[arg(long)]
    happy: Option<usize>,
    /// The sad feature.
    #[arg(long)]
    sad: Option<usize>,
    /// Coefficient of the raw decoder row on a real model.
    #[arg(long, default_value_t = 40.0)]
    coefficient: f32,
    /// Samples per list.
    #[arg(long, default_value_t = 4)]
    samples: usize,
    /// Output directory.
    #[arg(long, default_value = "out/steer_emotions")]
    out: PathBuf,
}

const TOY_HOOK: &str = "blocks.2.hook_resid_pre";
const TOY_COEFFICIENT: f32 = 20.0;

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let s = args.subject.load(TOY_HOOK)?;
    let happy = s.mood_feature(args.happy, Mood::Happy)?;
    let sad = s.mood_feature(args.sad, Mood::Sad)?;
    // The toy world adds unit directions; a real model its raw decoder rows, as the tutorials do.
    let (unit_norm, coefficient) = match s.toy {
        true => (true, TOY_COEFFICIENT),
        false => (false, args.coefficient),
    };
    let options = FeatureDirectionOptions {
        unit_norm,
        ..Default::default()
    };
    let prompts: [(&str, bool); 2] = match s.toy {
        true => [
            (neutral_prompt(Lang::En), true),
            (neutral_prompt(Lang::Fr), true),
        ],
        false => [
            ("Today is Tuesday and I am", false),
            (" C'est mardi et je suis ", false),
        ],
    };
    let (happy_words, sad_words): (Vec<&str>, Vec<&str>) = match s.toy {
        true => (words_of_moods(&[Mood::Happy]), words_of_moods(&[Mood::Sad])),
        false => (POSITIVE.to_vec(), NEGATIVE.to_vec()),
    };
    let all_moods = if s.toy {
        words_of_moods(&Mood::ALL)
    } else {
        [POSITIVE, NEGATIVE].concat()
    };
    let happy_share = LexiconRate::among("happy_share", happy_words, all_moods.clone());
    let sad_share = LexiconRate::among("sad_share", sad_words, all_moods);
    let fluency = UnsteeredLogProb::new(&s.model);
    let opts = GenerateOptions {
        max_new_tokens: 20,
        seed: 1,
        ..Default::default()
    };
    let experiment =
        |text: &str, bos: bool, n: usize| -> Result<Experiment<'_, Cpu>, Box<dyn Error>> {
            Ok(Experiment::new(&s.model, s.model.to_tokens(text, bos)?)
                .options(opts.clone())
                .samples(n)
                .scorers(vec![&happy_share, &sad_share, &fluency, &DistinctN(2)]))
        };
    let steer = |f: usize| -> Result<SteeringPlan, Box<dyn Error>> {
        let d = Direction::from_features(&s.sae, &[(f, 1.0)], options)?;
        Ok(SteeringPlan::new().add(s.hook, &d, coefficient, Positions::All))
    };

    println!("{}\n", s.source);
    let mut settings = Vec::new();
    for (text, bos) in prompts {
        let exp = experiment(text, bos, args.samples)?;
        let lists = [
            (None, "none (unsteered)"),
            (Some(happy), "happiness"),
            (Some(sad), "sadness"),
        ];
        for (f, property) in lists {
            let (label, plan) = match f {
                Some(f) => (
                    format!("\"{text}\" + feature {f} ×{coefficient}"),
                    steer(f)?,
                ),
                None => (format!("\"{text}\" unsteered"), SteeringPlan::new()),
            };
            let r = exp.run(label, &plan)?;
            println!("Prompt: \"{text}\"");
            if let Some(f) = f {
                println!("Feature Vector: feature {f} in {} (×{coefficient})", s.hook);
            }
            println!("Feature Property: {property}\nGenerations:");
            for sample in &r.samples {
                println!("- {text}{}", sample.text.replace('\n', " "));
            }
            let (h, d) = (r.scores["happy_share"], r.scores["sad_share"]);
            println!("  happy / sad share of mood words: {h:.2} / {d:.2}\n");
            settings.push(r);
        }
    }

    // The happy feature's coefficient sweep on the English prompt, 20 samples a point.
    let swept = experiment(prompts[0].0, prompts[0].1, 20)?
        .sweep(&steer(happy)?, &[0.0, 0.25, 0.5, 0.75, 1.0, 1.5])?;
    for r in &swept {
        println!(
            "happy ×{:.2}·{coefficient}: {:?}",
            r.coefficient.unwrap_or(0.0),
            r.scores
        );
    }
    let sweep_report = SteeringReport::new(
        format!("happy feature {happy} at {} (×{coefficient})", s.hook),
        prompts[0].0,
        swept,
    );
    sweep_report.plot_sweep(
        &args.out.join("sweep.png"),
        &["happy_share", "sad_share", "distinct_2"],
    )?;
    sweep_report.write_json(&args.out.join("sweep.json"))?;
    let report = SteeringReport::new(
        format!("Steering with emotion features ({})", s.source),
        String::new(),
        settings,
    );
    let [md, _] = report.write_dir(&args.out, args.samples)?;
    println!("\nreport: {}", md.display());
    Ok(())
}
