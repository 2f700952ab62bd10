//! EleutherAI sparsify hookpoint directories: `cfg.json` + `sae.safetensors`.
//!
//! `encoder.weight [F, d]`, `encoder.bias [F]`, `W_dec [F, d]`, `b_dec [d]` (often bf16).
//! Encode `topk(relu((x − b_dec) @ encoder.weightᵀ + encoder.bias))`; decode `acts @ W_dec + b_dec`.
//! The decoder is stored `[F, d]` as in sparsify itself (SAELens 6.18's loader transposes it, which
//! is wrong; we follow sparsify).

use std::path::Path;

use interp_core::SafetensorsFile;
use serde_json::Value;

use super::{array1, array2, dims2, read_json};
use crate::config::{Architecture, SaeConfig, SaeMetadata};
use crate::error::{Error, Result};
use crate::sae::{Sae, SaeWeights};

/// sparsify config file name.
pub const CONFIG_FILE: &str = "cfg.json";
/// sparsify weights file name.
pub const WEIGHTS_FILE: &str = "sae.safetensors";

/// Loads a sparsify hookpoint directory (e.g. `layers.6/`).
///
/// # Errors
/// Typed errors for missing files, unsupported options (GroupMax, skip connections,
/// transcoders), and missing or misshapen tensors.
pub fn load(dir: &Path) -> Result<Sae> {
    let cfg_path = dir.join(CONFIG_FILE);
    let raw = read_json(&cfg_path)?;
    let get = |k: &str| raw.get(k);
    let activation = get("activation").and_then(Value::as_str).unwrap_or("topk");
    if activation != "topk" {
        return Err(Error::Unsupported {
            what: format!("sparsify activation `{activation}`"),
        });
    }
    for flag in ["skip_connection", "transcode"] {
        if get(flag).and_then(Value::as_bool) == Some(true) {
            return Err(Error::Unsupported {
                what: format!("sparsify `{flag}` (transcoders)"),
            });
        }
    }
    let k = get("k")
        .and_then(Value::as_u64)
        .ok_or_else(|| Error::config(&cfg_path, "`k` missing"))? as usize;
    let file = SafetensorsFile::open(&dir.join(WEIGHTS_FILE))?;
    let shapes = file.shapes()?;
    let enc_shape = shapes
        .get("encoder.weight")
        .ok_or_else(|| Error::MissingTensor {
            path: file.path().to_path_buf(),
            key: "encoder.weight".into(),
        })?;
    let [d_sae, d_in] = dims2("encoder.weight", enc_shape)?;
    if let Some(d) = get("d_in").and_then(Value::as_u64) {
        if d as usize != d_in {
            return Err(Error::Shape {
                key: "encoder.weight".into(),
                expected: vec![d_sae, d as usize],
                actual: enc_shape.clone(),
            });
        }
    }
    let hookpoint = dir.file_name().and_then(|n| n.to_str()).map(str::to_string);
    let mut cfg = SaeConfig::new(
        Architecture::TopK {
            k,
            rescale_acts_by_decoder_norm: false,
        },
        d_in,
        d_sae,
    );
    cfg.metadata = SaeMetadata {
        hook_name: hookpoint.as_deref().map(hook_name_of),
        ..Default::default()
    };
    let weights = SaeWeights {
        w_enc: array2(&file, "encoder.weight", [d_sae, d_in])?.reversed_axes(),
        w_dec: array2(&file, "W_dec", [d_sae, d_in])?,
        b_enc: array1(&file, "encoder.bias", d_sae)?,
        b_dec: array1(&file, "b_dec", d_in)?,
        threshold: None,
        gated: None,
    };
    Sae::new(cfg, weights)
}

/// Maps a sparsify hookpoint (`layers.N`, the output of decoder layer N) to its
/// TransformerLens name (`blocks.N.hook_resid_post`); other names are kept as they are.
fn hook_name_of(hookpoint: &str) -> String {
    match hookpoint
        .strip_prefix("layers.")
        .and_then(|n| n.parse::<usize>().ok())
    {
        Some(n) => format!("blocks.{n}.hook_resid_post"),
        None => hookpoint.to_string(),
    }
}
