//! Where the SAE at a hook comes from, one key for every place: a directory holding one SAE per
//! subdirectory named by its TransformerLens hook (the toy world's `saes/`, or any such tree),
//! or a SAELens release from the [`registry`](crate::registry) (downloading needs the `hub`
//! feature).
//!
//! ```no_run
//! use interp_sae::source::SaeSource;
//!
//! let toy = SaeSource::dir("assets/toy/saes");
//! let gpt2 = SaeSource::release("gpt2-small-res-jb")?;
//! for source in [toy, gpt2] {
//!     let sae = source.at("blocks.2.hook_resid_pre")?; // None when the source has no SAE there
//!     println!("{source}: {}", sae.is_some());
//! }
//! # Ok::<(), interp_sae::Error>(())
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::Sae;

/// A keyed source of SAEs: the SAE reading a hook, by the hook's TransformerLens name.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaeSource {
    /// A directory with one SAE per subdirectory, each named by its hook
    /// (`blocks.2.hook_resid_pre/`); any format [`crate::load`] detects.
    Dir(PathBuf),
    /// A SAELens release in the registry (`gpt2-small-res-jb`): the first of its SAEs that
    /// reads the hook.
    Release(String),
}

impl SaeSource {
    /// The SAEs in the subdirectories of `dir`.
    pub fn dir(dir: impl Into<PathBuf>) -> Self {
        SaeSource::Dir(dir.into())
    }

    /// The SAEs of the SAELens release `name`.
    ///
    /// # Errors
    /// [`Error::UnknownRelease`] when the registry does not know it (the message lists the
    /// releases it knows).
    pub fn release(name: &str) -> Result<Self> {
        if crate::registry::saes(name).is_empty() {
            return Err(Error::UnknownRelease {
                release: name.to_string(),
                known: crate::registry::releases().join(", "),
            });
        }
        Ok(SaeSource::Release(name.to_string()))
    }

    /// The hooks the source has an SAE for, sorted by name, each once.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be listed.
    pub fn hooks(&self) -> Result<Vec<String>> {
        let mut hooks: Vec<String> = match self {
            SaeSource::Dir(dir) => std::fs::read_dir(dir)
                .map_err(|e| Error::io(dir, e))?
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect(),
            SaeSource::Release(release) => crate::registry::saes(release)
                .into_iter()
                .map(|e| e.hook_name.to_string())
                .collect(),
        };
        hooks.sort();
        hooks.dedup();
        Ok(hooks)
    }

    /// The SAE reading `hook` (a TransformerLens hook name), `None` when the source has none
    /// there.
    ///
    /// # Errors
    /// [`Error::HookName`] for a name that is not a plain directory name (empty, `.`, `..`, a
    /// path separator); [`Error::Io`] when the directory does not exist; the loaders' errors;
    /// [`Error::Unsupported`] for a release without the `hub` feature.
    pub fn at(&self, hook: &str) -> Result<Option<Sae>> {
        let plain = Path::new(hook).file_name().and_then(|n| n.to_str()) == Some(hook);
        if !plain || hook.contains(['/', '\\']) {
            return Err(Error::HookName { hook: hook.into() });
        }
        match self {
            SaeSource::Dir(dir) => {
                std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
                let path = dir.join(hook);
                if !path.is_dir() {
                    return Ok(None);
                }
                crate::load(&path).map(Some)
            }
            SaeSource::Release(release) => {
                match crate::registry::saes(release)
                    .into_iter()
                    .find(|e| e.hook_name == hook)
                {
                    Some(entry) => load_release(release, entry.sae_id).map(Some),
                    None => Ok(None),
                }
            }
        }
    }
}

#[cfg(feature = "hub")]
fn load_release(release: &str, sae_id: &str) -> Result<Sae> {
    crate::registry::from_pretrained(release, sae_id)
}

#[cfg(not(feature = "hub"))]
fn load_release(release: &str, sae_id: &str) -> Result<Sae> {
    Err(Error::Unsupported {
        what: format!("loading `{release}/{sae_id}` from the hub without the `hub` feature"),
    })
}

impl fmt::Display for SaeSource {
    /// `directory <path>` or `SAELens release <name>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaeSource::Dir(dir) => write!(f, "directory {}", dir.display()),
            SaeSource::Release(release) => write!(f, "SAELens release {release}"),
        }
    }
}
