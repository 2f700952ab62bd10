//! TransformerLens weight processing (`weight_processing.py`), applied on request to a loaded
//! model: `fold_ln`, `center_writing_weights`, `center_unembed`, `fold_value_biases`, in that
//! order, with TransformerLens' formulas.
//!
//! In the fused layouts used here, a TransformerLens head matrix `W_Q[h]: [d_model, d_head]` is
//! the column block `h` of `w_qkv`, and `W_O[h]: [d_head, d_model]` is the row block `h` of
//! `w_o`.

use burn::module::Param;
use burn::tensor::{backend::Backend, Tensor};

use crate::transformer::{HookedTransformer, LayerNormWeights, ProcessingOptions};

impl<B: Backend> HookedTransformer<B> {
    /// Applies TransformerLens weight processing (see [`ProcessingOptions`]). Steps already
    /// applied are not applied twice.
    pub fn process_weights(mut self, opts: ProcessingOptions) -> Self {
        let done = self.processing;
        let w = &mut self.weights;
        if opts.fold_ln && !done.fold_ln {
            for block in &mut w.blocks {
                let (wq, bq) = fold_ln_into(
                    &mut block.ln1,
                    block.attn.w_qkv.val(),
                    block.attn.b_qkv.val(),
                );
                block.attn.w_qkv = Param::from_tensor(wq);
                block.attn.b_qkv = Param::from_tensor(bq);
                let (wi, bi) =
                    fold_ln_into(&mut block.ln2, block.mlp.w_in.val(), block.mlp.b_in.val());
                block.mlp.w_in = Param::from_tensor(wi);
                block.mlp.b_in = Param::from_tensor(bi);
            }
            let (wu, bu) = fold_ln_into(&mut w.ln_final, w.w_u.val(), w.b_u.val());
            w.w_u = Param::from_tensor(wu);
            w.b_u = Param::from_tensor(bu);
        }
        if opts.center_writing_weights && !done.center_writing_weights {
            w.w_e = Param::from_tensor(center_rows(w.w_e.val()));
            w.w_pos = Param::from_tensor(center_rows(w.w_pos.val()));
            for block in &mut w.blocks {
                block.attn.w_o = Param::from_tensor(center_rows(block.attn.w_o.val()));
                block.attn.b_o = Param::from_tensor(center(block.attn.b_o.val()));
                block.mlp.w_out = Param::from_tensor(center_rows(block.mlp.w_out.val()));
                block.mlp.b_out = Param::from_tensor(center(block.mlp.b_out.val()));
            }
        }
        if opts.center_unembed && !done.center_unembed {
            w.w_u = Param::from_tensor(center_rows(w.w_u.val()));
            w.b_u = Param::from_tensor(center(w.b_u.val()));
        }
        if opts.fold_value_biases && !done.fold_value_biases {
            let d = self.cfg.n_heads * self.cfg.d_head;
            for block in &mut w.blocks {
                let b_qkv = block.attn.b_qkv.val();
                let b_v = b_qkv.clone().narrow(0, 2 * d, d);
                // b_O += Σ_h b_V[h] @ W_O[h]  ==  b_V (flattened over heads) @ W_O (fused)
                let folded = b_v
                    .clone()
                    .unsqueeze::<2>()
                    .matmul(block.attn.w_o.val())
                    .reshape([-1]);
                block.attn.b_o = Param::from_tensor(block.attn.b_o.val() + folded);
                let q_k = b_qkv.narrow(0, 0, 2 * d);
                block.attn.b_qkv = Param::from_tensor(Tensor::cat(vec![q_k, b_v.zeros_like()], 0));
            }
        }
        self.processing = ProcessingOptions {
            fold_ln: done.fold_ln || opts.fold_ln,
            center_writing_weights: done.center_writing_weights || opts.center_writing_weights,
            center_unembed: done.center_unembed || opts.center_unembed,
            fold_value_biases: done.fold_value_biases || opts.fold_value_biases,
        };
        self
    }
}

/// Folds a LayerNorm into the linear map `w: [d_model, d_out]`, `b: [d_out]` that reads its
/// output: `b' = b + ln.b @ w`, `w' = ln.w[:, None] * w`, then centres `w'` over d_model (its
/// input is centred, so the outputs are unchanged), and turns the LayerNorm into LNPre
/// (`w = 1`, `b = 0`).
fn fold_ln_into<B: Backend>(
    ln: &mut LayerNormWeights<B>,
    w: Tensor<B, 2>,
    b: Tensor<B, 1>,
) -> (Tensor<B, 2>, Tensor<B, 1>) {
    let (scale, shift) = (ln.w.val(), ln.b.val());
    let b = b + shift
        .clone()
        .unsqueeze::<2>()
        .matmul(w.clone())
        .reshape([-1]);
    let w = w * scale.clone().unsqueeze_dim::<2>(1);
    let w = w.clone() - w.mean_dim(0);
    ln.w = Param::from_tensor(scale.ones_like());
    ln.b = Param::from_tensor(shift.zeros_like());
    (w, b)
}

/// Subtracts each row's mean (centres along the last dimension).
fn center_rows<B: Backend>(w: Tensor<B, 2>) -> Tensor<B, 2> {
    w.clone() - w.mean_dim(1)
}

fn center<B: Backend>(b: Tensor<B, 1>) -> Tensor<B, 1> {
    b.clone() - b.mean()
}
