//! CPU f32 kernels: encode as a column-tiled GEMM with the nonlinearity (streaming TopK
//! selection included) fused per tile, and sparse decode as a gather-sum over the active
//! decoder rows only.

use ndarray::parallel::prelude::*;
use ndarray::{s, Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis};
use rayon::slice::ParallelSlice;

use crate::config::Normalization;
use crate::sparse::RowNorm;

/// The nonlinearity applied to pre-activations. Per-feature parameters are indexed by the
/// absolute feature index, so the kernels can work on column tiles.
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

/// Rows per encode block: bounds the memory of one block's outputs and how often the encoder
/// is streamed from DRAM (once per block).
pub(crate) const ROW_BLOCK: usize = 1024;

/// Columns per GEMM tile for `rows` rows: a tile of pre-activations of about 32 MiB. Wide tiles
/// keep the GEMM efficient (the input block is repacked once per tile: 8 MiB tiles were 1.6×
/// slower), while the tile bounds memory whatever `d_sae` (131072 latents: 16 tiles).
fn col_tile(rows: usize, d_sae: usize) -> usize {
    ((8 << 20) / rows.max(1)).max(256).min(d_sae.max(1))
}

/// Normalises `x` rows in place as configured and returns the statistics to undo it.
pub(crate) fn normalize_rows(x: &mut Array2<f32>, norm: Normalization) -> Option<Vec<RowNorm>> {
    if !matches!(
        norm,
        Normalization::LayerNorm | Normalization::ConstantNormRescale
    ) {
        return None;
    }
    let d = x.ncols() as f32;
    let norms = x
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .map(|mut row| {
            let s = match norm {
                Normalization::LayerNorm => {
                    let mu = row.sum() / d;
                    let ss = row.iter().map(|v| (v - mu) * (v - mu)).sum::<f32>();
                    RowNorm {
                        shift: mu,
                        scale: (ss / (d - 1.0).max(1.0)).sqrt() + 1e-5,
                    }
                }
                _ => RowNorm {
                    shift: 0.0,
                    scale: row.dot(&row).sqrt() / d.sqrt(),
                },
            };
            row.mapv_inplace(|v| (v - s.shift) / s.scale);
            s
        })
        .collect();
    Some(norms)
}

/// Column tiles `[start, end)` of a `d_sae`-wide GEMM over `rows` rows.
fn tiles(rows: usize, d_sae: usize) -> impl Iterator<Item = (usize, usize)> {
    let width = col_tile(rows, d_sae);
    (0..d_sae)
        .step_by(width)
        .map(move |start| (start, (start + width).min(d_sae)))
}

/// `out = x @ w + b` into `out` (any strides), `b` broadcast over rows when given.
pub(crate) fn gemm_bias(
    x: ArrayView2<'_, f32>,
    w: ArrayView2<'_, f32>,
    b: Option<ArrayView1<'_, f32>>,
    mut out: ArrayViewMut2<'_, f32>,
) {
    match b {
        Some(b) => {
            // In parallel: this pass is also the first touch of a fresh output (100 MB for
            // a dense 1024 × 24576 encode), and its page faults would otherwise all fall on
            // the calling thread.
            out.axis_iter_mut(Axis(0))
                .into_par_iter()
                .for_each(|mut r| r.assign(&b));
            interp_core::matmul_acc(x, w, out);
        }
        None => interp_core::matmul_into(x, w, out),
    }
}

