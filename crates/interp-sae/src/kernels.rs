//! CPU f32 kernels: encode as a column-tiled GEMM with the nonlinearity (streaming TopK
//! selection included) fused per tile, and sparse decode as a gather-sum over the active
//! decoder rows only.

use ndarray::parallel::prelude::*;
use ndarray::{s, Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis};

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

/// Bytes of one column tile's accumulator in the sparse decode. Tiles are sized so that the
/// accumulator stays in the private L2 of the core running it (1 MiB or more on current x86
/// cores), next to the decoder pieces streaming through: an accumulator in the shared L3 made
/// the decode 1.5–2× slower whenever other processes used the L3 (docs/performance-log.md).
const DECODE_ACC_BYTES: usize = 512 << 10;
/// Decoder lines (of 16 f32) the sparse decode keeps prefetching ahead of the row it reads.
const DECODE_PREFETCH_LINES: usize = 64;

/// Sparse decode `out[r] = b_dec + Σ_j coef_j · w_dec[idx_j]`, then the row normalisation is
/// undone. Only the decoder rows of active latents are read, once per block of
/// [`ROW_BLOCK`] rows.
///
/// Per row block, entries are bucketed by feature, and the work is a grid of column tiles ×
/// feature ranges. Each task walks the active features of its range in order, reads its
/// tile's piece of each decoder row (prefetching the next rows' pieces), and adds it into a
/// 64-byte-aligned accumulator holding the tile of every row of the block, narrow enough to
/// stay in L2 ([`DECODE_ACC_BYTES`]). Tile edges fall on the decoder's cache lines. The
/// accumulator of the first feature range is copied into `out`; only when there are more
/// threads than tiles do further ranges make partial sums, added at the end.
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
    let b_dec = b_dec.to_vec();
    for (b, block) in out.axis_chunks_iter_mut(Axis(0), ROW_BLOCK).enumerate() {
        decode_block(codes, b * ROW_BLOCK, w, &b_dec, inv_dec_norm, block);
    }
}

/// [`decode_sparse_into`] for the rows `first..first + out.nrows()`.
fn decode_block(
    codes: &crate::SparseCodes,
    first: usize,
    w: &[f32],
    b_dec: &[f32],
    inv_dec_norm: Option<&[f32]>,
    mut out: ArrayViewMut2<'_, f32>,
) {
    let (n, d, d_sae) = (out.nrows(), out.ncols(), codes.d_sae());
    // Bucket (row, coefficient) by feature: counting sort.
    let rows = first..first + n;
    let nnz = codes.indptr[rows.end] - codes.indptr[rows.start];
    let mut start = vec![0usize; d_sae + 1];
    for r in rows.clone() {
        for &i in codes.row(r).0 {
            start[i as usize + 1] += 1;
        }
    }
    for f in 0..d_sae {
        start[f + 1] += start[f];
    }
    let mut fill = start.clone();
    let mut entries = vec![(0u32, 0f32); nnz];
    for r in rows {
        let (idx, val) = codes.row(r);
        for (&i, &v) in idx.iter().zip(val) {
            let i = i as usize;
            let coef = inv_dec_norm.map_or(v, |s| v * s[i]);
            entries[fill[i]] = ((r - first) as u32, coef);
            fill[i] += 1;
        }
    }
    let active: Vec<u32> = (0..d_sae as u32)
        .filter(|&f| start[f as usize + 1] > start[f as usize])
        .collect();
    // The grid: column tiles first, then feature ranges of about equal work for idle threads.
    let threads = rayon::current_num_threads().max(1);
    let grid = DecodeGrid::new(n, d, threads, w.as_ptr());
    let ranges = feature_ranges(&active, &start, threads.div_ceil(grid.tiles.len()));
    let norms = codes.norms.as_ref().map(|norms| &norms[first..first + n]);
    let finish_in_task = ranges.len() == 1;
    let simd = interp_core::simd::Simd::detect();
    let mut tasks = Vec::with_capacity(grid.tiles.len() * ranges.len());
    for (tile, view) in grid
        .tiles
        .iter()
        .zip(split_columns(out.view_mut(), &grid.tiles))
    {
        tasks.push((tile.clone(), &active[ranges[0].clone()], Some(view)));
        for range in &ranges[1..] {
            tasks.push((tile.clone(), &active[range.clone()], None));
        }
    }
    let partials: Vec<(std::ops::Range<usize>, TileAcc)> = tasks
        .into_par_iter()
        .filter_map(|(cols, features, view)| {
            let bias = view.is_some().then(|| &b_dec[cols.clone()]);
            let mut acc = TileAcc::new(n, cols.clone(), grid.pad(cols.start), bias);
            let rows_ahead = (DECODE_PREFETCH_LINES * 16 / cols.len().max(1)).clamp(2, 16);
            accumulate_tile_mv(
                simd, w, d, cols.start, rows_ahead, features, &start, &entries, &mut acc,
            );
            match view {
                Some(mut view) => {
                    acc.write_to(&mut view, norms.filter(|_| finish_in_task));
                    None
                }
                None => Some((cols, acc)),
            }
        })
        .collect();
    if finish_in_task {
        return;
    }
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(r, mut row)| {
            let row = row.as_slice_mut().expect("rows of `out` are contiguous");
            for (cols, acc) in &partials {
                for (o, v) in row[cols.clone()].iter_mut().zip(acc.row(r)) {
                    *o += v;
                }
            }
            if let Some(norm) = norms.map(|n| n[r]) {
                norm.undo(row);
            }
        });
}

