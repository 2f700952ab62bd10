//! The one error type of `interp-geometry`.

use std::path::PathBuf;

/// Everything that can go wrong in a geometry computation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A feature index is not below the number of features.
    #[error("{what}: feature index {index} out of range (there are {len})")]
    IndexOutOfRange {
        /// Which input held the index.
        what: String,
        /// The index given.
        index: usize,
        /// The number of features.
        len: usize,
    },
    /// Two sets of directions to compare live in spaces of different width (e.g. SAEs of
    /// different `d_in`).
    #[error("cannot compare directions of width {a} with directions of width {b}")]
    DimensionMismatch {
        /// Width of the first set.
        a: usize,
        /// Width of the second set.
        b: usize,
    },
    /// Two inputs that must have the same length do not.
    #[error("{what}: expected {expected} entries, got {actual}")]
    LengthMismatch {
        /// What has the wrong length.
        what: String,
        /// The length required.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// A pair set, a concept, or a set of directions is empty where something is needed.
    #[error("empty input: {what}")]
    Empty {
        /// What is empty.
        what: String,
    },
    /// An input holds NaN or infinity.
    #[error("{what} holds a non-finite value (NaN or infinity)")]
    NonFinite {
        /// Which input.
        what: String,
    },
    /// A parameter is out of its valid range.
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// Why.
        reason: String,
    },
    /// Loading an SAE failed.
    #[error(transparent)]
    Sae(#[from] interp_sae::Error),
    /// From `interp-core` (e.g. a report's figure name, `interp_core::report`).
    #[error(transparent)]
    Core(#[from] interp_core::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A JSON input could not be parsed.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What serde_json said.
        source: serde_json::Error,
    },
    /// Drawing a plot failed.
    #[cfg(feature = "plot")]
    #[error(transparent)]
    Plot(#[from] interp_core::plot::PlotError),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            reason: reason.into(),
        }
    }

    pub(crate) fn empty(what: impl Into<String>) -> Self {
        Error::Empty { what: what.into() }
    }
}

/// `Err(IndexOutOfRange)` for the first index `>= len`.
pub(crate) fn check_indices(what: &str, indices: &[usize], len: usize) -> Result<()> {
    match indices.iter().find(|&&i| i >= len) {
        Some(&index) => Err(Error::IndexOutOfRange {
            what: what.into(),
            index,
            len,
        }),
        None => Ok(()),
    }
}
