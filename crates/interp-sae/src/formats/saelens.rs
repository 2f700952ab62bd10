//! SAELens directories: `cfg.json` + `sae_weights.safetensors` (+ `sparsity.safetensors`).
//!
//! Reads v6 nested configs and pre-6.0 flat ones (`hook_point`, `activation_fn_str`,
//! `"torch.float32"`), and writes the v6 layout SAELens loads unchanged.

use std::path::Path;

use interp_core::SafetensorsFile;
use ndarray::{Array1, Array2};
use serde_json::{Map, Value};

use super::{array1, array2, read_json};
use crate::config::{Architecture, Normalization, SaeConfig, SaeMetadata};
use crate::error::{Error, Result};
use crate::sae::{GatedWeights, Sae, SaeWeights};

/// SAELens config file name.
pub const CONFIG_FILE: &str = "cfg.json";
/// SAELens weights file name.
pub const WEIGHTS_FILE: &str = "sae_weights.safetensors";
/// SAELens feature-density file name (`sparsity` = log10 firing frequency per feature).
pub const SPARSITY_FILE: &str = "sparsity.safetensors";

/// Loads an SAELens SAE directory.
///
/// # Errors
/// Missing files, invalid configs, missing or misshapen tensors and non-finite weights are
/// typed errors.
pub fn load(dir: &Path) -> Result<Sae> {
    let cfg_path = dir.join(CONFIG_FILE);
    let cfg = parse_config(&read_json(&cfg_path)?, &cfg_path)?;
    let file = SafetensorsFile::open(&dir.join(WEIGHTS_FILE))?;
    let weights = read_weights(&file, &cfg)?;
    let sae = Sae::new(cfg, weights)?;
    // Legacy "finetuning scaling factor": decoder inputs were scaled per feature.
    if file.contains("scaling_factor") {
        let s = array1(&file, "scaling_factor", sae.d_sae())?;
        if s.iter().any(|v| *v != 1.0) {
            return Err(Error::Unsupported {
                what: "SAELens finetuning scaling_factor other than 1".into(),
            });
        }
    }
    Ok(sae)
}

/// Reads the per-feature log10 firing frequency from `sparsity.safetensors`, if present.
///
/// # Errors
/// A present but unreadable file is an error.
pub fn load_sparsity(dir: &Path) -> Result<Option<Vec<f32>>> {
    let path = dir.join(SPARSITY_FILE);
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(SafetensorsFile::open(&path)?.read("sparsity")?.data))
}

fn read_weights(file: &SafetensorsFile, cfg: &SaeConfig) -> Result<SaeWeights> {
    let (d_in, d_sae) = (cfg.d_in, cfg.d_sae);
    let gated = cfg.architecture == Architecture::Gated;
    let threshold = if file.contains("threshold") {
        Some(array1(file, "threshold", d_sae)?)
    } else if file.contains("log_threshold") {
        Some(array1(file, "log_threshold", d_sae)?.mapv(f32::exp))
    } else {
        None
    };
    Ok(SaeWeights {
        w_enc: array2(file, "W_enc", [d_in, d_sae])?,
        w_dec: array2(file, "W_dec", [d_sae, d_in])?,
        b_enc: if gated {
            Array1::zeros(d_sae)
        } else {
            array1(file, "b_enc", d_sae)?
        },
        b_dec: array1(file, "b_dec", d_in)?,
        threshold,
        gated: if gated {
            Some(GatedWeights {
                b_gate: array1(file, "b_gate", d_sae)?,
                b_mag: array1(file, "b_mag", d_sae)?,
                r_mag: array1(file, "r_mag", d_sae)?,
            })
        } else {
            None
        },
    })
}

