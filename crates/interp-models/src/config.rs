//! Model configuration: the resolved, architecture-independent [`ModelConfig`] the forward pass
//! runs on, in TransformerLens names. Each family in [`crate::models`] maps its Hugging Face
//! `config.json` onto it; which hooks a model fires and their widths follow from it
//! ([`crate::vocabulary`]).

use serde::{Deserialize, Serialize};

/// The MLP nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// The tanh approximation of GELU (`gelu_new`, `gelu_pytorch_tanh` and `gelu_fast` in HF,
    /// which are the same function; GPT-2's, Phi-2's and Gemma-2's).
    GeluNew,
    /// Exact (erf) GELU.
    Gelu,
    /// ReLU.
    Relu,
    /// SiLU, `x · sigmoid(x)` (Llama's and Qwen2's gated MLPs).
    Silu,
}

impl Activation {
    /// Parses an HF `activation_function` / `hidden_act` string.
    pub fn from_hf(name: &str) -> Option<Self> {
        match name {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Activation::GeluNew),
            "gelu" => Some(Activation::Gelu),
            "relu" => Some(Activation::Relu),
            "silu" | "swish" => Some(Activation::Silu),
            _ => None,
        }
    }

    /// The HF `activation_function` string that [`Self::from_hf`] reads back as `self`.
    pub fn hf_name(self) -> &'static str {
        match self {
            Activation::GeluNew => "gelu_new",
            Activation::Gelu => "gelu",
            Activation::Relu => "relu",
            Activation::Silu => "silu",
        }
    }
}

/// The architecture family a model was loaded as (see [`crate::models`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// GPT-2 and DistilGPT-2 (`model_type` `gpt2`).
    #[default]
    Gpt2,
    /// Gemma 2 (`gemma2`).
    Gemma2,
    /// Llama 1–3 and Mistral (`llama`, `mistral`).
    Llama,
    /// Qwen2 and Qwen2.5 (`qwen2`).
    Qwen2,
    /// Phi-1, Phi-1.5 and Phi-2 (`phi`).
    Phi,
}

impl Family {
    /// The HF `model_type` strings each family reads, in the order of [`Family::ALL`].
    pub fn model_types(self) -> &'static [&'static str] {
        match self {
            Family::Gpt2 => &["gpt2"],
            Family::Gemma2 => &["gemma2"],
            Family::Llama => &["llama", "mistral"],
            Family::Qwen2 => &["qwen2"],
            Family::Phi => &["phi"],
        }
    }

    /// Every family.
    pub const ALL: [Family; 5] = [
        Family::Gpt2,
        Family::Gemma2,
        Family::Llama,
        Family::Qwen2,
        Family::Phi,
    ];

    /// The family reading `model_type`, if any.
    pub fn from_model_type(model_type: &str) -> Option<Self> {
        Family::ALL
            .into_iter()
            .find(|f| f.model_types().contains(&model_type))
    }

    /// Every supported `model_type`, comma-separated (for error messages).
    pub fn supported_model_types() -> String {
        Family::ALL
            .iter()
            .flat_map(|f| f.model_types().iter().copied())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// How the residual stream is normalized before each sublayer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalization {
    /// LayerNorm: centre, divide by the standard deviation, scale and shift.
    #[default]
    LayerNorm,
    /// RMSNorm: divide by the root mean square, scale (no centring, no shift). Gemma's
    /// `(1 + w)` scale is folded into `w` when loading, as TransformerLens does.
    RmsNorm,
}

/// Llama 3's frequency-dependent rotary scaling (`rope_scaling.rope_type = "llama3"`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Llama3RopeScaling {
    /// `factor`: how much longer the extended context is.
    pub factor: f64,
    /// `low_freq_factor`.
    pub low_freq_factor: f64,
    /// `high_freq_factor`.
    pub high_freq_factor: f64,
    /// `original_max_position_embeddings`: the pre-training context.
    pub original_context: f64,
}

/// Rotary position embeddings (RoPE) applied to queries and keys.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rotary {
    /// How many leading dimensions of each head rotate (`d_head`, or less for Phi's partial
    /// rotary); even.
    pub dim: usize,
    /// The base θ of the frequencies `θ^(−2i/dim)`.
    pub base: f64,
    /// Llama 3's frequency scaling, if any.
    pub llama3_scaling: Option<Llama3RopeScaling>,
}

impl Rotary {
    /// The rotation frequency of each pair `i < dim / 2`, as Hugging Face computes it (in f32,
    /// then Llama 3's scaling if configured).
    pub fn inverse_frequencies(&self) -> Vec<f32> {
        let half = self.dim / 2;
        (0..half)
            .map(|i| {
                let exponent = (2 * i) as f32 / self.dim as f32;
                let inv = 1.0 / (self.base as f32).powf(exponent);
                match self.llama3_scaling {
                    Some(s) => llama3_scaled(inv, &s),
                    None => inv,
                }
            })
            .collect()
    }
}

