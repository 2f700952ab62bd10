//! Exhaustive all-pairs searches, streamed tile by tile (never the `F × F` matrix): the most
//! aligned and most opposed pairs, per-feature nearest neighbours, and antipodality.
//!
//! Every search runs GEMM tiles of at most [`TileShape`] (default 1024 × 4096 f32, 16 MiB)
//! through [`interp_core::matmul_into`] and scans each tile in parallel with rayon. Within one
//! matrix only the upper triangle is computed (`F²·d` flops, half of a full product). The scan
//! keeps, per task, the best `N` candidates and a threshold (the worst kept), so an entry costs
//! one comparison unless it enters the list.
//!
//! Ties are broken by the smaller `(i, j)`, so results do not depend on the thread schedule.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use interp_core::tiles::{fold_tiles, Tile, TileShape};
use ndarray::{s, ArrayView2, ArrayViewMut2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::directions::{same_dim, Directions};
use crate::error::{Error, Result};

/// One pair of features and their cosine.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    /// Feature of the first set (within one set: the smaller index).
    pub i: usize,
    /// Feature of the second set (within one set: the larger index).
    pub j: usize,
    /// `cos(a_i, b_j)`.
    pub cos: f32,
}

/// The `N` most aligned (largest cosine, descending) and most opposed (smallest cosine,
/// ascending) pairs. Serialises as the CLI's `{"most_aligned": [...], "most_opposed": [...]}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Extremes {
    /// Largest cosines first.
    pub most_aligned: Vec<Pair>,
    /// Smallest (most negative) cosines first.
    pub most_opposed: Vec<Pair>,
}

/// A candidate in a bounded best-`N` list; `key` larger is better, ties prefer smaller `(i, j)`.
#[derive(Clone, Copy, Debug)]
struct Cand {
    key: f32,
    i: u32,
    j: u32,
}

impl Cand {
    fn better_than(&self, o: &Cand) -> bool {
        self.cmp(o) == Ordering::Less
    }
}

// Ordered "worst is greatest", so a max-heap's top is the entry to evict.
impl Ord for Cand {
    fn cmp(&self, o: &Self) -> Ordering {
        o.key
            .total_cmp(&self.key)
            .then(self.i.cmp(&o.i))
            .then(self.j.cmp(&o.j))
    }
}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl PartialEq for Cand {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Cand {}

/// The best `n` candidates seen so far.
#[derive(Clone, Debug)]
struct BestN {
    n: usize,
    heap: BinaryHeap<Cand>,
}

impl BestN {
    fn new(n: usize) -> Self {
        BestN {
            n,
            heap: BinaryHeap::with_capacity(n + 1),
        }
    }

    /// Keys strictly below this cannot enter.
    #[inline]
    fn threshold(&self) -> f32 {
        if self.heap.len() < self.n {
            f32::NEG_INFINITY
        } else {
            self.heap.peek().map_or(f32::INFINITY, |c| c.key)
        }
    }

    #[inline]
    fn push(&mut self, c: Cand) {
        if self.n == 0 {
            return;
        }
        if self.heap.len() < self.n {
            self.heap.push(c);
        } else if c.better_than(self.heap.peek().expect("full heap")) {
            self.heap.pop();
            self.heap.push(c);
        }
    }

    fn merge(mut self, other: BestN) -> BestN {
        for c in other.heap {
            self.push(c);
        }
        self
    }

    fn into_sorted(self) -> Vec<Cand> {
        // Ascending in `Ord` = best first.
        self.heap.into_sorted_vec()
    }
}

/// Minimum and maximum of a slice (16 independent lanes, so the loop vectorises).
#[inline]
fn min_max(s: &[f32]) -> (f32, f32) {
    let mut lo = [f32::INFINITY; 16];
    let mut hi = [f32::NEG_INFINITY; 16];
    let chunks = s.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..16 {
            lo[l] = if c[l] < lo[l] { c[l] } else { lo[l] };
            hi[l] = if c[l] > hi[l] { c[l] } else { hi[l] };
        }
    }
    let mut mn = lo.iter().copied().fold(f32::INFINITY, f32::min);
    let mut mx = hi.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for &v in rest {
        mn = mn.min(v);
        mx = mx.max(v);
    }
    (mn, mx)
}

