//! Dense f32 matrix multiply on CPU: `out += x @ w`.
//!
//! Without features this is the pure-Rust `gemm` crate (AVX-512 when the CPU has it, rayon
//! threads); with `blas` it is OpenBLAS through ndarray's `general_mat_mul`, about twice as fast on
//! our 2-core machines. Any strides work (transposed views included).

use ndarray::{ArrayView2, ArrayViewMut2};

/// `out += x @ w` for `x: [m, k]`, `w: [k, n]`, `out: [m, n]`.
///
/// # Panics
/// If the shapes disagree (a programming error in the caller, not bad input).
#[cfg(feature = "blas")]
pub fn matmul_acc(x: ArrayView2<'_, f32>, w: ArrayView2<'_, f32>, mut out: ArrayViewMut2<'_, f32>) {
    check_shapes(&x, &w, &out);
    ndarray::linalg::general_mat_mul(1.0, &x, &w, 1.0, &mut out);
}

/// `out += x @ w` for `x: [m, k]`, `w: [k, n]`, `out: [m, n]`.
///
/// # Panics
/// If the shapes disagree (a programming error in the caller, not bad input).
#[cfg(not(feature = "blas"))]
pub fn matmul_acc(x: ArrayView2<'_, f32>, w: ArrayView2<'_, f32>, mut out: ArrayViewMut2<'_, f32>) {
    check_shapes(&x, &w, &out);
    let (m, k, n) = (x.nrows(), x.ncols(), w.ncols());
    let (xs, ws, os) = (x.strides(), w.strides(), out.strides());
    let (o_rs, o_cs) = (os[0], os[1]);
    // SAFETY: the pointers and strides describe live, correctly sized ndarray views
    // (x: m×k, w: k×n, out: m×n and uniquely borrowed; shapes checked above); gemm only reads
    // x and w and writes out.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            o_cs,
            o_rs,
            true,
            x.as_ptr(),
            xs[1],
            xs[0],
            w.as_ptr(),
            ws[1],
            ws[0],
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
}

fn check_shapes(x: &ArrayView2<'_, f32>, w: &ArrayView2<'_, f32>, out: &ArrayViewMut2<'_, f32>) {
    assert!(
        x.ncols() == w.nrows() && out.nrows() == x.nrows() && out.ncols() == w.ncols(),
        "matmul_acc: x {:?} @ w {:?} into out {:?}",
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
    fn matches_naive_product_with_transposed_weights_and_accumulates() {
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
    }
}
