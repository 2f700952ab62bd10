//! Seed 002 part 1, reproduced: a set of negative-mood SAE features decoded into one vector
//! and added ×20 during generation.
//!
//! 1. The top-10 features at the last token of positive and negative sentences.
//! 2. The features that separate negative from positive sentences there, decoded together
//!    (`decoder(one-hot)`: the sum of their raw decoder rows) and added ×scale at every
//!    position of the SAE's hook.
//! 3. The combination table: the first 2, 3 and 4 of those features.
//! 4. Unsteered at temperature 0 against steered at temperature 0.7.
//!
//! The post uses OpenAI's TopK 128k SAE on GPT-2 `blocks.8.hook_resid_post` and ×20. The toy
//! world's SAE sits at `blocks.2.hook_resid_post` and its residual stream is smaller, so the toy
//! default scale is 3 (the sum of four raw rows ×3 has a norm near the ×16 unit direction of
//! `steer_emotions`).
//!
//! ```text
//! cargo run --release --example steer_feature_sets [-- --out DIR]
//! cargo run --release --features hub --example steer_feature_sets -- --model gpt2 \
//!     --sae-id <DIR with OpenAI v5_128k resid_post_mlp 8.pt> --features 62556,79394,86309,69689 \
//!     --scale 20 --prompt "he is such a"
//! ```

use std::error::Error;
use std::path::PathBuf;

use clap::Parser;
use interp::models::prelude::*;
use interp::sae::probe::top_features;
use interp::steer::lexicon::{NEGATIVE, POSITIVE};
use interp::steer::prelude::*;
use interp::subject::SubjectArgs;
use interp::toy::corpus::{mood_context_prompts, neutral_prompt, words_of_moods, Lang, Mood};

/// Steering with sets of SAE features (seed 002 part 1).
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    subject: SubjectArgs,
    /// The negative feature set, comma-separated (default on the toy world: found from data).
    #[arg(long, value_delimiter = ',')]
    features: Vec<usize>,
    /// The multiplier of the decoded set (default: 3 on the toy world, 20 on a real model).
    #[arg(long)]
    scale: Option<f32>,
    /// The prompt (default: the toy world's neutral opening).
    #[arg(long)]
    prompt: Option<String>,
    /// Samples per setting for the scores.
    #[arg(long, default_value_t = 20)]
    samples: usize,
    /// Output directory.
    #[arg(long, default_value = "out/steer_feature_sets")]
    out: PathBuf,
}

