//! The parameters of a hooked transformer, one layout for every architecture, named as
//! TransformerLens names them (`W_E`, `blocks.L.attn.W_Q`, …). Components an architecture
//! lacks are `None` (learned positions, `ln2` in a parallel block, Gemma-2's post-norms, the
//! gate of a plain MLP); biases it lacks are zeros, as in TransformerLens.
//!
//! Matrices are `[d_in, d_out]` (TransformerLens' orientation), so `x @ W`.

use burn::module::{Module, Param};
use burn::tensor::{backend::Backend, Distribution, Tensor};

use crate::config::{ModelConfig, Positional};

/// Normalization parameters (`ln1`, `ln2`, `ln1_post`, `ln2_post`, `ln_final`). RMSNorm uses
/// `w` only (`b` stays zero).
#[derive(Module, Debug)]
pub struct LayerNormWeights<B: Backend> {
    /// Scale, `[d_model]`.
    pub w: Param<Tensor<B, 1>>,
    /// Shift, `[d_model]`.
    pub b: Param<Tensor<B, 1>>,
}

/// Attention parameters, with queries, keys and values fused as
/// `[d_model, (n_heads + 2 · n_key_value_heads) · d_head]` (Q | K | V, heads contiguous within
/// each, GPT-2's `c_attn` layout), so one GEMM computes all three.
#[derive(Module, Debug)]
pub struct AttentionWeights<B: Backend> {
    /// `[d_model, (n_heads + 2 · n_key_value_heads) · d_head]`.
    pub w_qkv: Param<Tensor<B, 2>>,
    /// `[(n_heads + 2 · n_key_value_heads) · d_head]`.
    pub b_qkv: Param<Tensor<B, 1>>,
    /// Output projection, `[n_heads · d_head, d_model]`.
    pub w_o: Param<Tensor<B, 2>>,
    /// `[d_model]`.
    pub b_o: Param<Tensor<B, 1>>,
}

/// MLP parameters: `W_out(act(x W_in + b_in))`, or gated
/// `W_out(act(x W_gate) ⊙ (x W_in) + b_in)` as TransformerLens' `GatedMLP` computes it.
#[derive(Module, Debug)]
pub struct MlpWeights<B: Backend> {
    /// `[d_model, d_mlp]`.
    pub w_in: Param<Tensor<B, 2>>,
    /// `[d_mlp]`.
    pub b_in: Param<Tensor<B, 1>>,
    /// The gate of a gated MLP, `[d_model, d_mlp]`.
    pub w_gate: Option<Param<Tensor<B, 2>>>,
    /// `[d_mlp, d_model]`.
    pub w_out: Param<Tensor<B, 2>>,
    /// `[d_model]`.
    pub b_out: Param<Tensor<B, 1>>,
}

/// One transformer block.
#[derive(Module, Debug)]
pub struct BlockWeights<B: Backend> {
    /// Normalization before attention.
    pub ln1: LayerNormWeights<B>,
    /// Attention.
    pub attn: AttentionWeights<B>,
    /// Gemma-2's normalization of the attention output.
    pub ln1_post: Option<LayerNormWeights<B>>,
    /// Normalization before the MLP (of the block's input in a parallel block; `None` there
    /// means the MLP reads `ln1`'s output).
    pub ln2: Option<LayerNormWeights<B>>,
    /// MLP.
    pub mlp: MlpWeights<B>,
    /// Gemma-2's normalization of the MLP output.
    pub ln2_post: Option<LayerNormWeights<B>>,
}

/// All parameters.
#[derive(Module, Debug)]
pub struct TransformerWeights<B: Backend> {
    /// Token embedding `W_E`, `[d_vocab, d_model]` (Gemma's `√d_model` scale is applied in
    /// the forward, [`ModelConfig::embed_scale`], so a tied `W_U` can share its storage).
    pub w_e: Param<Tensor<B, 2>>,
    /// Learned positional embedding `W_pos`, `[n_ctx, d_model]` (`None` with rotary positions).
    pub w_pos: Option<Param<Tensor<B, 2>>>,
    /// The blocks.
    pub blocks: Vec<BlockWeights<B>>,
    /// Final normalization.
    pub ln_final: LayerNormWeights<B>,
    /// Unembedding `W_U`, `[d_model, d_vocab]`; for tied embeddings a transposed view of
    /// `W_E`'s storage.
    pub w_u: Param<Tensor<B, 2>>,
    /// Unembedding bias `b_U`, `[d_vocab]`.
    pub b_u: Param<Tensor<B, 1>>,
}

impl<B: Backend> TransformerWeights<B> {
    /// Random weights for `cfg`, initialised as GPT-2 is (normal, std 0.02; norm scales 1 and
    /// shifts 0; zero biases), with every component the architecture has. The same `seed`
    /// gives the same weights on the same backend.
    pub fn random(cfg: &ModelConfig, seed: u64, device: &B::Device) -> Self {
        B::seed(device, seed);
        let normal = |shape: [usize; 2]| {
            Param::from_tensor(Tensor::<B, 2>::random(
                shape,
                Distribution::Normal(0.0, 0.02),
                device,
            ))
        };
        let zeros = |n: usize| Param::from_tensor(Tensor::<B, 1>::zeros([n], device));
        let ln = |n: usize| LayerNormWeights {
            w: Param::from_tensor(Tensor::ones([n], device)),
            b: zeros(n),
        };
        let (d, d_mlp) = (cfg.d_model, cfg.d_mlp);
        let q = cfg.n_heads * cfg.d_head;
        let qkv = q + 2 * cfg.n_kv_heads() * cfg.d_head;
        let blocks = (0..cfg.n_layers)
            .map(|_| BlockWeights {
                ln1: ln(d),
                attn: AttentionWeights {
                    w_qkv: normal([d, qkv]),
                    b_qkv: zeros(qkv),
                    w_o: normal([q, d]),
                    b_o: zeros(d),
                },
                ln1_post: cfg.post_norms.then(|| ln(d)),
                ln2: Some(ln(d)),
                mlp: MlpWeights {
                    w_in: normal([d, d_mlp]),
                    b_in: zeros(d_mlp),
                    w_gate: cfg.gated_mlp.then(|| normal([d, d_mlp])),
                    w_out: normal([d_mlp, d]),
                    b_out: zeros(d),
                },
                ln2_post: cfg.post_norms.then(|| ln(d)),
            })
            .collect();
        let w_e = normal([cfg.d_vocab, d]);
        // A row-major copy, as loaded checkpoints have (not a transposed view of W_E, whose
        // column-major layout makes a generation step's unembedding ≈ 1.5× slower); a leaf
        // tensor, as an autodiff backend needs of a parameter.
        let w_u = Param::from_tensor(Tensor::from_data(w_e.val().transpose().into_data(), device));
        TransformerWeights {
            w_e,
            w_pos: matches!(cfg.positional, Positional::Learned).then(|| normal([cfg.n_ctx, d])),
            blocks,
            ln_final: ln(d),
            w_u,
            b_u: zeros(cfg.d_vocab),
        }
    }
}