/// `x @ w_enc[:, tile] + b_enc[tile]` for every column tile (the encoder is streamed once per
/// call), calling `each_tile(first_column, tile)` after each tile is computed.
pub(crate) fn tiled_pre_activations(
    x: ArrayView2<'_, f32>,
    w_enc: ArrayView2<'_, f32>,
    b_enc: Option<ArrayView1<'_, f32>>,
    mut each_tile: impl FnMut(usize, ArrayViewMut2<'_, f32>),
) {
    let (rows, d_sae) = (x.nrows(), w_enc.ncols());
    let mut buf = Array2::<f32>::zeros((rows, col_tile(rows, d_sae)));
    for (start, end) in tiles(rows, d_sae) {
        let mut tile = buf.slice_mut(s![.., ..end - start]);
        let b = b_enc.map(|b| b.slice_move(s![start..end]));
        gemm_bias(x, w_enc.slice(s![.., start..end]), b, tile.view_mut());
        each_tile(start, tile);
    }
}

/// Pre-activations written straight into `out` (`[rows, d_sae]`), tile by tile.
pub(crate) fn pre_activations_into(
    x: ArrayView2<'_, f32>,
    w_enc: ArrayView2<'_, f32>,
    b_enc: Option<ArrayView1<'_, f32>>,
    mut out: ArrayViewMut2<'_, f32>,
) {
    for (start, end) in tiles(x.nrows(), w_enc.ncols()) {
        let b = b_enc.map(|b| b.slice_move(s![start..end]));
        gemm_bias(
            x,
            w_enc.slice(s![.., start..end]),
            b,
            out.slice_mut(s![.., start..end]),
        );
    }
}

/// Per-row output of the sparse encoder, filled tile by tile.
pub(crate) enum RowCodes {
    /// Every active latent (ReLU, JumpReLU, gated), in increasing index order.
    All(Vec<u32>, Vec<f32>),
    /// The best `k` so far.
    TopK(TopK),
}

impl RowCodes {
    pub(crate) fn new(act: &Activation<'_>) -> Self {
        match act {
            Activation::TopK { k, .. } => RowCodes::TopK(TopK::new(*k)),
            _ => RowCodes::All(Vec::new(), Vec::new()),
        }
    }

    /// Consumes one row of a pre-activation tile starting at feature `first`.
    pub(crate) fn push_tile(&mut self, pre: &mut [f32], first: usize, act: &Activation<'_>) {
        match (self, act) {
            (RowCodes::TopK(best), Activation::TopK { scale, .. }) => {
                if let Some(scale) = scale {
                    let scale = &scale[first..first + pre.len()];
                    pre.iter_mut().zip(scale).for_each(|(p, s)| *p *= s);
                }
                best.push_slice(pre, first);
            }
            (RowCodes::All(idx, val), act) => activate_list(pre, first, act, idx, val),
            (RowCodes::TopK(_), _) => unreachable!("row state built from the same activation"),
        }
    }

    /// The row's `(indices, values)`, indices increasing.
    pub(crate) fn finish(self) -> (Vec<u32>, Vec<f32>) {
        match self {
            RowCodes::All(idx, val) => (idx, val),
            RowCodes::TopK(best) => best.into_sorted(),
        }
    }
}

/// Appends the active latents of a non-TopK activation over `pre` (features `first..`).
fn activate_list(
    pre: &[f32],
    first: usize,
    act: &Activation<'_>,
    idx: &mut Vec<u32>,
    val: &mut Vec<f32>,
) {
    let mut push = |i: usize, v: f32| {
        idx.push((first + i) as u32);
        val.push(v);
    };
    match *act {
        Activation::Relu => pre
            .iter()
            .enumerate()
            .filter(|(_, &v)| v > 0.0)
            .for_each(|(i, &v)| push(i, v)),
        Activation::JumpRelu { threshold } => {
            let t = &threshold[first..first + pre.len()];
            pre.iter()
                .zip(t)
                .enumerate()
                .filter(|(_, (&v, &t))| v > t && v > 0.0)
                .for_each(|(i, (&v, _))| push(i, v))
        }
        Activation::Gated {
            b_gate,
            b_mag,
            exp_r_mag,
        } => {
            for (i, &p) in pre.iter().enumerate() {
                let f = first + i;
                if p + b_gate[f] > 0.0 {
                    let mag = p * exp_r_mag[f] + b_mag[f];
                    if mag > 0.0 {
                        push(i, mag);
                    }
                }
            }
        }
        Activation::TopK { .. } => unreachable!("TopK rows keep a TopK state"),
    }
}

/// Streaming selection of the `k` largest positive values of a row seen tile by tile.
///
/// A buffer of the best `k` so far and its minimum: an entry enters only if it beats that
/// minimum, which after the first few hundred entries almost never happens, so the cost is one
/// comparison per element.
pub(crate) struct TopK {
    k: usize,
    best: Vec<(f32, u32)>,
    min: f32,
    min_pos: usize,
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        TopK {
            k,
            best: Vec::with_capacity(k),
            // relu after selection: only positive values can survive
            min: 0.0,
            min_pos: 0,
        }
    }

    pub(crate) fn push_slice(&mut self, values: &[f32], first: usize) {
        if self.k == 0 {
            return;
        }
        for (i, &v) in values.iter().enumerate() {
            // While the buffer fills, `min` stays 0: any positive value enters.
            if v > self.min {
                let entry = (v, (first + i) as u32);
                if self.best.len() < self.k {
                    self.best.push(entry);
                    if self.best.len() == self.k {
                        self.update_min();
                    }
                } else {
                    self.best[self.min_pos] = entry;
                    self.update_min();
                }
            }
        }
    }

    fn update_min(&mut self) {
        let mut pos = 0;
        for (p, e) in self.best.iter().enumerate() {
            if e.0 < self.best[pos].0 {
                pos = p;
            }
        }
        self.min_pos = pos;
        self.min = self.best[pos].0;
    }

    pub(crate) fn into_sorted(mut self) -> (Vec<u32>, Vec<f32>) {
        self.best.sort_unstable_by_key(|&(_, i)| i);
        self.best.into_iter().map(|(v, i)| (i, v)).unzip()
    }
}

