//! Builds the toy world from scratch with the recorded seeds: corpus → tokenizer → tiny GPT-2
//! (burn autodiff, CPU) → one TopK SAE per hook point, then measures the quality gates on
//! held-out documents and writes everything to `assets/toy/` (stages in `interp::toy::build`).
//!
//! `cargo run --release --example build_toy_world [-- --out DIR] [--work DIR] [--lm-steps N]
//! [--sae-steps N] [--keep-model] [--gates-only]`
//!
//! `--keep-model` reuses the model already in `DIR/model` and retrains only the SAEs;
//! `--gates-only` retrains nothing and measures the gates of the world in `DIR`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use interp::models::{Cpu, HookedTransformer};
use interp::toy::build::{self, corpora, model_gates, sae_gates, train_model, world_json};
use interp::toy::corpus::{self, Lang, Mood};
use interp::toy::lm::LmConfig;
use interp::toy::saes::ToySaeConfig;
use interp::toy::world::{MODEL_DIR, SAES_DIR};
use serde_json::{json, Value};

/// Build the toy world.
#[derive(Parser)]
struct Args {
    /// Where the world goes.
    #[arg(long, default_value = "assets/toy")]
    out: PathBuf,
    /// Scratch directory (corpora, training logs).
    #[arg(long, default_value = "target/toy-build")]
    work: PathBuf,
    /// Model training steps (default: `LmConfig`'s).
    #[arg(long)]
    lm_steps: Option<usize>,
    /// SAE training steps (default: `ToySaeConfig`'s).
    #[arg(long)]
    sae_steps: Option<u64>,
    /// Reuse the model in `OUT/model`; retrain the SAEs.
    #[arg(long)]
    keep_model: bool,
    /// Retrain nothing; measure the gates of the world in `OUT`.
    #[arg(long)]
    gates_only: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut lm_cfg = LmConfig::default();
    lm_cfg.steps = args.lm_steps.unwrap_or(lm_cfg.steps);
    let mut sae_cfg = ToySaeConfig::default();
    sae_cfg.steps = args.sae_steps.unwrap_or(sae_cfg.steps);
    std::fs::create_dir_all(&args.work)?;
    let t0 = Instant::now();
    // Seconds per stage; the stages this run skips keep the figures of the previous build.
    let mut seconds = std::fs::read_to_string(args.out.join("world.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .and_then(|w| w.get("seconds").cloned())
        .unwrap_or_else(|| json!({}));

    // 1. The corpus: labelled English and French documents.
    let (train_docs, heldout) = corpora();
    let corpus_path = args.work.join("train.jsonl");
    corpus::write_jsonl(&train_docs, &corpus_path)?;
    println!(
        "corpus: {} training documents, {} held out",
        train_docs.len(),
        heldout.len()
    );

    // 2 + 3. Tokenizer and model.
    let model_dir = args.out.join(MODEL_DIR);
    let model = if args.keep_model || args.gates_only {
        HookedTransformer::<Cpu>::from_dir(&model_dir, &Default::default())?
    } else {
        let (model, report) = train_model(&train_docs, &lm_cfg, &model_dir, |p| {
            println!(
                "  step {:5}  loss {:.4}  lr {:.2e}",
                p.step, p.train_loss, p.lr
            )
        })?;
        println!("model trained in {:.0} s", report.seconds);
        seconds["lm"] = json!(report.seconds);
        std::fs::write(
            args.work.join("lm_report.json"),
            serde_json::to_string_pretty(&report)?,
        )?;
        model
    };

    // Gates: held-out loss and mood persistence.
    let model_gates = model_gates(&model, &heldout)?;
    println!("held-out loss {:.4} nats/token", model_gates.heldout_loss);
    for lang in Lang::ALL {
        let p = &model_gates.mood_persistence;
        let cases = p.per_lang.get(&lang).map_or(0, |c| c.1);
        println!(
            "mood persistence ({lang}): {:.1}% of {cases} cases",
            100.0 * p.accuracy(lang)
        );
    }

    // 4. SAEs at every hook point, from one pass over the corpus (or the shipped ones).
    let t_saes = Instant::now();
    let model = Arc::new(model);
    let saes_dir = args.out.join(SAES_DIR);
    let trained = if args.gates_only {
        build::load_saes(&saes_dir, model.cfg().n_layers)?
    } else {
        let work = args.work.join("saes");
        let t = build::train_saes(
            model.clone(),
            &corpus_path,
            &sae_cfg,
            &work,
            &saes_dir,
            |l| println!("  {l}"),
        )?;
        seconds["saes"] = json!(t_saes.elapsed().as_secs_f64());
        t
    };

    // Gates: held-out FVU, dead latents, CE loss recovered, and the best single feature per mood.
    let t_gates = Instant::now();
    let gates = sae_gates(model.clone(), &heldout, &trained, &sae_cfg, &args.work)?;
    println!(
        "\n{:28} {:>7} {:>6} {:>7} {:>6}  best-feature AUROC per mood",
        "hook", "FVU", "L0", "dead%", "CE rec"
    );
    for g in &gates {
        let cells: Vec<String> = g
            .moods
            .iter()
            .map(|m| format!("{} f{} {:.3}", m.mood, m.feature, m.auroc))
            .collect();
        println!(
            "{:28} {:7.4} {:6.1} {:7.2} {:6.3}  {}",
            g.hook,
            g.heldout_fvu,
            g.heldout_l0,
            100.0 * g.dead_fraction,
            g.splice.ce_loss_recovered.unwrap_or(f64::NAN),
            cells.join(" | ")
        );
    }
    println!("\nbest AUROC per mood over all SAEs:");
    for mood in Mood::ALL {
        let best = gates
            .iter()
            .flat_map(|g| {
                g.moods
                    .iter()
                    .filter(|m| m.mood == mood)
                    .map(move |m| (g, m))
            })
            .max_by(|a, b| a.1.auroc.total_cmp(&b.1.auroc));
        if let Some((g, m)) = best {
            println!(
                "  {mood:8} {:.3}  ({}, feature {})",
                m.auroc, g.hook, m.feature
            );
        }
    }

    seconds["gates"] = json!(t_gates.elapsed().as_secs_f64());
    let world = world_json(&lm_cfg, &sae_cfg, &model_gates, &gates, &seconds)?;
    std::fs::write(
        args.out.join("world.json"),
        serde_json::to_string_pretty(&world)?,
    )?;
    println!(
        "\nwrote {} in {:.0} s",
        args.out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