/// Scans one band of a tile into the two best-`N` lists.
fn scan_band(mut acc: (BestN, BestN), tile: &Tile<'_>) -> (BestN, BestN) {
    let (hi, lo) = (&mut acc.0, &mut acc.1);
    for (r, row) in tile.values.outer_iter().enumerate() {
        let row = row.as_slice().expect("tile rows are contiguous");
        let start = tile.upper_start(r);
        let row = &row[start..];
        if row.is_empty() {
            continue;
        }
        let (mn, mx) = min_max(row);
        let i = (tile.row0 + r) as u32;
        let j0 = tile.col0 + start;
        let t_hi = hi.threshold();
        if mx >= t_hi {
            let mut t = t_hi;
            for (c, &v) in row.iter().enumerate() {
                if v >= t {
                    hi.push(Cand {
                        key: v,
                        i,
                        j: (j0 + c) as u32,
                    });
                    t = hi.threshold();
                }
            }
        }
        let t_lo = lo.threshold();
        if -mn >= t_lo {
            let mut t = t_lo;
            for (c, &v) in row.iter().enumerate() {
                if -v >= t {
                    lo.push(Cand {
                        key: -v,
                        i,
                        j: (j0 + c) as u32,
                    });
                    t = lo.threshold();
                }
            }
        }
    }
    acc
}

fn check_u32(n: usize) -> Result<()> {
    if n > u32::MAX as usize {
        return Err(Error::invalid(format!(
            "{n} directions: at most 2^32 - 1 are supported"
        )));
    }
    Ok(())
}

/// The `top` most aligned and most opposed pairs `i < j` among the directions of one set
/// (self-pairs excluded), with the default tile shape.
pub fn all_pairs_extremes(dirs: &Directions, top: usize) -> Extremes {
    extremes_with(dirs, None, top, TileShape::default()).expect("one set is always comparable")
}

/// The `top` most aligned and most opposed pairs `(i, j)` over all `i` in `a` and `j` in `b`
/// (every combination, including `i == j`: for the same features of two matrices of one SAE use
/// [`crate::self_similarity`] for the diagonal).
///
/// # Errors
/// [`Error::DimensionMismatch`] if the sets live in spaces of different width.
pub fn cross_extremes(a: &Directions, b: &Directions, top: usize) -> Result<Extremes> {
    extremes_with(a, Some(b), top, TileShape::default())
}

/// [`all_pairs_extremes`] (`b = None`) or [`cross_extremes`] with a chosen tile shape (memory:
/// `tile.rows × tile.cols × 4` bytes of GEMM output, plus `O(top)` per rayon task).
///
/// # Errors
/// [`Error::DimensionMismatch`]; [`Error::InvalidArgument`] for more than `2³² − 1` directions.
pub fn extremes_with(
    a: &Directions,
    b: Option<&Directions>,
    top: usize,
    tile: TileShape,
) -> Result<Extremes> {
    if let Some(b) = b {
        same_dim(a, b)?;
        check_u32(b.len())?;
    }
    check_u32(a.len())?;
    if top == 0 {
        return Ok(Extremes::default());
    }
    let (hi, lo) = fold_tiles(
        a.unit(),
        b.map(|b| b.unit()),
        tile,
        || (BestN::new(top), BestN::new(top)),
        scan_band,
        |x, y| (x.0.merge(y.0), x.1.merge(y.1)),
    );
    let pair = |c: Cand, sign: f32| Pair {
        i: c.i as usize,
        j: c.j as usize,
        cos: sign * c.key,
    };
    Ok(Extremes {
        most_aligned: hi.into_sorted().into_iter().map(|c| pair(c, 1.0)).collect(),
        most_opposed: lo
            .into_sorted()
            .into_iter()
            .map(|c| pair(c, -1.0))
            .collect(),
    })
}

