//! Causal self-attention up to `hook_z`: fused Q/K/V projection, grouped key/value heads,
//! rotary embeddings, the KV cache, score scaling and soft-capping, causal / sliding-window /
//! padding masks, softmax.
//!
//! TransformerLens' order of hooks: `hook_q`, `hook_k`, `hook_v`, `hook_rot_q`, `hook_rot_k`,
//! `hook_attn_scores` (scaled, capped and masked with `-inf`), `hook_pattern`, `hook_z`.

use burn::tensor::activation::softmax;
use burn::tensor::{backend::Backend, Bool, Tensor, TensorData};

use crate::components::rotary::RotaryTables;
use crate::components::{linear, soft_cap};
use crate::config::ModelConfig;
use crate::error::Result;
use crate::hooks::{BlockHook, HookPoint, HookRun};
use crate::kernels::ScoreRule;
use crate::weights::AttentionWeights;

/// What every layer's attention of one forward pass shares.
pub(crate) struct AttnContext<'a, B: Backend> {
    /// `true` where masked, `[batch, 1, query_pos, key_pos]`, for global layers; `None` when
    /// nothing is.
    pub(crate) global_mask: Option<Tensor<B, 4, Bool>>,
    /// The same for local (sliding-window) layers.
    pub(crate) local_mask: Option<Tensor<B, 4, Bool>>,
    /// Whether any key is padding.
    pub(crate) padded: bool,
    /// `[batch][key_pos]`, `true` for real tokens.
    pub(crate) key_mask: &'a [Vec<bool>],
    /// Number of cached positions before this pass.
    pub(crate) past: usize,
    /// Rotary tables of this pass's positions, for rotary models.
    pub(crate) rotary: Option<RotaryTables<B>>,
}

/// Keys and values `[batch, kv_head, pos, d_head]` of one layer in a KV cache.
pub(crate) type LayerKv<B> = Option<(Tensor<B, 4>, Tensor<B, 4>)>;

/// Attention of `layer` up to `hook_z`, flattened to `[batch, pos, n_heads · d_head]`.
///
/// On the CPU fast path, scores, pattern and `z` come from one fused kernel unless
/// `hook_attn_scores` or `hook_pattern` is active.
pub(crate) fn attention<B: Backend>(
    cfg: &ModelConfig,
    layer: usize,
    attn: &AttentionWeights<B>,
    x: Tensor<B, 3>,
    ctx: &AttnContext<'_, B>,
    kv: Option<&mut LayerKv<B>>,
    run: &mut HookRun<'_, B>,
) -> Result<Tensor<B, 3>> {
    let [n_batch, n_pos, _] = x.dims();
    let (h, kvh, dh) = (cfg.n_heads, cfg.n_kv_heads(), cfg.d_head);
    let hp = |hook| HookPoint::block(layer, hook);
    let (w_qkv, b_qkv) = (attn.w_qkv.val(), attn.b_qkv.val());
    let q_shape = [n_batch, n_pos, h, dh];
    let kv_shape = [n_batch, n_pos, kvh, dh];
    let [q, k, v] =
        match crate::kernels::linear_split(&x, &w_qkv, &b_qkv, [q_shape, kv_shape, kv_shape]) {
            Some(qkv) => qkv,
            None => {
                let qkv = linear(x, &attn.w_qkv, &attn.b_qkv);
                let q = qkv.clone().narrow(2, 0, h * dh).reshape(q_shape);
                let k = qkv.clone().narrow(2, h * dh, kvh * dh).reshape(kv_shape);
                let v = qkv.narrow(2, (h + kvh) * dh, kvh * dh).reshape(kv_shape);
                [q, k, v]
            }
        };
    let mut q = run.apply(hp(BlockHook::AttnQ), q)?;
    let mut k = run.apply(hp(BlockHook::AttnK), k)?;
    let v = run.apply(hp(BlockHook::AttnV), v)?;
    if let Some(tables) = &ctx.rotary {
        q = run.apply(hp(BlockHook::AttnRotQ), tables.apply(q))?;
        k = run.apply(hp(BlockHook::AttnRotK), tables.apply(k))?;
    }
    // [batch, kv_head, pos, d_head]
    let (mut k, mut v) = (k.swap_dims(1, 2), v.swap_dims(1, 2));
    if let Some(slot) = kv {
        if let Some((pk, pv)) = slot.take() {
            k = crate::kernels::cat_positions(&pk, &k)
                .unwrap_or_else(|| Tensor::cat(vec![pk, k], 2));
            v = crate::kernels::cat_positions(&pv, &v)
                .unwrap_or_else(|| Tensor::cat(vec![pv, v], 2));
        }
        *slot = Some((k.clone(), v.clone()));
    }
    let window = cfg.window_of(layer);
    let rule = ScoreRule {
        scale: cfg.attention_divisor(layer) as f32,
        soft_cap: cfg.attn_scores_soft_cap.map(|c| c as f32),
        window,
    };
    if !run.is_active(hp(BlockHook::AttnScores)) && !run.is_active(hp(BlockHook::AttnPattern)) {
        let (key_mask, past) = (ctx.key_mask, ctx.past);
        if !run.is_active(hp(BlockHook::AttnZ)) {
            let merged = [n_batch, n_pos, h * dh];
            if let Some(z) = crate::kernels::attention(&q, &k, &v, key_mask, past, rule, merged) {
                return Ok(z);
            }
        } else if let Some(z) =
            crate::kernels::attention(&q, &k, &v, key_mask, past, rule, [n_batch, n_pos, h, dh])
        {
            let z = run.apply(hp(BlockHook::AttnZ), z)?;
            return Ok(z.reshape([n_batch, n_pos, h * dh]));
        }
    }
    let (k, v) = (repeat_kv(k, h / kvh), repeat_kv(v, h / kvh));
    let q = q.swap_dims(1, 2);
    let mut scores = q.matmul(k.swap_dims(2, 3)) / f64::from(rule.scale);
    if let Some(cap) = cfg.attn_scores_soft_cap {
        scores = soft_cap(scores, cap);
    }
    let mask = if window.is_some() {
        &ctx.local_mask
    } else {
        &ctx.global_mask
    };
    if let Some(mask) = mask {
        let n_keys = scores.dims()[3];
        scores = scores.mask_fill(
            mask.clone().expand([n_batch, h, n_pos, n_keys]),
            f32::NEG_INFINITY,
        );
    }
    let scores = run.apply(hp(BlockHook::AttnScores), scores)?;
    let mut pattern = softmax(scores, 3);
    if ctx.padded {
        // Rows whose keys are all padding are NaN after softmax; TransformerLens zeroes them.
        pattern = pattern.clone().mask_fill(pattern.is_nan(), 0.0);
    }
    let pattern = run.apply(hp(BlockHook::AttnPattern), pattern)?;
    let z = pattern.matmul(v).swap_dims(1, 2);
    let z = run.apply(hp(BlockHook::AttnZ), z)?;
    Ok(z.reshape([n_batch, n_pos, h * dh]))
}

