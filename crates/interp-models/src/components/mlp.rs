//! The MLP up to `hook_post`: plain `act(x W_in + b_in)`, or gated
//! `act(x W_gate) ⊙ (x W_in) + b_in` as TransformerLens' `GatedMLP` (Llama, Qwen2, Gemma).

use burn::tensor::{backend::Backend, Tensor};

use crate::components::{activate, linear, project};
use crate::config::ModelConfig;
use crate::error::Result;
use crate::hooks::{BlockHook, HookPoint, HookRun};
use crate::weights::MlpWeights;

/// The MLP's hidden activations (`mlp.hook_post`), `[batch, pos, d_mlp]`, from its normalized
/// input.
pub(crate) fn mlp_hidden<B: Backend>(
    cfg: &ModelConfig,
    layer: usize,
    mlp: &MlpWeights<B>,
    x: Tensor<B, 3>,
    run: &mut HookRun<'_, B>,
) -> Result<Tensor<B, 3>> {
    let hp = |hook| HookPoint::block(layer, hook);
    let inside = [
        BlockHook::MlpPre,
        BlockHook::MlpPreLinear,
        BlockHook::MlpPost,
    ];
    let hooked = inside.iter().any(|&h| run.is_active(hp(h)));
    let [n_batch, n_pos, _] = x.dims();
    let shape = [n_batch, n_pos, cfg.d_mlp];
    match &mlp.w_gate {
        Some(w_gate) => {
            if !hooked {
                if let Some(post) = crate::kernels::gated(
                    &x,
                    &w_gate.val(),
                    &mlp.w_in.val(),
                    &mlp.b_in.val(),
                    cfg.act_fn,
                    shape,
                ) {
                    return Ok(post);
                }
            }
            let pre = run.apply(hp(BlockHook::MlpPre), project(x.clone(), w_gate.val()))?;
            let pre_linear = run.apply(hp(BlockHook::MlpPreLinear), project(x, mlp.w_in.val()))?;
            let post = activate(pre, cfg.act_fn) * pre_linear + mlp.b_in.val().unsqueeze::<3>();
            run.apply(hp(BlockHook::MlpPost), post)
        }
        None => {
            if !hooked {
                let w = mlp.w_in.val();
                let b = mlp.b_in.val();
                if let Some(post) =
                    crate::kernels::linear(&x, &w, &b, None, Some(cfg.act_fn), shape)
                {
                    return Ok(post);
                }
            }
            let pre = run.apply(hp(BlockHook::MlpPre), linear(x, &mlp.w_in, &mlp.b_in))?;
            run.apply(hp(BlockHook::MlpPost), activate(pre, cfg.act_fn))
        }
    }
}
