//! Finding and loading model directories: local paths, or hub ids with the `hub` feature.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;

use crate::checkpoint::{Checkpoint, WeightReader, INDEX_FILE, WEIGHTS_FILE};
use crate::config::Family;
use crate::error::{Error, Result};
use crate::tokenizer::TextTokenizer;
use crate::transformer::HookedTransformer;

/// Files fetched for a hub model (a sharded checkpoint's shards are read from its index).
pub const MODEL_FILES: [&str; 3] = ["config.json", WEIGHTS_FILE, "tokenizer.json"];

#[derive(serde::Deserialize)]
struct ModelType {
    model_type: Option<String>,
}

impl<B: Backend> HookedTransformer<B> {
    /// Loads a model directory in Hugging Face layout: `config.json`, `model.safetensors` (or
    /// the shards `model.safetensors.index.json` names; f32, bf16 or f16, computed in f32), and
    /// optionally `tokenizer.json`. The architecture is read from `config.json`'s
    /// `model_type` (see [`crate::models`]).
    ///
    /// # Errors
    /// [`Error::MissingFile`], [`Error::UnsupportedModelType`] (listing the supported ones),
    /// [`Error::Config`] / [`Error::Unsupported`] for the config, and the checked weight
    /// reader's [`Error::MissingTensor`], [`Error::UnusedTensors`], [`Error::ShapeMismatch`]
    /// and [`Error::Dtype`].
    pub fn from_dir(dir: &Path, device: &B::Device) -> Result<Self> {
        let config_path = require(dir, "config.json")?;
        let text = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
        let model_type: ModelType = crate::models::parse_config(&text, &config_path)?;
        let model_type = model_type.model_type.unwrap_or_else(|| "gpt2".into());
        let family =
            Family::from_model_type(&model_type).ok_or_else(|| Error::UnsupportedModelType {
                model_type: model_type.clone(),
                supported: Family::supported_model_types(),
            })?;
        let ckpt = Checkpoint::open_dir(dir)?;
        let mut reader = WeightReader::new(&ckpt);
        let (cfg, weights) =
            crate::models::load::<B>(family, &text, &config_path, &mut reader, device)?;
        reader.finish()?;
        let mut model = HookedTransformer::new(cfg, weights, device);
        let tok_path = dir.join("tokenizer.json");
        if tok_path.is_file() {
            model = model.with_tokenizer(TextTokenizer::from_dir(dir)?);
        }
        Ok(model)
    }

    /// Loads `name`: a local directory if one exists at that path, otherwise a hub model id
    /// (with the `hub` feature; `HF_HUB_OFFLINE=1` restricts it to the local cache).
    pub fn from_pretrained(name: &str, device: &B::Device) -> Result<Self> {
        let dir = resolve_model_dir(name)?;
        Self::from_dir(&dir, device)
    }
}

fn require(dir: &Path, file: &'static str) -> Result<PathBuf> {
    let path = dir.join(file);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::MissingFile {
            dir: dir.to_path_buf(),
            file,
        })
    }
}

/// A local directory for `name`: the path itself if it is a directory, else the hub snapshot
/// of model id `name` (downloaded, or from the cache only when `HF_HUB_OFFLINE=1`).
pub fn resolve_model_dir(name: &str) -> Result<PathBuf> {
    let path = Path::new(name);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    hub_model_dir(name)
}

#[cfg(feature = "hub")]
fn hub_model_dir(id: &str) -> Result<PathBuf> {
    use interp_core::hub::hub_file;
    let config = hub_file(id, "config.json").map_err(|e| Error::Hub(e.to_string()))?;
    let dir = config
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| Error::Hub(format!("{id}: no files")))?;
    for optional in ["tokenizer.json", "tokenizer_config.json"] {
        let _ = hub_file(id, optional);
    }
    if hub_file(id, WEIGHTS_FILE).is_err() {
        let index = hub_file(id, INDEX_FILE).map_err(|e| Error::Hub(e.to_string()))?;
        let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
        let parsed: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| Error::Hub(format!("{id}: {e}")))?;
        let shards: std::collections::BTreeSet<&str> = parsed["weight_map"]
            .as_object()
            .map(|m| m.values().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        for shard in shards {
            hub_file(id, shard).map_err(|e| Error::Hub(e.to_string()))?;
        }
    }
    Ok(dir)
}

#[cfg(not(feature = "hub"))]
fn hub_model_dir(id: &str) -> Result<PathBuf> {
    let _ = INDEX_FILE;
    Err(Error::Hub(format!(
        "`{id}` is not a local directory, and this build has no `hub` feature to download it"
    )))
}