/// Per-row top-`k` lists: for each row `i`, up to `k` column indices with the largest scores,
/// best first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Neighbors {
    /// Entries per row (`min(k, candidates)`).
    pub k: usize,
    /// `[rows × k]` column indices.
    pub indices: Vec<u32>,
    /// `[rows × k]` scores (cosines), descending within a row.
    pub scores: Vec<f32>,
}

impl Neighbors {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.indices.len().checked_div(self.k).unwrap_or(0)
    }

    /// `true` when there are no rows (or `k` is 0).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `i`'s indices and scores, best first.
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let r = i * self.k..(i + 1) * self.k;
        (&self.indices[r.clone()], &self.scores[r])
    }
}

/// Sorted per-row lists being filled.
struct Table<'a> {
    k: usize,
    idx: &'a mut [u32],
    val: &'a mut [f32],
}

/// Inserts `(v, j)` into a row's sorted list if it beats the last entry (ties: smaller `j`).
#[inline]
fn insert(idx: &mut [u32], val: &mut [f32], v: f32, j: u32) {
    let k = val.len();
    let last = k - 1;
    if v < val[last] || (v == val[last] && j >= idx[last]) {
        return;
    }
    let mut p = last;
    while p > 0 && (v > val[p - 1] || (v == val[p - 1] && j < idx[p - 1])) {
        val[p] = val[p - 1];
        idx[p] = idx[p - 1];
        p -= 1;
    }
    val[p] = v;
    idx[p] = j;
}

impl Table<'_> {
    /// Row updates: row `row0 + r` of the table sees every column of `tile` except itself.
    fn rows(&mut self, tile: ArrayView2<'_, f32>, row0: usize, col0: usize, skip_self: bool) {
        let k = self.k;
        let r0 = row0 * k;
        let rows = tile.nrows();
        self.idx[r0..r0 + rows * k]
            .par_chunks_mut(k)
            .zip(self.val[r0..r0 + rows * k].par_chunks_mut(k))
            .enumerate()
            .for_each(|(r, (idx, val))| {
                let row = tile.row(r);
                let row = row.as_slice().expect("contiguous tile");
                let i = row0 + r;
                for (c, &v) in row.iter().enumerate() {
                    if v >= val[k - 1] {
                        let j = col0 + c;
                        if !(skip_self && j == i) {
                            insert(idx, val, v, j as u32);
                        }
                    }
                }
            });
    }

    /// Column updates (the transposed half of a symmetric tile): table row `col0 + c` sees the
    /// tile's rows as candidates, for columns `c >= first_col`.
    fn cols(&mut self, tile: ArrayView2<'_, f32>, row0: usize, col0: usize, first_col: usize) {
        const CHUNK: usize = 64;
        let k = self.k;
        let n = tile.ncols();
        if first_col >= n {
            return;
        }
        let s0 = (col0 + first_col) * k;
        let len = (n - first_col) * k;
        self.idx[s0..s0 + len]
            .par_chunks_mut(CHUNK * k)
            .zip(self.val[s0..s0 + len].par_chunks_mut(CHUNK * k))
            .enumerate()
            .for_each(|(ch, (idx, val))| {
                let c_lo = first_col + ch * CHUNK;
                let width = idx.len() / k;
                for (r, row) in tile.outer_iter().enumerate() {
                    let row = row.as_slice().expect("contiguous tile");
                    let i = (row0 + r) as u32;
                    for (cc, &v) in row[c_lo..c_lo + width].iter().enumerate() {
                        let (ix, vl) = (
                            &mut idx[cc * k..(cc + 1) * k],
                            &mut val[cc * k..(cc + 1) * k],
                        );
                        if v >= vl[k - 1] {
                            insert(ix, vl, v, i);
                        }
                    }
                }
            });
    }
}

