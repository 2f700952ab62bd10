//! Qwen2 and Qwen2.5 (Yang et al. 2024), from Hugging Face checkpoints (`Qwen2ForCausalLM`).
//!
//! Llama's block (see [`super::llama`]) with biases on the query, key and value projections
//! (none on the output projection). The same `config.json` keys as Llama; Qwen2's
//! `use_sliding_window` (off in every released checkpoint) is not supported.

use std::path::Path;

use burn::tensor::backend::Backend;
use serde::Deserialize;

use crate::checkpoint::WeightReader;
use crate::config::{Family, ModelConfig};
use crate::error::{Error, Result};
use crate::models::llama::{self, LlamaConfig};
use crate::models::parts::AttnBiases;
use crate::weights::TransformerWeights;

/// Qwen2's own `config.json` keys beyond Llama's.
#[derive(Clone, Debug, Deserialize)]
pub struct Qwen2Extra {
    /// Sliding-window attention on the upper layers (unsupported).
    #[serde(default)]
    pub use_sliding_window: bool,
}

/// Loads a Qwen2 checkpoint from its `config.json` text.
pub(crate) fn load<B: Backend>(
    text: &str,
    path: &Path,
    r: &mut WeightReader<'_>,
    device: &B::Device,
) -> Result<(ModelConfig, TransformerWeights<B>)> {
    let mut hf: LlamaConfig = super::parse_config(text, path)?;
    let extra: Qwen2Extra = super::parse_config(text, path)?;
    if extra.use_sliding_window {
        return Err(Error::Unsupported {
            key: "use_sliding_window",
            value: "true".into(),
        });
    }
    // Qwen2 configs carry `sliding_window` even when it is off.
    hf.sliding_window = None;
    let cfg = hf.resolve(Family::Qwen2, path)?;
    let biases = AttnBiases {
        qkv: true,
        out: false,
    };
    let weights = llama::load_weights(r, &cfg, biases, hf.tie_word_embeddings, device)?;
    Ok((cfg, weights))
}