/// Llama 3's rescaling of one inverse frequency: long wavelengths divided by `factor`, short
/// ones kept, the band between interpolated smoothly.
fn llama3_scaled(inv_freq: f32, s: &Llama3RopeScaling) -> f32 {
    let (factor, low, high, ctx) = (
        s.factor as f32,
        s.low_freq_factor as f32,
        s.high_freq_factor as f32,
        s.original_context as f32,
    );
    let wavelen = 2.0 * std::f32::consts::PI / inv_freq;
    let (low_freq_wavelen, high_freq_wavelen) = (ctx / low, ctx / high);
    if wavelen > low_freq_wavelen {
        inv_freq / factor
    } else if wavelen < high_freq_wavelen {
        inv_freq
    } else {
        let smooth = (ctx / wavelen - low) / (high - low);
        (1.0 - smooth) * inv_freq / factor + smooth * inv_freq
    }
}

/// How positions enter the model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Positional {
    /// A learned table `W_pos` added to the token embeddings (`hook_pos_embed`).
    #[default]
    Learned,
    /// Rotary embeddings inside attention (`attn.hook_rot_q` / `hook_rot_k`).
    Rotary(Rotary),
}

/// Whether a layer's attention sees every earlier position or a sliding window of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttentionKind {
    /// Every earlier position.
    #[default]
    Global,
    /// The last `sliding_window` positions (the query's own included).
    Local,
}

/// The resolved configuration of a hooked transformer, in TransformerLens field names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// The architecture family.
    #[serde(default)]
    pub family: Family,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Residual stream width.
    pub d_model: usize,
    /// Number of attention (query) heads.
    pub n_heads: usize,
    /// Number of key/value heads (`n_heads` unless keys and values are grouped); divides
    /// `n_heads`.
    #[serde(default)]
    pub n_key_value_heads: Option<usize>,
    /// Width of one head.
    pub d_head: usize,
    /// MLP hidden width.
    pub d_mlp: usize,
    /// Vocabulary size.
    pub d_vocab: usize,
    /// Maximum context length.
    pub n_ctx: usize,
    /// MLP nonlinearity.
    pub act_fn: Activation,
    /// Normalization epsilon.
    pub eps: f64,
    /// LayerNorm or RMSNorm.
    #[serde(default)]
    pub normalization: Normalization,
    /// Learned positions or rotary embeddings.
    #[serde(default)]
    pub positional: Positional,
    /// Token embeddings are multiplied by this before `hook_embed` (Gemma's `√d_model`;
    /// TransformerLens folds it into `W_E`, which gives the same `hook_embed`).
    #[serde(default)]
    pub embed_scale: Option<f64>,
    /// A gated MLP: `W_out(act(x W_gate) ⊙ (x W_in))` (Llama, Qwen2, Gemma).
    #[serde(default)]
    pub gated_mlp: bool,
    /// Attention and MLP both read the block's input and both add to the residual stream
    /// (Phi-2's parallel block: no `hook_resid_mid`; `ln2` normalizes the block's input, with
    /// `ln1`'s weights for Phi, as TransformerLens converts it).
    #[serde(default)]
    pub parallel_attn_mlp: bool,
    /// Gemma-2's extra RMSNorms on the attention and MLP outputs (`ln1_post`, `ln2_post`),
    /// applied before they are added to the residual stream.
    #[serde(default)]
    pub post_norms: bool,
    /// What attention scores are divided by; `None` means `sqrt(d_head)` (Gemma-2 uses
    /// `sqrt(query_pre_attn_scalar)`).
    #[serde(default)]
    pub attn_scale: Option<f64>,
    /// Divide attention scores by `layer + 1` as well (HF `scale_attn_by_inverse_layer_idx`).
    pub scale_attn_by_inverse_layer_idx: bool,
    /// Attention scores become `cap · tanh(scores / cap)` before masking (Gemma-2).
    #[serde(default)]
    pub attn_scores_soft_cap: Option<f64>,
    /// Logits become `cap · tanh(logits / cap)` (Gemma-2).
    #[serde(default)]
    pub output_logits_soft_cap: Option<f64>,
    /// The window of [`AttentionKind::Local`] layers.
    #[serde(default)]
    pub sliding_window: Option<usize>,
    /// Each layer's attention kind; empty means every layer is global.
    #[serde(default)]
    pub layer_types: Vec<AttentionKind>,
    /// The beginning-of-sequence token id, if the tokenizer has one.
    pub bos_token_id: Option<u32>,
    /// The end-of-sequence token id.
    pub eos_token_id: Option<u32>,
}

impl ModelConfig {
    /// Number of key/value heads.
    pub fn n_kv_heads(&self) -> usize {
        self.n_key_value_heads.unwrap_or(self.n_heads)
    }

