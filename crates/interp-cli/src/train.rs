//! `interp train`: train an SAE from a prepared activation file or from a model over a corpus.

use std::error::Error as StdError;
use std::path::PathBuf;

use std::sync::Arc;

use burn_autodiff::Autodiff;
use clap::ValueEnum;
use interp_models::prelude::*;
use interp_sae::splice::SpliceEvaluator;
use interp_sae::store::{token_windows, ActivationStore, Corpus, StoreConfig};
use interp_sae::train::{
    ActivationMatrix, ActivationSource, Evaluator, FitOptions, TrainArch, TrainConfig, Trainer,
    CHECKPOINT_FILE,
};

/// Windows of the corpus used to measure CE loss recovered while training from a model.
const EVAL_WINDOWS: usize = 16;

/// Architectures `interp train` can train.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Arch {
    /// ReLU latents with an L1 penalty (`--l1`).
    Relu,
    /// TopK latents (`--k`) with the AuxK loss.
    Topk,
    /// BatchTopK (`--k` per token on average); saved as JumpReLU.
    Batchtopk,
    /// JumpReLU with an L0 penalty (`--l0`).
    Jumprelu,
}

/// Gradient engines `interp train` can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    /// Hand-derived forward and backward pass on the CPU.
    Cpu,
    /// burn autodiff (`Autodiff<NdArray>`).
    Burn,
}

/// Arguments of `interp train`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  interp train --acts acts.safetensors --tensor blocks.2.hook_resid_pre --arch topk --d-sae 512 \\
      --k 16 --steps 1000 --out sae/
  interp train --model assets/toy/model --corpus docs.txt --hook blocks.2.hook_resid_pre \\
      --arch jumprelu --d-sae 1024 --steps 2000 --out sae/
  interp train --model assets/toy/model --corpus docs.txt --hook blocks.2.hook_resid_pre \\
      --arch jumprelu --d-sae 1024 --steps 2000 --out sae/ --resume   # after an interruption")]
pub struct TrainArgs {
    /// Activations `[.., d_in]` in a safetensors file (e.g. written by `interp cache`).
    #[arg(long, required_unless_present = "model", conflicts_with = "model")]
    acts: Option<PathBuf>,
    /// Tensor to read from --acts (default: the only one in the file).
    #[arg(long, requires = "acts")]
    tensor: Option<String>,
    /// Model directory or hub id to collect activations from (with --corpus and --hook).
    #[arg(long, requires_all = ["corpus", "hook"])]
    model: Option<String>,
    /// Text corpus: .txt (one document per line), .jsonl (a "text" field) or a directory of them.
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Hook whose activations the SAE reads (TransformerLens name, e.g. blocks.3.hook_resid_pre).
    #[arg(long)]
    hook: Option<String>,
    /// Tokens per context window when reading a corpus.
    #[arg(long, default_value_t = 128)]
    context_size: usize,
    /// Architecture.
    #[arg(long, value_enum)]
    arch: Arch,
    /// Number of latents.
    #[arg(long)]
    d_sae: usize,
    /// Active latents per token (topk, batchtopk).
    #[arg(long, default_value_t = 32)]
    k: usize,
    /// L1 coefficient (relu; weighted by decoder norms, on inputs normalised to E‖x‖² = d_in).
    #[arg(long, default_value_t = 1.5)]
    l1: f32,
    /// L0 coefficient (jumprelu).
    #[arg(long, default_value_t = 0.01)]
    l0: f32,
    /// Optimiser steps.
    #[arg(long, default_value_t = 2000)]
    steps: u64,
    /// Tokens per step.
    #[arg(long, default_value_t = 4096)]
    batch: usize,
    /// Peak learning rate (default: scaled with the number of latents, see the docs).
    #[arg(long)]
    lr: Option<f32>,
    /// Seed of initialisation and data order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write a checkpoint every this many steps (0: only at the end).
    #[arg(long, default_value_t = 500)]
    checkpoint_every: u64,
    /// Continue from <OUT>/checkpoint.safetensors instead of starting afresh: repeat the
    /// command that started the run; a flag that differs from the checkpoint is an error.
    #[arg(long)]
    resume: bool,
    /// Where gradients come from: the hand-derived CPU step (sparse backward pass for TopK and
    /// BatchTopK), or burn autodiff on the ndarray backend (same losses, dense, slower).
    #[arg(long, value_enum, default_value_t = Engine::Cpu)]
    engine: Engine,
    /// With --model: measure CE loss recovered and KL with the SAE spliced in every this many
    /// steps (0: only at the end).
    #[arg(long, default_value_t = 500)]
    eval_every: u64,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
    /// Output directory: the SAE (SAELens layout), metrics.jsonl, checkpoint, plots.
    #[arg(long)]
    out: PathBuf,
}

