//! `interp steer`: steered generation with SAE features (add, clamp, rescale) or a recorded
//! plan, written as JSON.

use std::io::Write as _;
use std::path::PathBuf;

use clap::ValueEnum;
use interp_models::prelude::*;
use interp_steer::prelude::*;
use serde::Serialize;

/// Arguments of `interp steer`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  interp steer --sae assets/toy/saes/blocks.3.hook_resid_pre --feature 335:16 \\
               --prompt 'Today I am' --prepend-bos --max-new-tokens 30 --samples 8 --out happy.json
  interp steer --model gpt2 --sae <gpt2-small-res-jb layer 7> --feature 2392:40 \\
               --prompt 'Today is Tuesday and I am' --max-new-tokens 20 --greedy --out out.json
  interp steer --plan happy.json --prompt 'Today I am' --max-new-tokens 30 --out replay.json")]
pub struct SteerArgs {
    /// Model directory (config.json, model.safetensors, tokenizer.json) or hub id
    /// (default: the toy world's model).
    #[arg(long)]
    model: Option<String>,
    /// The SAE whose features `--feature` names (any format `interp sae` reads).
    #[arg(long, required_unless_present = "plan")]
    sae: Option<PathBuf>,
    /// `F:C`, repeatable: with `--mode add` adds C·W_dec[F] (the raw decoder row); `clamp` sets
    /// feature F to C keeping the SAE's error term; `rescale` multiplies F's contribution by C.
    #[arg(long = "feature", value_parser = parse_feature, requires = "sae")]
    features: Vec<(usize, f32)>,
    /// What `--feature` does.
    #[arg(long, value_enum, default_value = "add")]
    mode: Mode,
    /// The hook to steer at (default: the SAE's own hook). Another hook than the SAE's own is
    /// allowed, with a warning: clamp and rescale steps at it are marked `allow_hook_mismatch`.
    #[arg(long)]
    hook: Option<String>,
    /// Prompt text.
    #[arg(long, conflicts_with = "tokens", required_unless_present = "tokens")]
    prompt: Option<String>,
    /// Prompt token ids, comma-separated.
    #[arg(long, value_delimiter = ',')]
    tokens: Option<Vec<u32>>,
    /// Prepend the BOS token to --prompt.
    #[arg(long)]
    prepend_bos: bool,
    /// Tokens to generate per sample.
    #[arg(long)]
    max_new_tokens: usize,
    /// Greedy decoding (one sample).
    #[arg(long, conflicts_with_all = ["temperature", "top_p", "top_k", "freq_penalty", "seed", "samples"])]
    greedy: bool,
    /// Sampling temperature.
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    /// Nucleus sampling: keep the smallest set of tokens whose probability reaches P.
    #[arg(long)]
    top_p: Option<f32>,
    /// Sample among the K most likely tokens.
    #[arg(long)]
    top_k: Option<usize>,
    /// Subtracted from a token's logit per earlier occurrence (TransformerLens freq_penalty).
    #[arg(long, default_value_t = 0.0)]
    freq_penalty: f32,
    /// Seed of the first sample; sample i uses seed + i.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Number of samples, generated as one batch.
    #[arg(long, default_value_t = 1)]
    samples: usize,
    /// Which positions the features act on.
    #[arg(long, value_enum, default_value = "all")]
    positions: PositionsArg,
    /// A steering plan (JSON, as `--out` records it): its steps run after the features',
    /// its SAEs are loaded from the sources it records.
    #[arg(long)]
    plan: Option<PathBuf>,
    /// Output JSON: `{"samples": [{"tokens", "text", "log_probs", "seed"}, ...], "plan": {...}}`.
    #[arg(long)]
    out: PathBuf,
    /// Also write the steered forward of the prompt alone: tensor `logits` [1, pos, vocab].
    #[arg(long)]
    logits: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Add C·W_dec[F].
    Add,
    /// Set feature F's activation to C, keeping the SAE's error term.
    Clamp,
    /// Multiply feature F's contribution to the reconstruction by C.
    Rescale,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PositionsArg {
    /// Every position.
    All,
    /// The prompt's positions.
    Prompt,
    /// Generated tokens' positions.
    Generated,
}

fn parse_feature(s: &str) -> Result<(usize, f32), String> {
    let (f, c) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not F:C (a feature index and a coefficient)"))?;
    let f: usize = f
        .trim()
        .parse()
        .map_err(|_| format!("`{f}` is not a feature index"))?;
    let c: f32 = c
        .trim()
        .parse()
        .map_err(|_| format!("`{c}` is not a number"))?;
    if !c.is_finite() {
        return Err(format!(
            "the coefficient of feature {f} must be finite, got {c}"
        ));
    }
    Ok((f, c))
}

#[derive(Serialize)]
struct Output<'a> {
    samples: &'a [Sample],
    plan: &'a SteeringPlan,
}

