//! Finding and loading model directories: local paths, or hub ids with the `hub` feature.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;

use crate::error::{Error, Result};
use crate::io::SafetensorsFile;
use crate::models::gpt2::{self, Gpt2Config};
use crate::tokenizer::TextTokenizer;
use crate::transformer::HookedTransformer;

/// Files fetched for a hub model.
pub const MODEL_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

#[derive(serde::Deserialize)]
struct ModelType {
    model_type: Option<String>,
}

/// Loads a Hugging Face model directory.
pub(crate) fn load_dir<B: Backend>(dir: &Path, device: &B::Device) -> Result<HookedTransformer<B>> {
    let config_path = require(dir, "config.json")?;
    let weights_path = require(dir, "model.safetensors")?;
    let text = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
    let bad = |e: serde_json::Error| Error::Config {
        path: config_path.clone(),
        reason: e.to_string(),
    };
    let model_type: ModelType = serde_json::from_str(&text).map_err(bad)?;
    let model_type = model_type.model_type.unwrap_or_else(|| "gpt2".into());
    let file = SafetensorsFile::open(&weights_path)?;
    let mut model = match model_type.as_str() {
        "gpt2" => {
            let hf: Gpt2Config = serde_json::from_str(&text).map_err(bad)?;
            let cfg = hf.resolve(&config_path)?;
            let weights = gpt2::load_weights::<B>(&file, &cfg, hf.tie_word_embeddings, device)?;
            HookedTransformer::new(cfg, weights, device)
        }
        other => {
            return Err(Error::Unsupported {
                key: "model_type",
                value: other.to_string(),
            })
        }
    };
    let tok_path = dir.join("tokenizer.json");
    if tok_path.is_file() {
        model = model.with_tokenizer(TextTokenizer::from_file(&tok_path)?);
    }
    Ok(model)
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
    let mut dir = None;
    for file in MODEL_FILES {
        match interp_core::hub::hub_file(id, file) {
            Ok(p) => dir = p.parent().map(Path::to_path_buf),
            Err(_) if file == "tokenizer.json" => {}
            Err(e) => return Err(Error::Hub(e.to_string())),
        }
    }
    dir.ok_or_else(|| Error::Hub(format!("{id}: no files")))
}

#[cfg(not(feature = "hub"))]
fn hub_model_dir(id: &str) -> Result<PathBuf> {
    Err(Error::Hub(format!(
        "`{id}` is not a local directory, and this build has no `hub` feature to download it"
    )))
}
