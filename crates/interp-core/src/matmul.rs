//! Dense f32 matrix multiply on CPU: `out += x @ w` ([`matmul_acc`]) or `out = x @ w`
//! ([`matmul_into`], [`matmul_into_single_thread`]).
//!
//! Without features this is the pure-Rust `gemm` crate (AVX-512 when the CPU has it), large
//! products cut into column blocks that rayon spreads over the cores, and products of at most
//! 8 rows (a generation step) through unpacked kernels of our own (`matmul/skinny.rs`); with
//! `blas` the multi-threaded calls are OpenBLAS through ndarray's `general_mat_mul`. Any
//! strides work (transposed views included).
//!
//! Prefer [`matmul_into`] over zeroing and accumulating: a fresh zeroed allocation is mapped
//! to the shared zero page until written, so an accumulating GEMM that reads it first pays a
//! copy-on-write fault and a TLB shootdown per page (≈ 8 % of a GPT-2 forward, whose
//! unembedding writes 200 MB of logits).

#[cfg(not(feature = "blas"))]
mod skinny;

use ndarray::{ArrayView2, ArrayViewMut2};

/// `out += x @ w` for `x: [m, k]`, `w: [k, n]`, `out: [m, n]`, on every core.
///
/// # Panics
/// If the shapes disagree (a programming error in the caller, not bad input).
pub fn matmul_acc(x: ArrayView2<'_, f32>, w: ArrayView2<'_, f32>, out: ArrayViewMut2<'_, f32>) {
    check_shapes(&x, &w, &out);
    parallel(x, w, out, true);
}

/// `out = x @ w` for `x: [m, k]`, `w: [k, n]`, `out: [m, n]`, on every core; `out` is written
/// without being read.
///
/// # Panics
/// If the shapes disagree (a programming error in the caller, not bad input).
pub fn matmul_into(x: ArrayView2<'_, f32>, w: ArrayView2<'_, f32>, out: ArrayViewMut2<'_, f32>) {
    check_shapes(&x, &w, &out);
    parallel(x, w, out, false);
}

/// `out = x @ w` on the calling thread only (the `gemm` crate in every build), for callers
/// that already run one task per core; `out` is written without being read.
///
/// # Panics
/// If the shapes disagree (a programming error in the caller, not bad input).
pub fn matmul_into_single_thread(
    x: ArrayView2<'_, f32>,
    w: ArrayView2<'_, f32>,
    out: ArrayViewMut2<'_, f32>,
) {
    check_shapes(&x, &w, &out);
    gemm_crate(x, w, out, false, gemm::Parallelism::None);
}

#[cfg(feature = "blas")]
fn parallel(
    x: ArrayView2<'_, f32>,
    w: ArrayView2<'_, f32>,
    mut out: ArrayViewMut2<'_, f32>,
    acc: bool,
) {
    ndarray::linalg::general_mat_mul(1.0, &x, &w, if acc { 1.0 } else { 0.0 }, &mut out);
}

/// Products with fewer multiply-adds than this run as one `gemm` call (its own threading).
#[cfg(not(feature = "blas"))]
const MIN_CHUNKED_MACS: usize = 1 << 24;

/// Every core: the columns of `w` and `out` are cut into blocks of 128 or 256 that rayon
/// hands out one at a time, each one single-threaded `gemm` call, so a thread that falls
/// behind (another process on its core) delays one block instead of every phase of the
/// `gemm` crate's own threading, which waits at a barrier between phases. Each block packs
/// only its own columns of `w`. On the GPT-2 and SAE shapes (2 cores) the blocks were as fast
/// or faster in a microbenchmark (docs/performance-log.md). At most [`skinny::MAX_ROWS`] rows
/// (a generation step) go to the skinny kernels, which do not pack `w`.
#[cfg(not(feature = "blas"))]
fn parallel(
    x: ArrayView2<'_, f32>,
    w: ArrayView2<'_, f32>,
    mut out: ArrayViewMut2<'_, f32>,
    acc: bool,
) {
    use ndarray::Axis;
    use rayon::prelude::*;
    if skinny::try_matmul(x, w, out.view_mut(), acc) {
        return;
    }
    let (m, k, n) = (x.nrows(), x.ncols(), w.ncols());
    let threads = rayon::current_num_threads();
    if threads < 2 || n < 256 || m.saturating_mul(k).saturating_mul(n) < MIN_CHUNKED_MACS {
        gemm_crate(x, w, out, acc, gemm::Parallelism::Rayon(0));
        return;
    }
    let width = block_width(n, threads);
    let blocks: Vec<_> = w
        .axis_chunks_iter(Axis(1), width)
        .zip(out.axis_chunks_iter_mut(Axis(1), width))
        .collect();
    blocks
        .into_par_iter()
        .for_each(|(w, out)| gemm_crate(x, w, out, acc, gemm::Parallelism::None));
}

