//! Slice-level CPU kernels behind the ndarray fast paths of [`super`]: LayerNorm, the MLP
//! nonlinearity and causal attention. Each runs in parallel over rows (rayon) and is compiled
//! three times: portable, AVX2 + FMA and AVX-512, picked at run time.
//!
//! These kernels know nothing of burn or hooks; [`super`] decides when they may replace the
//! burn ops (the reference path), and the tests there compare both.

use interp_core::multiversion;
use interp_core::simd::{fmadd, Simd};
use ndarray::{s, ArrayView2, ArrayView4, ArrayViewMut2};
use rayon::prelude::*;

/// Rows per rayon task for the row-wise kernels (LayerNorm, residual initialisation).
const ROWS_PER_TASK: usize = 16;
/// Elements per rayon task for element-wise kernels.
const ELEMS_PER_TASK: usize = 1 << 14;
/// Queries per rayon task in attention.
const QUERIES_PER_TASK: usize = 32;

/// Sum with 16 independent accumulators, so the loop vectorises.
#[inline(always)]
fn sum_lanes(x: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = x.chunks_exact(16);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + tail.iter().sum::<f32>()
}

/// Sum of squares of `x - mean`, vectorised as [`sum_lanes`].
#[inline(always)]
fn centered_sq_sum<const FMA: bool>(x: &[f32], mean: f32) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = x.chunks_exact(16);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            let d = v - mean;
            *a = fmadd::<FMA>(d, d, *a);
        }
    }
    acc.iter().sum::<f32>() + tail.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>()
}

/// `exp(x)` to about 2 ulp (Cephes' polynomial after range reduction by powers of two),
/// branch-free so that loops over it vectorise. Inputs are clamped to `[-87, 88]` (outputs
/// `≈ 1.6e-38 … 1.65e38`); NaN stays NaN.
#[inline(always)]
fn exp_approx<const FMA: bool>(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding and subtracting it rounds to an integer.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let k = fmadd::<FMA>(x, std::f32::consts::LOG2_E, ROUND) - ROUND;
    let r = fmadd::<FMA>(-k, LN2_HI, x);
    let r = fmadd::<FMA>(-k, LN2_LO, r);
    let mut p = 1.987_569_2e-4;
    p = fmadd::<FMA>(p, r, 1.398_2e-3);
    p = fmadd::<FMA>(p, r, 8.333_452e-3);
    p = fmadd::<FMA>(p, r, 4.166_579_6e-2);
    p = fmadd::<FMA>(p, r, 1.666_666_5e-1);
    p = fmadd::<FMA>(p, r, 0.5);
    let y = fmadd::<FMA>(p, r * r, r) + 1.0;
    // k ∈ [-126, 127]: a normal power of two.
    let two_k = f32::from_bits(((k as i32 + 127) as u32) << 23);
    y * two_k
}

// ---------------------------------------------------------------------------------------------
// LayerNorm

#[inline(always)]
fn layer_norm_rows<const FMA: bool>(x: &[f32], out: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    let d = w.len();
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let mean = sum_lanes(xr) / d as f32;
        let var = centered_sq_sum::<FMA>(xr, mean) / d as f32;
        let scale = (var + eps).sqrt();
        for (((o, &v), &wi), &bi) in or.iter_mut().zip(xr).zip(w).zip(b) {
            *o = fmadd::<FMA>((v - mean) / scale, wi, bi);
        }
    }
}

multiversion!(layer_norm_rows_mv => layer_norm_rows(x: &[f32], out: &mut [f32], w: &[f32], b: &[f32], eps: f32));

