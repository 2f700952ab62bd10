//! Where an example's model and SAE come from: the toy world by default, or a model directory
//! / hub id with an SAE directory or SAELens release (hub ids and releases need the `hub`
//! feature).

use std::error::Error;
use std::path::Path;

use interp_models::{Cpu, HookPoint, HookedTransformer};
use interp_sae::Sae;

/// A model and one SAE on it.
pub struct Subject {
    /// The model, with its tokenizer.
    pub model: HookedTransformer<Cpu>,
    /// The SAE.
    pub sae: Sae,
    /// The hook the SAE reads.
    pub hook: HookPoint,
    /// Whether this is the toy world.
    pub toy: bool,
    /// Where the model and SAE came from, for reports.
    pub source: String,
}

/// Loads the toy world's model and its SAE at `toy_hook` when `model` is `None`; otherwise
/// `model` (a directory, or a hub id with the `hub` feature) and the SAE `sae_id` of the
/// SAELens release `release` (`hub` feature), or the SAE directory or file `sae_id` when no
/// release is given.
///
/// # Errors
/// Loading errors; a release or hub id without the `hub` feature.
pub fn load_subject(
    model: Option<&str>,
    release: Option<&str>,
    sae_id: &str,
    toy_hook: &str,
) -> Result<Subject, Box<dyn Error>> {
    let Some(name) = model else {
        let world = interp_toy::ToyWorld::load()?;
        let sae = world.sae(toy_hook)?;
        let dir = world
            .dir()
            .canonicalize()
            .unwrap_or_else(|_| world.dir().to_path_buf());
        let source = format!("toy world {} ({toy_hook})", dir.display());
        return Ok(Subject {
            hook: toy_hook.parse()?,
            model: world.into_model(),
            sae,
            toy: true,
            source,
        });
    };
    let model = HookedTransformer::<Cpu>::from_pretrained(name, &Default::default())?;
    let sae = match release {
        Some(release) => release_sae(release, sae_id)?,
        None => interp_sae::load(Path::new(sae_id))?,
    };
    let hook_name = sae
        .config()
        .metadata
        .hook_name
        .clone()
        .ok_or("the SAE's config names no hook")?;
    Ok(Subject {
        hook: HookPoint::parse_for(&hook_name, model.cfg().n_layers)?,
        model,
        sae,
        toy: false,
        source: format!("{name}, SAE {} {sae_id}", release.unwrap_or("")),
    })
}

#[cfg(feature = "hub")]
fn release_sae(release: &str, sae_id: &str) -> Result<Sae, Box<dyn Error>> {
    Ok(interp_sae::registry::from_pretrained(release, sae_id)?)
}

#[cfg(not(feature = "hub"))]
fn release_sae(release: &str, _sae_id: &str) -> Result<Sae, Box<dyn Error>> {
    Err(
        format!("loading the SAELens release `{release}` needs the hub: add `--features hub`")
            .into(),
    )
}
