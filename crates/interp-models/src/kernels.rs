//! CPU fast paths for the ndarray backend (f32): the dense linear map, LayerNorm, the MLP
//! nonlinearity and attention.
//!
//! On the ndarray backend, burn's matmul runs each GEMM inside its rayon pool, which starves
//! OpenBLAS' own threads, and every element-wise op is a single-threaded pass that allocates.
//! The functions here take the ndarray buffers of `NdArray<f32>` tensors (checked by `TypeId`
//! and downcast) and run fused, parallel kernels ([`cpu`]); GEMMs go to
//! [`interp_core::matmul_acc`] (OpenBLAS with the `blas` feature, otherwise the pure-Rust `gemm`
//! crate), accumulating onto a pre-filled output (bias, or residual + bias). Each returns `None`
//! on any other backend, where the caller runs burn's ops: they are the reference path, and
//! the tests below compare both.

mod cpu;

pub(crate) use cpu::ScoreRule;

use std::any::{Any, TypeId};

use burn::tensor::{backend::Backend, Tensor, TensorPrimitive};
use burn_ndarray::{NdArray, NdArrayTensor};
use ndarray::{ArrayD, ArrayView, ArrayView2, ArrayViewMut2, Axis, CowArray, Dim, Dimension, Ix2};

use crate::config::Activation;

/// Whether `B` is the backend the fast paths serve.
fn is_cpu_f32<B: Backend>() -> bool {
    TypeId::of::<B>() == TypeId::of::<NdArray<f32>>()
}

/// `x @ w + b`.
///
/// # Shapes
/// `x: [n, d_in]`, `w: [d_in, d_out]`, `b: [d_out]` → `[n, d_out]`.
pub(crate) fn linear2d<B: Backend>(
    x: Tensor<B, 2>,
    w: Tensor<B, 2>,
    b: Tensor<B, 1>,
) -> Tensor<B, 2> {
    let out_shape = [x.dims()[0], w.dims()[1]];
    if let Some(out) = linear(&x, &w, &b, None, None, out_shape) {
        return out;
    }
    x.matmul(w) + b.unsqueeze::<2>()
}

/// `act(resid + x @ w + b)` (`resid` and `act` optional) on the CPU fast path: one GEMM over
/// the rows of `x` (every dimension but the last), accumulating onto the output pre-filled with
/// `b` or `resid + b`, then the activation in place; written directly in `out_shape`, so no
/// reshape copies. `None` on other backends and for activations without a fused kernel (exact
/// GELU).
///
/// # Shapes
/// `x: [..., d_in]` (`n` rows), `w: [d_in, d_out]`, `b: [d_out]`, `resid` and `out_shape`:
/// `n · d_out` elements in any shape.
pub(crate) fn linear<B: Backend, const D: usize, const E: usize>(
    x: &Tensor<B, D>,
    w: &Tensor<B, 2>,
    b: &Tensor<B, 1>,
    resid: Option<&Tensor<B, E>>,
    act: Option<Activation>,
    out_shape: [usize; E],
) -> Option<Tensor<B, E>> {
    let post = match act {
        Some(a) => Epilogue::Act(a),
        None => Epilogue::None,
    };
    linear_then(x, w, b, resid, post, out_shape)
}

/// What [`linear_then`] applies to the product in place.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Epilogue {
    /// Nothing.
    None,
    /// A nonlinearity.
    Act(Activation),
    /// `cap · tanh(y / cap)` (Gemma-2's logit soft cap).
    SoftCap(f32),
}

/// [`linear`] with any [`Epilogue`].
pub(crate) fn linear_then<B: Backend, const D: usize, const E: usize>(
    x: &Tensor<B, D>,
    w: &Tensor<B, 2>,
    b: &Tensor<B, 1>,
    resid: Option<&Tensor<B, E>>,
    post: Epilogue,
    out_shape: [usize; E],
) -> Option<Tensor<B, E>> {
    if !is_cpu_f32::<B>() || matches!(post, Epilogue::Act(Activation::Gelu)) {
        return None;
    }
    let (xa, wa, ba) = (f32_array(x)?, f32_array(w)?, f32_array(b)?);
    let (w, b) = (view::<2>(&wa)?, view::<1>(&ba)?);
    let x = rows(&xa, w.nrows())?;
    if b.len() != w.ncols()
        || w.ncols() == 0
        || out_shape.iter().product::<usize>() != x.nrows() * w.ncols()
    {
        return None;
    }
    let ra = match resid {
        Some(r) => Some(f32_array(r)?),
        None => None,
    };
    let r = match &ra {
        Some(r) => Some(rows(r, w.ncols())?),
        None => None,
    };
    let resid = match &r {
        Some(r) if r.nrows() == x.nrows() => Some(r.as_slice()?),
        Some(_) => return None,
        None => None,
    };
    let mut out = dense(x.view(), w, &b.to_vec(), resid);
    match post {
        Epilogue::Act(Activation::GeluNew) => cpu::gelu_new(&mut out),
        Epilogue::Act(Activation::Relu) => cpu::relu(&mut out),
        Epilogue::Act(Activation::Silu) => cpu::silu(&mut out),
        Epilogue::SoftCap(cap) => cpu::soft_cap(&mut out, cap),
        Epilogue::Act(Activation::Gelu) | Epilogue::None => {}
    }
    to_tensor(out, &out_shape)
}

