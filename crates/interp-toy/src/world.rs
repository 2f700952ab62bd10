//! Loading the shipped toy world: `assets/toy/` holds `model/` (Hugging Face layout:
//! `config.json`, `model.safetensors`, `tokenizer.json`) and `saes/<hook name>/` (SAELens
//! layout), one SAE per hook point, named by its TransformerLens hook name.

use std::path::{Path, PathBuf};

use interp_models::{Cpu, HookPoint, HookedTransformer};
use interp_sae::source::SaeSource;
use interp_sae::Sae;

use crate::error::{Error, Result};

/// Environment variable that points at a toy world directory other than the shipped one.
pub const TOY_DIR_ENV: &str = "INTERP_TOY_DIR";
/// The model directory inside a world directory.
pub const MODEL_DIR: &str = "model";
/// The SAE directory inside a world directory.
pub const SAES_DIR: &str = "saes";

/// The shipped toy world directory: `$INTERP_TOY_DIR` when set, otherwise `assets/toy` of the
/// source tree this crate was built from; canonical when it exists.
pub fn default_dir() -> PathBuf {
    let dir = match std::env::var_os(TOY_DIR_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/toy"),
    };
    canonical(&dir)
}

/// `dir` without `..` and links, for messages and reports; as given if it does not exist.
fn canonical(dir: &Path) -> PathBuf {
    dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf())
}

/// A loaded toy world: the model (with its tokenizer) and access to its SAEs.
#[derive(Debug)]
pub struct ToyWorld {
    dir: PathBuf,
    model: HookedTransformer<Cpu>,
}

impl ToyWorld {
    /// Loads the shipped world (see [`default_dir`]).
    ///
    /// # Errors
    /// [`Error::MissingWorld`] when the directory has no model, and the loaders' errors.
    pub fn load() -> Result<Self> {
        Self::from_dir(&default_dir())
    }

    /// Loads the world in `dir`.
    ///
    /// # Errors
    /// [`Error::MissingWorld`] when `dir` has no model, and the loaders' errors.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let dir = &canonical(dir);
        let model_dir = dir.join(MODEL_DIR);
        if !model_dir.join("config.json").is_file() {
            return Err(Error::MissingWorld {
                dir: dir.to_path_buf(),
            });
        }
        let model = HookedTransformer::<Cpu>::from_dir(&model_dir, &Default::default())?;
        model.tokenizer()?;
        Ok(ToyWorld {
            dir: dir.to_path_buf(),
            model,
        })
    }

    /// The world's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The model, with its tokenizer attached.
    pub fn model(&self) -> &HookedTransformer<Cpu> {
        &self.model
    }

    /// The model, consuming the world.
    pub fn into_model(self) -> HookedTransformer<Cpu> {
        self.model
    }

    /// The world's SAEs as a keyed source (`saes/<hook name>/`).
    pub fn saes(&self) -> SaeSource {
        SaeSource::dir(self.dir.join(SAES_DIR))
    }

    /// Hook points that have an SAE, in forward order.
    ///
    /// # Errors
    /// The SAE directory cannot be listed ([`interp_sae::Error::Io`]).
    pub fn sae_hooks(&self) -> Result<Vec<HookPoint>> {
        let mut hooks: Vec<HookPoint> = self
            .saes()
            .hooks()?
            .iter()
            .filter_map(|h| h.parse().ok())
            .collect();
        hooks.sort();
        Ok(hooks)
    }

    /// The SAE at `hook` (a TransformerLens hook name such as `blocks.2.hook_resid_pre`).
    ///
    /// # Errors
    /// [`Error::NoSae`] when the world has no SAE there (the message lists those it has),
    /// and the loader's errors.
    pub fn sae(&self, hook: &str) -> Result<Sae> {
        self.saes().at(hook)?.ok_or_else(|| Error::NoSae {
            hook: hook.to_string(),
            available: self
                .sae_hooks()
                .unwrap_or_default()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}
