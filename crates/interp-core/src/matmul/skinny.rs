//! Products with few rows, `x: [m ≤ 8, k]`: a decode step of generation, one new token per
//! sample. A GEMM library first packs panels of `w` into a scratch buffer; at 8 rows each
//! weight is then used only 8 times, so the packing costs about as much as the multiply. These
//! kernels read `w` once, in place, and rayon splits the columns (and, for a row-major `w`,
//! `k`, whose partial products are summed at the end). `w` must be contiguous along one axis
//! (row-major `[k, n]`, or column-major, as the transposed view of a tied embedding is);
//! anything else goes back to the GEMM. docs/performance-log.md has the measurements.
//!
//! Rows are padded with zeros to 1, 2, 4 or 8 so that the accumulator tile is a compile-time
//! size; the padded rows cost multiply-adds but no memory traffic, which is what bounds these
//! products.

use ndarray::{ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

use crate::multiversion;
use crate::simd::{fmadd, Simd};

/// The most rows the skinny kernels take.
pub(super) const MAX_ROWS: usize = 8;
/// Output columns per rayon task for a column-major `w`: about a quarter of a core's share
/// (so that a thread that falls behind delays little), a whole number of vectors, at most 512.
fn cols_per_task(n: usize) -> usize {
    let share = n.div_ceil(4 * rayon::current_num_threads());
    share.next_multiple_of(LANES).clamp(4 * LANES, 32 * LANES)
}

/// Columns of a row-major `w` per task at most (16 KiB of each row: long runs for the hardware
/// prefetcher; the 8 rows' accumulators, 128 KiB, stay in L2).
const ROW_MAJOR_CHUNK: usize = 4096;
/// Rows of a row-major `w` per part of `k` at least.
const MIN_ROWS_PER_PART: usize = 64;
/// Lanes of the accumulator vectors.
const LANES: usize = 16;

/// `out = x @ w`, or `out += x @ w` when `acc`, if `x` has at most [`MAX_ROWS`] rows and `w`
/// is contiguous along one axis; returns `false` (and touches nothing) otherwise. Shapes are
/// checked by the caller.
pub(super) fn try_matmul(
    x: ArrayView2<'_, f32>,
    w: ArrayView2<'_, f32>,
    mut out: ArrayViewMut2<'_, f32>,
    acc: bool,
) -> bool {
    let (m, k, n) = (x.nrows(), x.ncols(), w.ncols());
    if m == 0 || m > MAX_ROWS || k == 0 || n == 0 {
        return false;
    }
    let wt = w.t();
    let (layout, w_slice) = match (w.as_slice(), wt.as_slice()) {
        (Some(s), _) => (Layout::RowMajor, s),
        (None, Some(s)) => (Layout::ColumnMajor, s),
        (None, None) => return false,
    };
    let rows = m.next_power_of_two();
    // x, zero-padded to `rows` rows: transposed ([k, rows]) for the row-major kernel, whose
    // inner loop broadcasts one x value per row; row-major ([rows, k]) for the dot products.
    let mut xp = vec![0f32; rows * k];
    for ((i, j), &v) in x.indexed_iter() {
        match layout {
            Layout::RowMajor => xp[j * rows + i] = v,
            Layout::ColumnMajor => xp[i * k + j] = v,
        }
    }
    // Tasks: column chunks × parts of k. A row-major `w` is cut along k as well, so that each
    // task streams long runs of its rows (a chunk's width, up to 16 KiB); the parts' partial
    // products are summed at the end.
    let (chunk, k_parts) = match layout {
        Layout::ColumnMajor => (cols_per_task(n), 1),
        Layout::RowMajor => {
            let chunk = n.min(ROW_MAJOR_CHUNK);
            let tasks_wanted = 4 * rayon::current_num_threads();
            let parts = tasks_wanted.div_ceil(n.div_ceil(chunk));
            (chunk, parts.clamp(1, k.div_ceil(MIN_ROWS_PER_PART)))
        }
    };
    let k_step = k.div_ceil(k_parts);
    let simd = Simd::detect();
    let tasks: Vec<(usize, usize)> = (0..n.div_ceil(chunk))
        .flat_map(|c| (0..k_parts).map(move |p| (c, p)))
        .collect();
    let partials: Vec<Vec<f32>> = tasks
        .into_par_iter()
        .map(|(c, p)| {
            let j0 = c * chunk;
            let width = chunk.min(n - j0);
            let mut block = vec![0f32; rows * width];
            let (k0, k1) = ((p * k_step).min(k), ((p + 1) * k_step).min(k));
            match layout {
                Layout::RowMajor => {
                    row_major_mv(simd, &xp, rows, w_slice, n, j0, k0, k1, &mut block);
                }
                Layout::ColumnMajor => {
                    column_major_mv(simd, &xp, rows, w_slice, k, j0, &mut block);
                }
            }
            block
        })
        .collect();
    let out_chunks: Vec<_> = out.axis_chunks_iter_mut(Axis(1), chunk).collect();
    out_chunks
        .into_par_iter()
        .enumerate()
        .for_each(|(c, mut out)| {
            let width = out.ncols();
            let parts = &partials[c * k_parts..(c + 1) * k_parts];
            for i in 0..m {
                for (j, o) in out.row_mut(i).iter_mut().enumerate() {
                    let sum: f32 = parts.iter().map(|b| b[i * width + j]).sum();
                    *o = if acc { *o + sum } else { sum };
                }
            }
        });
    true
}

/// How `w`'s elements lie in memory.
#[derive(Clone, Copy)]
enum Layout {
    /// `w[k][n]`: rows of `n` contiguous.
    RowMajor,
    /// `w[n][k]` in memory (the transpose is standard): columns of `k` contiguous.
    ColumnMajor,
}

/// Columns `j0 .. j0 + block.len() / rows` of `x[:, k0..k1] @ w[k0..k1, :]` into `block`
/// (`[rows, width]`), for a row-major `w: [k, n]` and `xt = xᵀ: [k, rows]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn row_major_block<const FMA: bool>(
    xt: &[f32],
    rows: usize,
    w: &[f32],
    n: usize,
    j0: usize,
    k0: usize,
    k1: usize,
    block: &mut [f32],
) {
    match rows {
        1 => row_major_rows::<FMA, 1>(xt, w, n, j0, k0..k1, block),
        2 => row_major_rows::<FMA, 2>(xt, w, n, j0, k0..k1, block),
        4 => row_major_rows::<FMA, 4>(xt, w, n, j0, k0..k1, block),
        _ => row_major_rows::<FMA, 8>(xt, w, n, j0, k0..k1, block),
    }
}

