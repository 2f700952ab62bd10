//! Gemma 2 (Gemma Team 2024), from Hugging Face checkpoints (`Gemma2ForCausalLM`).
//!
//! RMSNorm with `(1 + w)` scales (stored as `w`; loaded as `1 + w`, as TransformerLens
//! converts them), embeddings scaled by `√d_model`, grouped key/value heads, rotary positions,
//! a GELU-gated MLP, norms both before and after attention and MLP (`ln1_post`, `ln2_post`:
//! `hook_attn_out` and `hook_mlp_out` are what is added to the residual stream, after them),
//! scores divided by `√query_pre_attn_scalar` and soft-capped, local (sliding-window) and global
//! layers alternating, soft-capped logits, tied embeddings. Numerics follow `transformers`'
//! `modeling_gemma2.py`.
//!
//! | `config.json` key | default | becomes |
//! |---|---|---|
//! | `hidden_size`, `intermediate_size`, `num_hidden_layers`, `vocab_size` | required | `d_model`, `d_mlp`, `n_layers`, `d_vocab` |
//! | `num_attention_heads`, `num_key_value_heads`, `head_dim` | required | heads |
//! | `query_pre_attn_scalar` | `head_dim` | scores divided by its square root |
//! | `attn_logit_softcapping`, `final_logit_softcapping` | none | soft caps |
//! | `sliding_window`, `layer_types` | 4096; even layers local | local layers |
//! | `hidden_activation` (or `hidden_act`) | `gelu_pytorch_tanh` | `act_fn` |
//! | `rms_norm_eps`, `rope_theta`, `max_position_embeddings` | 1e-6, 10000, 8192 | |
//! | `tie_word_embeddings` | true | `W_U = W_E.T` |

use std::path::Path;

use burn::tensor::backend::Backend;
use serde::Deserialize;

use crate::checkpoint::WeightReader;
use crate::config::{Activation, AttentionKind, Family, ModelConfig, Normalization, Positional};
use crate::error::{Error, Result};
use crate::models::llama::token_id;
use crate::models::parts::{self, AttnBiases, RopeKeys};
use crate::weights::{BlockWeights, TransformerWeights};

/// Gemma 2's `config.json`, keyed as Hugging Face writes it.
#[derive(Clone, Debug, Deserialize)]
pub struct Gemma2Config {
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
    pub num_key_value_heads: usize,
    /// Head width.
    pub head_dim: usize,
    /// Scores are divided by its square root.
    pub query_pre_attn_scalar: Option<f64>,
    /// Attention-score soft cap.
    pub attn_logit_softcapping: Option<f64>,
    /// Logit soft cap.
    pub final_logit_softcapping: Option<f64>,
    /// Window of the local layers.
    #[serde(default = "default_window")]
    pub sliding_window: usize,
    /// `"sliding_attention"` / `"full_attention"` per layer (newer configs).
    pub layer_types: Option<Vec<String>>,
    /// MLP nonlinearity.
    pub hidden_activation: Option<String>,
    /// MLP nonlinearity (older configs).
    pub hidden_act: Option<String>,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// Context length.
    #[serde(default = "default_context")]
    pub max_position_embeddings: usize,
    /// Attention projection biases.
    #[serde(default)]
    pub attention_bias: bool,
    /// Whether `lm_head` shares `embed_tokens`.
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    /// Beginning-of-sequence token.
    pub bos_token_id: Option<serde_json::Value>,
    /// End-of-sequence token.
    pub eos_token_id: Option<serde_json::Value>,
    /// Rotary settings.
    #[serde(flatten)]
    pub rope: RopeKeys,
}

fn default_window() -> usize {
    4096
}
fn default_eps() -> f64 {
    1e-6
}
fn default_context() -> usize {
    8192
}
fn default_true() -> bool {
    true
}

