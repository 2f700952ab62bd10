//! The dense linear map `x @ w + b`, with a CPU fast path.
//!
//! On the ndarray backend (f32), burn's matmul runs each GEMM inside its rayon pool, which
//! starves OpenBLAS' own threads, and adds the bias in a second pass over the output. The fast
//! path multiplies the ndarray buffers directly with [`interp_core::matmul_acc`] (OpenBLAS with
//! the `blas` feature, otherwise the pure-Rust `gemm` crate), accumulating onto the broadcast
//! bias. Other backends use burn's ops.

use std::any::Any;

use burn::tensor::{backend::Backend, Tensor, TensorPrimitive};
use burn_ndarray::{NdArray, NdArrayTensor};
use ndarray::{Array2, ArrayView2, Ix2};

/// `x @ w + b`.
///
/// # Shapes
/// `x: [n, d_in]`, `w: [d_in, d_out]`, `b: [d_out]` → `[n, d_out]`.
pub(crate) fn linear2d<B: Backend>(
    x: Tensor<B, 2>,
    w: Tensor<B, 2>,
    b: Tensor<B, 1>,
) -> Tensor<B, 2> {
    if std::any::TypeId::of::<B>() == std::any::TypeId::of::<NdArray<f32>>() {
        if let Some(out) = ndarray_linear::<B>(&x, &w, &b) {
            return out;
        }
    }
    x.matmul(w) + b.unsqueeze::<2>()
}

fn as_ndarray<B: Backend, const D: usize>(t: &Tensor<B, D>) -> Option<NdArrayTensor> {
    let prim = t.clone().into_primitive().tensor();
    (Box::new(prim) as Box<dyn Any>)
        .downcast::<NdArrayTensor>()
        .ok()
        .map(|b| *b)
}

fn ndarray_linear<B: Backend>(
    x: &Tensor<B, 2>,
    w: &Tensor<B, 2>,
    b: &Tensor<B, 1>,
) -> Option<Tensor<B, 2>> {
    let (NdArrayTensor::F32(x), NdArrayTensor::F32(w), NdArrayTensor::F32(b)) =
        (as_ndarray(x)?, as_ndarray(w)?, as_ndarray(b)?)
    else {
        return None;
    };
    let (x, w, b) = (x.view(), w.view(), b.view());
    let x: ArrayView2<'_, f32> = x.into_dimensionality::<Ix2>().ok()?;
    let w: ArrayView2<'_, f32> = w.into_dimensionality::<Ix2>().ok()?;
    let (n, d_out) = (x.nrows(), w.ncols());
    // Start from the bias broadcast over rows, then accumulate the product onto it.
    let b = b.into_dimensionality::<ndarray::Ix1>().ok()?;
    let mut out = Array2::<f32>::zeros((n, d_out));
    out.assign(&b.broadcast((n, d_out))?);
    interp_core::matmul_acc(x, w, out.view_mut());
    let prim: NdArrayTensor = out.into_dyn().into_shared().into();
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
}
