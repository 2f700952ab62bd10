//! How a store is configured ([`StoreConfig`]) and how wide each hook's rows are.

use interp_models::hooks::HookPoint;
use interp_models::ModelConfig;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How an [`ActivationStore`](super::ActivationStore) builds windows, runs the model and mixes rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoreConfig {
    /// TransformerLens hook names to collect, in the order batches are returned.
    pub hooks: Vec<String>,
    /// Tokens per window (at most the model's `n_ctx`). Default 128.
    pub context_size: usize,
    /// Start every window with BOS. Default true.
    pub prepend_bos: bool,
    /// Put BOS between documents that share a window. Default true.
    pub separate_with_bos: bool,
    /// Leave out the activation at a window's first position when it holds BOS. Default true.
    pub exclude_bos: bool,
    /// Leave out positions holding any of these tokens. Default none.
    pub exclude_tokens: Vec<u32>,
    /// Windows per forward pass. Default 8.
    pub windows_per_forward: usize,
    /// Capacity of the mixing buffer, in rows (tokens); at least two windows' worth. Memory is
    /// `buffer_rows × Σ d_hook × 4` bytes. Default 65 536.
    pub buffer_rows: usize,
    /// Seed of the buffer shuffles. Default 0.
    pub seed: u64,
    /// Start the corpus over when it ends (default true); otherwise the store runs dry with
    /// [`Error::Data`] once the corpus and the buffer are used up.
    pub cycle: bool,
    /// Show a progress bar (tokens and tokens/s) on stderr; it draws only when stderr is a
    /// terminal. Default true.
    pub progress: bool,
    /// The model's name, recorded in shard manifests.
    pub model_name: Option<String>,
}

impl StoreConfig {
    /// The defaults, collecting `hooks`.
    pub fn new<S: Into<String>>(hooks: impl IntoIterator<Item = S>) -> Self {
        StoreConfig {
            hooks: hooks.into_iter().map(Into::into).collect(),
            context_size: 128,
            prepend_bos: true,
            separate_with_bos: true,
            exclude_bos: true,
            exclude_tokens: Vec::new(),
            windows_per_forward: 8,
            buffer_rows: 65_536,
            seed: 0,
            cycle: true,
            progress: true,
            model_name: None,
        }
    }
}

/// The activation width of `point` in a model of config `cfg` (the model's own vocabulary:
/// grouped key/value heads make `hook_k` / `hook_v` narrower than `hook_q`).
pub(super) fn hook_width(cfg: &ModelConfig, point: HookPoint) -> Result<usize> {
    cfg.row_width(&point).ok_or_else(|| Error::Unsupported {
        what: format!("collecting `{point}` (its activations are not one vector per token)"),
    })
}
