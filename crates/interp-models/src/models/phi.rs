//! Phi-1, Phi-1.5 and Phi-2 (Microsoft 2023), from Hugging Face checkpoints
//! (`PhiForCausalLM`, `model_type` `phi`).
//!
//! A parallel block: one LayerNorm feeds both attention and the MLP, and both outputs are
//! added to the block's input (no `hook_resid_mid`). As TransformerLens converts Phi, the MLP's
//! norm is `ln2` with `input_layernorm`'s weights (so `ln2.hook_*` fire and `fold_ln` folds it
//! into the MLP). Rotary positions on the first
//! `partial_rotary_factor · head_dim` dimensions of each head, biases everywhere (the
//! unembedding too), a plain GELU MLP. Numerics follow `transformers`' `modeling_phi.py`.
//!
//! | `config.json` key | default | becomes |
//! |---|---|---|
//! | `hidden_size`, `intermediate_size`, `num_hidden_layers`, `vocab_size` | required | `d_model`, `d_mlp`, `n_layers`, `d_vocab` |
//! | `num_attention_heads` | required | `n_heads`, `d_head = hidden_size / n_heads` |
//! | `num_key_value_heads` | `num_attention_heads` | `n_key_value_heads` |
//! | `partial_rotary_factor` | 0.5 | rotary dimension |
//! | `rope_theta` | 10000 | rotary base |
//! | `layer_norm_eps`, `max_position_embeddings` | 1e-5, 2048 | |
//! | `hidden_act` | `gelu_new` | `act_fn` |
//! | `qk_layernorm` | false | unsupported when true |
//! | `tie_word_embeddings` | false | `W_U = W_E.T` if true |

use std::path::Path;

use burn::tensor::backend::Backend;
use serde::Deserialize;

use crate::checkpoint::{param1, param2, WeightReader};
use crate::config::{Activation, Family, ModelConfig, Normalization, Positional};
use crate::error::{Error, Result};
use crate::models::llama::token_id;
use crate::models::parts::{self, AttnBiases, RopeKeys};
use crate::weights::{BlockWeights, MlpWeights, TransformerWeights};

/// Phi's `config.json`, keyed as Hugging Face writes it.
#[derive(Clone, Debug, Deserialize)]
pub struct PhiConfig {
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
    /// Fraction of each head that rotates.
    #[serde(default = "default_partial")]
    pub partial_rotary_factor: f64,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Context length.
    #[serde(default = "default_context")]
    pub max_position_embeddings: usize,
    /// MLP nonlinearity.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// LayerNorms on queries and keys (unsupported).
    #[serde(default)]
    pub qk_layernorm: bool,
    /// Whether `lm_head` shares `embed_tokens`.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Beginning-of-sequence token.
    pub bos_token_id: Option<serde_json::Value>,
    /// End-of-sequence token.
    pub eos_token_id: Option<serde_json::Value>,
    /// Rotary settings.
    #[serde(flatten)]
    pub rope: RopeKeys,
}

fn default_partial() -> f64 {
    0.5
}
fn default_eps() -> f64 {
    1e-5
}
fn default_context() -> usize {
    2048
}
fn default_act() -> String {
    "gelu_new".into()
}

