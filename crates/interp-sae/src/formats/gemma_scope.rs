//! Gemma Scope `params.npz`: `W_enc [d, F]`, `W_dec [F, d]`, `b_enc`, `b_dec`, `threshold`
//! (f32). JumpReLU without `b_dec` subtraction or normalisation.

use std::path::Path;

use ndarray::{Array1, Array2};

use super::file_in;
use super::npy::{read_npz_file, NpyArray};
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
    let [d_in, d_sae] = w_enc.shape[..] else {
        return Err(Error::Shape {
            key: "W_enc".into(),
            expected: vec![0, 0],
            actual: w_enc.shape,
        });
    };
    let matrix = |a: NpyArray, key: &str, shape: [usize; 2]| -> Result<Array2<f32>> {
        if a.shape != shape {
            return Err(Error::Shape {
                key: key.into(),
                expected: shape.to_vec(),
                actual: a.shape,
            });
        }
        Ok(Array2::from_shape_vec(shape, a.data).expect("shape checked"))
    };
    let vector = |a: NpyArray, key: &str, len: usize| -> Result<Array1<f32>> {
        if a.shape != [len] {
            return Err(Error::Shape {
                key: key.into(),
                expected: vec![len],
                actual: a.shape,
            });
        }
        Ok(Array1::from(a.data))
    };
    let w = SaeWeights {
        w_enc: matrix(w_enc, "W_enc", [d_in, d_sae])?,
        w_dec: matrix(take("W_dec")?, "W_dec", [d_sae, d_in])?,
        b_enc: vector(take("b_enc")?, "b_enc", d_sae)?,
        b_dec: vector(take("b_dec")?, "b_dec", d_in)?,
        threshold: Some(vector(take("threshold")?, "threshold", d_sae)?),
        gated: None,
    };
    let mut cfg = SaeConfig::new(Architecture::JumpRelu, d_in, d_sae);
    cfg.apply_b_dec_to_input = false;
    Sae::new(cfg, w)
}