multiversion!(row_major_mv => row_major_block(
    xt: &[f32], rows: usize, w: &[f32], n: usize, j0: usize, k0: usize, k1: usize,
    block: &mut [f32]
));

/// Rows `ks` of a row-major `w` (the block's columns) times x. The kernel walks `k` in the
/// outer loop and the block's columns inside, so that each row of `w` is read as one
/// contiguous run: walking down a column tile instead touches a new page of `w` at every
/// step, and the TLB misses (costly in a VM) made that 20× slower than the GEMM. `U` rows of
/// `w` are applied per load and store of the accumulators.
#[inline(always)]
fn row_major_rows<const FMA: bool, const M: usize>(
    xt: &[f32],
    w: &[f32],
    n: usize,
    j0: usize,
    ks: std::ops::Range<usize>,
    block: &mut [f32],
) {
    const U: usize = 4;
    block.fill(0.0);
    let mut kk = ks.start;
    while kk + U <= ks.end {
        row_major_step::<FMA, M, U>(xt, w, n, j0, kk, block);
        kk += U;
    }
    for kk in kk..ks.end {
        row_major_step::<FMA, M, 1>(xt, w, n, j0, kk, block);
    }
}

/// Adds rows `kk .. kk + U` of `w` (the block's columns), times x, to the block.
// Index loops over compile-time sizes: what LLVM unrolls into register tiles.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn row_major_step<const FMA: bool, const M: usize, const U: usize>(
    xt: &[f32],
    w: &[f32],
    n: usize,
    j0: usize,
    kk: usize,
    block: &mut [f32],
) {
    let width = block.len() / M;
    let w_rows: [&[f32]; U] = std::array::from_fn(|u| {
        let start = (kk + u) * n + j0;
        &w[start..start + width]
    });
    let xs: [&[f32]; U] = std::array::from_fn(|u| &xt[(kk + u) * M..(kk + u + 1) * M]);
    let tiles = width / LANES;
    for t in 0..tiles {
        let span = t * LANES..(t + 1) * LANES;
        let wv: [&[f32; LANES]; U] =
            std::array::from_fn(|u| w_rows[u][span.clone()].try_into().expect("tile"));
        for i in 0..M {
            let at = i * width + span.start;
            let acc: &mut [f32; LANES] = (&mut block[at..at + LANES]).try_into().expect("tile");
            let mut r = *acc;
            for u in 0..U {
                let xv = xs[u][i];
                for l in 0..LANES {
                    r[l] = fmadd::<FMA>(xv, wv[u][l], r[l]);
                }
            }
            *acc = r;
        }
    }
    // The last columns (fewer than a vector).
    for c in tiles * LANES..width {
        for i in 0..M {
            let mut r = block[i * width + c];
            for u in 0..U {
                r = fmadd::<FMA>(xs[u][i], w_rows[u][c], r);
            }
            block[i * width + c] = r;
        }
    }
}

