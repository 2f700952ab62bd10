//! Loading and saving SAEs in the formats people download.
//!
//! | format | files | notes |
//! |---|---|---|
//! | [`Format::SaeLens`] | `cfg.json` + `sae_weights.safetensors` | v6 and pre-6.0 configs; also written |
//! | [`Format::GemmaScope`] | `params.npz` | JumpReLU, no `b_dec` subtraction |
//! | [`Format::OpenAi`] | `*.pt` (torch zip) | read by a pickle reader that never executes code |
//! | [`Format::LlamaScope`] | `hyperparams.json` + `checkpoints/final.safetensors` | dataset-norm folded in |
//! | [`Format::Sparsify`] | `cfg.json` + `sae.safetensors` | EleutherAI sparsify TopK |
//!
//! Everything is converted to the SAELens layout (`W_enc [d_in, d_sae]`, `W_dec [d_sae, d_in]`).

use std::path::{Path, PathBuf};

use interp_core::SafetensorsFile;
use ndarray::{Array1, Array2};
use serde_json::Value;

use crate::error::{check_shape, Error, Result};
use crate::sae::Sae;

pub mod gemma_scope;
pub mod llama_scope;
pub mod npy;
pub mod openai;
pub mod saelens;
pub mod sparsify;
pub mod torch;

/// An on-disk SAE format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// SAELens directory.
    SaeLens,
    /// Gemma Scope `params.npz` (file or its directory).
    GemmaScope,
    /// OpenAI `sparse_autoencoder` torch `.pt` state dict.
    OpenAi,
    /// Llama Scope (OpenMOSS) directory.
    LlamaScope,
    /// EleutherAI sparsify hookpoint directory.
    Sparsify,
}

impl Format {
    /// All formats, in detection order.
    pub const ALL: [Format; 5] = [
        Format::SaeLens,
        Format::GemmaScope,
        Format::OpenAi,
        Format::LlamaScope,
        Format::Sparsify,
    ];

    /// The name used on the command line (`saelens`, `gemma-scope`, `openai`, `llama-scope`,
    /// `sparsify`).
    pub fn name(&self) -> &'static str {
        match self {
            Format::SaeLens => "saelens",
            Format::GemmaScope => "gemma-scope",
            Format::OpenAi => "openai",
            Format::LlamaScope => "llama-scope",
            Format::Sparsify => "sparsify",
        }
    }

    /// Detects the format of `path` from the files present.
    ///
    /// # Errors
    /// [`Error::UnknownFormat`] listing what was looked for.
    pub fn detect(path: &Path) -> Result<Format> {
        let has = |f: &str| path.join(f).is_file();
        let ext = path.extension().and_then(|e| e.to_str());
        let found = if path.is_file() {
            match ext {
                Some("npz") => Some(Format::GemmaScope),
                Some("pt") | Some("pth") => Some(Format::OpenAi),
                _ => None,
            }
        } else if has(saelens::WEIGHTS_FILE) && has(saelens::CONFIG_FILE) {
            Some(Format::SaeLens)
        } else if has(gemma_scope::PARAMS_FILE) {
            Some(Format::GemmaScope)
        } else if has(llama_scope::CONFIG_FILE) {
            Some(Format::LlamaScope)
        } else if has(sparsify::WEIGHTS_FILE) {
            Some(Format::Sparsify)
        } else {
            None
        };
        found.ok_or_else(|| Error::UnknownFormat {
            path: path.to_path_buf(),
            reason: "expected a directory with cfg.json + sae_weights.safetensors (SAELens), \
                     params.npz (Gemma Scope), hyperparams.json (Llama Scope) or \
                     cfg.json + sae.safetensors (sparsify), or a .npz / .pt file"
                .into(),
        })
    }

    /// Loads an SAE stored in this format at `path`.
    ///
    /// # Errors
    /// Whatever the format's loader reports (always a typed error, never a panic).
    pub fn load(&self, path: &Path) -> Result<Sae> {
        match self {
            Format::SaeLens => saelens::load(path),
            Format::GemmaScope => gemma_scope::load(path),
            Format::OpenAi => openai::load(path),
            Format::LlamaScope => llama_scope::load(path),
            Format::Sparsify => sparsify::load(path),
        }
    }
}

impl std::str::FromStr for Format {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| Error::Unsupported {
                what: format!(
                    "format `{s}` (known: {})",
                    Format::ALL.map(|f| f.name()).join(", ")
                ),
            })
    }
}

/// Loads an SAE from `path`, detecting its format.
///
/// # Errors
/// [`Error::UnknownFormat`] if nothing matches, else the loader's error.
pub fn load(path: &Path) -> Result<Sae> {
    Format::detect(path)?.load(path)
}

pub(crate) fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::config(path, e.to_string()))
}

/// Reads a 2-d tensor and checks its shape.
pub(crate) fn array2(file: &SafetensorsFile, key: &str, shape: [usize; 2]) -> Result<Array2<f32>> {
    let t = read(file, key)?;
    matrix(key, t.shape, t.data, shape)
}

/// Reads a 1-d tensor and checks its length.
pub(crate) fn array1(file: &SafetensorsFile, key: &str, len: usize) -> Result<Array1<f32>> {
    let t = read(file, key)?;
    vector(key, t.shape, t.data, len)
}

fn read(file: &SafetensorsFile, key: &str) -> Result<interp_core::HostTensor> {
    file.read(key).map_err(|e| match e {
        interp_core::Error::MissingTensor { path, key } => Error::MissingTensor { path, key },
        e => e.into(),
    })
}

/// Row-major `data` of `shape` as a matrix, if `shape` is `expected`.
pub(crate) fn matrix(
    key: &str,
    shape: Vec<usize>,
    data: Vec<f32>,
    expected: [usize; 2],
) -> Result<Array2<f32>> {
    check_shape(key, &shape, &expected)?;
    Ok(Array2::from_shape_vec(expected, data).expect("shape checked"))
}

/// `data` of `shape` as a vector, if `shape` is `[len]`.
pub(crate) fn vector(
    key: &str,
    shape: Vec<usize>,
    data: Vec<f32>,
    len: usize,
) -> Result<Array1<f32>> {
    check_shape(key, &shape, &[len])?;
    Ok(Array1::from(data))
}

/// The dimensions of a tensor that must be a matrix.
pub(crate) fn dims2(key: &str, shape: &[usize]) -> Result<[usize; 2]> {
    match *shape {
        [rows, cols] => Ok([rows, cols]),
        _ => Err(Error::Shape {
            key: key.into(),
            expected: vec![0, 0],
            actual: shape.to_vec(),
        }),
    }
}

/// `dir/name` when `path` is a directory, else `path` itself.
pub(crate) fn file_in(path: &Path, name: &str) -> PathBuf {
    if path.is_dir() {
        path.join(name)
    } else {
        path.to_path_buf()
    }
}