/// TransformerLens LayerNorm over rows of length `w.len()`: `(x - mean) / sqrt(var + eps) · w
/// + b`, with the biased variance.
///
/// # Panics
/// If `x`, `out` (same length, a multiple of `w.len()`) and `b` (length `w.len()`) disagree.
pub(crate) fn layer_norm(x: &[f32], out: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    let d = w.len();
    assert!(d > 0 && b.len() == d && x.len() == out.len() && x.len().is_multiple_of(d));
    let simd = Simd::detect();
    out.par_chunks_mut(d * ROWS_PER_TASK)
        .zip(x.par_chunks(d * ROWS_PER_TASK))
        .for_each(|(o, x)| layer_norm_rows_mv(simd, x, o, w, b, eps));
}

#[inline(always)]
fn rms_norm_rows<const FMA: bool>(x: &[f32], out: &mut [f32], w: &[f32], eps: f32) {
    let d = w.len();
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let mean_sq = centered_sq_sum::<FMA>(xr, 0.0) / d as f32;
        let scale = (mean_sq + eps).sqrt();
        for ((o, &v), &wi) in or.iter_mut().zip(xr).zip(w) {
            *o = v / scale * wi;
        }
    }
}

multiversion!(rms_norm_rows_mv => rms_norm_rows(x: &[f32], out: &mut [f32], w: &[f32], eps: f32));

/// RMSNorm over rows of length `w.len()`: `x / sqrt(mean(x²) + eps) · w`.
///
/// # Panics
/// If `x` and `out` (same length, a multiple of `w.len()`) disagree.
pub(crate) fn rms_norm(x: &[f32], out: &mut [f32], w: &[f32], eps: f32) {
    let d = w.len();
    assert!(d > 0 && x.len() == out.len() && x.len().is_multiple_of(d));
    let simd = Simd::detect();
    out.par_chunks_mut(d * ROWS_PER_TASK)
        .zip(x.par_chunks(d * ROWS_PER_TASK))
        .for_each(|(o, x)| rms_norm_rows_mv(simd, x, o, w, eps));
}

// ---------------------------------------------------------------------------------------------
// Element-wise

#[inline(always)]
fn gelu_new_slice<const FMA: bool>(x: &mut [f32]) {
    // 0.5 x (1 + tanh(u)) = x · sigmoid(2u), u = sqrt(2/π) (x + 0.044715 x³).
    const TWO_SQRT_2_OVER_PI: f32 = 1.595_769;
    for v in x {
        let a = *v;
        let two_u = fmadd::<FMA>(a * a, 0.044715, 1.0) * a * TWO_SQRT_2_OVER_PI;
        *v = a / (1.0 + exp_approx::<FMA>(-two_u));
    }
}

multiversion!(gelu_new_mv => gelu_new_slice(x: &mut [f32]));

/// GPT-2's `gelu_new`, in place.
pub(crate) fn gelu_new(x: &mut [f32]) {
    let simd = Simd::detect();
    x.par_chunks_mut(ELEMS_PER_TASK)
        .for_each(|x| gelu_new_mv(simd, x));
}

#[inline(always)]
fn silu_slice<const FMA: bool>(x: &mut [f32]) {
    for v in x {
        let a = *v;
        *v = a / (1.0 + exp_approx::<FMA>(-a));
    }
}

multiversion!(silu_mv => silu_slice(x: &mut [f32]));

/// SiLU, `x · sigmoid(x)`, in place.
pub(crate) fn silu(x: &mut [f32]) {
    let simd = Simd::detect();
    x.par_chunks_mut(ELEMS_PER_TASK)
        .for_each(|x| silu_mv(simd, x));
}

/// `a ⊙ b`, into `a`.
///
/// # Panics
/// If the lengths differ.
pub(crate) fn mul_into(a: &mut [f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    a.par_chunks_mut(ELEMS_PER_TASK)
        .zip(b.par_chunks(ELEMS_PER_TASK))
        .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(x, y)| *x *= y));
}