/// Columns `j0 .. j0 + block.len() / rows` of `x @ w` into `block` (`[rows, width]`), for a
/// column-major `w` (`wt = wᵀ: [n, k]` row-major) and `x: [rows, k]`: dot products of rows.
#[inline(always)]
fn column_major_block<const FMA: bool>(
    x: &[f32],
    rows: usize,
    wt: &[f32],
    k: usize,
    j0: usize,
    block: &mut [f32],
) {
    match rows {
        1 => column_major_rows::<FMA, 1>(x, wt, k, j0, block),
        2 => column_major_rows::<FMA, 2>(x, wt, k, j0, block),
        4 => column_major_rows::<FMA, 4>(x, wt, k, j0, block),
        _ => column_major_rows::<FMA, 8>(x, wt, k, j0, block),
    }
}

multiversion!(column_major_mv => column_major_block(
    x: &[f32], rows: usize, wt: &[f32], k: usize, j0: usize, block: &mut [f32]
));

#[inline(always)]
fn column_major_rows<const FMA: bool, const M: usize>(
    x: &[f32],
    wt: &[f32],
    k: usize,
    j0: usize,
    block: &mut [f32],
) {
    let width = block.len() / M;
    let mut c = 0;
    while c + 2 <= width {
        column_major_cols::<FMA, M, 2>(x, wt, k, j0, c, block);
        c += 2;
    }
    if c < width {
        column_major_cols::<FMA, M, 1>(x, wt, k, j0, c, block);
    }
}