impl PhiConfig {
    /// Resolves into the architecture-independent config.
    ///
    /// # Errors
    /// [`Error::Config`] for missing or inconsistent values, [`Error::Unsupported`] for
    /// features this implementation does not have.
    pub fn resolve(&self, path: &Path) -> Result<ModelConfig> {
        let n_heads = self.num_attention_heads;
        let n_kv = self.num_key_value_heads.unwrap_or(n_heads);
        parts::check_positive(
            &[
                ("vocab_size", self.vocab_size),
                ("hidden_size", self.hidden_size),
                ("intermediate_size", self.intermediate_size),
                ("num_hidden_layers", self.num_hidden_layers),
                ("num_attention_heads", n_heads),
            ],
            path,
        )?;
        parts::check_heads(n_heads, n_kv, path)?;
        if !self.hidden_size.is_multiple_of(n_heads) {
            return Err(Error::Config {
                path: path.to_path_buf(),
                reason: format!(
                    "hidden_size = {} is not divisible by num_attention_heads = {n_heads}",
                    self.hidden_size
                ),
            });
        }
        if self.qk_layernorm {
            return Err(Error::Unsupported {
                key: "qk_layernorm",
                value: "true".into(),
            });
        }
        let act_fn = Activation::from_hf(&self.hidden_act).ok_or(Error::Unsupported {
            key: "hidden_act",
            value: self.hidden_act.clone(),
        })?;
        let d_head = self.hidden_size / n_heads;
        // As transformers: int(partial_rotary_factor · head_dim).
        let rotary_dim = (self.partial_rotary_factor * d_head as f64) as usize;
        let rotary = self.rope.resolve(rotary_dim, 10_000.0, path)?;
        Ok(ModelConfig {
            family: Family::Phi,
            n_layers: self.num_hidden_layers,
            d_model: self.hidden_size,
            n_heads,
            n_key_value_heads: (n_kv != n_heads).then_some(n_kv),
            d_head,
            d_mlp: self.intermediate_size,
            d_vocab: self.vocab_size,
            n_ctx: self.max_position_embeddings,
            act_fn,
            eps: self.layer_norm_eps,
            normalization: Normalization::LayerNorm,
            positional: Positional::Rotary(rotary),
            embed_scale: None,
            gated_mlp: false,
            parallel_attn_mlp: true,
            post_norms: false,
            attn_scale: None,
            scale_attn_by_inverse_layer_idx: false,
            attn_scores_soft_cap: None,
            output_logits_soft_cap: None,
            sliding_window: None,
            layer_types: Vec::new(),
            bos_token_id: token_id(&self.bos_token_id),
            eos_token_id: token_id(&self.eos_token_id),
        })
    }
}

/// Loads a Phi checkpoint from its `config.json` text.
pub(crate) fn load<B: Backend>(
    text: &str,
    path: &Path,
    r: &mut WeightReader<'_>,
    device: &B::Device,
) -> Result<(ModelConfig, TransformerWeights<B>)> {
    let hf: PhiConfig = super::parse_config(text, path)?;
    let cfg = hf.resolve(path)?;
    let (d, m) = (cfg.d_model, cfg.d_mlp);
    let emb = parts::embeddings(
        r,
        "model.embed_tokens.weight",
        "lm_head.weight",
        true,
        &cfg,
        hf.tie_word_embeddings,
        device,
    )?;
    let biases = AttnBiases {
        qkv: true,
        out: true,
    };
    let mut blocks = Vec::with_capacity(cfg.n_layers);
    for i in 0..cfg.n_layers {
        let p = format!("model.layers.{i}.");
        let key = |s: &str| format!("{p}{s}");
        blocks.push(BlockWeights {
            ln1: parts::layer_norm(r, &key("input_layernorm"), d, device)?,
            attn: parts::attention(r, &key("self_attn."), "dense", &cfg, biases, device)?,
            ln1_post: None,
            ln2: Some(parts::layer_norm(r, &key("input_layernorm"), d, device)?),
            mlp: MlpWeights {
                w_in: param2(r.linear(&key("mlp.fc1.weight"), d, m)?, device),
                b_in: param1(r.tensor(&key("mlp.fc1.bias"), &[m])?, device),
                w_gate: None,
                w_out: param2(r.linear(&key("mlp.fc2.weight"), m, d)?, device),
                b_out: param1(r.tensor(&key("mlp.fc2.bias"), &[d])?, device),
            },
            ln2_post: None,
        });
    }
    let ln_final = parts::layer_norm(r, "model.final_layernorm", d, device)?;
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
