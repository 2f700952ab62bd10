//! GPT-2 (Radford et al. 2019, "Language Models are Unsupervised Multitask Learners"):
//! gpt2, gpt2-medium, gpt2-large, gpt2-xl and distilgpt2, from Hugging Face checkpoints.
//!
//! Follows `transformers`' `modeling_gpt2.py` for numerics and TransformerLens'
//! `weight_conversions/gpt2.py` for parameter names. Both checkpoint layouts are accepted: the
//! `transformer.`-prefixed one that current `transformers` saves, and the un-prefixed one of the
//! original `gpt2` checkpoint, whose `h.N.attn.bias` / `h.N.attn.masked_bias` mask buffers are
//! ignored. GPT-2's `Conv1D` stores weights `[in, out]`, which is burn's layout: no transposes
//! but the unembedding (`W_U = wte.T`, or `lm_head.weight.T` when untied).
//!
//! | `config.json` key | default | becomes |
//! |---|---|---|
//! | `vocab_size` | required | `d_vocab` |
//! | `n_positions` (or `n_ctx`) | required | `n_ctx` |
//! | `n_embd` | required | `d_model` |
//! | `n_layer` | required | `n_layers` |
//! | `n_head` | required | `n_heads`, `d_head = d_model / n_heads` |
//! | `n_inner` | `4 · n_embd` | `d_mlp` |
//! | `activation_function` | `gelu_new` | `act_fn` |
//! | `layer_norm_epsilon` | `1e-5` | `eps` |
//! | `scale_attn_by_inverse_layer_idx` | `false` | same |
//! | `tie_word_embeddings` | `true` | `W_U = wte.T` if true |

use std::collections::BTreeSet;
use std::path::Path;

use burn::module::Param;
use burn::tensor::{backend::Backend, Tensor, TensorData};
use serde::Deserialize;

use crate::config::{Activation, ModelConfig};
use crate::error::{Error, Result};
use crate::io::{write_safetensors_f32, HostTensor, SafetensorsFile};
use crate::transformer::{
    AttentionWeights, BlockWeights, HookedTransformer, LayerNormWeights, MlpWeights,
    TransformerWeights,
};

/// GPT-2's `config.json`, keyed exactly as Hugging Face writes it.
#[derive(Clone, Debug, Deserialize)]
pub struct Gpt2Config {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Context length.
    pub n_positions: Option<usize>,
    /// Context length (older configs).
    pub n_ctx: Option<usize>,
    /// Residual width.
    pub n_embd: usize,
    /// Number of blocks.
    pub n_layer: usize,
    /// Number of heads.
    pub n_head: usize,
    /// MLP width (`null` means `4 · n_embd`).
    pub n_inner: Option<usize>,
    /// MLP nonlinearity.
    #[serde(default = "default_activation")]
    pub activation_function: String,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    /// Beginning-of-sequence token.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token.
    pub eos_token_id: Option<u32>,
    /// Extra division of attention scores by `layer + 1`.
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: bool,
    /// Whether attention scores are scaled by `1/sqrt(d_head)` at all.
    #[serde(default = "default_true")]
    pub scale_attn_weights: bool,
    /// Whether `lm_head` shares `wte`.
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    /// Encoder-decoder cross attention (unsupported).
    #[serde(default)]
    pub add_cross_attention: bool,
}

fn default_activation() -> String {
    "gelu_new".into()
}
fn default_eps() -> f64 {
    1e-5
}
fn default_true() -> bool {
    true
}