/// Runs the tiled product(s) for a per-row top-`k` search. `produce(r0, r1, c0, c1, out)` must
/// overwrite all of `out` (`[r1−r0, c1−c0]`, holding the previous tile) with the scores of that
/// block.
fn per_row_top_k<P>(
    n_rows: usize,
    n_cols: usize,
    symmetric: bool,
    k: usize,
    shape: TileShape,
    mut produce: P,
) -> Neighbors
where
    P: FnMut(usize, usize, usize, usize, ArrayViewMut2<'_, f32>),
{
    let candidates = if symmetric {
        n_cols.saturating_sub(1)
    } else {
        n_cols
    };
    let k = k.min(candidates);
    if k == 0 || n_rows == 0 {
        return Neighbors {
            k,
            indices: Vec::new(),
            scores: Vec::new(),
        };
    }
    let mut idx = vec![u32::MAX; n_rows * k];
    let mut val = vec![f32::NEG_INFINITY; n_rows * k];
    let (tr, tc) = (shape.rows.max(1), shape.cols.max(1));
    let mut buf = vec![0f32; tr.min(n_rows) * tc.min(n_cols)];
    for r0 in (0..n_rows).step_by(tr) {
        let r1 = (r0 + tr).min(n_rows);
        let c_start = if symmetric { r0 } else { 0 };
        for c0 in (c_start..n_cols).step_by(tc) {
            let c1 = (c0 + tc).min(n_cols);
            let out = &mut buf[..(r1 - r0) * (c1 - c0)];
            let mut view = ArrayViewMut2::from_shape((r1 - r0, c1 - c0), out).expect("sized");
            produce(r0, r1, c0, c1, view.view_mut());
            let view = view.view();
            let mut table = Table {
                k,
                idx: &mut idx,
                val: &mut val,
            };
            table.rows(view, r0, c0, symmetric);
            if symmetric {
                // Columns inside this row block are covered by their own row updates.
                table.cols(view, r0, c0, r1.saturating_sub(c0));
            }
        }
    }
    Neighbors {
        k,
        indices: idx,
        scores: val,
    }
}

fn gemm_into(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, out: ArrayViewMut2<'_, f32>) {
    interp_core::matmul_into(a, b.t(), out);
}

/// Per-feature top-`k` nearest neighbours by cosine within one set (`j ≠ i`), best first.
/// `k` is capped at `F − 1`.
pub fn nearest_neighbors(dirs: &Directions, k: usize) -> Neighbors {
    nearest_neighbors_with(dirs, k, TileShape::default())
}

/// [`nearest_neighbors`] with a chosen tile shape.
pub fn nearest_neighbors_with(dirs: &Directions, k: usize, tile: TileShape) -> Neighbors {
    let u = dirs.unit();
    per_row_top_k(
        u.nrows(),
        u.nrows(),
        true,
        k,
        tile,
        |r0, r1, c0, c1, out| gemm_into(u.slice(s![r0..r1, ..]), u.slice(s![c0..c1, ..]), out),
    )
}

/// For every direction of `a`, its `k` best matches in `b` by cosine (all of `b` considered),
/// best first: the sparse cross-SAE matching of Feature Flow (`k = 1`: top-1 predecessor).
/// `k` is capped at `b.len()`.
///
/// # Errors
/// [`Error::DimensionMismatch`].
pub fn top_k_matches(a: &Directions, b: &Directions, k: usize) -> Result<Neighbors> {
    top_k_matches_with(a, b, k, TileShape::default())
}

/// [`top_k_matches`] with a chosen tile shape.
///
/// # Errors
/// [`Error::DimensionMismatch`].
pub fn top_k_matches_with(
    a: &Directions,
    b: &Directions,
    k: usize,
    tile: TileShape,
) -> Result<Neighbors> {
    same_dim(a, b)?;
    check_u32(b.len())?;
    let (ua, ub) = (a.unit(), b.unit());
    Ok(per_row_top_k(
        ua.nrows(),
        ub.nrows(),
        false,
        k,
        tile,
        |r0, r1, c0, c1, out| gemm_into(ua.slice(s![r0..r1, ..]), ub.slice(s![c0..c1, ..]), out),
    ))
}

/// A feature's antipodality: `score = max_{j≠i} cos_enc(i, j) · cos_dec(i, j)` and the `j`
/// attaining it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Antipodality {
    /// The maximising partner `j` (`None` with a single feature).
    pub partner: Option<usize>,
    /// The score (`-inf` with a single feature).
    pub score: f32,
}

