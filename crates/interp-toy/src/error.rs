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
    /// A prompt set has no prompts ([`crate::corpus::PromptSet::new`]).
    #[error("prompt set `{name}` has no prompts")]
    EmptyPromptSet {
        /// The set's name.
        name: String,
    },
    /// A prompt does not contain the word to read in it ([`crate::corpus::PromptSet::new`]).
    #[error("the word `{word}` does not occur in the prompt `{text}`")]
    PromptWord {
        /// The prompt.
        text: String,
        /// The word.
        word: String,
    },
    /// A prompt set asked for by name is not there ([`crate::corpus::EmotionPrompts::index`]).
    #[error("no `{name}` prompts (there are: {available})")]
    NoPromptSet {
        /// The name asked for.
        name: String,
        /// The sets there are.
        available: String,
    },
    /// A layer past the model's ([`crate::emotion::EmotionStudy::new`]).
    #[error("layer {layer}: the model has {n_layers} layers")]
    LayerOutOfRange {
        /// The layer asked for.
        layer: usize,
        /// The model's layers.
        n_layers: usize,
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
    /// From the geometry crate.
    #[error(transparent)]
    Geometry(#[from] interp_geometry::Error),
    /// From the core crate.
    #[error(transparent)]
    Core(#[from] interp_core::Error),
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
