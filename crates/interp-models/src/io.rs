//! Safetensors reading (memory-mapped, any float dtype to f32) and atomic writing.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::tensor::TensorData;
use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};

/// A memory-mapped safetensors file.
pub struct SafetensorsFile {
    path: PathBuf,
    mmap: memmap2::Mmap,
}

/// One tensor read from a checkpoint, converted to f32.
#[derive(Clone, Debug)]
pub struct HostTensor {
    /// The shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl SafetensorsFile {
    /// Maps `path` and validates its header.
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be opened, [`Error::Safetensors`] if it is truncated or corrupt.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the map is read-only; we never hand out references that outlive `self`, and a
        // file truncated under us is the usual mmap caveat accepted by every checkpoint loader.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let this = SafetensorsFile {
            path: path.to_path_buf(),
            mmap,
        };
        this.parse()?;
        Ok(this)
    }

    fn parse(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.mmap).map_err(|e| Error::Safetensors {
            path: self.path.clone(),
            reason: e.to_string(),
        })
    }

    /// Tensor names and shapes.
    pub fn shapes(&self) -> Result<BTreeMap<String, Vec<usize>>> {
        let st = self.parse()?;
        Ok(st
            .tensors()
            .into_iter()
            .map(|(name, view)| (name, view.shape().to_vec()))
            .collect())
    }

    /// Reads tensor `name` as f32 (F32, F16, BF16 and F64 are converted).
    pub fn read(&self, name: &str) -> Result<HostTensor> {
        let st = self.parse()?;
        let view = st.tensor(name).map_err(|_| Error::MissingTensor {
            key: name.to_string(),
        })?;
        let bytes = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::F64 => bytes
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("chunk of 8")) as f32)
                .collect(),
            other => {
                return Err(Error::Dtype {
                    key: name.to_string(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        Ok(HostTensor {
            shape: view.shape().to_vec(),
            data,
        })
    }

    /// Reads an integer tensor (I64 or I32) as i64 values with its shape.
    pub fn read_i64(&self, name: &str) -> Result<(Vec<usize>, Vec<i64>)> {
        let st = self.parse()?;
        let view = st.tensor(name).map_err(|_| Error::MissingTensor {
            key: name.to_string(),
        })?;
        let bytes = view.data();
        let data = match view.dtype() {
            Dtype::I64 => bytes
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("chunk of 8")))
                .collect(),
            Dtype::I32 => bytes
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes(b.try_into().expect("chunk of 4")) as i64)
                .collect(),
            other => {
                return Err(Error::Dtype {
                    key: name.to_string(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        Ok((view.shape().to_vec(), data))
    }
}

/// Writes named f32 tensors to `path` atomically: a temp file beside it, then a rename.
pub fn write_safetensors_f32(path: &Path, tensors: Vec<(String, TensorData)>) -> Result<()> {
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, data) in tensors {
        let shape = data.shape.to_vec();
        let values: Vec<f32> = data.convert::<f32>().into_vec().map_err(|e| Error::Dtype {
            key: name.clone(),
            dtype: format!("{e:?}"),
        })?;
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        owned.push((name, shape, bytes));
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = owned
        .iter()
        .map(|(n, s, b)| {
            let view = safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b)
                .expect("shape and byte length agree by construction");
            (n.clone(), view)
        })
        .collect();
    let bytes = safetensors::serialize(views, None).map_err(|e| Error::Safetensors {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` through a temp file in the same directory and a rename, so that a
/// crash leaves either the old file or the new one, never a torn one. Missing parent
/// directories are created.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        std::fs::create_dir_all(dir)?;
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}
