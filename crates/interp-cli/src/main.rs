//! `interp`: the command line for the common jobs.
//!
//! ```text
//! interp cache --model <DIR|HUB_ID> (--text <TEXT> | --tokens <ID,ID,...>) [--hooks <NAME|GLOB>...]
//!              [--processing none|tl] [--prepend-bos] --out <FILE.safetensors>
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use interp_models::prelude::*;

/// Mechanistic interpretability from the command line.
#[derive(Parser, Debug)]
#[command(name = "interp", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a model on a prompt and save the activations at TransformerLens hook points.
    Cache(CacheArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Processing {
    /// The checkpoint's own numerics (as HF transformers computes them).
    None,
    /// TransformerLens `from_pretrained` processing: fold_ln, center_writing_weights,
    /// center_unembed, fold_value_biases.
    Tl,
}

#[derive(clap::Args, Debug)]
struct CacheArgs {
    /// Model directory (config.json, model.safetensors, tokenizer.json) or hub id.
    #[arg(long)]
    model: String,
    /// Prompt text.
    #[arg(long, conflicts_with = "tokens", required_unless_present = "tokens")]
    text: Option<String>,
    /// Token ids, comma-separated.
    #[arg(long, value_delimiter = ',')]
    tokens: Option<Vec<u32>>,
    /// Hook names or globs to save (default: every hook point).
    #[arg(long, num_args = 1..)]
    hooks: Vec<String>,
    /// Weight processing.
    #[arg(long, value_enum, default_value = "none")]
    processing: Processing,
    /// Prepend the BOS token to --text.
    #[arg(long)]
    prepend_bos: bool,
    /// Output safetensors file: one f32 tensor per hook, named by hook name, plus `logits`.
    #[arg(long)]
    out: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Cache(args) => cache(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn cache(args: CacheArgs) -> Result<(), Error> {
    let device = Default::default();
    let mut model = HookedTransformer::<Cpu>::from_pretrained(&args.model, &device)?;
    if let Processing::Tl = args.processing {
        model = model.process_weights(ProcessingOptions::TRANSFORMER_LENS);
    }
    let tokens = match (&args.text, args.tokens) {
        (Some(text), _) => model.to_tokens(text, args.prepend_bos)?,
        (None, Some(tokens)) => tokens,
        (None, None) => unreachable!("clap requires --text or --tokens"),
    };
    let filter = if args.hooks.is_empty() {
        NameFilter::All
    } else {
        NameFilter::patterns(args.hooks)
    };
    let (logits, cache) = model.run_with_cache(&Batch::single(&tokens), filter)?;
    cache.save_safetensors(&args.out, &[("logits", logits.into_data())])?;
    println!(
        "{} tokens → {} hook activations + logits written to {}",
        tokens.len(),
        cache.len(),
        args.out.display()
    );
    Ok(())
}