/// `x @ w + b` cut along its last dimension into `N` parts, each its own tensor of the
/// matching shape in `part_shapes`, on the CPU fast path (`None` elsewhere): the query, key and
/// value of a fused `W_QKV` without slicing the product (burn-ndarray's `narrow` copies element
/// by element on one thread).
///
/// # Shapes
/// `x: [..., d_in]` (`n` rows), `w: [d_in, Σ d_i]`, `b: [Σ d_i]`; part `i` has `n · d_i`
/// elements, in any shape.
pub(crate) fn linear_split<B: Backend, const D: usize, const N: usize, const E: usize>(
    x: &Tensor<B, D>,
    w: &Tensor<B, 2>,
    b: &Tensor<B, 1>,
    part_shapes: [[usize; E]; N],
) -> Option<[Tensor<B, E>; N]> {
    if !is_cpu_f32::<B>() || N == 0 {
        return None;
    }
    let (xa, wa, ba) = (f32_array(x)?, f32_array(w)?, f32_array(b)?);
    let (w, b) = (view::<2>(&wa)?, view::<1>(&ba)?);
    let x = rows(&xa, w.nrows())?;
    let n = x.nrows();
    let widths: Vec<usize> = part_shapes
        .iter()
        .map(|s| s.iter().product::<usize>() / n.max(1))
        .collect();
    if n == 0
        || widths.contains(&0)
        || part_shapes
            .iter()
            .zip(&widths)
            .any(|(s, d)| s.iter().product::<usize>() != n * d)
        || widths.iter().sum::<usize>() != w.ncols()
        || b.len() != w.ncols()
    {
        return None;
    }
    if widths.iter().all(|&d| d == widths[0]) {
        // Equal parts (Q, K, V without grouping): one GEMM each, written in place.
        let mut start = 0;
        let parts: Vec<Tensor<B, E>> = part_shapes
            .iter()
            .zip(&widths)
            .map(|(shape, &d)| {
                let (lo, hi) = (start, start + d);
                start = hi;
                let cols = ndarray::s![.., lo..hi];
                let out = dense(
                    x.view(),
                    w.slice(cols),
                    &b.slice(ndarray::s![lo..hi]).to_vec(),
                    None,
                );
                to_tensor(out, shape)
            })
            .collect::<Option<_>>()?;
        return parts.try_into().ok();
    }
    // Unequal parts (grouped keys and values, narrower than the queries, multiply less
    // efficiently alone): one GEMM over all the columns, each part copied out row by row.
    let full = dense(x.view(), w, &b.to_vec(), None);
    let total = w.ncols();
    let mut start = 0;
    let parts: Vec<Tensor<B, E>> = part_shapes
        .iter()
        .zip(&widths)
        .map(|(shape, &d)| {
            let lo = start;
            start += d;
            let mut part = Vec::with_capacity(n * d);
            for row in full.chunks_exact(total) {
                part.extend_from_slice(&row[lo..lo + d]);
            }
            to_tensor(part, shape)
        })
        .collect::<Option<_>>()?;
    parts.try_into().ok()
}

/// `act(x @ w_gate) ⊙ (x @ w_in) + b_in`, TransformerLens' gated MLP up to `hook_post`, on
/// the CPU fast path (`None` elsewhere or for exact GELU).
///
/// # Shapes
/// `x: [..., d_in]` (`n` rows), `w_gate`, `w_in: [d_in, d_mlp]`, `b_in: [d_mlp]`;
/// `out_shape`: `n · d_mlp` elements.
pub(crate) fn gated<B: Backend, const D: usize, const E: usize>(
    x: &Tensor<B, D>,
    w_gate: &Tensor<B, 2>,
    w_in: &Tensor<B, 2>,
    b_in: &Tensor<B, 1>,
    act: Activation,
    out_shape: [usize; E],
) -> Option<Tensor<B, E>> {
    if !is_cpu_f32::<B>() || act == Activation::Gelu {
        return None;
    }
    let (xa, ga, wa, ba) = (
        f32_array(x)?,
        f32_array(w_gate)?,
        f32_array(w_in)?,
        f32_array(b_in)?,
    );
    let (g, w, b) = (view::<2>(&ga)?, view::<2>(&wa)?, view::<1>(&ba)?);
    let x = rows(&xa, w.nrows())?;
    if g.dim() != w.dim()
        || b.len() != w.ncols()
        || out_shape.iter().product::<usize>() != x.nrows() * w.ncols()
    {
        return None;
    }
    let mut gate = dense(x.view(), g, &vec![0.0; g.ncols()], None);
    match act {
        Activation::GeluNew => cpu::gelu_new(&mut gate),
        Activation::Relu => cpu::relu(&mut gate),
        Activation::Silu => cpu::silu(&mut gate),
        Activation::Gelu => return None,
    }
    let linear = dense(x.view(), w, &vec![0.0; w.ncols()], None);
    cpu::mul_into(&mut gate, &linear);
    if b.iter().any(|&v| v != 0.0) {
        let b = b.to_vec();
        for row in gate.chunks_exact_mut(b.len()) {
            row.iter_mut().zip(&b).for_each(|(v, bi)| *v += bi);
        }
    }
    to_tensor(gate, &out_shape)
}

