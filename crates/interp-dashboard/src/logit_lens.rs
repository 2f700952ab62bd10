//! The logit lens of a feature: its decoder direction in the residual stream, scaled by the
//! final norm's weight and read through the unembedding — which tokens writing the feature
//! promotes and suppresses directly, as SAEDashboard's logits tables show.
//!
//! `logits = (d ⊙ w_final) · W_U`, with `d` the decoder row (for `attn.hook_z` SAEs the row
//! mapped through the layer's `W_O`). The final norm's centring and division by the scale are
//! left out, as SAEDashboard leaves them out. With TransformerLens weight processing
//! (`fold_ln`) `w_final` is 1 and already folded into `W_U`.

use burn::tensor::{backend::Backend, Tensor};
use interp_models::hooks::{BlockHook, HookPoint};
use interp_models::HookedTransformer;
use interp_sae::hooked::sae_hook_point;
use interp_sae::Sae;
use ndarray::{s, Array2, Axis};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The tokens a feature's direction promotes and suppresses most.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogitLens {
    /// The feature.
    pub feature: usize,
    /// `(token, logit)` with the largest logits, largest first.
    pub promoted: Vec<(u32, f32)>,
    /// `(token, logit)` with the smallest logits, smallest first.
    pub suppressed: Vec<(u32, f32)>,
}

fn array2<B: Backend>(t: Tensor<B, 2>, what: &str) -> Result<Array2<f32>> {
    let [r, c] = t.dims();
    let data = t
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| Error::invalid(what, format!("could not read the weights: {e:?}")))?;
    Array2::from_shape_vec((r, c), data).map_err(|e| Error::invalid(what, e.to_string()))
}

/// The decoder rows of `features` in the residual stream (`[features, d_model]`): the rows
/// themselves for SAEs on the residual stream, `hook_attn_out` or `hook_mlp_out`; mapped
/// through `W_O` for `attn.hook_z`. `None` for other hooks (their decoder does not live in the
/// residual stream).
///
/// # Errors
/// [`Error::Sae`] when the model lacks the SAE's hook; [`Error::FeatureOutOfRange`].
pub fn residual_directions<B: Backend>(
    model: &HookedTransformer<B>,
    sae: &Sae,
    features: &[usize],
) -> Result<Option<Array2<f32>>> {
    let point = sae_hook_point(model, sae.config())?;
    if let Some(&f) = features.iter().find(|&&f| f >= sae.d_sae()) {
        return Err(Error::FeatureOutOfRange {
            feature: f,
            d_sae: sae.d_sae(),
        });
    }
    let rows = sae.weights().w_dec.select(Axis(0), features);
    let residual = matches!(
        point,
        HookPoint::Block {
            hook: BlockHook::ResidPre
                | BlockHook::ResidMid
                | BlockHook::ResidPost
                | BlockHook::AttnOut
                | BlockHook::MlpOut,
            ..
        }
    );
    match point {
        _ if residual => Ok(Some(rows)),
        HookPoint::Block {
            layer,
            hook: BlockHook::AttnZ,
        } => {
            let w_o = array2(model.weights().blocks[layer].attn.w_o.val(), "W_O")?;
            if w_o.nrows() != rows.ncols() {
                return Err(Error::invalid(
                    "W_O",
                    format!(
                        "{} rows, the attn.hook_z SAE has d_in = {}",
                        w_o.nrows(),
                        rows.ncols()
                    ),
                ));
            }
            let mut out = Array2::zeros((rows.nrows(), w_o.ncols()));
            interp_core::matmul_into(rows.view(), w_o.view(), out.view_mut());
            Ok(Some(out))
        }
        _ => Ok(None),
    }
}

/// The logit lens of `features`, `n` tokens each way; `None` when the SAE's decoder does not
/// live in the residual stream (see [`residual_directions`]). Computed in tiles of 256
/// features, so memory is `256 × d_vocab` floats beyond the weights.
///
/// # Errors
/// Those of [`residual_directions`]; [`Error::NonFinite`] for NaN weights.
pub fn logit_lens<B: Backend>(
    model: &HookedTransformer<B>,
    sae: &Sae,
    features: &[usize],
    n: usize,
) -> Result<Option<Vec<LogitLens>>> {
    let Some(mut dirs) = residual_directions(model, sae, features)? else {
        return Ok(None);
    };
    let w = &model.weights();
    let scale = w.ln_final.w.val().into_data().convert::<f32>();
    let scale = scale
        .into_vec::<f32>()
        .map_err(|e| Error::invalid("ln_final.w", format!("{e:?}")))?;
    for mut row in dirs.rows_mut() {
        row.iter_mut().zip(&scale).for_each(|(x, s)| *x *= s);
    }
    let w_u = array2(w.w_u.val(), "W_U")?;
    let mut out = Vec::with_capacity(features.len());
    const TILE: usize = 256;
    for start in (0..features.len()).step_by(TILE) {
        let end = (start + TILE).min(features.len());
        let mut logits = Array2::<f32>::zeros((end - start, w_u.ncols()));
        interp_core::matmul_into(
            dirs.slice(s![start..end, ..]),
            w_u.view(),
            logits.view_mut(),
        );
        for (i, row) in logits.rows().into_iter().enumerate() {
            let row = row.as_slice().expect("standard layout");
            if row.iter().any(|v| !v.is_finite()) {
                return Err(Error::NonFinite {
                    what: format!("the logit lens of feature {}", features[start + i]),
                });
            }
            let (promoted, suppressed) = extremes(row, n);
            out.push(LogitLens {
                feature: features[start + i],
                promoted,
                suppressed,
            });
        }
    }
    Ok(Some(out))
}

/// `(token, logit)` pairs.
type TokenLogits = Vec<(u32, f32)>;

/// The `n` largest (largest first) and `n` smallest (smallest first) entries of `row`.
fn extremes(row: &[f32], n: usize) -> (TokenLogits, TokenLogits) {
    let n = n.min(row.len());
    let mut idx: Vec<u32> = (0..row.len() as u32).collect();
    let by = |a: &u32, b: &u32| row[*b as usize].total_cmp(&row[*a as usize]).then(a.cmp(b));
    let mut top = idx.clone();
    if n > 0 && n < top.len() {
        top.select_nth_unstable_by(n - 1, by);
    }
    top.truncate(n);
    top.sort_by(by);
    let rev = |a: &u32, b: &u32| row[*a as usize].total_cmp(&row[*b as usize]).then(a.cmp(b));
    if n > 0 && n < idx.len() {
        idx.select_nth_unstable_by(n - 1, rev);
    }
    idx.truncate(n);
    idx.sort_by(rev);
    let pairs = |v: Vec<u32>| v.into_iter().map(|i| (i, row[i as usize])).collect();
    (pairs(top), pairs(idx))
}

#[cfg(test)]
mod tests {
    use super::extremes;

    #[test]
    fn extremes_are_sorted_and_ties_go_to_the_lower_id() {
        let row = [0.5, -2.0, 3.0, 3.0, -2.0, 0.0];
        let (top, bottom) = extremes(&row, 2);
        assert_eq!(top, [(2, 3.0), (3, 3.0)]);
        assert_eq!(bottom, [(1, -2.0), (4, -2.0)]);
        let (all, _) = extremes(&row, 10);
        assert_eq!(all.len(), 6);
    }
}
