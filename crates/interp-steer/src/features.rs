//! Finding steering features from data: the SAE features that separate two prompt sets at
//! chosen positions (the SAE-space counterpart of CAA, and seed 002's "top features at the
//! last token").

use burn::tensor::backend::Backend;
use interp_models::{Batch, HookPoint, HookSpec, HookedTransformer, NameFilter};
use interp_sae::Sae;
use ndarray::{Array1, Array2, Axis};

use crate::direction::TokenSelection;
use crate::error::{Error, Result};

/// The `k` features of `sae` whose mean activation at the selected positions of the
/// `positive` prompts exceeds that over the `negative` prompts the most, as
/// `(feature, mean_positive − mean_negative)`, largest first (each prompt's positions averaged
/// first). The SAE reads the hook its config names (`metadata.hook_name`).
///
/// # Errors
/// [`Error::Invalid`] for an SAE without a hook name, an empty prompt set or a bad position;
/// [`Error::SaeWidth`] when the SAE does not fit the hook; model and SAE errors.
pub fn contrastive_features<B: Backend>(
    model: &HookedTransformer<B>,
    sae: &Sae,
    positive: &[Vec<u32>],
    negative: &[Vec<u32>],
    select: &TokenSelection,
    k: usize,
) -> Result<Vec<(usize, f32)>> {
    let diff = mean_feature_acts(model, sae, positive, select)?
        - mean_feature_acts(model, sae, negative, select)?;
    let mut ranked: Vec<(usize, f32)> = diff.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(k);
    Ok(ranked)
}

/// `sae`'s feature activations `[d_sae]` at the selected positions of `prompts`, averaged over
/// each prompt's positions, then over prompts (one prompt with [`TokenSelection::Last`]: seed
/// 002's "activations at the last token"). The SAE reads the hook its config names.
///
/// # Errors
/// As [`contrastive_features`].
pub fn mean_feature_acts<B: Backend>(
    model: &HookedTransformer<B>,
    sae: &Sae,
    prompts: &[Vec<u32>],
    select: &TokenSelection,
) -> Result<Array1<f32>> {
    let name =
        sae.config().metadata.hook_name.clone().ok_or_else(|| {
            Error::invalid("SAE", "its config names no hook (metadata.hook_name)")
        })?;
    let hook = model.cfg().parse_hook(&name)?;
    let width = model.cfg().hook_width(&hook).unwrap_or(0);
    if width != sae.d_in() {
        return Err(Error::SaeWidth {
            sae: name,
            hook: hook.to_string(),
            d_in: sae.d_in(),
            width,
        });
    }
    mean_over_prompts(model, hook, prompts, select, |rows| {
        Ok(sae
            .encode(rows.view())?
            .mean_axis(Axis(0))
            .expect("at least one row"))
    })
}

/// Runs each prompt up to `hook`, takes the activation rows `[n_selected, width]` at the
/// selected positions, maps them to a vector with `per_prompt`, and averages over prompts.
pub(crate) fn mean_over_prompts<B: Backend>(
    model: &HookedTransformer<B>,
    hook: HookPoint,
    prompts: &[Vec<u32>],
    select: &TokenSelection,
    per_prompt: impl Fn(Array2<f32>) -> Result<Array1<f32>>,
) -> Result<Array1<f32>> {
    if prompts.is_empty() {
        return Err(Error::invalid("prompts", "a prompt set is empty"));
    }
    let width = model
        .cfg()
        .hook_width(&hook)
        .ok_or_else(|| Error::UnsteerableHook {
            hook: hook.to_string(),
        })?;
    let mut spec = HookSpec::new().cache(NameFilter::patterns([hook.to_string()]));
    if let Some(stop) = model.cfg().stop_layer_for([&hook]) {
        spec = spec.stop_at_layer(stop);
    }
    let mut sum: Option<Array1<f32>> = None;
    for prompt in prompts {
        let (_, cache) = model.run(&Batch::single(prompt), &spec)?;
        let act = cache.get(&hook).expect("the hook was cached");
        let values: Vec<f32> = act.to_data().convert::<f32>().into_vec().expect("f32 data");
        let n_pos = prompt.len();
        let positions: Vec<usize> = match select {
            TokenSelection::Last => vec![n_pos - 1],
            TokenSelection::All => (0..n_pos).collect(),
            TokenSelection::At(ps) => ps.clone(),
        };
        if positions.is_empty() {
            return Err(Error::invalid("positions", "no position selected"));
        }
        if let Some(&p) = positions.iter().find(|&&p| p >= n_pos) {
            return Err(Error::invalid(
                "positions",
                format!("position {p} is past a prompt of {n_pos} tokens"),
            ));
        }
        let mut rows = Array2::<f32>::zeros((positions.len(), width));
        for (r, &p) in positions.iter().enumerate() {
            rows.row_mut(r)
                .iter_mut()
                .zip(&values[p * width..(p + 1) * width])
                .for_each(|(d, s)| *d = *s);
        }
        let v = per_prompt(rows)?;
        sum = Some(match sum {
            Some(s) => s + v,
            None => v,
        });
    }
    Ok(sum.expect("prompts is not empty") / prompts.len() as f32)
}