impl Gpt2Config {
    /// Resolves into the architecture-independent config.
    ///
    /// # Errors
    /// [`Error::Config`] for missing or inconsistent values, [`Error::Unsupported`] for
    /// features this implementation does not have.
    pub fn resolve(&self, path: &Path) -> Result<ModelConfig> {
        let bad = |reason: String| Error::Config {
            path: path.to_path_buf(),
            reason,
        };
        let n_ctx = self
            .n_positions
            .or(self.n_ctx)
            .ok_or_else(|| bad("missing key `n_positions`".into()))?;
        if self.n_head == 0 || self.n_embd % self.n_head != 0 {
            return Err(bad(format!(
                "n_embd = {} is not divisible by n_head = {}",
                self.n_embd, self.n_head
            )));
        }
        if self.n_layer == 0 || self.vocab_size == 0 || n_ctx == 0 {
            return Err(bad(
                "n_layer, vocab_size and n_positions must be positive".into()
            ));
        }
        let act_fn = Activation::from_hf(&self.activation_function).ok_or(Error::Unsupported {
            key: "activation_function",
            value: self.activation_function.clone(),
        })?;
        if self.add_cross_attention {
            return Err(Error::Unsupported {
                key: "add_cross_attention",
                value: "true".into(),
            });
        }
        if !self.scale_attn_weights {
            return Err(Error::Unsupported {
                key: "scale_attn_weights",
                value: "false".into(),
            });
        }
        Ok(ModelConfig {
            n_layers: self.n_layer,
            d_model: self.n_embd,
            n_heads: self.n_head,
            d_head: self.n_embd / self.n_head,
            d_mlp: self.n_inner.unwrap_or(4 * self.n_embd),
            d_vocab: self.vocab_size,
            n_ctx,
            act_fn,
            eps: self.layer_norm_epsilon,
            scale_attn_by_inverse_layer_idx: self.scale_attn_by_inverse_layer_idx,
            bos_token_id: self.bos_token_id,
            eos_token_id: self.eos_token_id,
        })
    }
}

/// Reads GPT-2 weights from a safetensors checkpoint, checking every shape against `cfg` and
/// rejecting missing or unexpected tensors.
pub fn load_weights<B: Backend>(
    file: &SafetensorsFile,
    cfg: &ModelConfig,
    tie_word_embeddings: bool,
    device: &B::Device,
) -> Result<TransformerWeights<B>> {
    let shapes = file.shapes()?;
    let prefixed = shapes.keys().any(|k| k.starts_with("transformer."));
    let key_of = |name: &str| {
        if prefixed {
            format!("transformer.{name}")
        } else {
            name.to_string()
        }
    };
    let mut used = BTreeSet::new();
    let mut read = |name: &str, expected: &[usize]| -> Result<HostTensor> {
        let key = key_of(name);
        let t = file.read(&key).map_err(|e| match e {
            interp_core::Error::MissingTensor { .. } => Error::MissingTensor { key: name.into() },
            e => e.into(),
        })?;
        if t.shape != expected {
            return Err(Error::ShapeMismatch {
                key,
                expected: expected.to_vec(),
                actual: t.shape,
            });
        }
        used.insert(key);
        Ok(t)
    };
    let (d, d_mlp, v) = (cfg.d_model, cfg.d_mlp, cfg.d_vocab);
    let mut blocks = Vec::with_capacity(cfg.n_layers);
    let w_e = read("wte.weight", &[v, d])?;
    let w_pos = read("wpe.weight", &[cfg.n_ctx, d])?;
    for i in 0..cfg.n_layers {
        let p = |s: &str| format!("h.{i}.{s}");
        blocks.push(BlockWeights {
            ln1: LayerNormWeights {
                w: param1(read(&p("ln_1.weight"), &[d])?, device),
                b: param1(read(&p("ln_1.bias"), &[d])?, device),
            },
            attn: AttentionWeights {
                w_qkv: param2(read(&p("attn.c_attn.weight"), &[d, 3 * d])?, device),
                b_qkv: param1(read(&p("attn.c_attn.bias"), &[3 * d])?, device),
                w_o: param2(read(&p("attn.c_proj.weight"), &[d, d])?, device),
                b_o: param1(read(&p("attn.c_proj.bias"), &[d])?, device),
            },
            ln2: LayerNormWeights {
                w: param1(read(&p("ln_2.weight"), &[d])?, device),
                b: param1(read(&p("ln_2.bias"), &[d])?, device),
            },
            mlp: MlpWeights {
                w_in: param2(read(&p("mlp.c_fc.weight"), &[d, d_mlp])?, device),
                b_in: param1(read(&p("mlp.c_fc.bias"), &[d_mlp])?, device),
                w_out: param2(read(&p("mlp.c_proj.weight"), &[d_mlp, d])?, device),
                b_out: param1(read(&p("mlp.c_proj.bias"), &[d])?, device),
            },
        });
    }
    let ln_final = LayerNormWeights {
        w: param1(read("ln_f.weight", &[d])?, device),
        b: param1(read("ln_f.bias", &[d])?, device),
    };
    // The unembedding: lm_head.weight when present (it sits outside the `transformer.` prefix),
    // else the tied embedding.
    let lm_head = if shapes.contains_key("lm_head.weight") {
        let t = file.read("lm_head.weight")?;
        if t.shape != [v, d] {
            return Err(Error::ShapeMismatch {
                key: "lm_head.weight".into(),
                expected: vec![v, d],
                actual: t.shape,
            });
        }
        used.insert("lm_head.weight".to_string());
        Some(t)
    } else if !tie_word_embeddings {
        return Err(Error::MissingTensor {
            key: "lm_head.weight".into(),
        });
    } else {
        None
    };
    let w_u = transpose(lm_head.as_ref().unwrap_or(&w_e));

    let unused: Vec<String> = shapes
        .keys()
        .filter(|k| !used.contains(*k) && !is_mask_buffer(k))
        .cloned()
        .collect();
    if !unused.is_empty() {
        return Err(Error::UnusedTensors { keys: unused });
    }
    Ok(TransformerWeights {
        w_e: param2(w_e, device),
        w_pos: param2(w_pos, device),
        blocks,
        ln_final,
        w_u: param2(w_u, device),
        b_u: Param::from_tensor(Tensor::zeros([v], device)),
    })
}

