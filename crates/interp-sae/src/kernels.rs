//! CPU f32 kernels: blocked encode (GEMM + fused nonlinearity), per-row TopK selection, and
//! sparse decode as a gather-sum over the active decoder rows only.

use ndarray::parallel::prelude::*;
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1, Axis};

use crate::sparse::RowNorm;

/// The nonlinearity applied to one row of pre-activations.
pub(crate) enum Activation<'a> {
    /// `relu`.
    Relu,
    /// `relu(pre) · [pre > threshold]`.
    JumpRelu { threshold: &'a [f32] },
    /// `relu` of the `k` largest `pre_i · scale_i` (scale = decoder norms when rescaling).
    TopK { k: usize, scale: Option<&'a [f32]> },
    /// `[pre + b_gate > 0] · relu(pre · exp(r_mag) + b_mag)` (pre computed without bias).
    Gated {
        b_gate: &'a [f32],
        b_mag: &'a [f32],
        exp_r_mag: &'a [f32],
    },
}

/// Rows per encode block so that one block of pre-activations stays near 32 MiB.
pub(crate) fn block_rows(d_sae: usize) -> usize {
    ((32 << 20) / (4 * d_sae.max(1))).clamp(16, 1024)
}

/// Normalises `x` rows in place as configured and returns the statistics to undo it.
pub(crate) fn normalize_rows(
    x: &mut Array2<f32>,
    norm: crate::config::Normalization,
) -> Option<Vec<RowNorm>> {
    use crate::config::Normalization as N;
    let d = x.ncols() as f32;
    let stat = |row: ArrayView1<'_, f32>| -> RowNorm {
        match norm {
            N::LayerNorm => {
                let mu = row.sum() / d;
                let var = row.iter().map(|v| (v - mu) * (v - mu)).sum::<f32>() / (d - 1.0).max(1.0);
                RowNorm {
                    shift: mu,
                    scale: var.sqrt() + 1e-5,
                }
            }
            _ => RowNorm {
                shift: 0.0,
                scale: row.dot(&row).sqrt() / d.sqrt(),
            },
        }
    };
    if !matches!(norm, N::LayerNorm | N::ConstantNormRescale) {
        return None;
    }
    let norms: Vec<RowNorm> = x
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .map(|mut row| {
            let s = stat(row.view());
            row.mapv_inplace(|v| (v - s.shift) / s.scale);
            s
        })
        .collect();
    Some(norms)
}

/// `pre = x @ w_enc + b_enc` for one block of (already processed) inputs.
pub(crate) fn pre_activations(
    x: ArrayView2<'_, f32>,
    w_enc: ArrayView2<'_, f32>,
    b_enc: Option<ArrayView1<'_, f32>>,
) -> Array2<f32> {
    let mut pre = Array2::zeros((x.nrows(), w_enc.ncols()));
    if let Some(b) = b_enc {
        pre.rows_mut().into_iter().for_each(|mut r| r.assign(&b));
    }
    interp_core::matmul_acc(x, w_enc, pre.view_mut());
    pre
}

/// Applies `act` to every row of `pre`, appending the non-zero `(index, value)` pairs per row.
pub(crate) fn activate_sparse(
    pre: &mut Array2<f32>,
    act: &Activation<'_>,
) -> Vec<(Vec<u32>, Vec<f32>)> {
    pre.axis_iter_mut(Axis(0))
        .into_par_iter()
        .with_min_len(4)
        .map(|row| {
            let row = row
                .into_slice()
                .expect("pre-activation rows are contiguous");
            let mut idx = Vec::new();
            let mut val = Vec::new();
            activate_row(row, act, &mut idx, &mut val);
            (idx, val)
        })
        .collect()
}

/// Applies `act` to every row of `pre` in place (dense output).
pub(crate) fn activate_dense(pre: &mut Array2<f32>, act: &Activation<'_>) {
    pre.axis_iter_mut(Axis(0))
        .into_par_iter()
        .with_min_len(4)
        .for_each(|row| {
            let row = row
                .into_slice()
                .expect("pre-activation rows are contiguous");
            let mut idx = Vec::new();
            let mut val = Vec::new();
            activate_row(row, act, &mut idx, &mut val);
            row.fill(0.0);
            for (&i, &v) in idx.iter().zip(&val) {
                row[i as usize] = v;
            }
        });
}

fn activate_row(pre: &mut [f32], act: &Activation<'_>, idx: &mut Vec<u32>, val: &mut Vec<f32>) {
    match *act {
        Activation::Relu => push_where(pre, idx, val, |_, v| v > 0.0),
        Activation::JumpRelu { threshold } => {
            push_where(pre, idx, val, |i, v| v > threshold[i] && v > 0.0)
        }
        Activation::Gated {
            b_gate,
            b_mag,
            exp_r_mag,
        } => {
            for (i, &p) in pre.iter().enumerate() {
                if p + b_gate[i] > 0.0 {
                    let mag = p * exp_r_mag[i] + b_mag[i];
                    if mag > 0.0 {
                        idx.push(i as u32);
                        val.push(mag);
                    }
                }
            }
        }
        Activation::TopK { k, scale } => {
            if let Some(scale) = scale {
                pre.iter_mut().zip(scale).for_each(|(p, s)| *p *= s);
            }
            top_k_positive(pre, k, idx, val);
        }
    }
}

