//! Tensor files: reading comes from `interp-core` (memory-mapped safetensors, any float dtype
//! to f32); this module adds writing burn tensor data and maps core errors into [`Error`].

use std::path::Path;

use burn::tensor::TensorData;

pub use interp_core::{HostTensor, SafetensorsFile};

use crate::error::{Error, Result};

impl From<interp_core::Error> for Error {
    fn from(e: interp_core::Error) -> Self {
        match e {
            interp_core::Error::Io { path, source } => Error::Io { path, source },
            interp_core::Error::Safetensors { path, reason } => Error::Safetensors { path, reason },
            interp_core::Error::MissingTensor { key, .. } => Error::MissingTensor { key },
            interp_core::Error::Dtype { key, dtype } => Error::Dtype { key, dtype },
            other => Error::Safetensors {
                path: Default::default(),
                reason: other.to_string(),
            },
        }
    }
}

/// Writes named tensors to `path` as f32, atomically (temp file + rename).
pub fn write_safetensors_f32(path: &Path, tensors: Vec<(String, TensorData)>) -> Result<()> {
    let mut owned: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::with_capacity(tensors.len());
    for (name, data) in tensors {
        let shape = data.shape.to_vec();
        let values: Vec<f32> = data.convert::<f32>().into_vec().map_err(|e| Error::Dtype {
            key: name.clone(),
            dtype: format!("{e:?}"),
        })?;
        owned.push((name, shape, values));
    }
    interp_core::write_safetensors(
        path,
        owned
            .iter()
            .map(|(n, s, v)| (n.as_str(), s.as_slice(), v.as_slice())),
    )?;
    Ok(())
}