/// Saves `model` as a Hugging Face GPT-2 checkpoint in `dir`: `config.json`, `model.safetensors`
/// (f32, `transformer.`-prefixed, untied `lm_head.weight`) and, when the model has one,
/// `tokenizer.json`. `transformers`' `GPT2LMHeadModel.from_pretrained(dir)` and
/// [`HookedTransformer::from_dir`] both load the result. Files are written atomically.
///
/// # Errors
/// [`Error::Unsupported`] for a model GPT-2 cannot express (a non-zero unembedding bias,
/// `d_head · n_heads ≠ d_model`); I/O errors.
pub fn save_pretrained<B: Backend>(model: &HookedTransformer<B>, dir: &Path) -> Result<()> {
    let cfg = model.cfg();
    let w = model.weights();
    if cfg.n_heads * cfg.d_head != cfg.d_model {
        return Err(Error::Unsupported {
            key: "n_heads * d_head",
            value: format!(
                "{} (GPT-2 needs d_model = {})",
                cfg.n_heads * cfg.d_head,
                cfg.d_model
            ),
        });
    }
    let b_u: Vec<f32> = w
        .b_u
        .val()
        .into_data()
        .convert::<f32>()
        .to_vec()
        .unwrap_or_default();
    if b_u.iter().any(|&b| b != 0.0) {
        return Err(Error::Unsupported {
            key: "b_U",
            value: "non-zero (GPT-2 has no unembedding bias)".into(),
        });
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tensors: Vec<(String, TensorData)> = Vec::new();
    let mut put = |name: String, t: TensorData| tensors.push((name, t));
    put("transformer.wte.weight".into(), w.w_e.val().into_data());
    put("transformer.wpe.weight".into(), w.w_pos.val().into_data());
    for (i, b) in w.blocks.iter().enumerate() {
        let p = |s: &str| format!("transformer.h.{i}.{s}");
        put(p("ln_1.weight"), b.ln1.w.val().into_data());
        put(p("ln_1.bias"), b.ln1.b.val().into_data());
        put(p("attn.c_attn.weight"), b.attn.w_qkv.val().into_data());
        put(p("attn.c_attn.bias"), b.attn.b_qkv.val().into_data());
        put(p("attn.c_proj.weight"), b.attn.w_o.val().into_data());
        put(p("attn.c_proj.bias"), b.attn.b_o.val().into_data());
        put(p("ln_2.weight"), b.ln2.w.val().into_data());
        put(p("ln_2.bias"), b.ln2.b.val().into_data());
        put(p("mlp.c_fc.weight"), b.mlp.w_in.val().into_data());
        put(p("mlp.c_fc.bias"), b.mlp.b_in.val().into_data());
        put(p("mlp.c_proj.weight"), b.mlp.w_out.val().into_data());
        put(p("mlp.c_proj.bias"), b.mlp.b_out.val().into_data());
    }
    put(
        "transformer.ln_f.weight".into(),
        w.ln_final.w.val().into_data(),
    );
    put(
        "transformer.ln_f.bias".into(),
        w.ln_final.b.val().into_data(),
    );
    put("lm_head.weight".into(), w.w_u.val().transpose().into_data());
    write_safetensors_f32(&dir.join("model.safetensors"), tensors)?;

    let config = serde_json::json!({
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": cfg.d_vocab,
        "n_positions": cfg.n_ctx,
        "n_ctx": cfg.n_ctx,
        "n_embd": cfg.d_model,
        "n_layer": cfg.n_layers,
        "n_head": cfg.n_heads,
        "n_inner": cfg.d_mlp,
        "activation_function": cfg.act_fn.hf_name(),
        "layer_norm_epsilon": cfg.eps,
        "scale_attn_by_inverse_layer_idx": cfg.scale_attn_by_inverse_layer_idx,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "tie_word_embeddings": false,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "torch_dtype": "float32",
    });
    let text = serde_json::to_string_pretty(&config).map_err(|e| Error::Config {
        path: dir.join("config.json"),
        reason: e.to_string(),
    })?;
    interp_core::write_atomic(&dir.join("config.json"), text.as_bytes())?;
    if let Some(tok) = &model.tokenizer {
        let text = tok
            .inner()
            .to_string(true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        interp_core::write_atomic(&dir.join("tokenizer.json"), text.as_bytes())?;
    }
    Ok(())
}

/// The causal-mask buffers of old checkpoints: `h.N.attn.bias`, `h.N.attn.masked_bias`.
fn is_mask_buffer(key: &str) -> bool {
    let key = key.strip_prefix("transformer.").unwrap_or(key);
    key.starts_with("h.") && (key.ends_with(".attn.bias") || key.ends_with(".attn.masked_bias"))
}

fn transpose(t: &HostTensor) -> HostTensor {
    let (r, c) = (t.shape[0], t.shape[1]);
    let mut data = vec![0.0; r * c];
    for i in 0..r {
        for j in 0..c {
            data[j * r + i] = t.data[i * c + j];
        }
    }
    HostTensor {
        shape: vec![c, r],
        data,
    }
}

pub(crate) fn param1<B: Backend>(t: HostTensor, device: &B::Device) -> Param<Tensor<B, 1>> {
    Param::from_tensor(Tensor::from_data(
        TensorData::new(t.data, [t.shape[0]]),
        device,
    ))
}

pub(crate) fn param2<B: Backend>(t: HostTensor, device: &B::Device) -> Param<Tensor<B, 2>> {
    Param::from_tensor(Tensor::from_data(
        TensorData::new(t.data, [t.shape[0], t.shape[1]]),
        device,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(json: &str) -> Result<ModelConfig> {
        let cfg: Gpt2Config = serde_json::from_str(json).unwrap();
        cfg.resolve(Path::new("config.json"))
    }

    #[test]
    fn family_configs_resolve() {
        // The keys that matter in the published config.json files of the GPT-2 family.
        let gpt2 = r#"{"activation_function": "gelu_new", "model_type": "gpt2", "n_ctx": 1024,
            "n_embd": 768, "n_head": 12, "n_layer": 12, "n_positions": 1024,
            "layer_norm_epsilon": 1e-05, "bos_token_id": 50256, "eos_token_id": 50256,
            "vocab_size": 50257, "attn_pdrop": 0.1, "summary_type": "cls_index"}"#;
        assert_eq!(resolve(gpt2).unwrap(), ModelConfig::gpt2_small());
        let xl = gpt2
            .replace("768", "1600")
            .replace(r#""n_head": 12"#, r#""n_head": 25"#);
        let xl = resolve(&xl.replace(r#""n_layer": 12"#, r#""n_layer": 48"#)).unwrap();
        assert_eq!(
            (xl.n_layers, xl.d_model, xl.d_head, xl.d_mlp),
            (48, 1600, 64, 6400)
        );
        let distil = resolve(&gpt2.replace(r#""n_layer": 12"#, r#""n_layer": 6"#)).unwrap();
        assert_eq!(distil.n_layers, 6);
        // Old configs carry only n_ctx.
        let old = resolve(&gpt2.replace(r#""n_positions": 1024,"#, "")).unwrap();
        assert_eq!(old.n_ctx, 1024);
        let inverse = gpt2.replace(
            "\"attn_pdrop\"",
            "\"scale_attn_by_inverse_layer_idx\": true, \"x\"",
        );
        assert!(resolve(&inverse).unwrap().scale_attn_by_inverse_layer_idx);
    }
}
