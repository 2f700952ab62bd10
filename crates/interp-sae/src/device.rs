//! Moving `f32` arrays between the host (ndarray) and a burn device.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use ndarray::{Array1, Array2};

use crate::error::{Error, Result};

/// `v` as a rank-1 tensor on `device`.
pub(crate) fn tensor1<B: Backend>(v: &Array1<f32>, device: &B::Device) -> Tensor<B, 1> {
    Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), device)
}

/// `v` as a rank-2 tensor on `device` (any memory order in, row-major on the device).
pub(crate) fn tensor2<B: Backend>(v: &Array2<f32>, device: &B::Device) -> Tensor<B, 2> {
    let shape = [v.nrows(), v.ncols()];
    Tensor::from_data(TensorData::new(v.iter().copied().collect(), shape), device)
}

/// The values of `t` in row-major order; `what` names it in the error.
///
/// # Errors
/// [`Error::Data`] if the device cannot be read.
pub(crate) fn to_host<B: Backend, const D: usize>(t: Tensor<B, D>, what: &str) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| Error::Data {
            reason: format!("reading {what} back from the device: {e:?}"),
        })
}