/// The column tiles of a sparse decode.
struct DecodeGrid {
    tiles: Vec<std::ops::Range<usize>>,
    /// Position of column 0 of a decoder row within its 16-float cache line, when every row
    /// starts at the same position (`d` a multiple of 16); otherwise 0.
    line_offset: usize,
}

impl DecodeGrid {
    /// Tiles of at most [`DECODE_ACC_BYTES`] of accumulator for `n` rows, at least one per
    /// thread where `d` allows, with inner edges on the cache lines of a decoder at `w`.
    fn new(n: usize, d: usize, threads: usize, w: *const f32) -> Self {
        let width = (DECODE_ACC_BYTES / (4 * n.max(1)))
            .min(d.div_ceil(threads))
            .next_multiple_of(16)
            .max(16);
        let line_offset = if d.is_multiple_of(16) {
            (w as usize / 4) % 16
        } else {
            0
        };
        let lead = (16 - line_offset) % 16;
        let mut edges: Vec<usize> = (1..)
            .map(|i| lead + i * width)
            .take_while(|&c| c < d)
            .collect();
        edges.insert(0, 0);
        edges.push(d);
        let tiles = edges.windows(2).map(|e| e[0]..e[1]).collect();
        Self { tiles, line_offset }
    }

    /// Padding before the accumulator column of decoder column `c0`, so that both share
    /// their position within a cache line.
    fn pad(&self, c0: usize) -> usize {
        (self.line_offset + c0) % 16
    }
}

/// Splits `view` into the column tiles `tiles` (consecutive, covering every column).
fn split_columns<'a>(
    mut view: ArrayViewMut2<'a, f32>,
    tiles: &[std::ops::Range<usize>],
) -> Vec<ArrayViewMut2<'a, f32>> {
    let mut parts = Vec::with_capacity(tiles.len());
    for tile in &tiles[..tiles.len() - 1] {
        let (left, right) = view.split_at(Axis(1), tile.len());
        parts.push(left);
        view = right;
    }
    parts.push(view);
    parts
}

/// One column tile of a sparse decode's output for every row of a block: rows of `width`
/// floats after `pad` floats, in a 64-byte-aligned buffer with rows a whole number of cache
/// lines apart.
struct TileAcc {
    buf: Vec<f32>,
    /// Index in `buf` of the first row's first float.
    first: usize,
    width: usize,
    stride: usize,
}