/// The column-block width of [`parallel`]: about 8 blocks per thread, in multiples of 256 up
/// to 2048 (each block packs `x` again, so wide outputs — a 256000-token unembedding — take
/// wide blocks), and 128 for narrow outputs, twice as many blocks to share (GPT-2's 768-column
/// MLP-out: 3 per thread).
#[cfg(not(feature = "blas"))]
fn block_width(n: usize, threads: usize) -> usize {
    if n < 256 * 4 * threads {
        return 128;
    }
    (n / (8 * threads) / 256 * 256).clamp(256, 2048)
}

/// `out = x @ w`, or `out += x @ w` when `acc`, through the `gemm` crate (shapes checked).
fn gemm_crate(
    x: ArrayView2<'_, f32>,
    w: ArrayView2<'_, f32>,
    mut out: ArrayViewMut2<'_, f32>,
    acc: bool,
    parallelism: gemm::Parallelism,
) {
    let (m, k, n) = (x.nrows(), x.ncols(), w.ncols());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !acc {
            out.fill(0.0);
        }
        return;
    }
    let (xs, ws) = (x.strides(), w.strides());
    let (o_rs, o_cs) = (out.strides()[0], out.strides()[1]);
    // SAFETY: the pointers and strides describe live, correctly sized ndarray views
    // (x: m×k, w: k×n, out: m×n and uniquely borrowed; shapes checked by every caller); gemm
    // only reads x and w and writes out, which it reads only when `acc` (`read_dst`).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            o_cs,
            o_rs,
            acc,
            x.as_ptr(),
            xs[1],
            xs[0],
            w.as_ptr(),
            ws[1],
            ws[0],
            if acc { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

fn check_shapes(x: &ArrayView2<'_, f32>, w: &ArrayView2<'_, f32>, out: &ArrayViewMut2<'_, f32>) {
    assert!(
        x.ncols() == w.nrows() && out.nrows() == x.nrows() && out.ncols() == w.ncols(),
        "matmul: x {:?} @ w {:?} into out {:?}",
        x.shape(),
        w.shape(),
        out.shape()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn matches_naive_product_with_transposed_weights_accumulating_or_overwriting() {
        let x = Array2::from_shape_fn((37, 19), |(i, j)| ((i * 7 + j * 3) % 11) as f32 - 5.0);
        let w_t = Array2::from_shape_fn((23, 19), |(i, j)| ((i * 5 + j) % 13) as f32 * 0.1);
        let w = w_t.t();
        let mut out = Array2::from_elem((37, 23), 1.0f32);
        matmul_acc(x.view(), w, out.view_mut());
        for i in 0..37 {
            for j in 0..23 {
                let want = 1.0 + (0..19).map(|k| x[[i, k]] * w[[k, j]]).sum::<f32>();
                assert!((out[[i, j]] - want).abs() < 1e-3, "{i},{j}");
            }
        }
        // Overwriting variants ignore what `out` held (NaN here).
        let mut into = Array2::from_elem((37, 23), f32::NAN);
        matmul_into(x.view(), w, into.view_mut());
        let mut single = Array2::from_elem((37, 23), f32::NAN);
        matmul_into_single_thread(x.view(), w, single.view_mut());
        for ((o, i), s) in out.iter().zip(&into).zip(&single) {
            assert!(
                (o - 1.0 - i).abs() < 1e-3 && (i - s).abs() < 1e-3,
                "{o} {i} {s}"
            );
        }
    }

    /// Large enough for the column-block path (two threads, a ragged last block), with a
    /// transposed `w` and a column-major `out`; checked against one whole-matrix call and,
    /// on a sample of entries, against the naive sum.
    #[test]
    fn column_blocks_match_one_call() {
        let (m, k, n) = (64, 512, 600);
        let x = Array2::from_shape_fn((m, k), |(i, j)| ((i * 7 + j * 3) % 11) as f32 * 0.1 - 0.5);
        let w_t = Array2::from_shape_fn((n, k), |(i, j)| ((i * 5 + j) % 13) as f32 * 0.01);
        let w = w_t.t();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let mut whole = Array2::from_elem((m, n), f32::NAN);
        matmul_into_single_thread(x.view(), w, whole.view_mut());
        let mut into = Array2::from_elem((n, m), f32::NAN);
        pool.install(|| matmul_into(x.view(), w, into.view_mut().reversed_axes()));
        let mut acc = Array2::from_elem((m, n), 2.0f32);
        pool.install(|| matmul_acc(x.view(), w, acc.view_mut()));
        for i in 0..m {
            for j in 0..n {
                let (a, b, c) = (whole[[i, j]], into[[j, i]], acc[[i, j]] - 2.0);
                assert!(
                    (a - b).abs() < 1e-3 && (a - c).abs() < 1e-3,
                    "{i},{j}: {a} {b} {c}"
                );
            }
        }
        for (i, j) in [(0, 0), (63, 599), (17, 511), (40, 256)] {
            let want = (0..k).map(|t| x[[i, t]] * w[[t, j]]).sum::<f32>();
            assert!((whole[[i, j]] - want).abs() < 1e-3, "{i},{j}");
        }
    }
}