fn push_where(
    pre: &[f32],
    idx: &mut Vec<u32>,
    val: &mut Vec<f32>,
    keep: impl Fn(usize, f32) -> bool,
) {
    for (i, &v) in pre.iter().enumerate() {
        if keep(i, v) {
            idx.push(i as u32);
            val.push(v);
        }
    }
}

/// The `k` largest positive entries of `row` (fewer if fewer are positive), sorted by index.
///
/// One pass keeps a buffer of the best `k` seen and its minimum; an entry enters only if it
/// beats that minimum, which after the first few hundred entries almost never happens, so the
/// cost is one comparison per element.
pub(crate) fn top_k_positive(row: &[f32], k: usize, idx: &mut Vec<u32>, val: &mut Vec<f32>) {
    let start = idx.len();
    if k == 0 {
        return;
    }
    let mut best: Vec<(f32, u32)> = Vec::with_capacity(k);
    let mut min = 0.0f32; // relu: only positive values can survive
    let mut min_pos = 0usize;
    for (i, &v) in row.iter().enumerate() {
        // While the buffer fills, `min` stays 0: any positive value enters.
        if v > min {
            if best.len() < k {
                best.push((v, i as u32));
                if best.len() == k {
                    (min_pos, min) = argmin(&best);
                }
            } else {
                best[min_pos] = (v, i as u32);
                (min_pos, min) = argmin(&best);
            }
        }
    }
    best.sort_unstable_by_key(|&(_, i)| i);
    for (v, i) in best {
        idx.push(i);
        val.push(v);
    }
    debug_assert!(idx.len() - start <= k);
}

fn argmin(best: &[(f32, u32)]) -> (usize, f32) {
    let mut pos = 0;
    for (p, &(v, _)) in best.iter().enumerate() {
        if v < best[pos].0 {
            pos = p;
        }
    }
    (pos, best[pos].0)
}

/// Sparse decode: `out[r] = b_dec + Σ_j coef_j · w_dec[idx_j]`, then the row normalisation is
/// undone. Only the decoder rows of active latents are read.
pub(crate) fn decode_sparse_into(
    codes: &crate::SparseCodes,
    w_dec: ArrayView2<'_, f32>,
    b_dec: ArrayView1<'_, f32>,
    inv_dec_norm: Option<&[f32]>,
    out: &mut Array2<f32>,
) {
    let w = w_dec
        .as_slice()
        .expect("decoder is stored in standard (row-major) layout");
    let d = w_dec.ncols();
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .with_min_len(8)
        .enumerate()
        .for_each(|(r, mut row)| {
            row.assign(&b_dec);
            let acc = row.as_slice_mut().expect("output rows are contiguous");
            let (idx, val) = codes.row(r);
            for (&i, &v) in idx.iter().zip(val) {
                let i = i as usize;
                let coef = inv_dec_norm.map_or(v, |s| v * s[i]);
                let dir = &w[i * d..(i + 1) * d];
                acc.iter_mut().zip(dir).for_each(|(a, &w)| *a += coef * w);
            }
            if let Some(n) = codes.norms.as_ref().map(|n| n[r]) {
                undo_norm(row, n);
            }
        });
}

/// Maps a reconstruction back from normalised space: `y · scale + shift`.
pub(crate) fn undo_norm(mut row: ArrayViewMut1<'_, f32>, n: RowNorm) {
    row.mapv_inplace(|v| v * n.scale + n.shift);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_matches_sorting_including_fewer_positive_than_k() {
        let row: Vec<f32> = (0..1000)
            .map(|i| ((i * 7919) % 1009) as f32 - 900.0)
            .collect();
        let (mut idx, mut val) = (Vec::new(), Vec::new());
        top_k_positive(&row, 32, &mut idx, &mut val);
        let mut sorted: Vec<(f32, u32)> = row
            .iter()
            .enumerate()
            .map(|(i, &v)| (v, i as u32))
            .collect();
        sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut want: Vec<u32> = sorted[..32]
            .iter()
            .filter(|p| p.0 > 0.0)
            .map(|p| p.1)
            .collect();
        want.sort_unstable();
        assert_eq!(idx, want);
        let (mut idx, mut val2) = (Vec::new(), Vec::new());
        top_k_positive(&[-1.0, 2.0, -3.0, 0.0, 0.5], 4, &mut idx, &mut val2);
        assert_eq!(idx, vec![1, 4]);
        assert_eq!(val2, vec![2.0, 0.5]);
        assert!(val.iter().all(|&v| v > 0.0));
    }
}