/// Output columns `c .. c + C` of the block: `C` columns of `w` against the `M` rows of `x`.
// Index loops over compile-time sizes: what LLVM unrolls into register tiles.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn column_major_cols<const FMA: bool, const M: usize, const C: usize>(
    x: &[f32],
    wt: &[f32],
    k: usize,
    j0: usize,
    c: usize,
    block: &mut [f32],
) {
    let width = block.len() / M;
    let cols: [&[f32]; C] = std::array::from_fn(|t| {
        let j = j0 + c + t;
        &wt[j * k..(j + 1) * k]
    });
    let mut acc = [[[0f32; LANES]; C]; M];
    let chunks = k / LANES;
    for ch in 0..chunks {
        let span = ch * LANES..(ch + 1) * LANES;
        let ws: [&[f32; LANES]; C] =
            std::array::from_fn(|t| cols[t][span.clone()].try_into().expect("chunk"));
        for (i, a) in acc.iter_mut().enumerate() {
            let xr: &[f32; LANES] = x[i * k + span.start..i * k + span.end]
                .try_into()
                .expect("chunk");
            for (a, wv) in a.iter_mut().zip(&ws) {
                for l in 0..LANES {
                    a[l] = fmadd::<FMA>(xr[l], wv[l], a[l]);
                }
            }
        }
    }
    for (i, a) in acc.iter().enumerate() {
        let xr = &x[i * k..(i + 1) * k];
        for (t, a) in a.iter().enumerate() {
            let tail: f32 = (chunks * LANES..k).map(|kk| xr[kk] * cols[t][kk]).sum();
            block[i * width + c + t] = a.iter().sum::<f32>() + tail;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn naive(x: &Array2<f32>, w: ArrayView2<'_, f32>) -> Array2<f32> {
        Array2::from_shape_fn((x.nrows(), w.ncols()), |(i, j)| {
            (0..x.ncols()).map(|t| x[[i, t]] * w[[t, j]]).sum()
        })
    }

    /// Every row count 1–8, both layouts of `w`, a ragged last tile and task, `k` in parts,
    /// accumulating and overwriting, a transposed `out`, and every instruction set against the
    /// naive sum.
    #[test]
    fn skinny_products_match_the_naive_sum() {
        // k: three parts of a row-major w (MIN_ROWS_PER_PART), and not a multiple of the lanes.
        let (k, n) = (2 * MIN_ROWS_PER_PART + 37, 1200 + 5);
        let w_rm =
            Array2::from_shape_fn((k, n), |(i, j)| ((i * 5 + j * 3) % 13) as f32 * 0.1 - 0.6);
        // [n, k] row-major: its transpose is a column-major w.
        let w_cm_storage = Array2::from_shape_fn((n, k), |(j, i)| w_rm[[i, j]]);
        let w_cm = w_cm_storage.t();
        assert!(w_cm.as_slice().is_none() && w_cm.t().as_slice().is_some());
        for m in 1..=MAX_ROWS {
            let x = Array2::from_shape_fn((m, k), |(i, j)| ((i * 7 + j) % 11) as f32 * 0.02 - 0.1);
            let want = naive(&x, w_rm.view());
            for w in [w_rm.view(), w_cm] {
                let mut into = Array2::from_elem((m, n), f32::NAN);
                assert!(try_matmul(x.view(), w, into.view_mut(), false));
                let mut acc_t = Array2::from_elem((n, m), 1.0f32);
                assert!(try_matmul(
                    x.view(),
                    w,
                    acc_t.view_mut().reversed_axes(),
                    true
                ));
                for ((i, j), &v) in want.indexed_iter() {
                    assert!((into[[i, j]] - v).abs() < 1e-3, "m {m} ({i},{j})");
                    assert!(
                        (acc_t[[j, i]] - 1.0 - v).abs() < 1e-3,
                        "m {m} ({i},{j}) acc"
                    );
                }
            }
        }
        // Each instruction set's kernels agree with the portable ones.
        let rows = 8;
        let x = Array2::from_shape_fn((rows, k), |(i, j)| ((i + 3 * j) % 7) as f32 - 3.0);
        let xt = Array2::from_shape_fn((k, rows), |(i, j)| x[[j, i]]);
        let (xs, xts) = (x.as_slice().unwrap(), xt.as_slice().unwrap());
        let width = 45;
        let run = |simd| {
            let mut a = vec![0f32; rows * width];
            let mut b = vec![0f32; rows * width];
            row_major_mv(
                simd,
                xts,
                rows,
                w_rm.as_slice().unwrap(),
                n,
                3,
                0,
                k,
                &mut a,
            );
            column_major_mv(
                simd,
                xs,
                rows,
                w_cm_storage.as_slice().unwrap(),
                k,
                3,
                &mut b,
            );
            (a, b)
        };
        let (pa, pb) = run(Simd::Portable);
        for simd in Simd::available() {
            let (a, b) = run(simd);
            for ((a, b), (pa, pb)) in a.iter().zip(&b).zip(pa.iter().zip(&pb)) {
                assert!((a - pa).abs() < 1e-3 && (b - pb).abs() < 1e-3, "{simd:?}");
            }
        }
    }

    #[test]
    fn declines_what_it_does_not_serve() {
        let x = Array2::<f32>::ones((MAX_ROWS + 1, 4));
        let w = Array2::<f32>::ones((4, 6));
        let mut out = Array2::<f32>::zeros((MAX_ROWS + 1, 6));
        assert!(!try_matmul(x.view(), w.view(), out.view_mut(), false));
        // A view strided along both axes.
        let big = Array2::<f32>::ones((8, 12));
        let strided = big.slice(ndarray::s![..;2, ..;2]);
        let x = Array2::<f32>::ones((2, 4));
        let mut out = Array2::<f32>::zeros((2, 6));
        assert!(!try_matmul(x.view(), strided, out.view_mut(), false));
        assert!(out.iter().all(|&v| v == 0.0));
    }
}
