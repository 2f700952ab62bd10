//! Gemma Scope `params.npz`: `W_enc [d, F]`, `W_dec [F, d]`, `b_enc`, `b_dec`, `threshold`
//! (f32). JumpReLU without `b_dec` subtraction or normalisation.

use std::path::Path;

use ndarray::Array1;

use super::npy::{read_npz_file, NpyArray};
use super::{dims2, file_in, matrix, vector};
use crate::config::{Architecture, SaeConfig};
use crate::error::{Error, Result};
use crate::sae::{Sae, SaeWeights};

/// Gemma Scope weights file name.
pub const PARAMS_FILE: &str = "params.npz";

/// Loads a Gemma Scope `params.npz` (the file, or the directory holding it).
///
/// # Errors
/// Typed errors for unreadable archives, missing arrays, inconsistent shapes, non-finite
/// weights or thresholds.
pub fn load(path: &Path) -> Result<Sae> {
    let file = file_in(path, PARAMS_FILE);
    let mut arrays = read_npz_file(&file)?;
    // Some exports spell the matrices `w_enc` / `w_dec`.
    let mut take = |key: &str| -> Result<NpyArray> {
        arrays
            .remove(key)
            .or_else(|| arrays.remove(&key.replacen('W', "w", 1)))
            .ok_or_else(|| Error::MissingTensor {
                path: file.clone(),
                key: key.into(),
            })
    };
    let w_enc = take("W_enc")?;
    let [d_in, d_sae] = dims2("W_enc", &w_enc.shape)?;
    let mut vec_of = |key: &str, len: usize| -> Result<Array1<f32>> {
        let a = take(key)?;
        vector(key, a.shape, a.data, len)
    };
    let (b_enc, b_dec, threshold) = (
        vec_of("b_enc", d_sae)?,
        vec_of("b_dec", d_in)?,
        vec_of("threshold", d_sae)?,
    );
    let w_dec = take("W_dec")?;
    let w = SaeWeights {
        w_enc: matrix("W_enc", w_enc.shape, w_enc.data, [d_in, d_sae])?,
        w_dec: matrix("W_dec", w_dec.shape, w_dec.data, [d_sae, d_in])?,
        b_enc,
        b_dec,
        threshold: Some(threshold),
        gated: None,
    };
    let mut cfg = SaeConfig::new(Architecture::JumpRelu, d_in, d_sae);
    cfg.apply_b_dec_to_input = false;
    Sae::new(cfg, w)
}
