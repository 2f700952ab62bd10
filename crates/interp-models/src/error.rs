//! The one error type of `interp-models`.

use std::path::PathBuf;

/// Everything that can go wrong when loading or running a model.
///
/// Variants carry the context needed to act on them (file, tensor key, expected and actual
/// shape, hook name): no string-only errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A model directory lacks a file the loader needs.
    #[error("{dir}: missing {file} (a model directory needs config.json and model.safetensors; tokenizer.json for text)")]
    MissingFile {
        /// The model directory.
        dir: PathBuf,
        /// The missing file name.
        file: &'static str,
    },
    /// `config.json` is not valid JSON or lacks a required key.
    #[error("{path}: invalid config: {reason}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The config asks for something this architecture implementation does not support.
    #[error("unsupported configuration: {key} = {value}")]
    Unsupported {
        /// The config key.
        key: &'static str,
        /// Its value.
        value: String,
    },
    /// A safetensors file is truncated, corrupt, or not safetensors at all.
    #[error("{path}: not a readable safetensors file: {reason}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// A tensor the architecture needs is not in the checkpoint.
    #[error("checkpoint lacks tensor `{key}`")]
    MissingTensor {
        /// The checkpoint key (without any `transformer.` prefix).
        key: String,
    },
    /// The checkpoint has tensors the architecture does not use.
    #[error("checkpoint has tensors this architecture does not use: {keys:?}")]
    UnusedTensors {
        /// The unexpected keys.
        keys: Vec<String>,
    },
    /// A tensor's shape does not match what the config implies.
    #[error("tensor `{key}` has shape {actual:?}, the config implies {expected:?}")]
    ShapeMismatch {
        /// The tensor key or hook name.
        key: String,
        /// The expected shape.
        expected: Vec<usize>,
        /// The shape found.
        actual: Vec<usize>,
    },
    /// A tensor has a dtype the loader cannot convert to f32.
    #[error("tensor `{key}` has unsupported dtype {dtype}")]
    Dtype {
        /// The tensor key.
        key: String,
        /// The dtype found.
        dtype: String,
    },
    /// A hook name that is not a TransformerLens hook point of this model.
    #[error("unknown hook point `{name}`; valid names are: {valid}")]
    UnknownHook {
        /// The name given.
        name: String,
        /// The valid names (layer indices shown as `{i}`).
        valid: String,
    },
    /// A hook point TransformerLens has but this model's architecture does not fire.
    #[error("this model does not fire hook point `{name}`; it fires: {fired}")]
    HookNotFired {
        /// The requested name.
        name: String,
        /// The hooks the model fires.
        fired: String,
    },
    /// A model directory's `model_type` is not one of the supported families.
    #[error("unsupported model_type `{model_type}`; supported: {supported}")]
    UnsupportedModelType {
        /// The `config.json` value.
        model_type: String,
        /// Every supported `model_type`.
        supported: String,
    },
    /// A hook point on a layer the model does not have.
    #[error("hook point `{name}` names layer {layer}, but the model has {n_layers} layers")]
    HookLayerOutOfRange {
        /// The hook name.
        name: String,
        /// The layer index.
        layer: usize,
        /// The model's number of layers.
        n_layers: usize,
    },
    /// A hook function returned an activation of another shape than it was given.
    #[error("hook on `{hook}` returned shape {actual:?}, expected {expected:?}")]
    HookShape {
        /// The hook point.
        hook: String,
        /// The shape the hook received.
        expected: Vec<usize>,
        /// The shape it returned.
        actual: Vec<usize>,
    },
    /// A position given to a positional hook is beyond the sequence.
    #[error(
        "hook on `{hook}` targets position {position}, but the sequence has {n_pos} positions"
    )]
    PositionOutOfRange {
        /// The hook point.
        hook: String,
        /// The position asked for.
        position: usize,
        /// The sequence length.
        n_pos: usize,
    },
    /// A token id is not in the vocabulary.
    #[error("token id {id} at position {position} is out of range for vocabulary size {d_vocab}")]
    TokenOutOfRange {
        /// The token id.
        id: u32,
        /// Its position in the (flattened) input.
        position: usize,
        /// The vocabulary size.
        d_vocab: usize,
    },
    /// The input is longer than the model's context.
    #[error("sequence of {len} tokens exceeds the model's context of {n_ctx}")]
    SequenceTooLong {
        /// Tokens asked for (including cached ones).
        len: usize,
        /// The model's `n_ctx`.
        n_ctx: usize,
    },
    /// An empty batch or an empty sequence.
    #[error("empty input: {what}")]
    EmptyInput {
        /// What was empty.
        what: &'static str,
    },
    /// A text operation on a model loaded without `tokenizer.json`.
    #[error("the model has no tokenizer (load a directory with tokenizer.json)")]
    NoTokenizer,
    /// The tokenizer failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A word looked up in a prompt does not occur in it.
    #[error("`{word}` does not occur in the prompt")]
    WordNotFound {
        /// The word.
        word: String,
    },
    /// Invalid generation settings.
    #[error("invalid generation setting {name} = {value}")]
    InvalidSampling {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: f64,
    },
    /// A fallible hook function (see [`crate::HookSpec::hook_with`]) failed.
    #[error("hook on `{hook}` failed: {message}")]
    HookFailed {
        /// The hook point.
        hook: String,
        /// What went wrong.
        message: String,
    },
    /// Model download or cache lookup failed (the `hub` feature).
    #[error("hub: {0}")]
    Hub(String),
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