/// `resid + x @ w + b` (`resid` optional) as a fresh row-major `[n, d_out]` buffer: one GEMM
/// onto the output pre-filled with `b` or `resid + b`, or overwriting it when there is nothing
/// to add.
fn dense(
    x: ArrayView2<'_, f32>,
    w: ArrayView2<'_, f32>,
    b: &[f32],
    resid: Option<&[f32]>,
) -> Vec<f32> {
    let (n, d_out) = (x.nrows(), w.ncols());
    // Nothing to add: overwrite, so the fresh allocation's first touch is a write (a large one
    // comes straight from `mmap`, already zero, and is not cleared again).
    let overwrite = resid.is_none() && b.iter().all(|&v| v == 0.0);
    let mut out = if overwrite {
        vec![0f32; n * d_out]
    } else {
        cpu::filled_rows(n, b, resid)
    };
    let out_view = ArrayViewMut2::from_shape((n, d_out), &mut out[..]).expect("n · d_out elements");
    if overwrite {
        interp_core::matmul_into(x, w, out_view);
    } else {
        interp_core::matmul_acc(x, w, out_view);
    }
    out
}

/// TransformerLens LayerNorm over the last dimension, `(x - mean) / sqrt(var + eps) · w + b`
/// with the biased variance, on the CPU fast path; `None` elsewhere.
///
/// # Shapes
/// `x: [..., d]`, `w`, `b: [d]` → the shape of `x`.
pub(crate) fn layer_norm<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
    w: &Tensor<B, 1>,
    b: &Tensor<B, 1>,
    eps: f64,
) -> Option<Tensor<B, D>> {
    if !is_cpu_f32::<B>() {
        return None;
    }
    let (xa, wa, ba) = (f32_array(x)?, f32_array(w)?, f32_array(b)?);
    let (w, b) = (view::<1>(&wa)?.to_vec(), view::<1>(&ba)?.to_vec());
    let d = w.len();
    if b.len() != d || d == 0 {
        return None;
    }
    let x_shape = x.dims();
    let x = rows(&xa, d)?;
    let mut out = cpu::zeros(x.len());
    cpu::layer_norm(x.as_slice()?, &mut out, &w, &b, eps as f32);
    to_tensor(out, &x_shape)
}

/// RMSNorm over the last dimension, `x / sqrt(mean(x²) + eps) · w`, on the CPU fast path;
/// `None` elsewhere.
///
/// # Shapes
/// `x: [..., d]`, `w: [d]` → the shape of `x`.
pub(crate) fn rms_norm<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
    w: &Tensor<B, 1>,
    eps: f64,
) -> Option<Tensor<B, D>> {
    if !is_cpu_f32::<B>() {
        return None;
    }
    let (xa, wa) = (f32_array(x)?, f32_array(w)?);
    let w = view::<1>(&wa)?.to_vec();
    let d = w.len();
    if d == 0 {
        return None;
    }
    let x_shape = x.dims();
    let x = rows(&xa, d)?;
    let mut out = cpu::zeros(x.len());
    cpu::rms_norm(x.as_slice()?, &mut out, &w, eps as f32);
    to_tensor(out, &x_shape)
}

/// Causal softmax attention up to `hook_z` on the CPU fast path; `None` elsewhere.
///
/// Scores are `q · k / scale` (then soft-capped if `rule` says so), keys `j` visible to query
/// `i` iff `j ≤ past + i`, within `rule`'s window, and `key_mask[batch][j]`; a query with no
/// visible key gets `z = 0` (TransformerLens zeroes its NaN pattern row). Query head `h` reads
/// key/value head `h / (n_heads / n_kv_heads)`.
///
/// # Shapes
/// `q: [batch, pos, head, d_head]`, `k`, `v: [batch, kv_head, past + pos, d_head]`,
/// `key_mask: [batch][past + pos]` → `z` laid out as `[batch, pos, head, d_head]`, in
/// `out_shape` (that, or `[batch, pos, head · d_head]`).
pub(crate) fn attention<B: Backend, const E: usize>(
    q: &Tensor<B, 4>,
    k: &Tensor<B, 4>,
    v: &Tensor<B, 4>,
    key_mask: &[Vec<bool>],
    past: usize,
    rule: ScoreRule,
    out_shape: [usize; E],
) -> Option<Tensor<B, E>> {
    if !is_cpu_f32::<B>() {
        return None;
    }
    let (qa, ka, va) = (f32_array(q)?, f32_array(k)?, f32_array(v)?);
    let (q, k, v) = (view::<4>(&qa)?, view::<4>(&ka)?, view::<4>(&va)?);
    let (n_batch, n_pos, n_heads, d_head) = q.dim();
    let n_kv = k.dim().1;
    let n_keys = past + n_pos;
    let kv_dims = (n_batch, n_kv, n_keys, d_head);
    if n_kv == 0
        || n_heads % n_kv != 0
        || k.dim() != kv_dims
        || v.dim() != kv_dims
        || key_mask.len() != n_batch
        || key_mask.iter().any(|m| m.len() != n_keys)
        || out_shape.iter().product::<usize>() != q.len()
    {
        return None;
    }
    let z = cpu::attention(q, k, v, key_mask, past, rule);
    to_tensor(z, &out_shape)
}