/// The SAE key `--sae` gets in the recorded plan.
const SAE_KEY: &str = "sae";

/// Runs `interp steer`.
pub fn run(args: SteerArgs) -> Result<(), Box<dyn std::error::Error>> {
    let device = Default::default();
    let model = match &args.model {
        Some(name) => HookedTransformer::<Cpu>::from_pretrained(name, &device)?,
        None => interp_toy::ToyWorld::load()?.into_model(),
    };
    let prompt = match (&args.prompt, &args.tokens) {
        (Some(text), _) => model.to_tokens(text, args.prepend_bos)?,
        (None, Some(tokens)) => tokens.clone(),
        (None, None) => unreachable!("clap requires --prompt or --tokens"),
    };
    let (mut plan, mut saes) = match &args.plan {
        Some(path) => {
            let plan = SteeringPlan::load(path)?;
            let saes = SaeSet::load_for(&plan)?;
            (plan, saes)
        }
        None => (SteeringPlan::new(), SaeSet::new()),
    };
    if let Some(path) = &args.sae {
        let sae = interp_sae::load(path)?;
        let own = sae.config().metadata.hook_name.clone();
        let hook_name = match (&args.hook, &own) {
            (Some(h), _) => h.clone(),
            (None, Some(h)) => h.clone(),
            (None, None) => {
                return Err("the SAE's config names no hook: pass --hook".into());
            }
        };
        let hook = model.cfg().parse_hook(&hook_name)?;
        let mut features = feature_plan(&args, &sae, hook)?;
        if let (Some(h), Some(own)) = (&args.hook, &own) {
            if interp_sae::hooked::is_own_hook(sae.config(), hook) == Some(false) {
                eprintln!("warning: steering at `{h}` with an SAE trained on `{own}` (--hook)");
            }
            features = features.allow_hook_mismatch(hook);
        }
        let features = features.with_sae_source(SAE_KEY, path.display().to_string());
        saes.insert(SAE_KEY, sae);
        plan = features.merge(plan)?;
    }
    if plan.is_empty() {
        return Err("nothing to steer with: give --feature F:C or a --plan".into());
    }
    let spec = plan.hook_spec(&model, &saes)?;
    if let Some(path) = &args.logits {
        let logits = model.run_with_hooks(&Batch::single(&prompt), &spec)?;
        let dims = logits.dims();
        let values: Vec<f32> = logits
            .into_data()
            .convert::<f32>()
            .into_vec()
            .map_err(|e| format!("{e:?}"))?;
        interp_core::write_safetensors(path, [("logits", &dims[..], &values[..])])?;
    }
    let opts = GenerateOptions {
        max_new_tokens: args.max_new_tokens,
        temperature: if args.greedy { 0.0 } else { args.temperature },
        top_k: args.top_k,
        top_p: args.top_p,
        freq_penalty: args.freq_penalty,
        seed: args.seed,
        ..Default::default()
    };
    let samples = generate_samples(&model, &prompt, &spec, &opts, args.samples)?;
    let json = serde_json::to_vec_pretty(&Output {
        samples: &samples,
        plan: &plan,
    })?;
    interp_core::write_atomic(&args.out, &json)?;
    let mut out = std::io::stdout().lock();
    let written = (|| -> std::io::Result<()> {
        for s in &samples {
            writeln!(out, "{}", s.text.replace('\n', " "))?;
        }
        writeln!(
            out,
            "{} sample(s) × ≤{} tokens, {} step(s) of steering → {}",
            samples.len(),
            args.max_new_tokens,
            plan.steps.len(),
            args.out.display()
        )
    })();
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// The steps `--feature` asks for.
fn feature_plan(
    args: &SteerArgs,
    sae: &interp_sae::Sae,
    hook: HookPoint,
) -> Result<SteeringPlan, interp_steer::Error> {
    let positions = match args.positions {
        PositionsArg::All => Positions::All,
        PositionsArg::Prompt => Positions::Prompt,
        PositionsArg::Generated => Positions::Generated,
    };
    let plan = SteeringPlan::new();
    if args.features.is_empty() {
        return Ok(plan);
    }
    Ok(match args.mode {
        Mode::Add => {
            let d = Direction::from_features(sae, &args.features, Default::default())?;
            plan.add(hook, &d, 1.0, positions)
        }
        Mode::Clamp => plan.clamp(hook, SAE_KEY, &args.features, false, positions),
        Mode::Rescale => args.features.iter().fold(plan, |p, &(f, c)| {
            p.rescale(
                hook,
                SAE_KEY,
                &[f],
                c,
                RescaleBasis::Contribution,
                positions.clone(),
            )
        }),
    })
}
