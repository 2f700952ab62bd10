//! Llama Scope (OpenMOSS) directories: `hyperparams.json` + `checkpoints/final.safetensors`.
//!
//! `encoder.weight [F, d]`, `encoder.bias`, `decoder.weight [d, F]`, `decoder.bias` (bf16);
//! JumpReLU with one scalar `jump_relu_threshold`; inputs normalised dataset-wise by
//! `s = √d_model / dataset_average_activation_norm.in`. The scale is folded into the weights at
//! load, so the loaded SAE reads and reconstructs raw activations. We follow SAELens exactly
//! (the effective threshold on pre-activations is `jump_relu_threshold · s`), so that features
//! match the ones SAELens and Neuronpedia report.

use std::path::Path;

use interp_core::SafetensorsFile;
use ndarray::Array1;
use serde_json::Value;

use super::{array1, array2, read_json};
use crate::config::{Architecture, SaeConfig, SaeMetadata};
use crate::error::{Error, Result};
use crate::sae::{Sae, SaeWeights};

/// Llama Scope config file name.
pub const CONFIG_FILE: &str = "hyperparams.json";
/// Llama Scope weights, relative to the SAE directory.
pub const WEIGHTS_FILE: &str = "checkpoints/final.safetensors";

/// Loads a Llama Scope SAE directory.
///
/// # Errors
/// Typed errors for missing files or keys, non-positive norms, and misshapen tensors.
pub fn load(dir: &Path) -> Result<Sae> {
    let cfg_path = dir.join(CONFIG_FILE);
    let raw = read_json(&cfg_path)?;
    let num = |k: &str| -> Result<f64> {
        raw.get(k)
            .and_then(Value::as_f64)
            .ok_or_else(|| Error::config(&cfg_path, format!("`{k}` missing or not a number")))
    };
    let d_in = num("d_model")? as usize;
    let d_sae = num("d_sae")? as usize;
    let threshold = num("jump_relu_threshold")?;
    let norm_in = match raw
        .get("dataset_average_activation_norm")
        .and_then(|n| n.get("in"))
    {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_f64() {
            Some(n) if n > 0.0 && n.is_finite() => Some(n),
            _ => {
                return Err(Error::config(
                    &cfg_path,
                    "dataset_average_activation_norm.in must be a positive number",
                ))
            }
        },
    };
    let file = SafetensorsFile::open(&dir.join(WEIGHTS_FILE))?;
    let mut cfg = SaeConfig::new(Architecture::JumpRelu, d_in, d_sae);
    cfg.apply_b_dec_to_input = false;
    cfg.dtype = "bfloat16".into();
    cfg.metadata = SaeMetadata {
        hook_name: raw
            .get("hook_point_in")
            .and_then(Value::as_str)
            .map(str::to_string),
        ..Default::default()
    };
    let mut w = SaeWeights {
        w_enc: array2(&file, "encoder.weight", [d_sae, d_in])?.reversed_axes(),
        w_dec: array2(&file, "decoder.weight", [d_in, d_sae])?
            .reversed_axes()
            .as_standard_layout()
            .into_owned(),
        b_enc: array1(&file, "encoder.bias", d_sae)?,
        b_dec: array1(&file, "decoder.bias", d_in)?,
        threshold: None,
        gated: None,
    };
    // The SAE saw s·x: fold s into the weights so it reads and reconstructs raw x. Like
    // SAELens (whose registry factors are this s), the threshold is taken as `thr · s` and
    // `dataset_average_activation_norm.out` is not used.
    let s = norm_in.map_or(1.0, |n| (d_in as f64).sqrt() / n);
    w.threshold = Some(Array1::from_elem(d_sae, (threshold * s) as f32));
    w.w_enc *= s as f32;
    w.w_dec /= s as f32;
    w.b_dec /= s as f32;
    Sae::new(cfg, w)
}