impl TileAcc {
    /// A tile of `n` rows for the columns `cols`, filled with `bias` (or zeros).
    fn new(n: usize, cols: std::ops::Range<usize>, pad: usize, bias: Option<&[f32]>) -> Self {
        let width = cols.len();
        let stride = (pad + width).next_multiple_of(16);
        let buf = vec![0f32; n * stride + 16];
        let align = (64 - buf.as_ptr() as usize % 64) % 64 / 4;
        let mut acc = Self {
            buf,
            first: align + pad,
            width,
            stride,
        };
        if let Some(bias) = bias {
            for r in 0..n {
                acc.row_mut(r).copy_from_slice(bias);
            }
        }
        acc
    }

    fn row(&self, r: usize) -> &[f32] {
        &self.buf[self.first + r * self.stride..][..self.width]
    }

    fn row_mut(&mut self, r: usize) -> &mut [f32] {
        &mut self.buf[self.first + r * self.stride..][..self.width]
    }

    /// Copies the tile into `view` (undoing the row normalisation if given).
    fn write_to(&self, view: &mut ArrayViewMut2<'_, f32>, norms: Option<&[RowNorm]>) {
        for (r, mut row) in view.axis_iter_mut(Axis(0)).enumerate() {
            let row = row
                .as_slice_mut()
                .expect("a column tile's rows are contiguous");
            row.copy_from_slice(self.row(r));
            if let Some(norm) = norms.map(|n| n[r]) {
                norm.undo(row);
            }
        }
    }
}

/// Splits the active features into at most `parts` consecutive ranges (indices into
/// `active`) of about equal numbers of entries.
fn feature_ranges(active: &[u32], start: &[usize], parts: usize) -> Vec<std::ops::Range<usize>> {
    let nnz = start.last().copied().unwrap_or(0);
    let per_part = nnz.div_ceil(parts.max(1)).max(1);
    let mut ranges = Vec::with_capacity(parts);
    let (mut first, mut work) = (0, 0);
    for (a, &f) in active.iter().enumerate() {
        work += start[f as usize + 1] - start[f as usize];
        if work >= per_part && ranges.len() + 1 < parts {
            ranges.push(first..a + 1);
            (first, work) = (a + 1, 0);
        }
    }
    ranges.push(first..active.len());
    ranges
}

/// Adds `coef · w_dec[f, c0..c0 + acc.width]` to the accumulator row of every
/// `(row, coef)` entry of each feature `f` in `features`, prefetching the pieces of the
/// decoder rows `rows_ahead` active features ahead.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn accumulate_tile<const FMA: bool>(
    w: &[f32],
    d: usize,
    c0: usize,
    rows_ahead: usize,
    features: &[u32],
    start: &[usize],
    entries: &[(u32, f32)],
    acc: &mut TileAcc,
) {
    let width = acc.width;
    for (a, &f) in features.iter().enumerate() {
        if let Some(&next) = features.get(a + rows_ahead) {
            prefetch(&w[next as usize * d + c0..][..width]);
        }
        let f = f as usize;
        let piece = &w[f * d + c0..][..width];
        for &(r, coef) in &entries[start[f]..start[f + 1]] {
            for (o, &v) in acc.row_mut(r as usize).iter_mut().zip(piece) {
                *o = interp_core::simd::fmadd::<FMA>(coef, v, *o);
            }
        }
    }
}

interp_core::multiversion!(accumulate_tile_mv => accumulate_tile(w: &[f32], d: usize, c0: usize,
    rows_ahead: usize, features: &[u32], start: &[usize], entries: &[(u32, f32)],
    acc: &mut TileAcc));