/// Applies `act` to a full row of pre-activations in place (dense output).
pub(crate) fn activate_dense_row(row: &mut [f32], act: &Activation<'_>) {
    match *act {
        Activation::Relu => row.iter_mut().for_each(|v| *v = v.max(0.0)),
        Activation::JumpRelu { threshold } => row.iter_mut().zip(threshold).for_each(|(v, &t)| {
            if !(*v > t && *v > 0.0) {
                *v = 0.0;
            }
        }),
        Activation::Gated {
            b_gate,
            b_mag,
            exp_r_mag,
        } => {
            for (f, v) in row.iter_mut().enumerate() {
                let p = *v;
                *v = if p + b_gate[f] > 0.0 {
                    (p * exp_r_mag[f] + b_mag[f]).max(0.0)
                } else {
                    0.0
                };
            }
        }
        Activation::TopK { k, scale } => {
            let mut best = TopK::new(k);
            match scale {
                Some(scale) => {
                    let scaled: Vec<f32> = row.iter().zip(scale).map(|(p, s)| p * s).collect();
                    best.push_slice(&scaled, 0);
                }
                None => best.push_slice(row, 0),
            }
            row.fill(0.0);
            let (idx, val) = best.into_sorted();
            for (i, v) in idx.into_iter().zip(val) {
                row[i as usize] = v;
            }
        }
    }
}

/// Sparse decode `out[r] = b_dec + Σ_j coef_j · w_dec[idx_j]`, then the row normalisation is
/// undone. Only the decoder rows of active latents are read, each once per call: entries are
/// bucketed by feature and each rayon task owns a range of features and its own accumulator,
/// so a decoder row used by many tokens is streamed from memory once.
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
    let (n, d, d_sae) = (codes.n_rows(), w_dec.ncols(), codes.d_sae());
    // Bucket (token, coefficient) by feature: counting sort.
    let mut start = vec![0usize; d_sae + 1];
    for &i in &codes.indices {
        start[i as usize + 1] += 1;
    }
    for f in 0..d_sae {
        start[f + 1] += start[f];
    }
    let mut fill = start.clone();
    let mut entries = vec![(0u32, 0f32); codes.nnz()];
    for r in 0..n {
        let (idx, val) = codes.row(r);
        for (&i, &v) in idx.iter().zip(val) {
            let i = i as usize;
            let coef = inv_dec_norm.map_or(v, |s| v * s[i]);
            entries[fill[i]] = (r as u32, coef);
            fill[i] += 1;
        }
    }
    // Feature ranges of about equal work, one accumulator each.
    let parts = rayon::current_num_threads().max(1);
    let per_part = codes.nnz().div_ceil(parts).max(1);
    let mut bounds = vec![0usize];
    for f in 0..d_sae {
        if start[f + 1] - start[*bounds.last().expect("non-empty")] >= per_part {
            bounds.push(f + 1);
        }
    }
    if *bounds.last().expect("non-empty") != d_sae {
        bounds.push(d_sae);
    }
    let partials: Vec<Vec<f32>> = bounds
        .par_windows(2)
        .map(|range| {
            let mut acc = vec![0f32; n * d];
            for f in range[0]..range[1] {
                let dir = &w[f * d..(f + 1) * d];
                for &(r, coef) in &entries[start[f]..start[f + 1]] {
                    let row = &mut acc[r as usize * d..(r as usize + 1) * d];
                    row.iter_mut().zip(dir).for_each(|(a, &w)| *a += coef * w);
                }
            }
            acc
        })
        .collect();
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(r, mut row)| {
            row.assign(&b_dec);
            let o = row.as_slice_mut().expect("output rows are contiguous");
            for p in &partials {
                o.iter_mut()
                    .zip(&p[r * d..(r + 1) * d])
                    .for_each(|(a, b)| *a += b);
            }
            if let Some(norm) = codes.norms.as_ref().map(|n| n[r]) {
                o.iter_mut().for_each(|v| *v = *v * norm.scale + norm.shift);
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_top_k_matches_sorting_across_tiles_and_with_few_positives() {
        let row: Vec<f32> = (0..1000)
            .map(|i| ((i * 7919) % 1009) as f32 - 900.0)
            .collect();
        let mut best = TopK::new(32);
        for (t, chunk) in row.chunks(97).enumerate() {
            best.push_slice(chunk, t * 97);
        }
        let (idx, val) = best.into_sorted();
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
        assert!(val.iter().all(|&v| v > 0.0));
        let mut few = TopK::new(4);
        few.push_slice(&[-1.0, 2.0, -3.0, 0.0, 0.5], 0);
        assert_eq!(few.into_sorted(), (vec![1, 4], vec![2.0, 0.5]));
    }
}
