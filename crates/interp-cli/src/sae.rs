//! `interp sae encode` and `interp sae info`.

use std::error::Error as StdError;
use std::path::PathBuf;

use interp_core::SafetensorsFile;
use interp_sae::prelude::*;
use ndarray::Array2;

/// The SAE subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum SaeCommand {
    /// Encode activations from a safetensors file; write `feature_acts` [n, d_sae] and
    /// `sae_out` [n, d_in].
    #[command(after_help = "Examples:
  interp cache --text 'Today I am happy' --hooks blocks.2.hook_resid_pre --out acts.safetensors
  interp sae encode --sae assets/toy/saes/blocks.2.hook_resid_pre --input acts.safetensors --out codes.safetensors
  interp sae encode --sae gemma-scope/params.npz --format gemma-scope --input acts.safetensors \\
      --tensor blocks.12.hook_resid_post --out codes.safetensors")]
    Encode(EncodeArgs),
    /// Print an SAE's configuration (SAELens cfg.json form) and detected format.
    #[command(after_help = "Examples:
  interp sae info --sae assets/toy/saes/blocks.2.hook_resid_pre
  interp sae info --sae assets/toy/saes/blocks.2.hook_resid_pre | jq .d_sae")]
    Info(InfoArgs),
}

/// Where an SAE is and in which format.
#[derive(clap::Args, Debug)]
pub struct SaeSource {
    /// SAE directory or file: SAELens, Gemma Scope params.npz, OpenAI .pt, Llama Scope, sparsify.
    #[arg(long)]
    pub sae: PathBuf,
    /// Force a format instead of detecting it (saelens, gemma-scope, openai, llama-scope, sparsify).
    #[arg(long)]
    pub format: Option<String>,
}

impl SaeSource {
    /// Loads the SAE.
    pub fn load(&self) -> Result<(Sae, Format), interp_sae::Error> {
        let format = match &self.format {
            Some(name) => name.parse()?,
            None => Format::detect(&self.sae)?,
        };
        Ok((format.load(&self.sae)?, format))
    }
}

/// Arguments of `interp sae encode`.
#[derive(clap::Args, Debug)]
pub struct EncodeArgs {
    #[command(flatten)]
    source: SaeSource,
    /// Safetensors file with activations `[..., d_in]` (e.g. written by `interp cache`).
    #[arg(long)]
    input: PathBuf,
    /// Tensor to read (default: the SAE's hook name if present, else the only tensor).
    #[arg(long)]
    tensor: Option<String>,
    /// Encode a tensor named after another hook than the SAE's own (`metadata.hook_name`):
    /// without it that is an error, since a residual-stream SAE reads `hook_attn_out`
    /// activations of the same width without complaint but means nothing there.
    #[arg(long)]
    allow_hook_mismatch: bool,
    /// Output safetensors file.
    #[arg(long)]
    out: PathBuf,
}

/// Arguments of `interp sae info`.
#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    source: SaeSource,
}

/// Runs a `sae` subcommand.
pub fn run(cmd: SaeCommand) -> Result<(), Box<dyn StdError>> {
    match cmd {
        SaeCommand::Encode(args) => encode(args),
        SaeCommand::Info(args) => {
            let (sae, format) = args.source.load()?;
            let mut json = sae.config().to_saelens_json();
            json["format"] = format.name().into();
            say!("{}", serde_json::to_string_pretty(&json)?);
            Ok(())
        }
    }
}

fn pick_tensor(file: &SafetensorsFile, wanted: Option<&str>, sae: &Sae) -> Result<String, String> {
    let names: Vec<String> = file
        .shapes()
        .map_err(|e| e.to_string())?
        .into_keys()
        .collect();
    if let Some(w) = wanted {
        return names
            .iter()
            .find(|n| *n == w)
            .cloned()
            .ok_or_else(|| format!("no tensor `{w}` in the input (has: {})", names.join(", ")));
    }
    if let Some(hook) = &sae.config().metadata.hook_name {
        if names.contains(hook) {
            return Ok(hook.clone());
        }
    }
    match &names[..] {
        [only] => Ok(only.clone()),
        _ => Err(format!(
            "the input has several tensors ({}); choose one with --tensor",
            names.join(", ")
        )),
    }
}

/// A tensor named after a hook (as `interp cache` names them) must be the SAE's own hook,
/// unless the mismatch is asked for; then it is a warning. Tensors with other names pass.
fn check_hook(tensor: &str, sae: &Sae, allow: bool) -> Result<(), String> {
    let Ok(tensor_hook) = tensor.parse::<interp_models::HookPoint>() else {
        return Ok(());
    };
    if interp_sae::hooked::is_own_hook(sae.config(), tensor_hook) != Some(false) {
        return Ok(());
    }
    let own = sae
        .config()
        .metadata
        .hook_name
        .as_deref()
        .unwrap_or_default();
    if !allow {
        return Err(format!(
            "tensor `{tensor}` holds activations of `{tensor_hook}`, but the SAE was trained \
             on `{own}`; pass --allow-hook-mismatch to encode it anyway"
        ));
    }
    eprintln!("warning: encoding `{tensor_hook}` activations with an SAE trained on `{own}`");
    Ok(())
}

fn encode(args: EncodeArgs) -> Result<(), Box<dyn StdError>> {
    let (sae, _) = args.source.load()?;
    let file = SafetensorsFile::open(&args.input)?;
    let name = pick_tensor(&file, args.tensor.as_deref(), &sae)?;
    check_hook(&name, &sae, args.allow_hook_mismatch)?;
    let t = file.read(&name)?;
    let x = as_rows(t.shape, t.data, sae.d_in())?;
    let codes = sae.encode_sparse(x.view())?;
    let recon = sae.decode_sparse(&codes)?;
    let acts = codes.to_dense();
    interp_core::write_safetensors(
        &args.out,
        [
            (
                "feature_acts",
                acts.shape(),
                acts.as_slice().expect("owned"),
            ),
            ("sae_out", recon.shape(), recon.as_slice().expect("owned")),
        ],
    )?;
    let l0 = codes.nnz() as f64 / codes.n_rows().max(1) as f64;
    say!(
        "{} rows of `{name}` → {} (mean L0 {l0:.1} of {})",
        codes.n_rows(),
        args.out.display(),
        sae.d_sae()
    );
    Ok(())
}

/// Flattens `[..., d_in]` (or hook_z `[..., n_heads, d_head]`) into `[n, d_in]`.
fn as_rows(
    shape: Vec<usize>,
    data: Vec<f32>,
    d_in: usize,
) -> Result<Array2<f32>, interp_sae::Error> {
    let n = match shape.last() {
        Some(&d) if d == d_in => data.len() / d_in,
        _ if shape.len() >= 2 && shape[shape.len() - 2..].iter().product::<usize>() == d_in => {
            data.len() / d_in
        }
        _ => {
            return Err(interp_sae::Error::InputWidth {
                expected: d_in,
                actual: shape.last().copied().unwrap_or(0),
            })
        }
    };
    Ok(Array2::from_shape_vec((n, d_in), data).expect("length is n · d_in"))
}