/// Asks the CPU to start loading `x` into L1 (a hint: no effect on results).
#[inline(always)]
fn prefetch(x: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in x.chunks(16) {
        // SAFETY: a prefetch never faults and does not change memory; the address is that of
        // an element of `x`.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                line.as_ptr().cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sparse decode against a plain dense sum, for every shape of its task grid: one
    /// tile, several tiles, more threads than tiles (partial sums), several row blocks; a
    /// decoder whose rows start at the same place in a cache line (width a multiple of 16)
    /// or not, at an aligned address or not; with decoder-norm coefficients and row norms.
    #[test]
    fn sparse_decode_matches_a_dense_sum_for_every_grid() {
        let d_sae = 50;
        let cases = [
            // (rows, width, floats before the decoder, thread counts)
            (9, 808, 0, &[1, 2, 3, 5][..]),
            (9, 800, 3, &[1, 2, 5]),
            (9, 40, 5, &[4, 8]),
            (ROW_BLOCK + 3, 96, 7, &[2]),
        ];
        for (n, d, skip, thread_counts) in cases {
            let buf: Vec<f32> = (0..skip + d_sae * d)
                .map(|i| ((i * 7) % 23) as f32 - 11.0)
                .collect();
            let w = ndarray::ArrayView2::from_shape((d_sae, d), &buf[skip..]).unwrap();
            let b = ndarray::Array1::from_shape_fn(d, |c| c as f32 * 0.01);
            let inv: Vec<f32> = (0..d_sae).map(|f| 1.0 + f as f32 * 0.1).collect();
            let rows: Vec<(Vec<u32>, Vec<f32>)> = (0..n)
                .map(|r| {
                    let idx: Vec<u32> = (0..d_sae as u32)
                        .filter(|f| (f * 3 + r as u32) % 7 < 2)
                        .collect();
                    let val = idx
                        .iter()
                        .map(|&f| 0.5 + ((f as usize + r) % 13) as f32 * 0.25)
                        .collect();
                    (idx, val)
                })
                .collect();
            let mut codes =
                crate::SparseCodes::from_rows(d_sae, rows.iter().map(|(i, v)| (&i[..], &v[..])))
                    .unwrap();
            let norms: Vec<RowNorm> = (0..n)
                .map(|r| RowNorm {
                    shift: (r % 9) as f32 - 4.0,
                    scale: 0.5 + (r % 5) as f32,
                })
                .collect();
            codes.norms = Some(norms.clone());
            let mut want = Array2::<f64>::zeros((n, d));
            for (r, (idx, val)) in rows.iter().enumerate() {
                for c in 0..d {
                    let sum: f64 = idx
                        .iter()
                        .zip(val)
                        .map(|(&f, &v)| (v * inv[f as usize]) as f64 * w[[f as usize, c]] as f64)
                        .sum();
                    want[[r, c]] =
                        (sum + b[c] as f64) * norms[r].scale as f64 + norms[r].shift as f64;
                }
            }
            for &threads in thread_counts {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let mut out = Array2::zeros((n, d));
                pool.install(|| decode_sparse_into(&codes, w, b.view(), Some(&inv), &mut out));
                for ((r, c), &got) in out.indexed_iter() {
                    let want = want[[r, c]];
                    assert!(
                        (got as f64 - want).abs() <= 1e-4 * want.abs().max(1.0),
                        "{n} x {d} (+{skip}), {threads} threads, [{r}, {c}]: {got} vs {want}"
                    );
                }
            }
        }
    }

    /// The tiles cover every column once, inner edges fall on the decoder's cache lines, and
    /// accumulators fit their budget.
    #[test]
    fn decode_grid_tiles_are_line_aligned_and_fit_the_accumulator_budget() {
        for (n, d, threads, skip) in [(1024, 2304, 2, 0), (1024, 768, 2, 5), (9, 2304, 2, 3)] {
            let w = vec![0f32; 16 + d];
            let base = w[skip..].as_ptr();
            let grid = DecodeGrid::new(n, d, threads, base);
            assert_eq!(grid.tiles.first().unwrap().start, 0);
            assert_eq!(grid.tiles.last().unwrap().end, d);
            assert!(grid.tiles.len() >= threads);
            for pair in grid.tiles.windows(2) {
                assert_eq!(pair[0].end, pair[1].start);
                // The address of this column in row 0 (every row when `d` is a multiple of 16).
                let addr = base as usize + 4 * pair[1].start;
                assert_eq!(
                    addr % 64,
                    0,
                    "{n} x {d}: edge {} not on a line",
                    pair[1].start
                );
            }
            for tile in &grid.tiles {
                assert!(4 * n * tile.len() <= DECODE_ACC_BYTES + 4 * n * 16);
                assert_eq!(
                    (base as usize + 4 * tile.start) % 64 / 4,
                    grid.pad(tile.start)
                );
            }
        }
    }

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