impl Gemma2Config {
    /// Resolves into the architecture-independent config.
    ///
    /// # Errors
    /// [`Error::Config`] for missing or inconsistent values, [`Error::Unsupported`] for
    /// features this implementation does not have.
    pub fn resolve(&self, path: &Path) -> Result<ModelConfig> {
        let n_layers = self.num_hidden_layers;
        parts::check_positive(
            &[
                ("vocab_size", self.vocab_size),
                ("hidden_size", self.hidden_size),
                ("intermediate_size", self.intermediate_size),
                ("num_hidden_layers", n_layers),
                ("head_dim", self.head_dim),
                ("sliding_window", self.sliding_window),
            ],
            path,
        )?;
        parts::check_heads(self.num_attention_heads, self.num_key_value_heads, path)?;
        let act = self
            .hidden_activation
            .as_deref()
            .or(self.hidden_act.as_deref())
            .unwrap_or("gelu_pytorch_tanh");
        let act_fn = Activation::from_hf(act).ok_or(Error::Unsupported {
            key: "hidden_activation",
            value: act.to_string(),
        })?;
        let layer_types = match &self.layer_types {
            Some(types) => {
                if types.len() != n_layers {
                    return Err(Error::Config {
                        path: path.to_path_buf(),
                        reason: format!(
                            "layer_types has {} entries for {n_layers} layers",
                            types.len()
                        ),
                    });
                }
                types
                    .iter()
                    .map(|t| match t.as_str() {
                        "sliding_attention" => Ok(AttentionKind::Local),
                        "full_attention" => Ok(AttentionKind::Global),
                        other => Err(Error::Unsupported {
                            key: "layer_types",
                            value: other.to_string(),
                        }),
                    })
                    .collect::<Result<Vec<_>>>()?
            }
            // Gemma 2's pattern: layers 0, 2, 4, … slide.
            None => (0..n_layers)
                .map(|l| {
                    if l % 2 == 0 {
                        AttentionKind::Local
                    } else {
                        AttentionKind::Global
                    }
                })
                .collect(),
        };
        let rotary = self.rope.resolve(self.head_dim, 10_000.0, path)?;
        let n_kv = self.num_key_value_heads;
        Ok(ModelConfig {
            family: Family::Gemma2,
            n_layers,
            d_model: self.hidden_size,
            n_heads: self.num_attention_heads,
            n_key_value_heads: (n_kv != self.num_attention_heads).then_some(n_kv),
            d_head: self.head_dim,
            d_mlp: self.intermediate_size,
            d_vocab: self.vocab_size,
            n_ctx: self.max_position_embeddings,
            act_fn,
            eps: self.rms_norm_eps,
            normalization: Normalization::RmsNorm,
            positional: Positional::Rotary(rotary),
            embed_scale: Some((self.hidden_size as f64).sqrt()),
            gated_mlp: true,
            parallel_attn_mlp: false,
            post_norms: true,
            attn_scale: Some(
                self.query_pre_attn_scalar
                    .unwrap_or(self.head_dim as f64)
                    .sqrt(),
            ),
            scale_attn_by_inverse_layer_idx: false,
            attn_scores_soft_cap: self.attn_logit_softcapping,
            output_logits_soft_cap: self.final_logit_softcapping,
            sliding_window: Some(self.sliding_window),
            layer_types,
            bos_token_id: token_id(&self.bos_token_id),
            eos_token_id: token_id(&self.eos_token_id),
        })
    }
}

/// Loads a Gemma 2 checkpoint from its `config.json` text.
pub(crate) fn load<B: Backend>(
    text: &str,
    path: &Path,
    r: &mut WeightReader<'_>,
    device: &B::Device,
) -> Result<(ModelConfig, TransformerWeights<B>)> {
    let hf: Gemma2Config = super::parse_config(text, path)?;
    let cfg = hf.resolve(path)?;
    let d = cfg.d_model;
    let emb = parts::embeddings(
        r,
        "model.embed_tokens.weight",
        "lm_head.weight",
        false,
        &cfg,
        hf.tie_word_embeddings,
        device,
    )?;
    let biases = AttnBiases {
        qkv: hf.attention_bias,
        out: hf.attention_bias,
    };
    let mut blocks = Vec::with_capacity(cfg.n_layers);
    for i in 0..cfg.n_layers {
        let p = format!("model.layers.{i}.");
        let mut norm =
            |name: &str| parts::rms_norm(r, &format!("{p}{name}.weight"), d, true, device);
        let ln1 = norm("input_layernorm")?;
        let ln1_post = norm("post_attention_layernorm")?;
        let ln2 = norm("pre_feedforward_layernorm")?;
        let ln2_post = norm("post_feedforward_layernorm")?;
        blocks.push(BlockWeights {
            ln1,
            attn: parts::attention(r, &format!("{p}self_attn."), "o_proj", &cfg, biases, device)?,
            ln1_post: Some(ln1_post),
            ln2: Some(ln2),
            mlp: parts::gated_mlp(r, &format!("{p}mlp."), &cfg, device)?,
            ln2_post: Some(ln2_post),
        });
    }
    let ln_final = parts::rms_norm(r, "model.norm.weight", d, true, device)?;
    r.skip(parts::is_rotary_buffer);
    let weights = TransformerWeights {
        w_e: emb.w_e,
        w_pos: None,
        blocks,
        ln_final,
        w_u: emb.w_u,
        b_u: emb.b_u,
    };
    Ok((cfg, weights))
}
