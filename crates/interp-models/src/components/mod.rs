//! The building blocks every architecture shares, each once: linear maps and the residual
//! update ([`linear`]), LayerNorm and RMSNorm ([`norm`]), rotary embeddings ([`rotary`]),
//! attention with grouped key/value heads, soft caps and sliding windows ([`attention`]), and
//! plain and gated MLPs ([`mlp`]). Each fires its TransformerLens hooks and takes a fused CPU
//! kernel where no hook looks inside it.

pub(crate) mod attention;
pub(crate) mod mlp;
pub(crate) mod norm;
pub(crate) mod rotary;

use burn::module::Param;
use burn::tensor::activation::{gelu, relu, sigmoid, silu};
use burn::tensor::{backend::Backend, Tensor};

use crate::config::Activation;
use crate::error::Result;
use crate::hooks::{HookPoint, HookRun};

/// `resid + hook(x @ w + b)`, a sublayer's output added to the residual stream: one GEMM
/// accumulating onto the residual on the CPU fast path when `hook` is inactive, otherwise the
/// reference ops with the hook applied.
pub(crate) fn residual_branch<B: Backend>(
    x: Tensor<B, 3>,
    w: &Param<Tensor<B, 2>>,
    b: &Param<Tensor<B, 1>>,
    resid: Tensor<B, 3>,
    hook: HookPoint,
    run: &mut HookRun<'_, B>,
) -> Result<Tensor<B, 3>> {
    if !run.is_active(hook) {
        let shape = resid.dims();
        if let Some(y) = crate::kernels::linear(&x, &w.val(), &b.val(), Some(&resid), None, shape) {
            return Ok(y);
        }
    }
    Ok(resid + run.apply(hook, linear(x, w, b))?)
}

/// `x @ w + b` over the last dimension, as one GEMM.
///
/// # Shapes
/// `x: [batch, pos, d_in]`, `w: [d_in, d_out]`, `b: [d_out]` → `[batch, pos, d_out]`.
pub(crate) fn linear<B: Backend>(
    x: Tensor<B, 3>,
    w: &Param<Tensor<B, 2>>,
    b: &Param<Tensor<B, 1>>,
) -> Tensor<B, 3> {
    linear_t(x, w.val(), b.val())
}

/// [`linear`] on plain tensors.
pub(crate) fn linear_t<B: Backend>(
    x: Tensor<B, 3>,
    w: Tensor<B, 2>,
    b: Tensor<B, 1>,
) -> Tensor<B, 3> {
    let [n_batch, n_pos, d_in] = x.dims();
    let d_out = w.dims()[1];
    if let Some(y) = crate::kernels::linear(&x, &w, &b, None, None, [n_batch, n_pos, d_out]) {
        return y;
    }
    let y = crate::kernels::linear2d(x.reshape([n_batch * n_pos, d_in]), w, b);
    y.reshape([n_batch, n_pos, d_out])
}

/// `x @ w` (no bias).
pub(crate) fn project<B: Backend>(x: Tensor<B, 3>, w: Tensor<B, 2>) -> Tensor<B, 3> {
    let zero = Tensor::zeros([w.dims()[1]], &w.device());
    linear_t(x, w, zero)
}

/// The nonlinearity `act` on burn ops (the reference path).
pub(crate) fn activate<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    act: Activation,
) -> Tensor<B, D> {
    match act {
        Activation::GeluNew => gelu_new(x),
        Activation::Gelu => gelu(x),
        Activation::Relu => relu(x),
        Activation::Silu => silu(x),
    }
}

/// GPT-2's tanh approximation of GELU, `0.5 x (1 + tanh(u))` with
/// `u = sqrt(2/π) (x + 0.044715 x³)`, computed as `x · sigmoid(2u)` (the same function:
/// `0.5 (1 + tanh(u)) = sigmoid(2u)`), which is faster on CPU than burn's `gelu_approximate`.
pub(crate) fn gelu_new<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    const TWO_SQRT_2_OVER_PI: f64 = 1.595_769_121_605_730_7;
    let two_u = (x.clone() * x.clone() * 0.044715 + 1.0) * x.clone() * TWO_SQRT_2_OVER_PI;
    sigmoid(two_u) * x
}

/// `x @ w + b`, soft-capped if `cap` is given: the unembedding, with the cap applied in place
/// on the CPU fast path.
pub(crate) fn unembed<B: Backend>(
    x: Tensor<B, 3>,
    w: &Param<Tensor<B, 2>>,
    b: &Param<Tensor<B, 1>>,
    cap: Option<f64>,
) -> Tensor<B, 3> {
    let Some(cap) = cap else {
        return linear(x, w, b);
    };
    let [n_batch, n_pos, _] = x.dims();
    let (w, b) = (w.val(), b.val());
    let shape = [n_batch, n_pos, w.dims()[1]];
    let post = crate::kernels::Epilogue::SoftCap(cap as f32);
    match crate::kernels::linear_then(&x, &w, &b, None, post, shape) {
        Some(y) => y,
        None => soft_cap(linear_t(x, w, b), cap),
    }
}

/// `cap · tanh(x / cap)` (Gemma-2's soft caps).
pub(crate) fn soft_cap<B: Backend, const D: usize>(x: Tensor<B, D>, cap: f64) -> Tensor<B, D> {
    if let Some(y) = crate::kernels::soft_cap(&x, cap as f32) {
        return y;
    }
    (x / cap).tanh() * cap
}
