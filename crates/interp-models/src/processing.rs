//! TransformerLens weight processing (`weight_processing.py`), applied on request to a loaded
//! model: `fold_ln`, `center_writing_weights`, `center_unembed`, `fold_value_biases`, in that
//! order, with TransformerLens' formulas and its per-architecture rules: RMSNorm folds its
//! scale only (there is no centring to fold); writing weights are centred only under
//! LayerNorm (which removes the mean anyway); the unembedding is not centred under a logit
//! soft cap (which does not commute with a per-position shift). Gemma-2's post-norms read the
//! sublayer outputs and are never folded.
//!
//! In the fused layouts used here, a TransformerLens head matrix `W_Q[h]: [d_model, d_head]` is
//! the column block `h` of `w_qkv`, and `W_O[h]: [d_head, d_model]` is the row block `h` of
//! `w_o`.

use burn::module::Param;
use burn::tensor::{backend::Backend, Tensor};

use crate::config::Normalization;
use crate::transformer::{HookedTransformer, ProcessingOptions};
use crate::weights::LayerNormWeights;

impl<B: Backend> HookedTransformer<B> {
    /// Applies TransformerLens weight processing (see [`ProcessingOptions`]). Steps already
    /// applied are not applied twice.
    pub fn process_weights(mut self, opts: ProcessingOptions) -> Self {
        let done = self.processing;
        let cfg = &self.cfg;
        let kind = cfg.normalization;
        let w = &mut self.weights;
        if opts.fold_ln && !done.fold_ln {
            for block in &mut w.blocks {
                let ln1 = take_norm(&mut block.ln1);
                let attn = &mut block.attn;
                let (wq, bq) = fold_norm(kind, &ln1, attn.w_qkv.val(), attn.b_qkv.val());
                attn.w_qkv = Param::from_tensor(wq);
                attn.b_qkv = Param::from_tensor(bq);
                // A parallel block's MLP reads ln1's output.
                let ln2 = match &mut block.ln2 {
                    Some(ln2) => take_norm(ln2),
                    None => ln1,
                };
                let mlp = &mut block.mlp;
                let (wi, bi) = fold_norm(kind, &ln2, mlp.w_in.val(), mlp.b_in.val());
                mlp.w_in = Param::from_tensor(wi);
                mlp.b_in = Param::from_tensor(bi);
                if let Some(gate) = &mut mlp.w_gate {
                    // The gate has no bias, and gated MLPs come with RMSNorm (no shift).
                    let zero = Tensor::zeros([gate.val().dims()[1]], &gate.val().device());
                    let (wg, _) = fold_norm(kind, &ln2, gate.val(), zero);
                    *gate = Param::from_tensor(wg);
                }
            }
            let ln_f = take_norm(&mut w.ln_final);
            let (wu, bu) = fold_norm(kind, &ln_f, w.w_u.val(), w.b_u.val());
            w.w_u = Param::from_tensor(wu);
            w.b_u = Param::from_tensor(bu);
        }
        let layer_norm = kind == Normalization::LayerNorm;
        if opts.center_writing_weights && !done.center_writing_weights && layer_norm {
            w.w_e = Param::from_tensor(center_rows(w.w_e.val()));
            if let Some(w_pos) = &mut w.w_pos {
                *w_pos = Param::from_tensor(center_rows(w_pos.val()));
            }
            for block in &mut w.blocks {
                block.attn.w_o = Param::from_tensor(center_rows(block.attn.w_o.val()));
                block.attn.b_o = Param::from_tensor(center(block.attn.b_o.val()));
                block.mlp.w_out = Param::from_tensor(center_rows(block.mlp.w_out.val()));
                block.mlp.b_out = Param::from_tensor(center(block.mlp.b_out.val()));
            }
        }
        let capped = cfg.output_logits_soft_cap.is_some();
        if opts.center_unembed && !done.center_unembed && !capped {
            w.w_u = Param::from_tensor(center_rows(w.w_u.val()));
            w.b_u = Param::from_tensor(center(w.b_u.val()));
        }
        if opts.fold_value_biases && !done.fold_value_biases {
            let (q, kv) = (cfg.n_heads * cfg.d_head, cfg.n_kv_heads() * cfg.d_head);
            let group = cfg.n_heads / cfg.n_kv_heads();
            for block in &mut w.blocks {
                let b_qkv = block.attn.b_qkv.val();
                let b_v = b_qkv.clone().narrow(0, q + kv, kv);
                // b_O += Σ_h b_V[g(h)] @ W_O[h]  ==  b_V repeated per query head @ W_O (fused)
                let b_v_heads = b_v
                    .clone()
                    .reshape([cfg.n_kv_heads(), 1, cfg.d_head])
                    .expand([cfg.n_kv_heads(), group, cfg.d_head])
                    .reshape([1, q]);
                let folded = b_v_heads.matmul(block.attn.w_o.val()).reshape([-1]);
                block.attn.b_o = Param::from_tensor(block.attn.b_o.val() + folded);
                let q_k = b_qkv.narrow(0, 0, q + kv);
                block.attn.b_qkv = Param::from_tensor(Tensor::cat(vec![q_k, b_v.zeros_like()], 0));
            }
        }
        self.processing = ProcessingOptions {
            fold_ln: done.fold_ln || opts.fold_ln,
            center_writing_weights: done.center_writing_weights
                || (opts.center_writing_weights && layer_norm),
            center_unembed: done.center_unembed || (opts.center_unembed && !capped),
            fold_value_biases: done.fold_value_biases || opts.fold_value_biases,
        };
        self
    }
}

/// A norm's scale and shift, leaving it in its `Pre` form (`w = 1`, `b = 0`).
fn take_norm<B: Backend>(ln: &mut LayerNormWeights<B>) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let (scale, shift) = (ln.w.val(), ln.b.val());
    ln.w = Param::from_tensor(scale.ones_like());
    ln.b = Param::from_tensor(shift.zeros_like());
    (scale, shift)
}

/// Folds a norm's `(scale, shift)` into the linear map `w: [d_model, d_out]`, `b: [d_out]`
/// that reads its output: `b' = b + shift @ w`, `w' = scale[:, None] * w`, then — for
/// LayerNorm, whose output is centred — `w'` centred over d_model (the outputs are unchanged).
/// RMSNorm folds its scale only.
fn fold_norm<B: Backend>(
    kind: Normalization,
    (scale, shift): &(Tensor<B, 1>, Tensor<B, 1>),
    w: Tensor<B, 2>,
    b: Tensor<B, 1>,
) -> (Tensor<B, 2>, Tensor<B, 1>) {
    let scaled = w.clone() * scale.clone().unsqueeze_dim::<2>(1);
    if kind == Normalization::RmsNorm {
        return (scaled, b);
    }
    let b = b + shift.clone().unsqueeze::<2>().matmul(w).reshape([-1]);
    let centred = scaled.clone() - scaled.mean_dim(0);
    (centred, b)
}

/// Subtracts each row's mean (centres along the last dimension).
fn center_rows<B: Backend>(w: Tensor<B, 2>) -> Tensor<B, 2> {
    w.clone() - w.mean_dim(1)
}

fn center<B: Backend>(b: Tensor<B, 1>) -> Tensor<B, 1> {
    b.clone() - b.mean()
}
