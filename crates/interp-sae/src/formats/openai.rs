//! OpenAI `sparse_autoencoder` checkpoints: a torch `.pt` state dict.
//!
//! Keys: `pre_bias [d]`, `encoder.weight [F, d]`, `latent_bias [F]`, `decoder.weight [d, F]`,
//! statistics buffers, `activation` (`"TopK"` / `"ReLU"`) and `activation_state_dict`
//! (`{"k", "postact_fn"}`). TopK files LayerNorm their inputs (unbiased std, ε = 1e-5).
//! Read with [`super::torch`], which never executes pickle code.

use std::path::Path;

use ndarray::{Array1, Array2};

use super::torch::{read_torch_file, TorchValue};
use super::{dims2, matrix, vector};
use crate::config::{Architecture, Normalization, SaeConfig};
use crate::error::{Error, Result};
use crate::sae::{Sae, SaeWeights};

/// Loads an OpenAI `.pt` SAE.
///
/// # Errors
/// Typed errors for malformed or hostile pickles, missing keys, unknown activations and
/// misshapen tensors.
pub fn load(path: &Path) -> Result<Sae> {
    let root = read_torch_file(path)?;
    let missing = |key: &str| Error::MissingTensor {
        path: path.to_path_buf(),
        key: key.into(),
    };
    let tensor = |key: &str| -> Result<(Vec<usize>, Vec<f32>)> {
        let t = root
            .get(key)
            .and_then(TorchValue::as_tensor)
            .ok_or_else(|| missing(key))?;
        Ok((t.shape.clone(), t.to_f32()))
    };
    let (enc_shape, enc) = tensor("encoder.weight")?;
    let [d_sae, d_in] = dims2("encoder.weight", &enc_shape)?;
    let matrix_of = |key: &str, shape: [usize; 2]| -> Result<Array2<f32>> {
        let (s, v) = tensor(key)?;
        matrix(key, s, v, shape)
    };
    let vector_of = |key: &str, len: usize| -> Result<Array1<f32>> {
        let (s, v) = tensor(key)?;
        vector(key, s, v, len)
    };
    let activation = root
        .get("activation")
        .and_then(TorchValue::as_str)
        .ok_or_else(|| missing("activation"))?;
    let (architecture, normalize) = match activation {
        "ReLU" => (Architecture::Standard, Normalization::None),
        "TopK" => {
            let k = root
                .get("activation_state_dict")
                .and_then(|d| d.get("k"))
                .and_then(TorchValue::as_int)
                .filter(|k| *k > 0)
                .ok_or_else(|| missing("activation_state_dict.k"))?;
            let arch = Architecture::TopK {
                k: k as usize,
                rescale_acts_by_decoder_norm: false,
            };
            (arch, Normalization::LayerNorm)
        }
        other => {
            return Err(Error::Unsupported {
                what: format!("OpenAI activation `{other}`"),
            })
        }
    };
    let w = SaeWeights {
        w_enc: matrix("encoder.weight", enc_shape, enc, [d_sae, d_in])?.reversed_axes(),
        w_dec: matrix_of("decoder.weight", [d_in, d_sae])?
            .reversed_axes()
            .as_standard_layout()
            .into_owned(),
        b_enc: vector_of("latent_bias", d_sae)?,
        b_dec: vector_of("pre_bias", d_in)?,
        threshold: None,
        gated: None,
    };
    let mut cfg = SaeConfig::new(architecture, d_in, d_sae);
    cfg.normalize_activations = normalize;
    Sae::new(cfg, w)
}