/// Parses a SAELens `cfg.json` object (v6 nested or pre-6.0 flat).
///
/// # Errors
/// [`Error::Config`] naming the key that is missing or invalid.
pub fn parse_config(v: &Value, path: &Path) -> Result<SaeConfig> {
    let obj = v
        .as_object()
        .ok_or_else(|| Error::config(path, "not a JSON object"))?;
    let bad = |key: &str, why: &str| Error::config(path, format!("`{key}`: {why}"));
    let usize_of = |key: &str| -> Result<usize> {
        obj.get(key)
            .and_then(Value::as_u64)
            .map(|n| n as usize)
            .ok_or_else(|| bad(key, "missing or not a non-negative integer"))
    };
    let d_in = usize_of("d_in")?;
    let d_sae = usize_of("d_sae")?;
    // Pre-6.0: `activation_fn_str` (+ kwargs.k) decides; v6: `architecture`.
    let act_fn = obj
        .get("activation_fn")
        .or_else(|| obj.get("activation_fn_str"))
        .and_then(Value::as_str);
    let arch_name = obj
        .get("architecture")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| match act_fn {
            Some("topk") => "topk".into(),
            _ => "standard".into(),
        });
    let k_of = || -> Result<usize> {
        obj.get("k")
            .or_else(|| obj.get("activation_fn_kwargs").and_then(|kw| kw.get("k")))
            .and_then(|k| k.as_u64().or_else(|| k.as_f64().map(|f| f as u64)))
            .map(|k| k as usize)
            .ok_or_else(|| bad("k", "TopK SAE without an integer k"))
    };
    let architecture = match arch_name.as_str() {
        "standard" | "relu" => Architecture::Standard,
        "topk" => Architecture::TopK {
            k: k_of()?,
            rescale_acts_by_decoder_norm: obj
                .get("rescale_acts_by_decoder_norm")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        },
        // BatchTopK and Matryoshka SAEs are saved for inference as JumpReLU.
        "jumprelu" | "batchtopk" | "matryoshka_batchtopk" => Architecture::JumpRelu,
        "gated" => Architecture::Gated,
        other => {
            return Err(Error::Unsupported {
                what: format!("SAELens architecture `{other}` ({})", path.display()),
            })
        }
    };
    let normalize_activations = match obj.get("normalize_activations") {
        None => Normalization::None,
        Some(v) => Normalization::from_saelens(v)
            .ok_or_else(|| bad("normalize_activations", &format!("unknown value {v}")))?,
    };
    let reshape_hook_z = match obj.get("reshape_activations").and_then(Value::as_str) {
        None | Some("none") => false,
        Some("hook_z") => true,
        Some(other) => {
            return Err(bad(
                "reshape_activations",
                &format!("unknown value {other}"),
            ))
        }
    };
    let dtype = obj
        .get("dtype")
        .and_then(Value::as_str)
        .unwrap_or("float32")
        .trim_start_matches("torch.")
        .to_string();
    let empty = Map::new();
    // v6 keeps provenance under `metadata`; pre-6.0 flat configs keep it at the top level.
    let meta = obj
        .get("metadata")
        .and_then(Value::as_object)
        .unwrap_or(obj);
    let str_of = |key: &str| meta.get(key).and_then(Value::as_str).map(str::to_string);
    let hook_name = str_of("hook_name").or_else(|| str_of("hook_point"));
    let hook_head_index = meta
        .get("hook_head_index")
        .or_else(|| meta.get("hook_point_head_index"))
        .and_then(Value::as_u64)
        .map(|h| h as usize);
    let known = [
        "model_name",
        "hook_name",
        "hook_point",
        "hook_head_index",
        "hook_point_head_index",
        "context_size",
        "prepend_bos",
        "dataset_path",
        "neuronpedia_id",
    ];
    let extra = if obj.contains_key("metadata") {
        meta.iter()
            .filter(|(k, _)| !known.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    } else {
        empty
    };
    Ok(SaeConfig {
        architecture,
        d_in,
        d_sae,
        apply_b_dec_to_input: obj
            .get("apply_b_dec_to_input")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        normalize_activations,
        reshape_hook_z,
        dtype,
        metadata: SaeMetadata {
            model_name: str_of("model_name"),
            hook_name,
            hook_head_index,
            context_size: meta
                .get("context_size")
                .and_then(Value::as_u64)
                .map(|c| c as usize),
            prepend_bos: meta.get("prepend_bos").and_then(Value::as_bool),
            dataset_path: str_of("dataset_path"),
            neuronpedia_id: str_of("neuronpedia_id"),
            extra,
        },
    })
}

/// Writes `sae` as an SAELens v6 directory (`cfg.json` + `sae_weights.safetensors`, f32), each
/// file atomically. `sparsity` (log10 feature density), when given, goes to
/// `sparsity.safetensors`.
///
/// # Errors
/// [`Error::Io`] / [`Error::Tensors`] on write failure; [`Error::Shape`] for a `sparsity` of
/// the wrong length.
pub fn save(sae: &Sae, dir: &Path, sparsity: Option<&[f32]>) -> Result<()> {
    let w = sae.weights();
    let cfg = sae.config();
    let mut tensors: Vec<(&str, Vec<usize>, Vec<f32>)> = vec![
        ("W_enc", w.w_enc.shape().to_vec(), flat2(&w.w_enc)),
        ("W_dec", w.w_dec.shape().to_vec(), flat2(&w.w_dec)),
        ("b_dec", vec![cfg.d_in], w.b_dec.to_vec()),
    ];
    match &w.gated {
        Some(g) => {
            tensors.push(("b_gate", vec![cfg.d_sae], g.b_gate.to_vec()));
            tensors.push(("b_mag", vec![cfg.d_sae], g.b_mag.to_vec()));
            tensors.push(("r_mag", vec![cfg.d_sae], g.r_mag.to_vec()));
        }
        None => tensors.push(("b_enc", vec![cfg.d_sae], w.b_enc.to_vec())),
    }
    if let (Architecture::JumpRelu, Some(t)) = (&cfg.architecture, &w.threshold) {
        tensors.push(("threshold", vec![cfg.d_sae], t.to_vec()));
    }
    interp_core::write_safetensors(
        &dir.join(WEIGHTS_FILE),
        tensors
            .iter()
            .map(|(n, s, v)| (*n, s.as_slice(), v.as_slice())),
    )?;
    if let Some(s) = sparsity {
        if s.len() != cfg.d_sae {
            return Err(Error::Shape {
                key: "sparsity".into(),
                expected: vec![cfg.d_sae],
                actual: vec![s.len()],
            });
        }
        interp_core::write_safetensors(
            &dir.join(SPARSITY_FILE),
            [("sparsity", &[cfg.d_sae][..], s)],
        )?;
    }
    let mut json = cfg.to_saelens_json();
    json["dtype"] = "float32".into();
    let text = serde_json::to_string_pretty(&json).expect("JSON values serialise");
    let cfg_path = dir.join(CONFIG_FILE);
    interp_core::write_atomic(&cfg_path, text.as_bytes())?;
    Ok(())
}

fn flat2(a: &Array2<f32>) -> Vec<f32> {
    a.iter().copied().collect()
}