const TOY_HOOK: &str = "blocks.2.hook_resid_post";
/// The post's sentences.
const POST_POSITIVE: [&str; 1] = ["he is good guy"];
const POST_NEGATIVE: [&str; 2] = [
    "he is sucks and fucking stupid idiot",
    "i hate him. he is ugly and stupid",
];

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let s = args.subject.load(TOY_HOOK)?;
    println!("{}\n", s.source);
    let positive_moods = [Mood::Happy, Mood::Excited];
    let negative_moods = [Mood::Sad, Mood::Angry];
    let of = |moods: &[Mood]| -> Vec<String> {
        let contexts = moods
            .iter()
            .flat_map(|&m| mood_context_prompts(m, Lang::En));
        contexts.collect()
    };
    let owned = |texts: &[&str]| texts.iter().map(|t| t.to_string()).collect::<Vec<_>>();
    let (positive, negative): (Vec<String>, Vec<String>) = match s.toy {
        true => (of(&positive_moods), of(&negative_moods)),
        false => (owned(&POST_POSITIVE), owned(&POST_NEGATIVE)),
    };
    let (pos_tokens, neg_tokens) = (
        s.model.to_tokens_each(&positive, s.toy)?,
        s.model.to_tokens_each(&negative, s.toy)?,
    );

    let last = TokenSelection::Last;
    // 1. Top-10 features at the last token of a few sentences of each kind.
    println!("| Input | Top Feature Indices |\n|---|---|");
    for (text, tokens) in positive
        .iter()
        .zip(&pos_tokens)
        .step_by(5)
        .chain(negative.iter().zip(&neg_tokens).step_by(5))
    {
        let acts = mean_feature_acts(&s.model, &s.sae, std::slice::from_ref(tokens), &last)?;
        let top = top_features(acts.as_slice().expect("contiguous"), 10);
        let top: Vec<String> = top.iter().map(|(f, _)| f.to_string()).collect();
        println!("| \"{text}\" | {} |", top.join(", "));
    }

    // 2. The negative set: given, or the four features most above the positive sentences.
    let set: Vec<usize> = if args.features.is_empty() {
        let ranked = contrastive_features(&s.model, &s.sae, &neg_tokens, &pos_tokens, &last, 4)?;
        ranked.into_iter().map(|(f, _)| f).collect()
    } else {
        args.features.clone()
    };
    let scale = args.scale.unwrap_or(if s.toy { 3.0 } else { 20.0 });
    let decode = |fs: &[usize]| {
        let ones: Vec<(usize, f32)> = fs.iter().map(|&f| (f, 1.0)).collect();
        Direction::from_features(&s.sae, &ones, Default::default())
    };
    let vector = decode(&set)?;
    println!(
        "\nnegative set {set:?}: decoded norm {:.2}, added ×{scale} at {}",
        vector.norm(),
        s.hook
    );

    let (neg_words, all_words) = match s.toy {
        true => (words_of_moods(&negative_moods), words_of_moods(&Mood::ALL)),
        false => (NEGATIVE.to_vec(), [POSITIVE, NEGATIVE].concat()),
    };
    let negativity = LexiconRate::among("negative_share", neg_words, all_words);
    let fluency = UnsteeredLogProb::new(&s.model);
    let prompt_text = args
        .prompt
        .clone()
        .unwrap_or_else(|| neutral_prompt(Lang::En).into());
    let prompt = s.model.to_tokens(&prompt_text, s.toy)?;
    let exp = |temperature: f32, n: usize| {
        let opts = GenerateOptions {
            max_new_tokens: 30,
            temperature,
            seed: 3,
            ..Default::default()
        };
        Experiment::new(&s.model, prompt.clone())
            .options(opts)
            .samples(n)
            .scorers(vec![&negativity, &fluency, &DistinctN(2)])
    };

    // 4. Unsteered at temperature 0, steered at 0.7.
    let mut settings = vec![exp(0.0, 1).run("unsteered, temperature 0", &SteeringPlan::new())?];
    println!(
        "\nBefore patching (temperature=0.0):\n{prompt_text}{}",
        settings[0].samples[0].text
    );

    // 3. The combination table: 2, 3 and 4 features of the set, ×scale, temperature 0.7.
    println!(
        "\n| Feature Combination | negative share ({} samples) | Output |\n|---|---|---|",
        args.samples
    );
    for n in 2.min(set.len())..=set.len().min(4) {
        let combo = &set[..n];
        let plan = SteeringPlan::new().add(s.hook, &decode(combo)?, scale, Positions::All);
        let r =
            exp(0.7, args.samples).run(format!("{combo:?} ×{scale}, temperature 0.7"), &plan)?;
        let first = r.samples[0].text.replace('\n', " ");
        println!(
            "| {combo:?} | {:.2} | \"{prompt_text}{first}\" |",
            r.scores["negative_share"]
        );
        settings.push(r);
    }
    let unsteered =
        exp(0.7, args.samples).run("unsteered, temperature 0.7", &SteeringPlan::new())?;
    println!(
        "| (none) | {:.2} | \"{prompt_text}{}\" |",
        unsteered.scores["negative_share"],
        unsteered.samples[0].text.replace('\n', " ")
    );
    settings.push(unsteered);

    let report = SteeringReport::new(
        format!("Steering with feature sets ({})", s.source),
        prompt_text,
        settings,
    );
    let [md, _] = report.write_dir(&args.out, 3)?;
    println!("\nreport: {}", md.display());
    Ok(())
}
