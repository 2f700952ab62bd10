//! Checkpoints on disk and the one checked reader every family loads its weights through.
//!
//! A [`Checkpoint`] is a Hugging Face model directory's `model.safetensors`, or the shards a
//! `model.safetensors.index.json` names, memory-mapped; tensors are converted to f32 one at a
//! time as they are read (f32, bf16, f16 and f64 on disk), so loading never holds a second full
//! copy of the model. A [`WeightReader`] checks each tensor's shape against what the config
//! implies, and at the end reports every tensor the architecture did not use.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::tensor::{backend::Backend, Tensor, TensorData};

use crate::error::{Error, Result};
use crate::io::{HostTensor, SafetensorsFile};

/// The single-file checkpoint name.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The shard index name.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// The safetensors files of one model and which file holds each tensor.
pub struct Checkpoint {
    files: Vec<SafetensorsFile>,
    /// Tensor name → (file index, shape).
    tensors: BTreeMap<String, (usize, Vec<usize>)>,
}

#[derive(serde::Deserialize)]
struct ShardIndex {
    weight_map: BTreeMap<String, String>,
}

impl Checkpoint {
    /// Opens `dir`'s `model.safetensors`, or else the shards its `model.safetensors.index.json`
    /// lists.
    ///
    /// # Errors
    /// [`Error::MissingFile`] when the directory has neither; [`Error::Config`] for a malformed
    /// index or one naming a shard that does not exist, or a tensor the index places in a
    /// shard that lacks it; the safetensors errors of each file.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let single = dir.join(WEIGHTS_FILE);
        if single.is_file() {
            return Self::from_files(vec![single]);
        }
        let index_path = dir.join(INDEX_FILE);
        if !index_path.is_file() {
            return Err(Error::MissingFile {
                dir: dir.to_path_buf(),
                file: WEIGHTS_FILE,
            });
        }
        let bad = |reason: String| Error::Config {
            path: index_path.clone(),
            reason,
        };
        let text = std::fs::read_to_string(&index_path).map_err(|e| Error::io(&index_path, e))?;
        let index: ShardIndex = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let shards: BTreeSet<&String> = index.weight_map.values().collect();
        let mut paths = Vec::with_capacity(shards.len());
        for shard in &shards {
            if shard.contains('/') || shard.contains('\\') || shard.starts_with('.') {
                return Err(bad(format!(
                    "shard name `{shard}` is not a plain file name"
                )));
            }
            let path = dir.join(shard);
            if !path.is_file() {
                return Err(bad(format!(
                    "names shard `{shard}`, which is not in {}",
                    dir.display()
                )));
            }
            paths.push(path);
        }
        let ckpt = Self::from_files(paths)?;
        for (key, shard) in &index.weight_map {
            match ckpt.tensors.get(key) {
                Some((i, _)) if ckpt.files[*i].path().file_name() == Some(shard.as_ref()) => {}
                _ => {
                    return Err(bad(format!(
                        "places tensor `{key}` in `{shard}`, which does not hold it"
                    )))
                }
            }
        }
        Ok(ckpt)
    }

    /// A checkpoint made of these safetensors files.
    ///
    /// # Errors
    /// Safetensors errors; [`Error::Config`] when two files hold the same tensor.
    pub fn from_files(paths: Vec<PathBuf>) -> Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        let mut tensors = BTreeMap::new();
        for (i, path) in paths.iter().enumerate() {
            let file = SafetensorsFile::open(path)?;
            for (name, shape) in file.shapes()? {
                if tensors.insert(name.clone(), (i, shape)).is_some() {
                    return Err(Error::Config {
                        path: path.clone(),
                        reason: format!("tensor `{name}` is in more than one shard"),
                    });
                }
            }
            files.push(file);
        }
        Ok(Checkpoint { files, tensors })
    }

    /// Every tensor name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Whether the checkpoint holds `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The shape of `name`, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|(_, s)| s.as_slice())
    }

    /// Reads `name` as f32.
    ///
    /// # Errors
    /// [`Error::MissingTensor`], [`Error::Dtype`] for a dtype that is not a float.
    pub fn read(&self, name: &str) -> Result<HostTensor> {
        let (i, _) = self.tensors.get(name).ok_or_else(|| Error::MissingTensor {
            key: name.to_string(),
        })?;
        Ok(self.files[*i].read(name)?)
    }
}

/// Reads a family's tensors from a [`Checkpoint`], checking shapes and recording what was
/// used, so that [`WeightReader::finish`] can name every tensor left over.
pub struct WeightReader<'a> {
    ckpt: &'a Checkpoint,
    used: BTreeSet<String>,
}

impl<'a> WeightReader<'a> {
    /// A reader over `ckpt`.
    pub fn new(ckpt: &'a Checkpoint) -> Self {
        WeightReader {
            ckpt,
            used: BTreeSet::new(),
        }
    }