/// `tanh(y)` to a few ulp, branch-free so that loops over it vectorise: `1 − 2 / (e^{2y} + 1)`,
/// and its odd Taylor polynomial near 0 where that form cancels. NaN stays NaN.
#[inline(always)]
fn tanh_approx<const FMA: bool>(y: f32) -> f32 {
    let y2 = y * y;
    // y − y³/3 + 2y⁵/15 − 17y⁷/315: error below 2e-9 for |y| < 0.0625.
    let small = y * fmadd::<FMA>(
        y2,
        fmadd::<FMA>(y2, fmadd::<FMA>(y2, -17.0 / 315.0, 2.0 / 15.0), -1.0 / 3.0),
        1.0,
    );
    let large = 1.0 - 2.0 / (exp_approx::<FMA>(2.0 * y) + 1.0);
    if y.abs() < 0.0625 {
        small
    } else {
        large
    }
}

#[inline(always)]
fn soft_cap_slice<const FMA: bool>(x: &mut [f32], cap: f32) {
    let inv = 1.0 / cap;
    for v in x {
        *v = cap * tanh_approx::<FMA>(*v * inv);
    }
}

multiversion!(soft_cap_mv => soft_cap_slice(x: &mut [f32], cap: f32));

/// `cap · tanh(x / cap)`, in place.
pub(crate) fn soft_cap(x: &mut [f32], cap: f32) {
    let simd = Simd::detect();
    x.par_chunks_mut(ELEMS_PER_TASK)
        .for_each(|c| soft_cap_mv(simd, c, cap));
}

/// Rotates, in place, each head of each row of `x` (rows of `row_len`, heads of `d_head`):
/// dimensions `i` and `i + half` (`i < half`) by the angle of row `r`'s `cos[r · half + i]`,
/// `sin[r · half + i]`, Hugging Face's "rotate half" convention:
/// `(a, b) → (a cos − b sin, b cos + a sin)`.
///
/// # Panics
/// If the lengths disagree.
pub(crate) fn rotary(
    x: &mut [f32],
    row_len: usize,
    d_head: usize,
    cos: &[f32],
    sin: &[f32],
    half: usize,
) {
    assert!(row_len.is_multiple_of(d_head) && x.len().is_multiple_of(row_len));
    assert!(cos.len() == x.len() / row_len * half && sin.len() == cos.len());
    x.par_chunks_mut(row_len * ROWS_PER_TASK)
        .enumerate()
        .for_each(|(task, rows)| {
            for (r, row) in rows.chunks_exact_mut(row_len).enumerate() {
                let at = (task * ROWS_PER_TASK + r) * half;
                let (c, s) = (&cos[at..at + half], &sin[at..at + half]);
                for head in row.chunks_exact_mut(d_head) {
                    let (a, rest) = head.split_at_mut(half);
                    let b = &mut rest[..half];
                    for i in 0..half {
                        let (x1, x2) = (a[i], b[i]);
                        a[i] = x1 * c[i] - x2 * s[i];
                        b[i] = x2 * c[i] + x1 * s[i];
                    }
                }
            }
        });
}

/// ReLU, in place (NaN stays NaN).
pub(crate) fn relu(x: &mut [f32]) {
    x.par_chunks_mut(ELEMS_PER_TASK).for_each(|c| {
        for v in c {
            if *v < 0.0 {
                *v = 0.0;
            }
        }
    });
}

/// A fresh buffer of `n` rows of `b.len()`: each row `b`, plus the same row of `add` if given.
/// Written once, by every core: nothing zeroes it first (recycled heap memory would otherwise
/// be cleared by `calloc` on the calling thread alone).
///
/// # Panics
/// If the lengths disagree.
pub(crate) fn filled_rows(n: usize, b: &[f32], add: Option<&[f32]>) -> Vec<f32> {
    let d = b.len();
    let len = n * d;
    assert!(d > 0 && add.is_none_or(|a| a.len() == len));
    let chunk = d * ROWS_PER_TASK;
    let mut out = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk)
        .enumerate()
        .for_each(|(task, o)| {
            let add = add.map(|a| &a[task * chunk..task * chunk + o.len()]);
            for (r, row) in o.chunks_exact_mut(d).enumerate() {
                match add {
                    Some(a) => {
                        for ((o, &a), &bi) in row.iter_mut().zip(&a[r * d..(r + 1) * d]).zip(b) {
                            o.write(a + bi);
                        }
                    }
                    None => {
                        for (o, &bi) in row.iter_mut().zip(b) {
                            o.write(bi);
                        }
                    }
                }
            }
        });
    // SAFETY: the chunks above cover the first `len` elements (whole rows, `len` a multiple of
    // `d`), and every element of every row was written.
    unsafe { out.set_len(len) };
    out
}

