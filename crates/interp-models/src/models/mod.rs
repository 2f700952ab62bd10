//! One module per architecture family: its Hugging Face `config.json` mirror, the resolution
//! into [`ModelConfig`], and the map from its checkpoint's tensor names onto the shared
//! [`TransformerWeights`] layout, read through the checked [`WeightReader`]. The forward pass
//! is shared ([`crate::transformer`], [`crate::components`]).
//!
//! | family | `model_type` | exercises |
//! |---|---|---|
//! | [`gpt2`] | `gpt2` | learned positions, LayerNorm, fused `c_attn`, GELU MLP |
//! | [`gemma2`] | `gemma2` | RMSNorm `(1 + w)`, √d embedding scale, grouped KV, rotary, GELU-gated MLP, post-norms, local/global layers, score and logit soft caps |
//! | [`llama`] | `llama`, `mistral` | RMSNorm, grouped KV, rotary with Llama 3 scaling, SiLU-gated MLP, untied unembedding, sliding window (Mistral) |
//! | [`qwen2`] | `qwen2` | Llama's block with Q/K/V biases |
//! | [`phi`] | `phi` | parallel attention + MLP (no `hook_resid_mid`), partial rotary, LayerNorm, biases everywhere incl. `b_U` |
//!
//! Adding a family is one file here plus one arm in [`load`] (and its `model_type` in
//! [`Family`]); `docs/architectures.md` walks through it.

pub mod gemma2;
pub mod gpt2;
pub mod llama;
pub(crate) mod parts;
pub mod phi;
pub mod qwen2;

use std::path::Path;

use burn::tensor::backend::Backend;

use crate::checkpoint::WeightReader;
use crate::config::{Family, ModelConfig};
use crate::error::{Error, Result};
use crate::weights::TransformerWeights;

/// Resolves `config.json` (`text`, read from `path`) as `family` and reads its weights.
pub(crate) fn load<B: Backend>(
    family: Family,
    text: &str,
    path: &Path,
    r: &mut WeightReader<'_>,
    device: &B::Device,
) -> Result<(ModelConfig, TransformerWeights<B>)> {
    match family {
        Family::Gpt2 => gpt2::load(text, path, r, device),
        Family::Gemma2 => gemma2::load(text, path, r, device),
        Family::Llama => llama::load(text, path, r, device),
        Family::Qwen2 => qwen2::load(text, path, r, device),
        Family::Phi => phi::load(text, path, r, device),
    }
}

/// Parses a family's `config.json` mirror.
pub(crate) fn parse_config<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}
