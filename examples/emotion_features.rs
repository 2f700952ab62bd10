//! Seed 001 §1.1 and §1.2.1, reproduced: emotion features of residual-stream SAEs.
//!
//! 1. **Top features per emotion** (§1.1.1): five prompts per emotion; the SAE at
//!    `blocks.L.hook_resid_pre` is read at the emotion word of each and averaged; the three most
//!    active features of each emotion.
//! 2. **Happy ∩ excited** (§1.1.2): the features among the top three of both.
//! 3. **Happy features are alike** (§1.1.3): on one happy prompt, the cosines of the
//!    activation-weighted representations `a_i · W_dec[i]` of the three top happy features and
//!    six random other features (seeded).
//! 4. **Across layers** (§1.1.4): the top happy features of the SAE at every layer's
//!    `hook_resid_pre`, and the cosines of their decoder directions across layers.
//! 5. **French and English** (§1.2.1): the probability the model gives each token of a French
//!    prompt (Fig 7: how surely it spells "heureux" once it has started), then the features of
//!    "heureux" (activations summed over its sub-tokens) against those of "happy", and their
//!    overlap.
//!
//! Writes PNG and SVG figures, `report.md` and `results.json` to `--out` (default
//! `out/emotion_features`). The toy world reads its own prompts
//! (`interp::toy::corpus::EmotionPrompts::toy`), GPT-2 the write-up's.
//!
//! ```text
//! # the toy world (assets/toy, or $INTERP_TOY_DIR, or --toy-dir DIR); seconds:
//! cargo run --release --example emotion_features [-- --layer L] [--out DIR] [--toy-dir DIR]
//! # GPT-2 small with SAELens' gpt2-small-res-jb, as in the write-up (downloads ~2 GB):
//! cargo run --release --features hub --example emotion_features -- \
//!     --model gpt2 --sae-release gpt2-small-res-jb --layer 7
//! ```

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use interp::models::{Cpu, HookedTransformer, ProcessingOptions};
use interp::report::Report;
use interp::sae::probe::feature_ids;
use interp::sae::source::SaeSource;
use interp::toy::corpus::EmotionPrompts;
use interp::toy::emotion::{EmotionStudy, StudyOptions};
use interp::toy::ToyWorld;

/// Emotion features of residual-stream SAEs (seed 001 §1.1, §1.2.1).
#[derive(Parser)]
struct Args {
    /// Layer of the SAE read (default: the middle one).
    #[arg(long)]
    layer: Option<usize>,
    /// Output directory.
    #[arg(long, default_value = "out/emotion_features")]
    out: PathBuf,
    /// Top features per emotion.
    #[arg(long, default_value_t = 3)]
    top_k: usize,
    /// Seed of the random features compared with the top happy ones (§1.1.3).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Toy world directory (default: assets/toy, or $INTERP_TOY_DIR).
    #[arg(long)]
    toy_dir: Option<PathBuf>,
    /// Model directory or hub id, instead of the toy world (needs --sae-release).
    #[arg(long, requires = "sae_release")]
    model: Option<String>,
    /// SAELens release with SAEs at `blocks.L.hook_resid_pre` (with --model; `hub` feature).
    #[arg(long)]
    sae_release: Option<String>,
}

fn main() -> std::process::ExitCode {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}

fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let start = Instant::now();
    // The model, its SAEs keyed by hook, and the prompts: the toy world's, or the write-up's.
    let (model, saes, prompts, source) = match (&args.model, &args.sae_release) {
        (Some(name), Some(release)) => {
            let saes = SaeSource::release(release)?;
            let model = HookedTransformer::<Cpu>::from_pretrained(name, &Default::default())?
                .process_weights(ProcessingOptions::TRANSFORMER_LENS);
            let source = format!("`{name}` with SAE release `{release}`");
            (model, saes, EmotionPrompts::write_up(), source)
        }
        _ => {
            let world = match &args.toy_dir {
                Some(dir) => ToyWorld::from_dir(dir)?,
                None => ToyWorld::load()?,
            };
            let (saes, source) = (
                world.saes(),
                format!("toy world `{}`", world.dir().display()),
            );
            (world.into_model(), saes, EmotionPrompts::toy(), source)
        }
    };
    let opts = StudyOptions {
        layer: args.layer,
        top_k: args.top_k,
        seed: args.seed,
    };
    let study = EmotionStudy::new(&model, &saes, &prompts, &source, opts)?;
    let mut out = Report::new(&args.out)?;
    study.setup(&mut out)?;
    println!("{source} at {:?}", study.hook());
    let list = |ids: &[usize]| {
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        ids.join(", ")
    };

    // §1.1.1 The top features of each emotion: mean activations at the emotion word.
    let tops = study.top_features(&mut out)?;
    let mut by_name: Vec<_> = tops.names.iter().zip(&tops.tops).collect();
    by_name.sort_by_key(|(name, _)| name.as_str());
    for (name, top) in by_name {
        println!("  top {name:8} [{}]", list(&feature_ids(top)));
    }

    // §1.1.2 Do happy and excited share features?
    let shared = study.shared_features(&tops, &mut out)?;
    println!("  shared happy/excited {}", list(&shared));

    // §1.1.3 Are the top happy features alike? Their cosines against random features'.
    let similarity = study.happy_similarity(&tops, &mut out)?;
    println!(
        "  happy feature cosines: within top {:.3}, top vs random {:.3}",
        similarity.mean_within_top, similarity.mean_top_vs_random
    );

    // §1.1.4 The top happy features of every layer, and how alike they are across layers.
    study.across_layers(&mut out)?;

    // §1.2.1 French "heureux" against English "happy".
    let french = study.french_vs_english(&tops, &mut out)?;
    println!(
        "  {} [{}] vs happy [{}]: overlap {}",
        french.word,
        list(&feature_ids(&french.french_top)),
        list(&feature_ids(&french.english_top)),
        serde_json::json!(french.overlap)
    );

    out.write()?;
    println!("wrote {} in {:.1?}", out.dir().display(), start.elapsed());
    Ok(())
}