/// Runs `interp train`.
pub fn run(args: TrainArgs) -> Result<(), Box<dyn StdError>> {
    let (mut source, mut evaluator): (Box<dyn ActivationSource>, _) = match &args.acts {
        Some(path) => (
            Box::new(ActivationMatrix::from_safetensors(
                path,
                args.tensor.as_deref(),
                args.seed,
            )?) as Box<dyn ActivationSource>,
            None,
        ),
        None => {
            let (store, evaluator) = model_source(&args)?;
            (store, Some(evaluator))
        }
    };
    let arch = match args.arch {
        Arch::Relu => TrainArch::relu(args.l1),
        Arch::Topk => TrainArch::topk(args.k),
        Arch::Batchtopk => TrainArch::batch_topk(args.k),
        Arch::Jumprelu => TrainArch::jumprelu(args.l0),
    };
    let mut cfg = TrainConfig::new(arch, source.d_in(), args.d_sae, args.steps);
    cfg.batch_size = args.batch;
    cfg.seed = args.seed;
    cfg.checkpoint_every = args.checkpoint_every;
    if let Some(lr) = args.lr {
        cfg.lr = lr;
    }
    let checkpoint = args.out.join(CHECKPOINT_FILE);
    let mut trainer = if args.resume {
        let trainer = Trainer::resume(&checkpoint, source.as_mut())?;
        let differences = resume_mismatches(trainer.config(), &cfg, args.lr.is_some());
        if !differences.is_empty() {
            return Err(format!(
                "--resume continues the run saved in {}, which differs from this command: {}",
                checkpoint.display(),
                differences.join("; ")
            )
            .into());
        }
        trainer
    } else {
        Trainer::new(cfg, source.as_mut())?
    };
    if args.engine == Engine::Burn {
        trainer = trainer.with_burn_backend::<Autodiff<Cpu>>(Default::default());
    }
    let report = trainer.fit(
        source.as_mut(),
        FitOptions {
            out_dir: Some(args.out.clone()),
            progress: !args.quiet,
            eval_every: args.eval_every,
            evaluator: evaluator.as_mut().map(|e| e as &mut dyn Evaluator),
            ..FitOptions::default()
        },
    )?;
    if let (Some(hook), Some(dir)) = (&args.hook, &report.sae_dir) {
        let mut sae = interp_sae::load(dir)?;
        sae.set_hook_name(hook);
        interp_sae::formats::saelens::save(
            &sae,
            dir,
            interp_sae::formats::saelens::load_sparsity(dir)?.as_deref(),
        )?;
    }
    if let Some(last) = report.history.last() {
        say!(
            "step {}: mse {:.4}  fvu {:.4}  l0 {:.1}  dead {:.2}%  -> {}",
            last.step,
            last.mse,
            last.fvu,
            last.l0,
            100.0 * last.dead_fraction,
            args.out.display()
        );
    }
    Ok(())
}

/// The settings of `asked` (built from the command line) that differ from the checkpoint's
/// `saved` ones, as `--flag asked (checkpoint: saved)`; `lr` only when it was given.
fn resume_mismatches(saved: &TrainConfig, asked: &TrainConfig, lr_given: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |flag: &str, saved: String, asked: String| {
        if saved != asked {
            out.push(format!("{flag} {asked} (checkpoint: {saved})"));
        }
    };
    check(
        "--arch/--k/--l1/--l0",
        format!("{:?}", saved.arch),
        format!("{:?}", asked.arch),
    );
    check("d_in", saved.d_in.to_string(), asked.d_in.to_string());
    check("--d-sae", saved.d_sae.to_string(), asked.d_sae.to_string());
    check("--steps", saved.steps.to_string(), asked.steps.to_string());
    check(
        "--batch",
        saved.batch_size.to_string(),
        asked.batch_size.to_string(),
    );
    check("--seed", saved.seed.to_string(), asked.seed.to_string());
    check(
        "--checkpoint-every",
        saved.checkpoint_every.to_string(),
        asked.checkpoint_every.to_string(),
    );
    if lr_given {
        check("--lr", saved.lr.to_string(), asked.lr.to_string());
    }
    out
}

/// Activations streamed from a model, and the evaluator of the SAE spliced back into it.
type ModelSource = (Box<dyn ActivationSource>, SpliceEvaluator<Cpu>);

/// An activation store over `--corpus` at `--hook`, and an evaluator splicing the SAE back
/// into the model on the corpus' first windows.
fn model_source(args: &TrainArgs) -> Result<ModelSource, Box<dyn StdError>> {
    let (Some(name), Some(corpus), Some(hook)) = (&args.model, &args.corpus, &args.hook) else {
        unreachable!("clap requires --corpus and --hook with --model")
    };
    let model = Arc::new(HookedTransformer::<Cpu>::from_pretrained(
        name,
        &Default::default(),
    )?);
    let corpus = Corpus::open(corpus)?;
    let mut cfg = StoreConfig::new([hook.clone()]);
    cfg.context_size = args.context_size;
    cfg.seed = args.seed;
    cfg.progress = false;
    cfg.model_name = Some(name.clone());
    let windows: Vec<Vec<u32>> = token_windows(&model, &corpus, &cfg)?
        .take(EVAL_WINDOWS)
        .collect::<Result<_, _>>()?;
    let evaluator = SpliceEvaluator::new(model.clone(), hook.clone(), windows)?;
    let store = ActivationStore::new(model, corpus, cfg)?;
    Ok((Box::new(store), evaluator))
}