/// `len` zeros, written by every core (see [`filled_rows`] for why not `vec![0.0; len]`).
pub(crate) fn zeros(len: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(ELEMS_PER_TASK)
        .for_each(|c| c.fill(std::mem::MaybeUninit::new(0.0)));
    // SAFETY: the first `len` elements were all written just above.
    unsafe { out.set_len(len) };
    out
}

// ---------------------------------------------------------------------------------------------
// Attention

/// How one layer's attention turns raw scores into probabilities.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScoreRule {
    /// Scores are divided by this.
    pub(crate) scale: f32,
    /// Then become `cap · tanh(s / cap)` (Gemma-2).
    pub(crate) soft_cap: Option<f32>,
    /// A query sees only the last `window` positions, its own included (local attention).
    pub(crate) window: Option<usize>,
}

/// Row-wise causal softmax of raw scores, in place: row `i` of `s` (`[n_q, n_k]`) keeps keys
/// `j < first_visible + i + 1` (and, with a window, `j ≥ first_visible + i + 1 − window`) that
/// are real (`key_mask`), scaled and capped by `rule`; the rest become 0. A row without any
/// visible key becomes all 0 (TransformerLens zeroes the NaN row).
#[inline(always)]
fn causal_softmax_rows<const FMA: bool>(
    s: &mut [f32],
    n_k: usize,
    first_visible: usize,
    key_mask: &[bool],
    padded: bool,
    rule: ScoreRule,
) {
    let scale = rule.scale;
    for (i, row) in s.chunks_exact_mut(n_k).enumerate() {
        let n = (first_visible + i + 1).min(n_k);
        let lo = rule.window.map_or(0, |w| n.saturating_sub(w));
        let (vis, hidden) = row.split_at_mut(n);
        hidden.fill(0.0);
        let (before, vis) = vis.split_at_mut(lo);
        before.fill(0.0);
        let key_mask = &key_mask[lo.min(key_mask.len())..];
        let mut max = f32::NEG_INFINITY;
        if padded {
            for (sj, &real) in vis.iter_mut().zip(key_mask) {
                *sj = if real { *sj / scale } else { f32::NEG_INFINITY };
            }
        } else {
            for sj in vis.iter_mut() {
                *sj /= scale;
            }
        }
        if let Some(cap) = rule.soft_cap {
            let inv = 1.0 / cap;
            for sj in vis.iter_mut() {
                if *sj != f32::NEG_INFINITY {
                    *sj = cap * tanh_approx::<FMA>(*sj * inv);
                }
            }
        }
        for sj in vis.iter() {
            max = max.max(*sj);
        }
        if max == f32::NEG_INFINITY {
            vis.fill(0.0);
            continue;
        }
        for sj in vis.iter_mut() {
            *sj = if *sj == f32::NEG_INFINITY {
                0.0
            } else {
                exp_approx::<FMA>(*sj - max)
            };
        }
        let sum = sum_lanes(vis);
        for sj in vis.iter_mut() {
            *sj /= sum;
        }
    }
}

multiversion!(causal_softmax_rows_mv => causal_softmax_rows(
    s: &mut [f32],
    n_k: usize,
    first_visible: usize,
    key_mask: &[bool],
    padded: bool,
    rule: ScoreRule,
));

