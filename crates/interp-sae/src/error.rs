//! The one error type of `interp-sae`.

use std::path::PathBuf;

/// Everything that can go wrong loading, saving or running an SAE.
///
/// Variants carry what is needed to act on them (file, tensor, expected and actual sizes).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a safetensors file failed (see the inner error).
    #[error(transparent)]
    Tensors(#[from] interp_core::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// No known SAE format matches what is at a path.
    #[error("{path}: not a recognised SAE ({reason})")]
    UnknownFormat {
        /// The file or directory.
        path: PathBuf,
        /// What was looked for.
        reason: String,
    },
    /// A config file is not valid JSON, lacks a key, or holds an impossible value.
    #[error("{path}: invalid SAE config: {reason}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The file asks for something this crate does not implement.
    #[error("unsupported: {what}")]
    Unsupported {
        /// What it is.
        what: String,
    },
    /// A tensor the architecture needs is absent.
    #[error("{path}: missing tensor `{key}`")]
    MissingTensor {
        /// The weights file.
        path: PathBuf,
        /// The tensor name as the format spells it.
        key: String,
    },
    /// A tensor has the wrong shape.
    #[error("tensor `{key}` has shape {actual:?}, expected {expected:?}")]
    Shape {
        /// The tensor name.
        key: String,
        /// What the config implies.
        expected: Vec<usize>,
        /// What the file holds.
        actual: Vec<usize>,
    },
    /// A weight, threshold or input holds NaN or ±inf.
    #[error("`{key}` holds a non-finite value at flat index {index}")]
    NonFinite {
        /// The tensor (or `"input"`).
        key: String,
        /// Flat index of the first bad value.
        index: usize,
    },
    /// A torch pickle (`.pt`) is malformed.
    #[error("{path}: malformed torch file: {reason}")]
    Pickle {
        /// The file.
        path: PathBuf,
        /// What the reader found.
        reason: String,
    },
    /// A pickle references a global outside the allow-list; nothing was executed.
    #[error("{path}: pickle references forbidden global `{module}.{name}` (nothing was executed)")]
    ForbiddenGlobal {
        /// The file.
        path: PathBuf,
        /// The module part of the global.
        module: String,
        /// The attribute part.
        name: String,
    },
    /// A `.npy`/`.npz` file is malformed or of an unsupported dtype.
    #[error("{path}: malformed numpy file: {reason}")]
    Npy {
        /// The file (or `file.npz/member`).
        path: PathBuf,
        /// What the reader found.
        reason: String,
    },
    /// Input activations have the wrong width for this SAE.
    #[error("input width {actual} does not match the SAE's d_in {expected}")]
    InputWidth {
        /// The SAE's `d_in`.
        expected: usize,
        /// The width given.
        actual: usize,
    },
    /// An SAE was attached to a hook whose activations have a different width.
    #[error("SAE d_in {d_in} does not match the width {width} of hook `{hook}`")]
    HookWidth {
        /// The hook name.
        hook: String,
        /// The SAE's `d_in`.
        d_in: usize,
        /// The hook's activation width in this model.
        width: usize,
    },
    /// A feature index is not below `d_sae`.
    #[error("feature {index} out of range (d_sae = {d_sae})")]
    FeatureOutOfRange {
        /// The index given.
        index: usize,
        /// The number of features.
        d_sae: usize,
    },
    /// Sparse codes list the same feature twice for one token.
    #[error("token {row} lists feature {index} twice")]
    DuplicateFeature {
        /// The token (row).
        row: usize,
        /// The repeated feature.
        index: usize,
    },
    /// A release or SAE id is not in the registry.
    #[error("unknown pretrained SAE {release}/{sae_id}; known: {known}")]
    UnknownPretrained {
        /// The release name.
        release: String,
        /// The SAE id within it.
        sae_id: String,
        /// Known names, comma-separated.
        known: String,
    },
    /// A SAELens release is not in the registry ([`crate::source::SaeSource::release`]).
    #[error("unknown SAE release `{release}`; known: {known}")]
    UnknownRelease {
        /// The release name.
        release: String,
        /// Known releases, comma-separated.
        known: String,
    },
    /// A hook name to look an SAE up by is not a plain name ([`crate::source::SaeSource::at`]).
    #[error("`{hook}` is not a hook name")]
    HookName {
        /// The name given.
        hook: String,
    },
    /// Hub download failed (or the file is not in the local cache in offline mode).
    #[cfg(feature = "hub")]
    #[error("hub {repo}/{file}: {reason}")]
    Hub {
        /// The repository id.
        repo: String,
        /// The file within it.
        file: String,
        /// What failed.
        reason: String,
    },
    /// A training configuration is impossible (k > d_sae, negative coefficient, zero batch, …).
    #[error("invalid training config: {reason}")]
    TrainConfig {
        /// What is wrong.
        reason: String,
    },
    /// Training data is unusable: an empty corpus or activation file, too few tokens for a batch.
    #[error("training data: {reason}")]
    Data {
        /// What is wrong.
        reason: String,
    },
    /// The loss became NaN or infinite; the last good checkpoint (if any) was kept.
    #[error("loss is not finite at step {step}; last good checkpoint: {}", checkpoint.as_ref().map_or("none".into(), |p| p.display().to_string()))]
    NonFiniteLoss {
        /// The step whose loss was not finite.
        step: u64,
        /// The last checkpoint written before it.
        checkpoint: Option<PathBuf>,
    },
    /// A word to probe does not occur in its prompt ([`crate::probe`]).
    #[cfg(feature = "models")]
    #[error("the word `{word}` does not occur in the prompt `{text}`")]
    WordNotFound {
        /// The word.
        word: String,
        /// The prompt.
        text: String,
    },
    /// Drawing a figure failed.
    #[error(transparent)]
    Plot(#[from] interp_core::plot::PlotError),
    /// An average over prompts was asked for with no prompts ([`crate::probe`]).
    #[error("no prompts given")]
    NoPrompts,
    /// A probe of several SAEs was given none ([`crate::probe`]).
    #[error("no SAEs given")]
    NoSaes,
    /// Running the model failed.
    #[cfg(feature = "models")]
    #[error(transparent)]
    Model(#[from] interp_models::Error),
}

impl Error {
    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A config error on `path`.
    pub(crate) fn config(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Config {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// [`Error::Shape`] naming `key` unless `actual == expected`.
pub(crate) fn check_shape(key: &str, actual: &[usize], expected: &[usize]) -> Result<()> {
    if actual != expected {
        return Err(Error::Shape {
            key: key.into(),
            expected: expected.to_vec(),
            actual: actual.to_vec(),
        });
    }
    Ok(())
}

/// [`Error::NonFinite`] naming `key` and the flat index of the first NaN/inf in `values`.
pub(crate) fn check_finite<'a>(key: &str, mut values: impl Iterator<Item = &'a f32>) -> Result<()> {
    match values.position(|v| !v.is_finite()) {
        Some(index) => Err(Error::NonFinite {
            key: key.into(),
            index,
        }),
        None => Ok(()),
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
