//! `interp`: the command line for the common jobs.
//!
//! ```text
//! interp cache [--model <DIR|HUB_ID>] (--text <TEXT> | --tokens <ID,ID,...>) [--hooks <NAME|GLOB>...]
//!              [--processing none|tl] [--prepend-bos] [--sae <PATH>] --out <FILE.safetensors>
//! interp sae encode --sae <PATH> --input <FILE.safetensors> [--tensor NAME] [--format F]
//!                   --out <FILE.safetensors>
//! interp sae info --sae <PATH> [--format F]
//! interp geometry extremes --sae <PATH> [--matrix dec|enc] [--top N] --out <FILE.json>
//! interp geometry pairs --sae <PATH> --pairs <FILE.json> [--random N] --out <FILE.json>
//! interp geometry match --sae-a <PATH> --sae-b <PATH> [--top-k K] --out <FILE>
//! interp steer [--model <DIR|HUB_ID>] --sae <PATH> (--feature <F>:<C>)... [--mode add|clamp|rescale]
//!              [--hook <NAME>] (--prompt <TEXT> | --tokens <ID,...>) [--prepend-bos]
//!              --max-new-tokens <N> [--greedy | [--temperature T] [--top-p P] [--top-k K]
//!              [--freq-penalty F] [--seed S] [--samples N]] [--positions all|prompt|generated]
//!              [--plan <FILE.json>] --out <FILE.json> [--logits <FILE.safetensors>]
//! interp dashboard [--model <DIR|HUB_ID>] --sae <PATH> --corpus <PATH> [--features <LIST|top-N|all>]
//!                  [--context N] [--tokens N] [--explanations FILE] [--saes DIR] --out <DIR>
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use interp_models::prelude::*;
use interp_sae::hooked::{attach_sae, DeviceSae};

/// `println!` that hands a closed stdout back as an error (`?`) instead of panicking, so
/// `interp … | head` ends quietly (see [`exit_code`]).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?
    }};
}

mod dashboard;
mod flow;
mod geometry;
mod sae;
mod steer;
mod train;

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
    /// Sparse autoencoders: encode activations, inspect configs.
    #[command(subcommand)]
    Sae(sae::SaeCommand),
    /// Feature geometry: all-pairs extremes, concept pairs vs random, cross-SAE matching.
    #[command(subcommand)]
    Geometry(geometry::GeometryCommand),
    /// Cross-layer feature flow: matching tables, flow graphs, predecessor groups, deactivation.
    #[command(subcommand)]
    Flow(flow::FlowCommand),
    /// Train an SAE from an activation file or from a model over a text corpus.
    Train(train::TrainArgs),
    /// Generate with SAE features or a steering plan active; samples and the plan as JSON.
    Steer(steer::SteerArgs),
    /// Feature dashboards of an SAE over a corpus: a static site that opens offline.
    Dashboard(dashboard::DashboardArgs),
    /// Print a shell completion script.
    #[command(after_help = "Examples:
  interp completions bash > ~/.local/share/bash-completion/completions/interp
  interp completions zsh > ~/.zfunc/_interp
  interp completions fish > ~/.config/fish/completions/interp.fish")]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
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
#[command(after_help = "Examples:
  interp cache --text 'Today I am happy' --prepend-bos --out acts.safetensors
  interp cache --tokens 0,17,42 --hooks 'blocks.*.hook_resid_post' --processing tl --out resid.safetensors
  interp cache --text 'Today I am happy' --sae assets/toy/saes/blocks.2.hook_resid_pre --out acts.safetensors
  interp cache --model path/to/gemma-2-2b --text 'Hello' --hooks blocks.12.hook_resid_post --out g.safetensors")]
struct CacheArgs {
    /// Model directory in Hugging Face layout — config.json, model.safetensors (or a sharded
    /// checkpoint), tokenizer.json for --text — of any supported family (GPT-2, Gemma-2,
    /// Llama/Mistral, Qwen2, Phi), or a hub id (default: the toy world's model).
    #[arg(long)]
    model: Option<String>,
    /// Prompt text (needs the model's tokenizer.json).
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
    /// Also run this SAE at its hook and save `<hook>.hook_sae_acts_post` [batch, pos, d_sae]
    /// and `<hook>.hook_sae_recons` (any format `interp sae` reads).
    #[arg(long)]
    sae: Option<PathBuf>,
    /// Output safetensors file: one f32 tensor per hook, named by hook name, plus `logits`.
    #[arg(long)]
    out: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Cache(args) => cache(args),
        Command::Sae(cmd) => sae::run(cmd),
        Command::Geometry(cmd) => geometry::run(cmd),
        Command::Flow(cmd) => flow::run(cmd),
        Command::Train(args) => train::run(args),
        Command::Steer(args) => steer::run(args),
        Command::Dashboard(args) => dashboard::run(args),
        Command::Completions { shell } => completions(shell),
    };
    exit_code(result)
}

/// Status 141 (128 + SIGPIPE, what a shell reports for `yes | head`) without a message when
/// stdout was closed early — `interp … | head` is ordinary use, not a failure to report —
/// 1 and the error on stderr for any other error.
fn exit_code(result: Result<(), Box<dyn std::error::Error>>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&*e) => ExitCode::from(141),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::BrokenPipe {
                return true;
            }
        }
        source = e.source();
    }
    false
}

/// `interp completions <shell>`: the script is built in memory (clap_complete panics on a
/// failed write), then written out.
fn completions(shell: clap_complete::Shell) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::Write as _;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "interp", &mut script);
    std::io::stdout().lock().write_all(&script)?;
    Ok(())
}

fn cache(args: CacheArgs) -> Result<(), Box<dyn std::error::Error>> {
    let device = Default::default();
    let mut model = match &args.model {
        Some(name) => HookedTransformer::<Cpu>::from_pretrained(name, &device)?,
        None => interp_toy::ToyWorld::load()?.into_model(),
    };
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
    let batch = Batch::single(&tokens);
    let spec = HookSpec::new().cache(filter);
    // The SAE rides on the same forward as the cache.
    let (spec, capture) = match &args.sae {
        Some(path) => {
            let sae = interp_sae::load(path)?;
            let (spec, capture) = attach_sae(spec, &model, &DeviceSae::new(&sae, &device), false)?;
            (spec, Some((capture, sae.d_sae())))
        }
        None => (spec, None),
    };
    let (logits, cache) = model.run(&batch, &spec)?;
    let mut extra = vec![("logits".to_string(), logits.into_data())];
    let mut sae_note = String::new();
    if let Some((capture, d_sae)) = capture {
        let (feature_acts, sae_out) = capture.take().ok_or("the SAE's hook did not run")?;
        let active = feature_acts
            .clone()
            .greater_elem(0.0)
            .int()
            .sum()
            .into_scalar();
        sae_note = format!(
            " + SAE latents at {} (mean L0 {:.1} of {d_sae})",
            capture.hook(),
            active as f64 / tokens.len() as f64,
        );
        extra.push((
            format!("{}.hook_sae_acts_post", capture.hook()),
            feature_acts.into_data(),
        ));
        extra.push((
            format!("{}.hook_sae_recons", capture.hook()),
            sae_out.into_data(),
        ));
    }
    let extra: Vec<(&str, _)> = extra.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
    cache.save_safetensors(&args.out, &extra)?;
    say!(
        "{} tokens → {} hook activations + logits{sae_note} written to {}",
        tokens.len(),
        cache.len(),
        args.out.display()
    );
    Ok(())
}
