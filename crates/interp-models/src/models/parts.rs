//! Checkpoint pieces several families share: the rotary settings of a `config.json` (both the
//! `rope_theta` + `rope_scaling` keys and transformers 5's `rope_parameters`), and the tensors
//! of Llama-style blocks (`model.layers.N.self_attn.{q,k,v,o}_proj`, `mlp.{gate,up,down}_proj`)
//! that Llama, Mistral, Qwen2 and Gemma-2 checkpoints all use.

use std::path::Path;

use burn::tensor::backend::Backend;
use serde::Deserialize;
use serde_json::Value;

use crate::checkpoint::{concat, concat_columns, offset, param1, param2, zeros, WeightReader};
use crate::config::{Llama3RopeScaling, ModelConfig, Rotary};
use crate::error::{Error, Result};
use crate::weights::{AttentionWeights, LayerNormWeights, MlpWeights};

/// The rotary keys of a `config.json`, in either layout.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RopeKeys {
    /// θ (older layout).
    pub rope_theta: Option<f64>,
    /// Scaling (older layout): `{"rope_type" | "type": …, "factor": …, …}`.
    pub rope_scaling: Option<Value>,
    /// transformers 5: `{"rope_type": …, "rope_theta": …, "factor": …, …}`.
    pub rope_parameters: Option<Value>,
}

impl RopeKeys {
    /// The rotary embedding over the first `dim` dimensions of each head, θ defaulting to
    /// `default_theta`.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a scaling type other than none / `default` / `llama3`;
    /// [`Error::Config`] for a `llama3` scaling missing one of its numbers.
    pub fn resolve(&self, dim: usize, default_theta: f64, path: &Path) -> Result<Rotary> {
        let params = self.rope_parameters.as_ref().filter(|v| v.is_object());
        let scaling = params.or(self.rope_scaling.as_ref().filter(|v| v.is_object()));
        let base = params
            .and_then(|p| p.get("rope_theta"))
            .and_then(Value::as_f64)
            .or(self.rope_theta)
            .unwrap_or(default_theta);
        let kind = scaling
            .and_then(|s| s.get("rope_type").or_else(|| s.get("type")))
            .and_then(Value::as_str)
            .unwrap_or("default");
        let llama3_scaling = match kind {
            "default" => None,
            "llama3" => {
                let s = scaling.expect("a rope type comes from a scaling object");
                let num = |key: &str| {
                    s.get(key)
                        .and_then(Value::as_f64)
                        .ok_or_else(|| Error::Config {
                            path: path.to_path_buf(),
                            reason: format!("llama3 rope scaling lacks `{key}`"),
                        })
                };
                Some(Llama3RopeScaling {
                    factor: num("factor")?,
                    low_freq_factor: num("low_freq_factor")?,
                    high_freq_factor: num("high_freq_factor")?,
                    original_context: num("original_max_position_embeddings")?,
                })
            }
            other => {
                return Err(Error::Unsupported {
                    key: "rope_type",
                    value: other.to_string(),
                })
            }
        };
        if dim == 0 || !dim.is_multiple_of(2) {
            return Err(Error::Config {
                path: path.to_path_buf(),
                reason: format!("rotary dimension {dim} must be even and positive"),
            });
        }
        Ok(Rotary {
            dim,
            base,
            llama3_scaling,
        })
    }
}

/// Checks the head counts: `n_heads` positive and a multiple of `n_kv_heads`.
pub fn check_heads(n_heads: usize, n_kv_heads: usize, path: &Path) -> Result<()> {
    if n_heads == 0 || n_kv_heads == 0 || !n_heads.is_multiple_of(n_kv_heads) {
        return Err(Error::Config {
            path: path.to_path_buf(),
            reason: format!(
                "num_key_value_heads = {n_kv_heads} does not divide num_attention_heads = {n_heads}"
            ),
        });
    }
    Ok(())
}

/// Checks sizes that must be positive.
pub fn check_positive(values: &[(&str, usize)], path: &Path) -> Result<()> {
    match values.iter().find(|(_, v)| *v == 0) {
        Some((name, _)) => Err(Error::Config {
            path: path.to_path_buf(),
            reason: format!("`{name}` must be positive"),
        }),
        None => Ok(()),
    }
}

/// Which optional biases a Llama-style attention has.
#[derive(Clone, Copy, Debug)]
pub struct AttnBiases {
    /// `q_proj`, `k_proj`, `v_proj` biases (Qwen2; Llama with `attention_bias`).
    pub qkv: bool,
    /// `o_proj` (`dense` for Phi) bias.
    pub out: bool,
}