/// Antipodality of every feature, from its encoder and decoder directions (the same features
/// in the same order): `s_i = max_{j≠i} cos_enc(i,j)·cos_dec(i,j)` ("Dense SAE latents are
/// features not bugs"). Two GEMM tiles per block, upper triangle only.
///
/// # Errors
/// [`Error::LengthMismatch`] if the two sets do not have the same number of features.
pub fn antipodality(enc: &Directions, dec: &Directions) -> Result<Vec<Antipodality>> {
    if enc.len() != dec.len() {
        return Err(Error::LengthMismatch {
            what: "decoder directions (antipodality)".into(),
            expected: enc.len(),
            actual: dec.len(),
        });
    }
    check_u32(enc.len())?;
    let (ue, ud) = (enc.unit(), dec.unit());
    let shape = TileShape::default();
    let mut other = vec![0f32; shape.rows.min(ue.nrows()) * shape.cols.min(ue.nrows())];
    let nb = per_row_top_k(
        ue.nrows(),
        ue.nrows(),
        true,
        1,
        shape,
        |r0, r1, c0, c1, mut out| {
            gemm_into(
                ue.slice(s![r0..r1, ..]),
                ue.slice(s![c0..c1, ..]),
                out.view_mut(),
            );
            let o = &mut other[..(r1 - r0) * (c1 - c0)];
            let ov = ArrayViewMut2::from_shape((r1 - r0, c1 - c0), o).expect("sized");
            gemm_into(ud.slice(s![r0..r1, ..]), ud.slice(s![c0..c1, ..]), ov);
            let (os, dst) = (
                &other[..(r1 - r0) * (c1 - c0)],
                out.as_slice_mut().expect("contiguous"),
            );
            dst.par_chunks_mut(4096)
                .zip(os.par_chunks(4096))
                .for_each(|(d, o)| d.iter_mut().zip(o).for_each(|(d, o)| *d *= o));
        },
    );
    Ok((0..enc.len())
        .map(|i| {
            if nb.k == 0 {
                Antipodality {
                    partner: None,
                    score: f32::NEG_INFINITY,
                }
            } else {
                let (ix, sc) = nb.row(i);
                Antipodality {
                    partner: Some(ix[0] as usize),
                    score: sc[0],
                }
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_n_keeps_best_with_deterministic_ties() {
        let mut b = BestN::new(2);
        for (k, i, j) in [(0.5, 3, 4), (0.9, 1, 2), (0.5, 0, 9), (0.1, 0, 1)] {
            b.push(Cand { key: k, i, j });
        }
        let v: Vec<_> = b.into_sorted().iter().map(|c| (c.key, c.i, c.j)).collect();
        assert_eq!(v, vec![(0.9, 1, 2), (0.5, 0, 9)]);
    }

    #[test]
    fn insert_keeps_rows_sorted() {
        let mut idx = [u32::MAX; 3];
        let mut val = [f32::NEG_INFINITY; 3];
        for (v, j) in [(0.1, 5), (0.7, 2), (0.3, 9), (0.7, 1), (0.0, 0)] {
            insert(&mut idx, &mut val, v, j);
        }
        assert_eq!(idx, [1, 2, 9]);
        assert_eq!(val, [0.7, 0.7, 0.3]);
    }

    #[test]
    fn min_max_matches_iterator() {
        let v: Vec<f32> = (0..37).map(|i| ((i * 7919) % 101) as f32 - 50.0).collect();
        for n in [0, 1, 15, 16, 17, 37] {
            let (mn, mx) = min_max(&v[..n]);
            assert_eq!(mn, v[..n].iter().copied().fold(f32::INFINITY, f32::min));
            assert_eq!(mx, v[..n].iter().copied().fold(f32::NEG_INFINITY, f32::max));
        }
    }
}
