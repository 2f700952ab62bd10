//! Model configuration: the resolved, architecture-independent [`ModelConfig`] used by the
//! forward pass, in TransformerLens names.

use serde::{Deserialize, Serialize};

use crate::hooks::{BlockHook, HookPoint};

/// The MLP nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// The tanh approximation of GELU (`gelu_new` in HF and TransformerLens; GPT-2's).
    GeluNew,
    /// Exact (erf) GELU.
    Gelu,
    /// ReLU.
    Relu,
}

impl Activation {
    /// Parses an HF `activation_function` string.
    pub fn from_hf(name: &str) -> Option<Self> {
        match name {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Activation::GeluNew),
            "gelu" => Some(Activation::Gelu),
            "relu" => Some(Activation::Relu),
            _ => None,
        }
    }

    /// The HF `activation_function` string that [`Self::from_hf`] reads back as `self`.
    pub fn hf_name(self) -> &'static str {
        match self {
            Activation::GeluNew => "gelu_new",
            Activation::Gelu => "gelu",
            Activation::Relu => "relu",
        }
    }
}

/// The resolved configuration of a hooked transformer, in TransformerLens field names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Residual stream width.
    pub d_model: usize,
    /// Number of attention heads.
    pub n_heads: usize,
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
    /// LayerNorm epsilon.
    pub eps: f64,
    /// Divide attention scores by `layer + 1` as well (HF `scale_attn_by_inverse_layer_idx`).
    pub scale_attn_by_inverse_layer_idx: bool,
    /// The beginning-of-sequence token id, if the tokenizer has one.
    pub bos_token_id: Option<u32>,
    /// The end-of-sequence token id.
    pub eos_token_id: Option<u32>,
}

impl ModelConfig {
    /// The width of one position's activation at `point`, as an SAE or a steering vector sees
    /// it: `d_model` for the residual stream, embeddings, `hook_attn_out`, `hook_mlp_out` and
    /// `ln*.hook_normalized`; `d_mlp` for `mlp.hook_pre` / `hook_post`; `n_heads · d_head` for
    /// the per-head `attn.hook_q/k/v/z` (flattened over heads, as SAELens reads `hook_z`).
    /// `None` for hooks that have no such width (`hook_scale`, attention scores and pattern).
    pub fn hook_width(&self, point: &HookPoint) -> Option<usize> {
        let HookPoint::Block { hook, .. } = point else {
            return match point {
                HookPoint::LnFinalScale => None,
                _ => Some(self.d_model),
            };
        };
        match hook {
            BlockHook::MlpPre | BlockHook::MlpPost => Some(self.d_mlp),
            BlockHook::AttnQ | BlockHook::AttnK | BlockHook::AttnV | BlockHook::AttnZ => {
                Some(self.n_heads * self.d_head)
            }
            BlockHook::AttnScores
            | BlockHook::AttnPattern
            | BlockHook::Ln1Scale
            | BlockHook::Ln2Scale => None,
            _ => Some(self.d_model),
        }
    }

    /// GPT-2 small's shape (124M parameters): 12 layers, d_model 768, 12 heads, d_mlp 3072,
    /// vocabulary 50257, context 1024.
    pub fn gpt2_small() -> Self {
        ModelConfig {
            n_layers: 12,
            d_model: 768,
            n_heads: 12,
            d_head: 64,
            d_mlp: 3072,
            d_vocab: 50257,
            n_ctx: 1024,
            act_fn: Activation::GeluNew,
            eps: 1e-5,
            scale_attn_by_inverse_layer_idx: false,
            bos_token_id: Some(50256),
            eos_token_id: Some(50256),
        }
    }
}