/// Attention from separate `{q,k,v}_proj` and an output projection named `out` under `prefix`
/// (`model.layers.N.self_attn.`), fused into `W_QKV`.
pub fn attention<B: Backend>(
    r: &mut WeightReader<'_>,
    prefix: &str,
    out: &str,
    cfg: &ModelConfig,
    biases: AttnBiases,
    device: &B::Device,
) -> Result<AttentionWeights<B>> {
    let d = cfg.d_model;
    let q = cfg.n_heads * cfg.d_head;
    let kv = cfg.n_kv_heads() * cfg.d_head;
    let key = |s: &str| format!("{prefix}{s}");
    let w_q = r.linear(&key("q_proj.weight"), d, q)?;
    let w_k = r.linear(&key("k_proj.weight"), d, kv)?;
    let w_v = r.linear(&key("v_proj.weight"), d, kv)?;
    let b_qkv = if biases.qkv {
        concat(&[
            r.tensor(&key("q_proj.bias"), &[q])?,
            r.tensor(&key("k_proj.bias"), &[kv])?,
            r.tensor(&key("v_proj.bias"), &[kv])?,
        ])
    } else {
        zeros(q + 2 * kv)
    };
    let w_o = r.linear(&key(&format!("{out}.weight")), q, d)?;
    let b_o = if biases.out {
        r.tensor(&key(&format!("{out}.bias")), &[d])?
    } else {
        zeros(d)
    };
    Ok(AttentionWeights {
        w_qkv: param2(concat_columns(&[w_q, w_k, w_v]), device),
        b_qkv: param1(b_qkv, device),
        w_o: param2(w_o, device),
        b_o: param1(b_o, device),
    })
}

/// A gated MLP from `gate_proj`, `up_proj`, `down_proj` (no biases) under `prefix`
/// (`model.layers.N.mlp.`): `W_gate = gate_proj.T`, `W_in = up_proj.T`, `W_out = down_proj.T`,
/// as TransformerLens converts them.
pub fn gated_mlp<B: Backend>(
    r: &mut WeightReader<'_>,
    prefix: &str,
    cfg: &ModelConfig,
    device: &B::Device,
) -> Result<MlpWeights<B>> {
    let (d, m) = (cfg.d_model, cfg.d_mlp);
    Ok(MlpWeights {
        w_gate: Some(param2(
            r.linear(&format!("{prefix}gate_proj.weight"), d, m)?,
            device,
        )),
        w_in: param2(r.linear(&format!("{prefix}up_proj.weight"), d, m)?, device),
        b_in: param1(zeros(m), device),
        w_out: param2(
            r.linear(&format!("{prefix}down_proj.weight"), m, d)?,
            device,
        ),
        b_out: param1(zeros(d), device),
    })
}

/// An RMSNorm scale `key` (`[d_model]`), `1 + w` when `one_plus` (Gemma stores the offset
/// from one), with a zero shift.
pub fn rms_norm<B: Backend>(
    r: &mut WeightReader<'_>,
    key: &str,
    d: usize,
    one_plus: bool,
    device: &B::Device,
) -> Result<LayerNormWeights<B>> {
    let w = r.tensor(key, &[d])?;
    let w = if one_plus { offset(w, 1.0) } else { w };
    Ok(LayerNormWeights {
        w: param1(w, device),
        b: param1(zeros(d), device),
    })
}

/// A LayerNorm's `{stem}.weight` and `{stem}.bias`.
pub fn layer_norm<B: Backend>(
    r: &mut WeightReader<'_>,
    stem: &str,
    d: usize,
    device: &B::Device,
) -> Result<LayerNormWeights<B>> {
    Ok(LayerNormWeights {
        w: param1(r.tensor(&format!("{stem}.weight"), &[d])?, device),
        b: param1(r.tensor(&format!("{stem}.bias"), &[d])?, device),
    })
}

/// Buffers some checkpoints carry that are not parameters (rotary frequency tables).
pub fn is_rotary_buffer(key: &str) -> bool {
    key.ends_with(".rotary_emb.inv_freq")
}

/// The embedding `embed_key` and the unembedding: `lm_head_key` (with its bias
/// `{lm_head}.bias` when `lm_head_bias`) if the checkpoint has it, else — with tied
/// embeddings — `W_E`'s own storage, transposed (no second copy).
///
/// # Errors
/// [`Error::MissingTensor`] for an untied model without `lm_head_key`; shape errors.
pub fn embeddings<B: Backend>(
    r: &mut WeightReader<'_>,
    embed_key: &str,
    lm_head_key: &str,
    lm_head_bias: bool,
    cfg: &ModelConfig,
    tie: bool,
    device: &B::Device,
) -> Result<Embeddings<B>> {
    use burn::module::Param;
    let (v, d) = (cfg.d_vocab, cfg.d_model);
    let w_e = param2::<B>(r.tensor(embed_key, &[v, d])?, device);
    let w_u = match r.optional(lm_head_key, &[v, d])? {
        Some(t) => param2(crate::checkpoint::transpose(&t), device),
        None if tie => Param::from_tensor(w_e.val().transpose()),
        None => {
            return Err(Error::MissingTensor {
                key: lm_head_key.to_string(),
            })
        }
    };
    let b_u = if lm_head_bias {
        let stem = lm_head_key.trim_end_matches(".weight");
        r.tensor(&format!("{stem}.bias"), &[v])?
    } else {
        zeros(v)
    };
    Ok(Embeddings {
        w_e,
        w_u,
        b_u: param1(b_u, device),
    })
}

/// `W_E`, `W_U` and `b_U`.
pub struct Embeddings<B: Backend> {
    /// `[d_vocab, d_model]`.
    pub w_e: burn::module::Param<burn::tensor::Tensor<B, 2>>,
    /// `[d_model, d_vocab]`.
    pub w_u: burn::module::Param<burn::tensor::Tensor<B, 2>>,
    /// `[d_vocab]`.
    pub b_u: burn::module::Param<burn::tensor::Tensor<B, 1>>,
}
