//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong building or loading the toy world.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Training or using the tokenizer failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// An argument is out of its valid range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// No toy world at the expected place.
    #[error("no toy world in {dir} (expected model/config.json there): build it with `cargo run --release --example build_toy_world`, or set INTERP_TOY_DIR")]
    MissingWorld {
        /// Where it was looked for.
        dir: PathBuf,
    },
    /// The world has no SAE at a hook point.
    #[error("the toy world has no SAE at `{hook}` (it has: {available})")]
    NoSae {
        /// The hook asked for.
        hook: String,
        /// The hooks it has SAEs for.
        available: String,
    },
    /// JSON (de)serialisation failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// From the model crate.
    #[error(transparent)]
    Models(#[from] interp_models::Error),
    /// From the SAE crate.
    #[error(transparent)]
    Sae(#[from] interp_sae::Error),
    /// From the core crate.
    #[error(transparent)]
    Core(#[from] interp_core::Error),
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