    /// The checkpoint being read.
    pub fn checkpoint(&self) -> &'a Checkpoint {
        self.ckpt
    }

    /// Reads `key`, which must have shape `expected`.
    ///
    /// # Errors
    /// [`Error::MissingTensor`], [`Error::ShapeMismatch`], dtype errors.
    pub fn tensor(&mut self, key: &str, expected: &[usize]) -> Result<HostTensor> {
        let shape = self.ckpt.shape(key).ok_or_else(|| Error::MissingTensor {
            key: key.to_string(),
        })?;
        if shape != expected {
            return Err(Error::ShapeMismatch {
                key: key.to_string(),
                expected: expected.to_vec(),
                actual: shape.to_vec(),
            });
        }
        let t = self.ckpt.read(key)?;
        self.used.insert(key.to_string());
        Ok(t)
    }

    /// [`Self::tensor`] if the checkpoint has `key`, else `None`.
    pub fn optional(&mut self, key: &str, expected: &[usize]) -> Result<Option<HostTensor>> {
        if self.ckpt.contains(key) {
            self.tensor(key, expected).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A PyTorch `nn.Linear` weight `key` of shape `[d_out, d_in]`, transposed to the
    /// `[d_in, d_out]` this crate multiplies by.
    pub fn linear(&mut self, key: &str, d_in: usize, d_out: usize) -> Result<HostTensor> {
        Ok(transpose(&self.tensor(key, &[d_out, d_in])?))
    }

    /// Marks every tensor `skip` accepts as used (buffers a checkpoint may carry, such as
    /// rotary frequency tables or causal masks).
    pub fn skip(&mut self, skip: impl Fn(&str) -> bool) {
        let names: Vec<String> = self
            .ckpt
            .names()
            .filter(|n| skip(n))
            .map(str::to_string)
            .collect();
        self.used.extend(names);
    }

    /// Ends reading.
    ///
    /// # Errors
    /// [`Error::UnusedTensors`] naming every tensor not read or skipped.
    pub fn finish(self) -> Result<()> {
        let unused: Vec<String> = self
            .ckpt
            .names()
            .filter(|n| !self.used.contains(*n))
            .map(str::to_string)
            .collect();
        if unused.is_empty() {
            Ok(())
        } else {
            Err(Error::UnusedTensors { keys: unused })
        }
    }
}

/// `t` transposed (a rank-2 tensor).
pub fn transpose(t: &HostTensor) -> HostTensor {
    let (r, c) = (t.shape[0], t.shape[1]);
    let mut data = vec![0.0; r * c];
    const TILE: usize = 32;
    for i0 in (0..r).step_by(TILE) {
        for j0 in (0..c).step_by(TILE) {
            for i in i0..(i0 + TILE).min(r) {
                for j in j0..(j0 + TILE).min(c) {
                    data[j * r + i] = t.data[i * c + j];
                }
            }
        }
    }
    HostTensor {
        shape: vec![c, r],
        data,
    }
}

/// Rank-2 tensors concatenated along columns (`[d_in, Σ d_out]`), e.g. separate Q, K and V
/// projections into the fused `W_QKV`.
pub fn concat_columns(parts: &[HostTensor]) -> HostTensor {
    let rows = parts.first().map_or(0, |p| p.shape[0]);
    let cols: usize = parts.iter().map(|p| p.shape[1]).sum();
    let mut data = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        for p in parts {
            let c = p.shape[1];
            data.extend_from_slice(&p.data[r * c..(r + 1) * c]);
        }
    }
    HostTensor {
        shape: vec![rows, cols],
        data,
    }
}

/// Rank-1 tensors joined end to end.
pub fn concat(parts: &[HostTensor]) -> HostTensor {
    let data: Vec<f32> = parts.iter().flat_map(|p| p.data.iter().copied()).collect();
    HostTensor {
        shape: vec![data.len()],
        data,
    }
}

/// `n` zeros (a bias the architecture lacks).
pub fn zeros(n: usize) -> HostTensor {
    HostTensor {
        shape: vec![n],
        data: vec![0.0; n],
    }
}

/// `t` with `delta` added to every element (Gemma's `1 + w` norm scales).
pub fn offset(mut t: HostTensor, delta: f32) -> HostTensor {
    t.data.iter_mut().for_each(|v| *v += delta);
    t
}

/// `t` times `factor` (Gemma's `√d_model` embedding scale).
pub fn scaled(mut t: HostTensor, factor: f32) -> HostTensor {
    t.data.iter_mut().for_each(|v| *v *= factor);
    t
}

/// A rank-1 parameter on `device`.
pub fn param1<B: Backend>(t: HostTensor, device: &B::Device) -> Param<Tensor<B, 1>> {
    Param::from_tensor(Tensor::from_data(
        TensorData::new(t.data, [t.shape[0]]),
        device,
    ))
}

/// A rank-2 parameter on `device`.
pub fn param2<B: Backend>(t: HostTensor, device: &B::Device) -> Param<Tensor<B, 2>> {
    Param::from_tensor(Tensor::from_data(
        TensorData::new(t.data, [t.shape[0], t.shape[1]]),
        device,
    ))
}
