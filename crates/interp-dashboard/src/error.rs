//! The error type of interp-dashboard.

use std::path::PathBuf;

/// Everything that can go wrong while gathering feature data or writing a dashboard site.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model failed (unknown hook, bad tokens, a forward error).
    #[error(transparent)]
    Model(#[from] interp_models::Error),
    /// The SAE failed to load or run, or its hook is not one the model has.
    #[error(transparent)]
    Sae(#[from] interp_sae::Error),
    /// A geometry computation (nearest features) failed.
    #[error(transparent)]
    Geometry(#[from] interp_geometry::Error),
    /// Reading the corpus or writing a file failed.
    #[error(transparent)]
    Core(#[from] interp_core::Error),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file's content is not what it should be.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The corpus gave no token window to read.
    #[error("the corpus gives no window of {context_size} tokens: {reason}")]
    EmptyCorpus {
        /// The window length asked for.
        context_size: usize,
        /// Why (e.g. every text tokenizes to nothing).
        reason: String,
    },
    /// A feature id is not below the SAE's `d_sae`.
    #[error("feature {feature} is out of range: the SAE has d_sae = {d_sae} (ids 0..{d_sae})")]
    FeatureOutOfRange {
        /// The id asked for.
        feature: usize,
        /// The SAE's width.
        d_sae: usize,
    },
    /// A feature list is not `all`, `top-N` or ids and ranges (`3,10-12`).
    #[error("`{text}` is not a feature selection: {reason} (expected `all`, `top-N` or ids and ranges like `3,10-12`)")]
    BadSelection {
        /// The text given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An option has a value it cannot take.
    #[error("{what}: {reason}")]
    Invalid {
        /// The option or input.
        what: String,
        /// Why.
        reason: String,
    },
    /// Activations or weights hold a NaN or an infinity.
    #[error("{what} holds a non-finite value (NaN or infinity)")]
    NonFinite {
        /// Where it was found.
        what: String,
    },
}

impl Error {
    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