/// Each key/value head repeated for the `group` query heads it serves:
/// `[batch, kv_head, pos, d]` → `[batch, kv_head · group, pos, d]` (HF's `repeat_kv`).
pub(crate) fn repeat_kv<B: Backend>(x: Tensor<B, 4>, group: usize) -> Tensor<B, 4> {
    if group == 1 {
        return x;
    }
    let [b, kvh, p, d] = x.dims();
    x.unsqueeze_dim::<5>(2)
        .expand([b, kvh, group, p, d])
        .reshape([b, kvh * group, p, d])
}

/// `true` where attention is masked: future keys, padded keys, and with a `window` keys at
/// least `window` positions back. `None` when nothing is.
///
/// # Shapes
/// `[batch, 1, query_pos, key_pos]`.
pub(crate) fn attention_mask<B: Backend>(
    key_mask: &[Vec<bool>],
    (past, n_pos): (usize, usize),
    window: Option<usize>,
    device: &B::Device,
) -> Option<Tensor<B, 4, Bool>> {
    let n_batch = key_mask.len();
    let n_keys = past + n_pos;
    let padded = key_mask.iter().flatten().any(|m| !m);
    let windowed = window.is_some_and(|w| n_keys > w);
    if n_pos == 1 && !padded && !windowed {
        return None;
    }
    let rows = if padded { n_batch } else { 1 };
    let mut masked = Vec::with_capacity(rows * n_pos * n_keys);
    for keys in key_mask.iter().take(rows) {
        for i in 0..n_pos {
            let query = past + i;
            for (j, &real) in keys.iter().enumerate() {
                let too_old = window.is_some_and(|w| query >= j + w);
                masked.push(j > query || !real || too_old);
            }
        }
    }
    let mask =
        Tensor::<B, 4, Bool>::from_data(TensorData::new(masked, [rows, 1, n_pos, n_keys]), device);
    Some(if rows == n_batch {
        mask
    } else {
        mask.expand([n_batch, 1, n_pos, n_keys])
    })
}
