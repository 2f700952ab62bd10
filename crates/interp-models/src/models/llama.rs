//! Llama 1–3 (Touvron et al. 2023; Llama 3, Dubey et al. 2024) and Mistral (Jiang et al.
//! 2023), from Hugging Face checkpoints (`LlamaForCausalLM`, `MistralForCausalLM`).
//!
//! Pre-norm blocks with RMSNorm, rotary positions (with Llama 3's frequency scaling when
//! `rope_scaling.rope_type = "llama3"`), grouped key/value heads, a SiLU-gated MLP; Mistral's
//! `sliding_window` makes every layer local. Numerics follow `transformers`'
//! `modeling_llama.py`; parameter names TransformerLens' `weight_conversions/llama.py`.
//!
//! | `config.json` key | default | becomes |
//! |---|---|---|
//! | `hidden_size`, `intermediate_size`, `num_hidden_layers`, `vocab_size` | required | `d_model`, `d_mlp`, `n_layers`, `d_vocab` |
//! | `num_attention_heads` | required | `n_heads` |
//! | `num_key_value_heads` | `num_attention_heads` | `n_key_value_heads` |
//! | `head_dim` | `hidden_size / num_attention_heads` | `d_head` |
//! | `max_position_embeddings` | 2048 | `n_ctx` |
//! | `rms_norm_eps` | 1e-6 | `eps` |
//! | `rope_theta`, `rope_scaling` (or `rope_parameters`) | 10000, none | rotary |
//! | `hidden_act` | `silu` | `act_fn` |
//! | `attention_bias` | false | Q/K/V/O biases |
//! | `sliding_window` (Mistral) | none | every layer local |
//! | `tie_word_embeddings` | false | `W_U = W_E.T` if true |

use std::path::Path;

use burn::tensor::backend::Backend;
use serde::Deserialize;

use crate::checkpoint::WeightReader;
use crate::config::{Activation, AttentionKind, Family, ModelConfig, Normalization, Positional};
use crate::error::{Error, Result};
use crate::models::parts::{self, AttnBiases, RopeKeys};
use crate::weights::{BlockWeights, TransformerWeights};

/// The `config.json` keys Llama, Mistral and Qwen2 share, keyed as Hugging Face writes them.
#[derive(Clone, Debug, Deserialize)]
pub struct LlamaConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Residual width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Number of blocks.
    pub num_hidden_layers: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads.
    pub num_key_value_heads: Option<usize>,
    /// Head width.
    pub head_dim: Option<usize>,
    /// Context length.
    #[serde(default = "default_context")]
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// MLP nonlinearity.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Whether Q/K/V/O projections have biases.
    #[serde(default)]
    pub attention_bias: bool,
    /// Whether the MLP projections have biases (unsupported).
    #[serde(default)]
    pub mlp_bias: bool,
    /// Mistral's sliding window (every layer).
    pub sliding_window: Option<usize>,
    /// Whether `lm_head` shares `embed_tokens`.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Beginning-of-sequence token.
    pub bos_token_id: Option<serde_json::Value>,
    /// End-of-sequence token (a list in some Llama 3 configs: the first is used).
    pub eos_token_id: Option<serde_json::Value>,
    /// Rotary settings.
    #[serde(flatten)]
    pub rope: RopeKeys,
}

fn default_context() -> usize {
    2048
}
fn default_eps() -> f64 {
    1e-6
}
fn default_act() -> String {
    "silu".into()
}

/// A token id from a `config.json` value: a number, or the first of a list.
pub(crate) fn token_id(v: &Option<serde_json::Value>) -> Option<u32> {
    match v.as_ref()? {
        serde_json::Value::Array(a) => a.first()?.as_u64().map(|x| x as u32),
        x => x.as_u64().map(|x| x as u32),
    }
}

