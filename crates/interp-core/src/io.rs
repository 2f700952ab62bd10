//! Safetensors reading (memory-mapped, any float dtype to f32) and atomic writing.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub use safetensors::Dtype;
use safetensors::SafeTensors;

use crate::error::{Error, Result};

/// A memory-mapped safetensors file.
pub struct SafetensorsFile {
    path: PathBuf,
    mmap: memmap2::Mmap,
}

/// One tensor read from a file, converted to f32.
#[derive(Clone, Debug, PartialEq)]
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

    /// The file this was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn parse(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.mmap).map_err(|e| Error::Safetensors {
            path: self.path.clone(),
            reason: e.to_string(),
        })
    }

    /// Tensor names and shapes.
    ///
    /// # Errors
    /// [`Error::Safetensors`] if the header cannot be parsed.
    pub fn shapes(&self) -> Result<BTreeMap<String, Vec<usize>>> {
        let st = self.parse()?;
        Ok(st
            .tensors()
            .into_iter()
            .map(|(name, view)| (name, view.shape().to_vec()))
            .collect())
    }

    /// The header's `__metadata__` string pairs (empty if it has none).
    ///
    /// # Errors
    /// [`Error::Safetensors`] if the header cannot be parsed.
    pub fn metadata(&self) -> Result<BTreeMap<String, String>> {
        let (_, meta) = SafeTensors::read_metadata(&self.mmap).map_err(|e| Error::Safetensors {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        Ok(meta
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }

    /// Whether the file holds a tensor called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.parse().is_ok_and(|st| st.tensor(name).is_ok())
    }

    /// Runs `f` on tensor `name`'s dtype, shape and bytes, borrowed from the map.
    fn with_view<T>(
        &self,
        name: &str,
        f: impl FnOnce(Dtype, &[usize], &[u8]) -> Result<T>,
    ) -> Result<T> {
        let st = self.parse()?;
        let view = st.tensor(name).map_err(|_| Error::MissingTensor {
            path: self.path.clone(),
            key: name.to_string(),
        })?;
        f(view.dtype(), view.shape(), view.data())
    }

    /// Reads tensor `name` as f32 (F32, F16, BF16 and F64 are converted). The file pages it
    /// came from are then released, so reading a whole checkpoint tensor by tensor never keeps
    /// the file resident beside the converted copy.
    ///
    /// # Errors
    /// [`Error::MissingTensor`] if absent, [`Error::Dtype`] for non-float dtypes.
    pub fn read(&self, name: &str) -> Result<HostTensor> {
        let (tensor, range) = self.with_view(name, |dtype, shape, bytes| {
            let data = floats_from_le_bytes(bytes, dtype).ok_or_else(|| Error::Dtype {
                key: name.to_string(),
                dtype: format!("{dtype:?}"),
            })?;
            let start = bytes.as_ptr() as usize - self.mmap.as_ptr() as usize;
            Ok((
                HostTensor {
                    shape: shape.to_vec(),
                    data,
                },
                (start, bytes.len()),
            ))
        })?;
        self.release(range);
        Ok(tensor)
    }

    /// Drops the resident pages of bytes `[start, start + len)` of the map (they are read from
    /// the file again if touched). Best effort: failures are ignored.
    #[cfg(unix)]
    fn release(&self, (start, len): (usize, usize)) {
        const PAGE: usize = 4096;
        let first = start / PAGE * PAGE;
        let end = (start + len).min(self.mmap.len());
        if end <= first {
            return;
        }
        // SAFETY: the map is a read-only file mapping and no borrow of these bytes is alive
        // (the decoded copy owns its data); after MADV_DONTNEED, a later access faults the
        // same file contents back in.
        let _ = unsafe {
            self.mmap
                .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, first, end - first)
        };
    }

    #[cfg(not(unix))]
    fn release(&self, _range: (usize, usize)) {}

    /// Reads an integer tensor (I64 or I32) as i64 values with its shape.
    ///
    /// # Errors
    /// [`Error::MissingTensor`] if absent, [`Error::Dtype`] for other dtypes.
    pub fn read_i64(&self, name: &str) -> Result<(Vec<usize>, Vec<i64>)> {
        self.with_view(name, |dtype, shape, bytes| {
            let data = match dtype {
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
            Ok((shape.to_vec(), data))
        })
    }
}

/// Decodes little-endian floats of `dtype` (F32, F16, BF16, F64) to f32; `None` for other dtypes.
pub fn floats_from_le_bytes(bytes: &[u8], dtype: Dtype) -> Option<Vec<f32>> {
    Some(match dtype {
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
        _ => return None,
    })
}

/// Writes named f32 tensors `(name, shape, values)` to `path` atomically (see [`write_atomic`]).
///
/// # Errors
/// [`Error::DataLength`] if a shape disagrees with its values, [`Error::Io`] on write failure.
pub fn write_safetensors<'a>(
    path: &Path,
    tensors: impl IntoIterator<Item = (&'a str, &'a [usize], &'a [f32])>,
) -> Result<()> {
    write_safetensors_with_metadata(path, tensors, BTreeMap::new())
}

/// [`write_safetensors`] plus string key/value pairs in the header's `__metadata__`
/// (read back with [`SafetensorsFile::metadata`]).
///
/// # Errors
/// As [`write_safetensors`].
pub fn write_safetensors_with_metadata<'a>(
    path: &Path,
    tensors: impl IntoIterator<Item = (&'a str, &'a [usize], &'a [f32])>,
    metadata: BTreeMap<String, String>,
) -> Result<()> {
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, shape, values) in tensors {
        let expected: usize = shape.iter().product();
        if expected != values.len() {
            return Err(Error::DataLength {
                key: name.to_string(),
                shape: shape.to_vec(),
                expected,
                actual: values.len(),
            });
        }
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        owned.push((name.to_string(), shape.to_vec(), bytes));
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = owned
        .iter()
        .map(|(n, s, b)| {
            let view = safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b)
                .expect("shape and byte length agree: checked above");
            (n.clone(), view)
        })
        .collect();
    let info = (!metadata.is_empty()).then(|| metadata.into_iter().collect());
    let bytes = safetensors::serialize(views, info).map_err(|e| Error::Safetensors {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` through a temp file in the same directory and a rename, so that a
/// crash leaves either the old file or the new one, never a torn one. Missing parent
/// directories are created.
///
/// # Errors
/// [`Error::Io`] if the directory, temp file or rename fails (the temp file is removed).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(
        path,
        "",
        |tmp| {
            File::create(tmp)
                .and_then(|mut f| f.write_all(bytes))
                .map_err(|e| Error::io(path, e))
        },
        |e| Error::io(path, e),
    )
}

/// The mechanism of [`write_atomic`] for writers that need a file path: `write` creates the
/// temp file (in `path`'s directory, its name ending in `suffix`, e.g. `".png"` for encoders
/// that choose the format by extension), which is then synced and renamed over `path`. Missing
/// parent directories are created; on any error the temp file is removed. `io` turns an I/O
/// failure into the caller's error type.
///
/// # Errors
/// What `write` returns, or `io` of a failed directory creation, sync or rename.
pub fn write_atomic_with<E>(
    path: &Path,
    suffix: &str,
    write: impl FnOnce(&Path) -> std::result::Result<(), E>,
    io: impl Fn(std::io::Error) -> E,
) -> std::result::Result<(), E> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    std::fs::create_dir_all(dir).map_err(&io)?;
    let tmp = dir.join(format!(
        ".{name}.tmp{}-{}{suffix}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = write(&tmp).and_then(|()| {
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(&io)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let meta = BTreeMap::from([("state".to_string(), "{\"step\":3}".to_string())]);
        write_safetensors_with_metadata(&path, [("a", &[2][..], &[1.0f32, 2.0][..])], meta.clone())
            .unwrap();
        let f = SafetensorsFile::open(&path).unwrap();
        assert_eq!(f.metadata().unwrap(), meta);
        assert_eq!(f.read("a").unwrap().data, vec![1.0, 2.0]);
        write_safetensors(&path, [("a", &[1][..], &[1.0f32][..])]).unwrap();
        assert!(SafetensorsFile::open(&path)
            .unwrap()
            .metadata()
            .unwrap()
            .is_empty());
    }

    #[test]
    fn write_then_read_round_trips_and_rejects_bad_lengths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/t.safetensors");
        let values = [1.0f32, -2.0, 3.5, 0.25, 8.0, -0.5];
        write_safetensors(&path, [("a", &[2usize, 3][..], &values[..])]).unwrap();
        let file = SafetensorsFile::open(&path).unwrap();
        let t = file.read("a").unwrap();
        assert_eq!(t.shape, vec![2, 3]);
        assert_eq!(t.data, values);
        assert!(matches!(file.read("b"), Err(Error::MissingTensor { .. })));
        let bad = write_safetensors(&path, [("a", &[4usize][..], &values[..])]);
        assert!(matches!(
            bad,
            Err(Error::DataLength {
                expected: 4,
                actual: 6,
                ..
            })
        ));
    }
}
