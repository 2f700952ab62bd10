//! Seed 001 §1.2.2, reproduced: is there a French emotion feature in the attention layers?
//!
//! The write-up reads the SAE of every attention layer of GPT-2 small at "happy" and at the
//! summed sub-tokens of French "heureux" (Fig. 9), then the residual stream's (Fig. 10), and
//! finds no feature that fires strongly on both: features fire on one word or the other, and
//! the few shared ones have very small activations. Here: for each layer, the features active
//! on both words, on one only, and how large the shared ones are against the others.
//!
//! On the toy world the words are read in the corpus's own happy prompts (five English, five
//! French); its SAEs sit at `blocks.L.hook_attn_out` and `blocks.L.hook_resid_post`.
//!
//! ```text
//! cargo run --release --example attention_features [-- --out DIR]
//! # GPT-2 small with SAELens' attention-output and residual SAEs (downloads):
//! cargo run --release --features hub --example attention_features -- --model gpt2 \
//!     --release gpt2-small-attn-out-v5-32k --release gpt2-small-res-jb
//! ```

use std::error::Error;
use std::path::PathBuf;

use clap::Parser;
use interp::models::prelude::*;
use interp::report::Report;
use interp::sae::probe::{mean_word_feature_acts_each, overlap, plot_activations, top_features};
use interp::sae::source::SaeSource;
use interp::toy::corpus::EmotionPrompts;
use interp::toy::ToyWorld;

/// Features of "happy" and "heureux" per layer (seed 001 §1.2.2).
#[derive(Parser)]
struct Args {
    /// Model directory or hub id (default: the toy world).
    #[arg(long)]
    model: Option<String>,
    /// SAELens releases holding the attention and residual SAEs (with --model).
    #[arg(long)]
    release: Vec<String>,
    /// Activation above which a feature counts as firing.
    #[arg(long, default_value_t = 0.0)]
    threshold: f32,
    /// Output directory.
    #[arg(long, default_value = "out/attention_features")]
    out: PathBuf,
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let (model, sources, prompts) = match &args.model {
        None => {
            let world = ToyWorld::load()?;
            let saes = world.saes();
            (world.into_model(), vec![saes], EmotionPrompts::toy())
        }
        Some(name) => {
            let model = HookedTransformer::<Cpu>::from_pretrained(name, &Default::default())?
                .process_weights(ProcessingOptions::TRANSFORMER_LENS);
            let sources = args
                .release
                .iter()
                .map(|r| SaeSource::release(r))
                .collect::<Result<_, _>>()?;
            (model, sources, EmotionPrompts::write_up())
        }
    };
    let happy = &prompts.english[prompts.index("happy")?];
    let heureux = &prompts.french_happy;
    let mut report = Report::new(&args.out)?;
    report.line("# Features of \"happy\" and \"heureux\", layer by layer (seed 001 §1.2.2)\n");
    report.line(format!(
        "Words read: {} (English prompts), {} (French prompts). Activations are means over the prompts, \
         summed over each word's sub-tokens; a feature fires above {}.\n",
        happy.words(),
        heureux.words(),
        args.threshold
    ));

    for (fig, (title, hook)) in [
        (9, ("attention output", BlockHook::AttnOut)),
        (10, ("residual stream", BlockHook::ResidPost)),
    ] {
        let mut rows = Vec::new();
        let mut figures = Vec::new();
        for layer in 0..model.cfg().n_layers {
            let name = HookPoint::block(layer, hook).to_string();
            let Some(sae) = sources
                .iter()
                .find_map(|s| s.at(&name).transpose())
                .transpose()?
            else {
                continue;
            };
            let read = |set: &interp::toy::corpus::PromptSet| {
                mean_word_feature_acts_each(&model, &[&sae], &set.word_prompts())
                    .map(|mut v| v.remove(0).to_vec())
            };
            let (en, fr) = (read(happy)?, read(heureux)?);
            let o = overlap(&en, &fr, args.threshold)?;
            let strongest = |v: &[f32]| top_features(v, 1).first().map_or(0.0, |t| t.1);
            let best_shared = o.both.first().map_or("—".to_string(), |&(f, a, b)| {
                format!("f{f} ({a:.2} / {b:.2})")
            });
            println!(
                "{name:28} both {:3} (mean {:.3})  happy only {:3} (mean {:.3})  heureux only {:3} (mean {:.3})",
                o.both.len(), o.shared_mean(), o.only_a.len(), o.only_a_mean(), o.only_b.len(), o.only_b_mean()
            );
            rows.push(vec![
                name.clone(),
                o.both.len().to_string(),
                format!("{:.3}", o.shared_mean()),
                best_shared,
                o.only_a.len().to_string(),
                format!("{:.3}", o.only_a_mean()),
                o.only_b.len().to_string(),
                format!("{:.3}", o.only_b_mean()),
                format!("{:.2} / {:.2}", strongest(&en), strongest(&fr)),
            ]);
            report.set(&name, &o)?;
            let stem = format!(
                "fig{fig}_layer{layer}_{}",
                if fig == 9 { "attn_out" } else { "resid_post" }
            );
            let plot_title = format!("{name}: happy vs heureux");
            figures.push(report.figure(&stem, |p| {
                plot_activations(
                    p,
                    &plot_title,
                    &[("happy", en.as_slice()), ("heureux", fr.as_slice())],
                    3,
                )
            })?);
        }
        report.line(format!("\n## Fig. {fig}: the {title}\n"));
        let header = [
            "hook",
            "both",
            "shared mean (min of the two)",
            "strongest shared (happy / heureux)",
            "happy only",
            "mean",
            "heureux only",
            "mean",
            "strongest (happy / heureux)",
        ];
        report.table(&header, rows)?;
        report.line(
            figures
                .iter()
                .map(|f| format!("![]({f})"))
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
    let [md, _] = report.write()?;
    println!("report: {}", md.display());
    Ok(())
}