    /// The divisor of attention scores in `layer` (before the optional soft cap).
    pub fn attention_divisor(&self, layer: usize) -> f64 {
        let mut scale = self.attn_scale.unwrap_or((self.d_head as f64).sqrt());
        if self.scale_attn_by_inverse_layer_idx {
            scale *= (layer + 1) as f64;
        }
        scale
    }

    /// The sliding window of `layer`, if its attention is local.
    pub fn window_of(&self, layer: usize) -> Option<usize> {
        match self.layer_types.get(layer) {
            Some(AttentionKind::Local) => self.sliding_window,
            _ => None,
        }
    }

    /// The rotary embedding, if positions are rotary.
    pub fn rotary(&self) -> Option<&Rotary> {
        match &self.positional {
            Positional::Rotary(r) => Some(r),
            Positional::Learned => None,
        }
    }

    /// GPT-2 small's shape (124M parameters): 12 layers, d_model 768, 12 heads, d_mlp 3072,
    /// vocabulary 50257, context 1024.
    pub fn gpt2_small() -> Self {
        ModelConfig {
            family: Family::Gpt2,
            n_layers: 12,
            d_model: 768,
            n_heads: 12,
            n_key_value_heads: None,
            d_head: 64,
            d_mlp: 3072,
            d_vocab: 50257,
            n_ctx: 1024,
            act_fn: Activation::GeluNew,
            eps: 1e-5,
            normalization: Normalization::LayerNorm,
            positional: Positional::Learned,
            embed_scale: None,
            gated_mlp: false,
            parallel_attn_mlp: false,
            post_norms: false,
            attn_scale: None,
            scale_attn_by_inverse_layer_idx: false,
            attn_scores_soft_cap: None,
            output_logits_soft_cap: None,
            sliding_window: None,
            layer_types: Vec::new(),
            bos_token_id: Some(50256),
            eos_token_id: Some(50256),
        }
    }

    /// Gemma-2-2B's shape: 26 layers, d_model 2304, 8 heads of 256 with 4 KV heads, d_mlp
    /// 9216, vocabulary 256000, context 8192, local (window 4096) and global layers
    /// alternating, soft caps 50 (scores) and 30 (logits).
    pub fn gemma2_2b() -> Self {
        ModelConfig {
            family: Family::Gemma2,
            n_layers: 26,
            d_model: 2304,
            n_heads: 8,
            n_key_value_heads: Some(4),
            d_head: 256,
            d_mlp: 9216,
            d_vocab: 256_000,
            n_ctx: 8192,
            act_fn: Activation::GeluNew,
            eps: 1e-6,
            normalization: Normalization::RmsNorm,
            positional: Positional::Rotary(Rotary {
                dim: 256,
                base: 10_000.0,
                llama3_scaling: None,
            }),
            embed_scale: Some(48.0),
            gated_mlp: true,
            parallel_attn_mlp: false,
            post_norms: true,
            attn_scale: Some(16.0),
            scale_attn_by_inverse_layer_idx: false,
            attn_scores_soft_cap: Some(50.0),
            output_logits_soft_cap: Some(30.0),
            sliding_window: Some(4096),
            layer_types: (0..26)
                .map(|l| {
                    if l % 2 == 0 {
                        AttentionKind::Local
                    } else {
                        AttentionKind::Global
                    }
                })
                .collect(),
            bos_token_id: Some(2),
            eos_token_id: Some(1),
        }
    }

    /// Llama-3.2-1B's shape: 16 layers, d_model 2048, 32 heads of 64 with 8 KV heads, d_mlp
    /// 8192, vocabulary 128256, Llama 3 rotary scaling (factor 32), tied embeddings.
    pub fn llama32_1b() -> Self {
        ModelConfig {
            family: Family::Llama,
            n_layers: 16,
            d_model: 2048,
            n_heads: 32,
            n_key_value_heads: Some(8),
            d_head: 64,
            d_mlp: 8192,
            d_vocab: 128_256,
            n_ctx: 131_072,
            act_fn: Activation::Silu,
            eps: 1e-5,
            normalization: Normalization::RmsNorm,
            positional: Positional::Rotary(Rotary {
                dim: 64,
                base: 500_000.0,
                llama3_scaling: Some(Llama3RopeScaling {
                    factor: 32.0,
                    low_freq_factor: 1.0,
                    high_freq_factor: 4.0,
                    original_context: 8192.0,
                }),
            }),
            embed_scale: None,
            gated_mlp: true,
            parallel_attn_mlp: false,
            post_norms: false,
            attn_scale: None,
            scale_attn_by_inverse_layer_idx: false,
            attn_scores_soft_cap: None,
            output_logits_soft_cap: None,
            sliding_window: None,
            layer_types: Vec::new(),
            bos_token_id: Some(128_000),
            eos_token_id: Some(128_001),
        }
    }
}