/// Causal softmax attention with an optional key mask, grouped key/value heads, a soft cap
/// and a sliding window, per (sequence, block of queries) in parallel, every head:
/// `z[b, i, h] = Σ_j softmax_j(rule(q[b, i, h] · k[b, g(h), j])) v[b, g(h), j]` over the keys
/// `j ≤ past + i` that `rule`'s window and `key_mask[b]` allow, where `g(h) = h / (n_heads /
/// n_kv_heads)` (each key/value head serves that many consecutive query heads, as HF's
/// `repeat_kv`); a query with no such key gets `z = 0`. Per head and block, scores and `z` are
/// two small single-threaded GEMMs, and `z` is written straight into its
/// `[query, head, d_head]` place.
///
/// # Shapes
/// `q: [batch, pos, head, d_head]`, `k`, `v: [batch, kv_head, past + pos, d_head]` (any
/// strides), `key_mask: [batch][past + pos]` → `z: [batch, pos, head, d_head]`, row-major.
///
/// # Panics
/// If the shapes disagree.
pub(crate) fn attention(
    q: ArrayView4<'_, f32>,
    k: ArrayView4<'_, f32>,
    v: ArrayView4<'_, f32>,
    key_mask: &[Vec<bool>],
    past: usize,
    rule: ScoreRule,
) -> Vec<f32> {
    let (n_batch, n_pos, n_heads, d_head) = q.dim();
    let n_kv = k.dim().1;
    let n_keys = past + n_pos;
    assert!(n_kv > 0 && n_heads % n_kv == 0);
    assert_eq!(k.dim(), (n_batch, n_kv, n_keys, d_head));
    assert_eq!(v.dim(), (n_batch, n_kv, n_keys, d_head));
    assert!(key_mask.len() == n_batch && key_mask.iter().all(|m| m.len() == n_keys));
    let group = n_heads / n_kv;
    let row = n_heads * d_head;
    let mut out = zeros(n_batch * n_pos * row);
    if out.is_empty() {
        return out;
    }
    let simd = Simd::detect();
    out.par_chunks_mut(n_pos * row)
        .enumerate()
        .for_each(|(batch, seq)| {
            let key_mask = &key_mask[batch][..];
            let padded = key_mask.iter().any(|m| !m);
            seq.par_chunks_mut(QUERIES_PER_TASK * row)
                .enumerate()
                .for_each(|(block, out)| {
                    let q0 = block * QUERIES_PER_TASK;
                    let n_q = out.len() / row;
                    // Keys visible to the last query of the block.
                    let n_k = past + q0 + n_q;
                    let mut s = vec![0f32; n_q * n_k];
                    let mut out =
                        ArrayViewMut2::from_shape((n_q, row), out).expect("chunk of whole rows");
                    for h in 0..n_heads {
                        let qh = q.slice(s![batch, q0..q0 + n_q, h, ..]);
                        let kh = k.slice(s![batch, h / group, ..n_k, ..]);
                        let vh = v.slice(s![batch, h / group, ..n_k, ..]);
                        let mut sv = ArrayViewMut2::from_shape((n_q, n_k), &mut s[..])
                            .expect("scratch of n_q × n_k");
                        interp_core::matmul_into_single_thread(qh, kh.t(), sv.view_mut());
                        causal_softmax_rows_mv(
                            simd,
                            &mut s,
                            n_k,
                            past + q0,
                            key_mask,
                            padded,
                            rule,
                        );
                        let sv = ArrayView2::from_shape((n_q, n_k), &s[..]).expect("n_q × n_k");
                        let zh = out.slice_mut(s![.., h * d_head..(h + 1) * d_head]);
                        interp_core::matmul_into_single_thread(sv, vh, zh);
                    }
                });
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_approx_is_accurate_and_clamps() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let rel = |got: f32| ((got - x.exp()) / x.exp()).abs();
            worst = worst.max(rel(exp_approx::<false>(x)));
            worst = worst.max(rel(exp_approx::<true>(x)));
            x += 0.0137;
        }
        assert!(worst < 5e-7, "{worst}");
        assert_eq!(exp_approx::<false>(0.0), 1.0);
        assert!(exp_approx::<false>(-1e4) < 1e-37 && exp_approx::<false>(-1e4) >= 0.0);
        assert!(exp_approx::<false>(1e4).is_finite());
        assert!(exp_approx::<false>(f32::NAN).is_nan());
    }

    #[test]
    fn tanh_approx_is_accurate() {
        let mut worst = 0f32;
        let mut y = -20.0f32;
        while y < 20.0 {
            for got in [tanh_approx::<false>(y), tanh_approx::<true>(y)] {
                worst = worst.max((got - y.tanh()).abs() / y.tanh().abs().max(1e-3));
            }
            y += 0.001_37;
        }
        assert!(worst < 2e-6, "{worst}");
        assert_eq!(tanh_approx::<false>(0.0), 0.0);
        assert_eq!(tanh_approx::<false>(100.0), 1.0);
        assert_eq!(tanh_approx::<false>(-100.0), -1.0);
        assert!(tanh_approx::<false>(f32::NAN).is_nan());
    }

    #[test]
    fn filled_rows_add_bias_and_residual() {
        let b = [1.0, 2.0, 3.0];
        // More rows than one task takes, and a ragged last task.
        let n = ROWS_PER_TASK * 2 + 7;
        let add: Vec<f32> = (0..3 * n).map(|i| i as f32).collect();
        let out = filled_rows(n, &b, Some(&add));
        assert_eq!(out.len(), 3 * n);
        for (i, o) in out.iter().enumerate() {
            assert_eq!(*o, i as f32 + b[i % 3]);
        }
        let out = filled_rows(n, &b, None);
        assert!(out.len() == 3 * n && out.chunks(3).all(|r| r == b));
        let z = zeros(ELEMS_PER_TASK + 5);
        assert!(z.len() == ELEMS_PER_TASK + 5 && z.iter().all(|&v| v == 0.0));
    }

    /// Every compiled variant this CPU can run gives the portable results (to rounding: FMA
    /// and lane order differ).
    #[test]
    fn every_instruction_set_matches_the_portable_kernels() {
        let levels = Simd::available();
        let d = 77; // not a multiple of any vector width
        let x: Vec<f32> = (0..d * 5)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.11)
            .collect();
        let (w, b): (Vec<f32>, Vec<f32>) = (0..d)
            .map(|i| (1.0 + i as f32 * 0.01, i as f32 * 0.1 - 3.0))
            .unzip();
        let key_mask: Vec<bool> = (0..d).map(|j| j % 7 != 3).collect();
        let run = |level| {
            let mut ln = vec![0f32; x.len()];
            layer_norm_rows_mv(level, &x, &mut ln, &w, &b, 1e-5);
            let mut gelu = x.clone();
            gelu_new_mv(level, &mut gelu);
            let mut soft = x.clone();
            let rule = ScoreRule {
                scale: 1.7,
                soft_cap: Some(4.0),
                window: Some(30),
            };
            causal_softmax_rows_mv(level, &mut soft, d, 40, &key_mask, true, rule);
            let mut rms = vec![0f32; x.len()];
            rms_norm_rows_mv(level, &x, &mut rms, &w, 1e-5);
            let mut silu = x.clone();
            silu_mv(level, &mut silu);
            [ln, gelu, soft, rms, silu]
        };
        let portable = run(Simd::Portable);
        for level in levels {
            for (got, want) in run(level).iter().zip(&portable) {
                for (g, w) in got.iter().zip(want) {
                    assert!(
                        (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                        "{level:?}: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn relu_zeroes_negatives_only() {
        let mut x = vec![-1.0, 0.0, 2.5, -0.0, f32::NAN];
        relu(&mut x);
        assert_eq!(&x[..4], &[0.0, 0.0, 2.5, -0.0]);
        assert!(x[4].is_nan());
    }
}