/// `cap · tanh(x / cap)` element-wise on the CPU fast path; `None` elsewhere.
pub(crate) fn soft_cap<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
    cap: f32,
) -> Option<Tensor<B, D>> {
    if !is_cpu_f32::<B>() {
        return None;
    }
    let xa = f32_array(x)?;
    let d = *x.dims().last()?;
    let shape = x.dims();
    let mut out = rows(&xa, d)?.into_owned().into_raw_vec_and_offset().0;
    cpu::soft_cap(&mut out, cap);
    to_tensor(out, &shape)
}

/// Rotary embedding of queries or keys in the "rotate half" layout on the CPU fast path
/// (`None` elsewhere): per row `r = (batch, pos)` and head, dimensions `i < dim / 2` and
/// `i + dim / 2` rotate by the angle whose `cos` / `sin` are `cos[r][i]` / `sin[r][i]`;
/// dimensions from `dim` on pass through.
///
/// # Shapes
/// `x: [batch, pos, heads, d_head]` (any strides), `cos`, `sin`: `[batch · pos, dim / 2]`
/// row-major → `[batch, pos, heads, d_head]`.
pub(crate) fn rotary<B: Backend>(
    x: &Tensor<B, 4>,
    cos: &[f32],
    sin: &[f32],
    dim: usize,
) -> Option<Tensor<B, 4>> {
    if !is_cpu_f32::<B>() {
        return None;
    }
    let [n_batch, n_pos, n_heads, d_head] = x.dims();
    let half = dim / 2;
    let n_rows = n_batch * n_pos;
    if !dim.is_multiple_of(2)
        || dim > d_head
        || cos.len() != n_rows * half
        || sin.len() != cos.len()
    {
        return None;
    }
    let xa = f32_array(x)?;
    let mut data = rows(&xa, d_head)?.into_owned().into_raw_vec_and_offset().0;
    cpu::rotary(&mut data, n_heads * d_head, d_head, cos, sin, half);
    to_tensor(data, &[n_batch, n_pos, n_heads, d_head])
}

/// The ndarray tensor behind `t`, if `t` is an `NdArray` tensor.
fn f32_array<B: Backend, const D: usize>(t: &Tensor<B, D>) -> Option<NdArrayTensor> {
    let prim = t.clone().into_primitive().tensor();
    (Box::new(prim) as Box<dyn Any>)
        .downcast::<NdArrayTensor>()
        .ok()
        .map(|b| *b)
}

/// The f32 view of an ndarray tensor of rank `D` (`None` for other element types or ranks).
fn view<const D: usize>(t: &NdArrayTensor) -> Option<ArrayView<'_, f32, Dim<[usize; D]>>>
where
    Dim<[usize; D]>: Dimension,
{
    match t {
        NdArrayTensor::F32(a) => a.view().into_dimensionality().ok(),
        _ => None,
    }
}

/// `past` and `new` joined along positions (axis 2 of `[batch, head_index, pos, d_head]`): a
/// generation step's KV-cache append, on the CPU fast path one contiguous copy per row (burn's
/// `cat` walks the elements through dynamic-rank indices, ≈ 5 % of a step). `None` on other
/// backends or disagreeing shapes.
pub(crate) fn cat_positions<B: Backend>(
    past: &Tensor<B, 4>,
    new: &Tensor<B, 4>,
) -> Option<Tensor<B, 4>> {
    if !is_cpu_f32::<B>() {
        return None;
    }
    let (pa, na) = (f32_array(past)?, f32_array(new)?);
    let (p, n) = (view::<4>(&pa)?, view::<4>(&na)?);
    let ([b, h, p_len, d], [nb, nh, n_len, nd]) = (p.dim().into(), n.dim().into());
    if (b, h, d) != (nb, nh, nd) {
        return None;
    }
    let mut data = Vec::with_capacity(b * h * (p_len + n_len) * d);
    for bi in 0..b {
        for hi in 0..h {
            extend_rows(&mut data, p.slice(ndarray::s![bi, hi, .., ..]));
            extend_rows(&mut data, n.slice(ndarray::s![bi, hi, .., ..]));
        }
    }
    to_tensor(data, &[b, h, p_len + n_len, d])
}