impl LlamaConfig {
    /// Resolves into the architecture-independent config.
    ///
    /// # Errors
    /// [`Error::Config`] for missing or inconsistent values, [`Error::Unsupported`] for
    /// features this implementation does not have.
    pub fn resolve(&self, family: Family, path: &Path) -> Result<ModelConfig> {
        let n_heads = self.num_attention_heads;
        let n_kv = self.num_key_value_heads.unwrap_or(n_heads);
        parts::check_positive(
            &[
                ("vocab_size", self.vocab_size),
                ("hidden_size", self.hidden_size),
                ("intermediate_size", self.intermediate_size),
                ("num_hidden_layers", self.num_hidden_layers),
                ("num_attention_heads", n_heads),
                ("max_position_embeddings", self.max_position_embeddings),
            ],
            path,
        )?;
        parts::check_heads(n_heads, n_kv, path)?;
        let d_head = match self.head_dim {
            Some(d) => d,
            None if self.hidden_size.is_multiple_of(n_heads) => self.hidden_size / n_heads,
            None => {
                return Err(Error::Config {
                    path: path.to_path_buf(),
                    reason: format!(
                        "hidden_size = {} is not divisible by num_attention_heads = {n_heads}",
                        self.hidden_size
                    ),
                })
            }
        };
        let act_fn = Activation::from_hf(&self.hidden_act).ok_or(Error::Unsupported {
            key: "hidden_act",
            value: self.hidden_act.clone(),
        })?;
        if self.mlp_bias {
            return Err(Error::Unsupported {
                key: "mlp_bias",
                value: "true".into(),
            });
        }
        let rotary = self.rope.resolve(d_head, 10_000.0, path)?;
        let n_layers = self.num_hidden_layers;
        Ok(ModelConfig {
            family,
            n_layers,
            d_model: self.hidden_size,
            n_heads,
            n_key_value_heads: (n_kv != n_heads).then_some(n_kv),
            d_head,
            d_mlp: self.intermediate_size,
            d_vocab: self.vocab_size,
            n_ctx: self.max_position_embeddings,
            act_fn,
            eps: self.rms_norm_eps,
            normalization: Normalization::RmsNorm,
            positional: Positional::Rotary(rotary),
            embed_scale: None,
            gated_mlp: true,
            parallel_attn_mlp: false,
            post_norms: false,
            attn_scale: None,
            scale_attn_by_inverse_layer_idx: false,
            attn_scores_soft_cap: None,
            output_logits_soft_cap: None,
            sliding_window: self.sliding_window,
            layer_types: match self.sliding_window {
                Some(_) => vec![AttentionKind::Local; n_layers],
                None => Vec::new(),
            },
            bos_token_id: token_id(&self.bos_token_id),
            eos_token_id: token_id(&self.eos_token_id),
        })
    }
}

/// Reads the weights of a Llama-layout checkpoint (`model.embed_tokens`, `model.layers.N.…`,
/// `model.norm`, `lm_head`), with the attention biases `biases`.
pub fn load_weights<B: Backend>(
    r: &mut WeightReader<'_>,
    cfg: &ModelConfig,
    biases: AttnBiases,
    tie_word_embeddings: bool,
    device: &B::Device,
) -> Result<TransformerWeights<B>> {
    let d = cfg.d_model;
    let emb = parts::embeddings(
        r,
        "model.embed_tokens.weight",
        "lm_head.weight",
        false,
        cfg,
        tie_word_embeddings,
        device,
    )?;
    let mut blocks = Vec::with_capacity(cfg.n_layers);
    for i in 0..cfg.n_layers {
        let p = format!("model.layers.{i}.");
        blocks.push(BlockWeights {
            ln1: parts::rms_norm(r, &format!("{p}input_layernorm.weight"), d, false, device)?,
            attn: parts::attention(r, &format!("{p}self_attn."), "o_proj", cfg, biases, device)?,
            ln1_post: None,
            ln2: Some(parts::rms_norm(
                r,
                &format!("{p}post_attention_layernorm.weight"),
                d,
                false,
                device,
            )?),
            mlp: parts::gated_mlp(r, &format!("{p}mlp."), cfg, device)?,
            ln2_post: None,
        });
    }
    let ln_final = parts::rms_norm(r, "model.norm.weight", d, false, device)?;
    r.skip(parts::is_rotary_buffer);
    Ok(TransformerWeights {
        w_e: emb.w_e,
        w_pos: None,
        blocks,
        ln_final,
        w_u: emb.w_u,
        b_u: emb.b_u,
    })
}

/// Loads a Llama or Mistral checkpoint from its `config.json` text.
pub(crate) fn load<B: Backend>(
    text: &str,
    path: &Path,
    r: &mut WeightReader<'_>,
    device: &B::Device,
) -> Result<(ModelConfig, TransformerWeights<B>)> {
    let hf: LlamaConfig = super::parse_config(text, path)?;
    let cfg = hf.resolve(Family::Llama, path)?;
    let biases = AttnBiases {
        qkv: hf.attention_bias,
        out: hf.attention_bias,
    };
    let weights = load_weights(r, &cfg, biases, hf.tie_word_embeddings, device)?;
    Ok((cfg, weights))
}
