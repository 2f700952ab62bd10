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

use std::path::Path;

use burn::tensor::{backend::Backend, TensorData};
use serde::Deserialize;

use crate::checkpoint::{param1, param2, WeightReader};
use crate::config::{Activation, Family, ModelConfig, Normalization, Positional};
use crate::error::{Error, Result};
use crate::io::write_safetensors_f32;
use crate::models::parts;
use crate::transformer::HookedTransformer;
use crate::weights::{AttentionWeights, BlockWeights, MlpWeights, TransformerWeights};

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
        if self.n_head == 0 || !self.n_embd.is_multiple_of(self.n_head) {
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
            family: Family::Gpt2,
            n_layers: self.n_layer,
            d_model: self.n_embd,
            n_heads: self.n_head,
            n_key_value_heads: None,
            d_head: self.n_embd / self.n_head,
            d_mlp: self.n_inner.unwrap_or(4 * self.n_embd),
            d_vocab: self.vocab_size,
            n_ctx,
            act_fn,
            eps: self.layer_norm_epsilon,
            normalization: Normalization::LayerNorm,
            positional: Positional::Learned,
            embed_scale: None,
            gated_mlp: false,
            parallel_attn_mlp: false,
            post_norms: false,
            attn_scale: None,
            scale_attn_by_inverse_layer_idx: self.scale_attn_by_inverse_layer_idx,
            attn_scores_soft_cap: None,
            output_logits_soft_cap: None,
            sliding_window: None,
            layer_types: Vec::new(),
            bos_token_id: self.bos_token_id,
            eos_token_id: self.eos_token_id,
        })
    }
}

/// Reads GPT-2 weights through `r`, checking every shape against `cfg`. Both layouts: keys
/// with or without the `transformer.` prefix.
pub fn load_weights<B: Backend>(
    r: &mut WeightReader<'_>,
    cfg: &ModelConfig,
    tie_word_embeddings: bool,
    device: &B::Device,
) -> Result<TransformerWeights<B>> {
    let prefixed = r
        .checkpoint()
        .names()
        .any(|k| k.starts_with("transformer."));
    let key_of = |name: &str| {
        if prefixed {
            format!("transformer.{name}")
        } else {
            name.to_string()
        }
    };
    // Missing tensors are named without the prefix, as the architecture knows them.
    let unprefix = |e: Error| match e {
        Error::MissingTensor { key } => Error::MissingTensor {
            key: key.trim_start_matches("transformer.").to_string(),
        },
        e => e,
    };
    let read = |r: &mut WeightReader<'_>, name: &str, shape: &[usize]| {
        r.tensor(&key_of(name), shape).map_err(unprefix)
    };
    let (d, d_mlp) = (cfg.d_model, cfg.d_mlp);
    let emb = parts::embeddings(
        r,
        &key_of("wte.weight"),
        "lm_head.weight",
        false,
        cfg,
        tie_word_embeddings,
        device,
    )
    .map_err(unprefix)?;
    let w_pos = param2(read(r, "wpe.weight", &[cfg.n_ctx, d])?, device);
    let ln = |r: &mut WeightReader<'_>, stem: &str| -> Result<_> {
        Ok(crate::weights::LayerNormWeights {
            w: param1(read(r, &format!("{stem}.weight"), &[d])?, device),
            b: param1(read(r, &format!("{stem}.bias"), &[d])?, device),
        })
    };
    let mut blocks = Vec::with_capacity(cfg.n_layers);
    for i in 0..cfg.n_layers {
        let p = |s: &str| format!("h.{i}.{s}");
        let ln1 = ln(r, &p("ln_1"))?;
        let ln2 = ln(r, &p("ln_2"))?;
        let mut read =
            |name: &str, shape: &[usize]| r.tensor(&key_of(&p(name)), shape).map_err(unprefix);
        blocks.push(BlockWeights {
            ln1,
            attn: AttentionWeights {
                w_qkv: param2(read("attn.c_attn.weight", &[d, 3 * d])?, device),
                b_qkv: param1(read("attn.c_attn.bias", &[3 * d])?, device),
                w_o: param2(read("attn.c_proj.weight", &[d, d])?, device),
                b_o: param1(read("attn.c_proj.bias", &[d])?, device),
            },
            ln1_post: None,
            ln2: Some(ln2),
            mlp: MlpWeights {
                w_in: param2(read("mlp.c_fc.weight", &[d, d_mlp])?, device),
                b_in: param1(read("mlp.c_fc.bias", &[d_mlp])?, device),
                w_gate: None,
                w_out: param2(read("mlp.c_proj.weight", &[d_mlp, d])?, device),
                b_out: param1(read("mlp.c_proj.bias", &[d])?, device),
            },
            ln2_post: None,
        });
    }
    let ln_final = ln(r, "ln_f")?;
    r.skip(is_mask_buffer);
    Ok(TransformerWeights {
        w_e: emb.w_e,
        w_pos: Some(w_pos),
        blocks,
        ln_final,
        w_u: emb.w_u,
        b_u: emb.b_u,
    })
}

/// Loads a GPT-2 checkpoint from its `config.json` text.
pub(crate) fn load<B: Backend>(
    text: &str,
    path: &Path,
    r: &mut WeightReader<'_>,
    device: &B::Device,
) -> Result<(ModelConfig, TransformerWeights<B>)> {
    let hf: Gpt2Config = super::parse_config(text, path)?;
    let cfg = hf.resolve(path)?;
    let weights = load_weights(r, &cfg, hf.tie_word_embeddings, device)?;
    Ok((cfg, weights))
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
    let (Some(w_pos), true) = (&w.w_pos, cfg.family == Family::Gpt2) else {
        return Err(Error::Unsupported {
            key: "architecture",
            value: format!(
                "{:?} (only GPT-2 models save as GPT-2 checkpoints)",
                cfg.family
            ),
        });
    };
    put("transformer.wpe.weight".into(), w_pos.val().into_data());
    for (i, b) in w.blocks.iter().enumerate() {
        let p = |s: &str| format!("transformer.h.{i}.{s}");
        put(p("ln_1.weight"), b.ln1.w.val().into_data());
        put(p("ln_1.bias"), b.ln1.b.val().into_data());
        put(p("attn.c_attn.weight"), b.attn.w_qkv.val().into_data());
        put(p("attn.c_attn.bias"), b.attn.b_qkv.val().into_data());
        put(p("attn.c_proj.weight"), b.attn.w_o.val().into_data());
        put(p("attn.c_proj.bias"), b.attn.b_o.val().into_data());
        let ln2 = b.ln2.as_ref().expect("GPT-2 blocks have ln2");
        put(p("ln_2.weight"), ln2.w.val().into_data());
        put(p("ln_2.bias"), ln2.b.val().into_data());
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