/// The logits of the last position, `[batch, d_vocab]` row-major, from `[batch, pos,
/// d_vocab]`; on the CPU fast path a copy of whole rows (burn's `into_data` of the slice walks
/// the elements through dynamic-rank indices, ≈ 7 % of a generation step). `None` on other
/// backends.
pub(crate) fn last_position<B: Backend>(logits: &Tensor<B, 3>) -> Option<Vec<f32>> {
    if !is_cpu_f32::<B>() {
        return None;
    }
    let la = f32_array(logits)?;
    let l = view::<3>(&la)?;
    let n_pos = l.shape()[1];
    if n_pos == 0 {
        return None;
    }
    let last = l.index_axis(Axis(1), n_pos - 1);
    let mut out = Vec::with_capacity(last.len());
    extend_rows(&mut out, last);
    Some(out)
}

/// Appends the rows of `part` to `out` in order, a slice copy for each contiguous row.
fn extend_rows(out: &mut Vec<f32>, part: ArrayView2<'_, f32>) {
    for row in part.rows() {
        match row.as_slice() {
            Some(r) => out.extend_from_slice(r),
            None => out.extend(row.iter().copied()),
        }
    }
}

/// An f32 tensor `[..., cols]` as row-major rows `[n, cols]`: a view when the tensor is in
/// standard layout, else a copy.
fn rows(t: &NdArrayTensor, cols: usize) -> Option<CowArray<'_, f32, Ix2>> {
    let NdArrayTensor::F32(a) = t else {
        return None;
    };
    let a = a.view();
    if a.ndim() == 0 || a.shape()[a.ndim() - 1] != cols || cols == 0 {
        return None;
    }
    let n = a.len() / cols;
    if a.is_standard_layout() {
        return a.into_shape_with_order((n, cols)).ok().map(CowArray::from);
    }
    let owned = a.as_standard_layout().into_owned();
    owned
        .into_shape_with_order((n, cols))
        .ok()
        .map(CowArray::from)
}

