//! LayerNorm and RMSNorm with TransformerLens' hooks: `hook_scale` (the divisor), then
//! `hook_normalized` (before the learned scale and shift, as TransformerLens records it).

use burn::tensor::{backend::Backend, Tensor};

use crate::config::Normalization;
use crate::error::Result;
use crate::hooks::{HookPoint, HookRun};
use crate::weights::LayerNormWeights;

/// The hook points of one normalization: `(hook_scale, hook_normalized)`.
pub(crate) type NormHooks = (HookPoint, HookPoint);

/// LayerNorm (`(x − mean) / sqrt(var + eps) · w + b`) or RMSNorm
/// (`x / sqrt(mean(x²) + eps) · w`) over the last dimension.
pub(crate) fn norm<B: Backend>(
    kind: Normalization,
    ln: &LayerNormWeights<B>,
    x: Tensor<B, 3>,
    eps: f64,
    (scale_hook, normalized_hook): NormHooks,
    run: &mut HookRun<'_, B>,
) -> Result<Tensor<B, 3>> {
    let hooked = run.is_active(scale_hook) || run.is_active(normalized_hook);
    match kind {
        Normalization::LayerNorm => {
            if !hooked {
                if let Some(y) = crate::kernels::layer_norm(&x, &ln.w.val(), &ln.b.val(), eps) {
                    return Ok(y);
                }
            }
            let x = x.clone() - x.mean_dim(2);
            let scale = (x.clone().powi_scalar(2).mean_dim(2) + eps).sqrt();
            let scale = run.apply(scale_hook, scale)?;
            let normalized = run.apply(normalized_hook, x / scale)?;
            Ok(normalized * ln.w.val().unsqueeze::<3>() + ln.b.val().unsqueeze::<3>())
        }
        Normalization::RmsNorm => {
            if !hooked {
                if let Some(y) = crate::kernels::rms_norm(&x, &ln.w.val(), eps) {
                    return Ok(y);
                }
            }
            let scale = (x.clone().powi_scalar(2).mean_dim(2) + eps).sqrt();
            let scale = run.apply(scale_hook, scale)?;
            let normalized = run.apply(normalized_hook, x / scale)?;
            Ok(normalized * ln.w.val().unsqueeze::<3>())
        }
    }
}
