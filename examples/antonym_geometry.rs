//! Seed 004, reproduced: do semantically opposite SAE features point in opposite directions?
//!
//! The write-up takes 20 antonym concept pairs from Gemma Scope 2B's explanations (layers 10
//! and 20, 16k), each concept given by several features, and compares the decoder and encoder
//! cosines of each pair (mean, strongest alignment, strongest opposition) with 20 random
//! pairs; an exhaustive search gives the most aligned and most opposed features of the whole
//! SAE, and encoder–decoder self-similarity is the positive control. Its finding: antonym pairs
//! sit near the random baseline.
//!
//! On the toy world the concepts come from the corpus's antonym labels (big / small, bright /
//! dark, fast / slow, success / failure, hot / cold): for each pole, the features that best
//! separate its words from all others (word AUROC; the gate asks ≥ 0.9), at two layers. The
//! random baseline is size-matched and seeded, with Mann–Whitney U and permutation tests.
//!
//! ```text
//! cargo run --release --example antonym_geometry [-- --out DIR]
//! # the write-up's own pairs on Gemma Scope (downloaded SAE directory):
//! cargo run --release --example antonym_geometry -- --sae <layer_10/width_16k/canonical dir> \
//!     --pairs examples/data/gemma_scope_2b_l10_antonyms.json
//! ```

use std::error::Error;
use std::path::PathBuf;

use clap::Parser;
use interp::geometry::{
    all_pairs_extremes, analyze_sae_pairs, Directions, Matrix, PairConfig, PairSet,
};
use interp::report::Report;
use interp::toy::antonyms::{antonym_pairs, antonym_pole_features, top_words, POLE_TABLE_HEADER};
use interp::toy::corpus::{generate, CorpusConfig};
use interp::toy::eval::word_activations;
use interp::toy::ToyWorld;

/// Antonym feature geometry (seed 004).
#[derive(Parser)]
struct Args {
    /// Toy-world hooks compared (the write-up: two layers).
    #[arg(long, default_values = ["blocks.1.hook_resid_post", "blocks.3.hook_resid_post"])]
    hook: Vec<String>,
    /// Held-out documents whose words find the antonym features.
    #[arg(long, default_value_t = 600)]
    docs: usize,
    /// Features kept per pole (those with word AUROC ≥ 0.9).
    #[arg(long, default_value_t = 3)]
    per_pole: usize,
    /// Random pairs of the baseline (the write-up: 20).
    #[arg(long, default_value_t = 1000)]
    random: usize,
    /// Another SAE (any format) instead of the toy world's, with `--pairs`.
    #[arg(long, requires = "pairs")]
    sae: Option<PathBuf>,
    /// Concept pairs as `interp geometry pairs` reads them.
    #[arg(long)]
    pairs: Option<PathBuf>,
    /// Output directory.
    #[arg(long, default_value = "out/antonym_geometry")]
    out: PathBuf,
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let cfg = PairConfig {
        random: args.random,
        ..PairConfig::default()
    };
    let mut report = Report::new(&args.out)?;
    report.line("# Antonym feature geometry (seed 004)\n");

    if let (Some(path), Some(pairs)) = (&args.sae, &args.pairs) {
        let sae = interp::sae::load(path)?;
        let set = PairSet::from_json_file(pairs)?;
        let pairs = analyze_sae_pairs(&sae, &set, &cfg)?;
        println!("{}", pairs.to_markdown());
        report.line(pairs.to_markdown());
        report.set("pairs", &pairs)?;
        report.write()?;
        return Ok(());
    }

    let world = ToyWorld::load()?;
    let model = world.model();
    let docs = generate(&CorpusConfig {
        seed: 2,
        n_docs: args.docs,
        ..CorpusConfig::default()
    });
    let hooks = args
        .hook
        .iter()
        .map(|h| model.cfg().parse_hook(h))
        .collect::<Result<Vec<_>, _>>()?;
    let words = word_activations(model, &docs, &hooks)?;

    for hook in &hooks {
        let sae = world.sae(&hook.to_string())?;
        let codes = sae.encode(words.acts[hook].view())?;
        let poles = antonym_pole_features(&codes, &words.labels, args.per_pole, 0.9, 64)?;
        report.line(format!(
            "## `{hook}`\n\n### The antonym features (word AUROC against all other words, and against the opposite pole)\n"
        ));
        report.table(&POLE_TABLE_HEADER, poles.iter().map(|p| p.table_row(0.9)))?;
        let gate = poles.iter().filter(|p| p.gate_auroc() >= 0.9).count();
        println!(
            "{hook}: {gate} of {} poles have a feature with word AUROC ≥ 0.9 against all other words and the opposite pole",
            poles.len()
        );

        let set = antonym_pairs(&poles);
        let left_out: Vec<&str> = interp::toy::corpus::Antonym::ALL
            .iter()
            .map(|d| d.name())
            .filter(|d| !set.pairs.iter().any(|p| p.name == *d))
            .collect();
        if !left_out.is_empty() {
            let msg = format!(
                "dimensions whose poles share their only features (left out): {}",
                left_out.join(", ")
            );
            println!("  {msg}");
            report.line(format!("\n{msg}\n"));
        }
        let pairs = analyze_sae_pairs(&sae, &set, &cfg)?;
        report.line(pairs.to_markdown());
        for m in &pairs.matrices {
            println!(
                "  {:7} mean antonym-pair cosine {:+.4}, random pairs {:+.4}",
                m.matrix.long_name(),
                m.concept_mean,
                m.random_mean
            );
        }

        // The exhaustive search: the most aligned and most opposed features of the whole SAE.
        for matrix in [Matrix::Dec, Matrix::Enc] {
            let ex = all_pairs_extremes(&Directions::of(&sae, matrix), 5);
            let fires_on = |f: usize| top_words(&codes, &words.words, f, 3).join(", ");
            let rows = ex.most_aligned.iter().chain(&ex.most_opposed).map(|p| {
                vec![
                    format!("{:+.4}", p.cos),
                    format!("{} ({})", p.i, fires_on(p.i)),
                    format!("{} ({})", p.j, fires_on(p.j)),
                ]
            });
            report.line(format!(
                "\n### The 5 most aligned, then most opposed {} pairs\n",
                matrix.long_name()
            ));
            report.table(
                &["cosine", "feature i (fires on)", "feature j (fires on)"],
                rows,
            )?;
            report.set(&format!("{hook}.{}_extremes", matrix.long_name()), &ex)?;
        }
        let s = &pairs.self_similarity;
        println!(
            "  encoder–decoder self-similarity: antonym features {:.3}, random {:.3}",
            s.concept.mean, s.random.mean
        );
        report.set(&format!("{hook}.poles"), &poles)?;
        report.set(&format!("{hook}.pairs"), &pairs)?;
    }
    let [md, _] = report.write()?;
    println!("report: {}", md.display());
    Ok(())
}