/// Wraps a row-major buffer of `shape` as a tensor of backend `B` (which must be
/// `NdArray<f32>`).
fn to_tensor<B: Backend, const D: usize>(data: Vec<f32>, shape: &[usize]) -> Option<Tensor<B, D>> {
    if shape.len() != D {
        return None;
    }
    let array = ArrayD::from_shape_vec(shape, data).ok()?;
    let prim: NdArrayTensor = array.into_shared().into();
    let prim = *(Box::new(prim) as Box<dyn Any>)
        .downcast::<B::FloatTensorPrimitive>()
        .ok()?;
    Some(Tensor::from_primitive(TensorPrimitive::Float(prim)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, TensorData};

    type Cpu = NdArray<f32>;

    #[test]
    fn fast_path_matches_naive_product_including_strided_weights() {
        let device = Default::default();
        let x = Tensor::<Cpu, 2>::random([37, 19], Distribution::Normal(0.0, 1.0), &device);
        let w = Tensor::<Cpu, 2>::random([23, 19], Distribution::Normal(0.0, 1.0), &device);
        let b = Tensor::<Cpu, 1>::random([23], Distribution::Normal(0.0, 1.0), &device);
        // A transposed (column-major) weight view exercises the strides.
        let got = linear2d(x.clone(), w.clone().transpose(), b.clone());
        let xv: Vec<f32> = x.into_data().into_vec().unwrap();
        let wv: Vec<f32> = w.into_data().into_vec().unwrap();
        let bv: Vec<f32> = b.into_data().into_vec().unwrap();
        let mut want = vec![0f32; 37 * 23];
        for i in 0..37 {
            for j in 0..23 {
                want[i * 23 + j] = bv[j]
                    + (0..19)
                        .map(|k| xv[i * 19 + k] * wv[j * 19 + k])
                        .sum::<f32>();
            }
        }
        let want = Tensor::<Cpu, 2>::from_data(TensorData::new(want, [37, 23]), &device);
        let diff = (got - want).abs().max().into_scalar();
        assert!(diff < 1e-4, "{diff}");
    }

    fn vals<const D: usize>(t: Tensor<Cpu, D>) -> Vec<f32> {
        t.into_data().into_vec().unwrap()
    }

    fn max_diff<const D: usize>(a: Tensor<Cpu, D>, b: Tensor<Cpu, D>) -> f32 {
        assert_eq!(a.dims(), b.dims());
        let (a, b) = (vals(a), vals(b));
        assert!(a.iter().chain(&b).all(|v| v.is_finite()));
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    fn normal<const D: usize>(shape: [usize; D], std: f64) -> Tensor<Cpu, D> {
        Tensor::random(shape, Distribution::Normal(0.0, std), &Default::default())
    }

    #[test]
    fn layer_norm_matches_burn_reference() {
        for (n, d) in [(1, 1), (7, 19), (37, 33), (64, 768)] {
            let x = normal([n, d], 3.0) + 1.5;
            let (w, b) = (normal([d], 1.0), normal([d], 1.0));
            let eps = 1e-5;
            // The reference path of `transformer::layer_norm`.
            let c = x.clone() - x.clone().mean_dim(1);
            let scale = (c.clone().powi_scalar(2).mean_dim(1) + eps).sqrt();
            let want = c / scale * w.clone().unsqueeze::<2>() + b.clone().unsqueeze::<2>();
            let got = layer_norm(&x, &w, &b, eps).unwrap();
            // Rank 3 takes the same path.
            let got3 = layer_norm(&x.clone().reshape([1, n, d]), &w, &b, eps).unwrap();
            assert_eq!(vals(got3), vals(got.clone()));
            let diff = max_diff(got, want);
            assert!(diff < 1e-5, "[{n}, {d}]: {diff}");
        }
    }

    #[test]
    fn fused_activations_match_burn_reference() {
        for (n, d_in, d_out) in [(1, 3, 5), (13, 19, 37), (40, 64, 300)] {
            let x = normal([n, d_in], 1.0);
            let w = normal([d_in, d_out], 1.0);
            let b = normal([d_out], 1.0);
            let pre = x.clone().matmul(w.clone()) + b.clone().unsqueeze::<2>();
            let act = |a| linear(&x, &w, &b, None, Some(a), [n, d_out]);
            let got = act(Activation::GeluNew).unwrap();
            let want = crate::components::gelu_new(pre.clone());
            let diff = max_diff(got, want);
            assert!(diff < 1e-5, "gelu_new [{n}, {d_in}, {d_out}]: {diff}");
            let got = act(Activation::Relu).unwrap();
            let diff = max_diff(got, burn::tensor::activation::relu(pre.clone()));
            assert!(diff < 1e-5, "relu [{n}, {d_in}, {d_out}]: {diff}");
            let got = act(Activation::Silu).unwrap();
            let diff = max_diff(got, burn::tensor::activation::silu(pre.clone()));
            assert!(diff < 1e-5, "silu [{n}, {d_in}, {d_out}]: {diff}");
            // The gated MLP against its burn formula.
            let w_gate = normal([d_in, d_out], 1.0);
            let gate = x.clone().matmul(w_gate.clone());
            let lin = x.clone().matmul(w.clone());
            for a in [Activation::GeluNew, Activation::Silu, Activation::Relu] {
                let want = crate::components::activate(gate.clone(), a) * lin.clone()
                    + b.clone().unsqueeze::<2>();
                let got = gated(&x, &w_gate, &w, &b, a, [n, d_out]).unwrap();
                let diff = max_diff(got, want);
                assert!(diff < 1e-4, "gated {a:?} [{n}, {d_in}, {d_out}]: {diff}");
            }
            assert!(act(Activation::Gelu).is_none());
        }
        // Saturation far out on both sides.
        let x = Tensor::<Cpu, 1>::from_floats(
            [-1e4, -30.0, -5.0, 0.0, 5.0, 30.0, 1e4],
            &Default::default(),
        );
        let mut data = vals(x.clone());
        cpu::gelu_new(&mut data);
        let want = vals(crate::components::gelu_new(x));
        for (g, w) in data.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{g} vs {w}");
        }
    }

    /// The KV-cache append, with a swapped-axes (non-standard) new part as attention makes it,
    /// and the last position's logits of a sliced (non-contiguous) tensor, against burn's ops.
    #[test]
    fn position_concat_and_last_logits_match_burn() {
        let past = normal([3, 4, 5, 6], 1.0);
        let new = normal([3, 2, 4, 6], 1.0).swap_dims(1, 2);
        let got = cat_positions(&past, &new).unwrap();
        let want = Tensor::cat(vec![past.clone(), new.clone()], 2);
        assert_eq!(max_diff(got, want), 0.0);
        assert!(cat_positions(&past, &normal([3, 4, 1, 5], 1.0)).is_none());

        let logits = normal([3, 7, 11], 1.0).narrow(2, 1, 9);
        let got = last_position(&logits).unwrap();
        assert_eq!(got, vals(logits.clone().narrow(1, 6, 1)));
    }

    #[test]
    fn split_linear_matches_narrowed_burn_reference() {
        let (n, d_in, d) = (13, 19, 10);
        let x = normal([n, d_in], 1.0);
        let w = normal([3 * d, d_in], 1.0).transpose();
        let b = normal([3 * d], 1.0);
        let full = x.clone().matmul(w.clone()) + b.clone().unsqueeze::<2>();
        let parts: [Tensor<Cpu, 3>; 3] = linear_split(&x, &w, &b, [[n, 2, d / 2]; 3]).unwrap();
        for (i, got) in parts.into_iter().enumerate() {
            let want = full.clone().narrow(1, i * d, d).reshape([n, 2, d / 2]);
            let diff = max_diff(got, want);
            assert!(diff < 1e-5, "part {i}: {diff}");
        }
        // Unequal parts (grouped keys and values: Q wider than K and V).
        let shapes = [[n, 2, 8], [n, 1, 6], [n, 1, 8]];
        let parts: [Tensor<Cpu, 3>; 3] = linear_split(&x, &w, &b, shapes).unwrap();
        let mut start = 0;
        for (i, got) in parts.into_iter().enumerate() {
            let width = shapes[i][1] * shapes[i][2];
            let want = full.clone().narrow(1, start, width).reshape(shapes[i]);
            start += width;
            assert!(max_diff(got, want) < 1e-5, "unequal part {i}");
        }
        // Parts that do not cover the output columns: not this path.
        assert!(linear_split::<Cpu, 2, 4, 2>(&x, &w, &b, [[n, d]; 4]).is_none());
        assert!(linear_split::<Cpu, 2, 3, 2>(&x, &w, &b, [[n, d + 1]; 3]).is_none());
    }

    #[test]
    fn residual_linear_matches_burn_reference() {
        let (n, d_in, d_out) = (21, 17, 29);
        let x = normal([n, d_in], 1.0);
        let w = normal([d_out, d_in], 1.0).transpose();
        let b = normal([d_out], 1.0);
        let r = normal([d_out, n], 1.0).transpose(); // a strided residual
        let want = r.clone() + x.clone().matmul(w.clone()) + b.clone().unsqueeze::<2>();
        let got = linear(&x, &w, &b, Some(&r), None, [n, d_out]).unwrap();
        assert!(max_diff(got, want) < 1e-4);
        // Zero bias: the output starts from the zeroed allocation.
        let zero = Tensor::<Cpu, 1>::zeros([d_out], &Default::default());
        let got = linear2d(x.clone(), w.clone(), zero);
        assert!(max_diff(got, x.matmul(w)) < 1e-4);
    }

    /// The reference path of `components::attention` from scores to `z`.
    fn attention_reference(
        q: Tensor<Cpu, 4>,
        k: Tensor<Cpu, 4>,
        v: Tensor<Cpu, 4>,
        key_mask: &[Vec<bool>],
        past: usize,
        rule: ScoreRule,
    ) -> Tensor<Cpu, 4> {
        let [n_batch, n_pos, n_heads, _] = q.dims();
        let group = n_heads / k.dims()[1];
        let (k, v) = (
            crate::components::attention::repeat_kv(k, group),
            crate::components::attention::repeat_kv(v, group),
        );
        let n_keys = past + n_pos;
        let mask = crate::components::attention::attention_mask::<Cpu>(
            key_mask,
            (past, n_pos),
            rule.window,
            &Default::default(),
        );
        let padded = key_mask.iter().flatten().any(|m| !m);
        let mut scores = q.swap_dims(1, 2).matmul(k.swap_dims(2, 3)) / f64::from(rule.scale);
        if let Some(cap) = rule.soft_cap {
            scores = (scores / f64::from(cap)).tanh() * f64::from(cap);
        }
        if let Some(mask) = mask {
            scores = scores.mask_fill(
                mask.expand([n_batch, n_heads, n_pos, n_keys]),
                f32::NEG_INFINITY,
            );
        }
        let mut pattern = burn::tensor::activation::softmax(scores, 3);
        if padded {
            pattern = pattern.clone().mask_fill(pattern.is_nan(), 0.0);
        }
        pattern.matmul(v).swap_dims(1, 2)
    }

    #[test]
    fn attention_matches_burn_reference() {
        // (batch, pos, heads, kv heads, d_head, past, left padding per row, cap, window)
        type Case = (
            usize,
            usize,
            usize,
            usize,
            usize,
            usize,
            &'static [usize],
            Option<f32>,
            Option<usize>,
        );
        let cases: [Case; 10] = [
            (1, 1, 1, 1, 1, 0, &[0], None, None),
            (2, 5, 3, 3, 7, 0, &[0, 0], None, None),
            (3, 37, 2, 2, 16, 0, &[0, 4, 36], None, None),
            (2, 70, 4, 4, 64, 0, &[0, 69], None, None),
            (2, 1, 3, 3, 8, 9, &[0, 3], None, None),
            (3, 6, 2, 2, 5, 11, &[0, 2, 14], None, None),
            // Grouped keys and values, soft caps and sliding windows.
            (2, 40, 4, 2, 8, 0, &[0, 5], Some(2.0), None),
            (2, 40, 6, 2, 8, 0, &[0, 5], None, Some(7)),
            (1, 3, 4, 1, 8, 20, &[0], Some(1.5), Some(4)),
            (2, 33, 4, 2, 16, 0, &[0, 0], Some(3.0), Some(1)),
        ];
        for (n_batch, n_pos, n_heads, n_kv, d_head, past, pads, soft_cap, window) in cases {
            let n_keys = past + n_pos;
            let q = normal([n_batch, n_pos, n_heads, d_head], 1.0);
            // Keys and values as the KV cache holds them: [batch, kv_head, key, d_head].
            let k = normal([n_batch, n_keys, n_kv, d_head], 1.0).swap_dims(1, 2);
            let v = normal([n_batch, n_kv, n_keys, d_head], 1.0);
            // Left padding, then right padding on the last row (a padded query at the end).
            let mut key_mask: Vec<Vec<bool>> = pads
                .iter()
                .map(|&p| (0..n_keys).map(|j| j >= p).collect())
                .collect();
            if n_keys > 2 && n_batch > 1 {
                key_mask[0][n_keys - 1] = false;
            }
            let rule = ScoreRule {
                scale: (d_head as f32).sqrt(),
                soft_cap,
                window,
            };
            let want = attention_reference(q.clone(), k.clone(), v.clone(), &key_mask, past, rule);
            let dims = [n_batch, n_pos, n_heads, d_head];
            let got = attention(&q, &k, &v, &key_mask, past, rule, dims).unwrap();
            let merged = [n_batch, n_pos, n_heads * d_head];
            let got3 = attention(&q, &k, &v, &key_mask, past, rule, merged).unwrap();
            assert_eq!(vals(got3), vals(got.clone()));
            let diff = max_diff(got, want);
            assert!(
                diff < 1e-5,
                "b{n_batch} p{n_pos} h{n_heads}/{n_kv} dh{d_head} past{past} {rule:?}: {diff}"
            );
        }
    }

    #[test]
    fn rotary_and_soft_cap_match_burn_reference() {
        use crate::components::rotary::RotaryTables;
        use crate::config::{Llama3RopeScaling, Rotary};
        let (n_batch, n_pos, n_heads, d_head) = (2, 9, 3, 10);
        let positions: Vec<i64> = (0..(n_batch * n_pos) as i64).map(|p| p % 7 + 3).collect();
        for (dim, scaling) in [
            (10, None),
            (4, None),
            (
                8,
                Some(Llama3RopeScaling {
                    factor: 8.0,
                    low_freq_factor: 1.0,
                    high_freq_factor: 4.0,
                    original_context: 16.0,
                }),
            ),
        ] {
            let rotary = Rotary {
                dim,
                base: 100.0,
                llama3_scaling: scaling,
            };
            let tables = RotaryTables::<Cpu>::new(
                &rotary,
                &positions,
                [n_batch, n_pos],
                &Default::default(),
            );
            let x = normal([n_batch, n_heads, n_pos, d_head], 1.0).swap_dims(1, 2);
            let got = tables.apply(x.clone());
            // Against the rotation written out per element.
            let xv = vals(x.clone());
            let gv = vals(got);
            let inv = rotary.inverse_frequencies();
            let half = dim / 2;
            for (idx, g) in gv.iter().enumerate() {
                let i = idx % d_head;
                let row = idx / (n_heads * d_head);
                let base = idx - i;
                let want = if i >= dim {
                    xv[idx]
                } else {
                    let f = i % half;
                    let angle = positions[row] as f32 * inv[f];
                    let (a, b) = (xv[base + f], xv[base + f + half]);
                    if i < half {
                        a * angle.cos() - b * angle.sin()
                    } else {
                        b * angle.cos() + a * angle.sin()
                    }
                };
                assert!((g - want).abs() < 1e-5, "dim {dim} [{idx}]: {g} vs {want}");
            }
        }
        let x = normal([3, 4, 5], 4.0);
        let got = soft_cap(&x, 2.5).unwrap();
        let want = (x / 2.5).tanh() * 2.5;
        assert!(max_diff(got, want) < 1e-6);
    }

    #[test]
    fn rms_norm_matches_burn_reference() {
        for (n, d) in [(1, 1), (7, 19), (64, 768)] {
            let x = normal([n, d], 3.0) + 1.5;
            let w = normal([d], 1.0);
            let eps = 1e-6;
            let scale = (x.clone().powi_scalar(2).mean_dim(1) + eps).sqrt();
            let want = x.clone() / scale * w.clone().unsqueeze::<2>();
            let got = rms_norm(&x, &w, eps).unwrap();
            let diff = max_diff(got, want);
            assert!(diff < 1e-5, "[{n}, {d}]: {diff}");
        }
    }

    #[test]
    fn fast_paths_decline_other_backends_and_bad_shapes() {
        type Ad = burn_autodiff::Autodiff<Cpu>;
        let x = Tensor::<Ad, 2>::ones([2, 3], &Default::default());
        let w = Tensor::<Ad, 1>::ones([3], &Default::default());
        assert!(layer_norm(&x, &w, &w, 1e-5).is_none());
        let x = normal([2, 3], 1.0);
        let w = normal([4], 1.0);
        assert!(layer_norm(&x, &w, &w, 1e-5).is_none());
        let q = normal([1, 2, 1, 4], 1.0);
        let k = normal([1, 1, 3, 4], 1.0);
        let rule = ScoreRule {
            scale: 1.0,
            soft_cap: None,
            window: None,
        };
        assert!(attention(&q, &k, &k, &[vec![true; 2]], 0, rule, [1, 2, 1, 4]).is_none());
        let k = normal([1, 1, 2, 4], 1.0);
        assert!(attention(&q, &k, &k, &[vec![true; 2]], 0, rule, [1, 2, 1, 4]).is_some());
        assert!(attention(&q, &k, &k, &[vec![true; 2]], 0, rule, [1, 2, 5]).is_none());
        // Query heads that are not a multiple of the key/value heads.
        let q3 = normal([1, 2, 3, 4], 1.0);
        let k2 = normal([1, 2, 2, 4], 1.0);
        assert!(attention(&q3, &k2, &k2, &[vec![true; 2]], 0, rule, [1, 2, 3, 4]).is_none());
        assert!(linear(&q, &w.clone().reshape([4, 1]), &w, None, None, [1, 2, 1]).is_none());
    }
}
