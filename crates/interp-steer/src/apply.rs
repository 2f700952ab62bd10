//! Turning a [`SteeringPlan`] into hooks of the model's one forward pass.

use std::rc::Rc;

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use interp_models::{Activation, HookPoint, HookSpec, HookedTransformer};
use interp_sae::hooked::{is_own_hook, DeviceSae};

use crate::direction::check_feature;
use crate::error::{Error, Result};
use crate::plan::{Op, RescaleBasis, SteeringPlan, Step};
use crate::sae_set::SaeSet;

impl SteeringPlan {
    /// Checks every step against `model` and `saes`: hook names the model has, hooks with a
    /// per-position vector, direction lengths and SAE input widths equal to the hook's width,
    /// SAEs at their own hooks (unless a step allows otherwise), feature ids below `d_sae`,
    /// finite numbers.
    ///
    /// # Errors
    /// The model's [`interp_models::Error::UnknownHook`] / `HookLayerOutOfRange`;
    /// [`Error::UnsteerableHook`], [`Error::DirectionWidth`], [`Error::SaeWidth`],
    /// [`Error::SaeHookMismatch`],
    /// [`Error::FeatureOutOfRange`], [`Error::UnknownSae`], [`Error::NonFinite`],
    /// [`Error::Invalid`].
    pub fn validate<B: Backend>(&self, model: &HookedTransformer<B>, saes: &SaeSet) -> Result<()> {
        self.check_values()?;
        for step in &self.steps {
            resolve(step, model, saes)?;
        }
        Ok(())
    }

    /// The plan as hooks on `model`'s forward pass (merge it with a cache filter or other
    /// hooks with [`HookSpec::merge`]). Validates first (see [`Self::validate`]).
    ///
    /// # Errors
    /// As [`Self::validate`].
    pub fn hook_spec<B: Backend>(
        &self,
        model: &HookedTransformer<B>,
        saes: &SaeSet,
    ) -> Result<HookSpec<B>> {
        self.check_values()?;
        let device = model.device();
        let mut spec = HookSpec::new();
        for step in &self.steps {
            let (point, _) = resolve(step, model, saes)?;
            let edit = compile(&step.op, saes, device)?;
            spec = spec.hook_with(point, step.positions.clone(), move |act, ctx| {
                on_rows(act, |x| {
                    edit.apply(x).map_err(|e| interp_models::Error::HookFailed {
                        hook: ctx.point.to_string(),
                        message: e.to_string(),
                    })
                })
            });
        }
        Ok(spec)
    }
}

/// The hook point and its width, checked against the model and the step's SAE.
fn resolve<B: Backend>(
    step: &Step,
    model: &HookedTransformer<B>,
    saes: &SaeSet,
) -> Result<(HookPoint, usize)> {
    let cfg = model.cfg();
    let point = cfg.parse_hook(&step.hook)?;
    let width = cfg
        .hook_width(&point)
        .ok_or_else(|| Error::UnsteerableHook {
            hook: step.hook.clone(),
        })?;
    let direction_width = |direction: &[f32]| {
        if direction.len() == width {
            Ok(())
        } else {
            Err(Error::DirectionWidth {
                hook: step.hook.clone(),
                len: direction.len(),
                width,
            })
        }
    };
    let (key, features): (&str, Vec<usize>) = match &step.op {
        Op::Add { direction, .. } | Op::Ablate { direction, .. } => {
            direction_width(direction)?;
            return Ok((point, width));
        }
        Op::Clamp { sae, features, .. } => (sae, features.iter().map(|f| f.0).collect()),
        Op::Rescale { sae, features, .. } => (sae, features.clone()),
    };
    let sae = saes.get(key)?;
    if sae.d_in() != width {
        return Err(Error::SaeWidth {
            sae: key.to_string(),
            hook: step.hook.clone(),
            d_in: sae.d_in(),
            width,
        });
    }
    if is_own_hook(sae.config(), point) == Some(false) && !step.allow_hook_mismatch {
        return Err(Error::SaeHookMismatch {
            sae: key.to_string(),
            trained_on: sae.config().metadata.hook_name.clone().unwrap_or_default(),
            hook: step.hook.clone(),
        });
    }
    for f in features {
        check_feature(sae, key, f)?;
    }
    Ok((point, width))
}

/// A step's edit of `[n, width]` rows, with its tensors on the model's device.
enum Edit<B: Backend> {
    /// `x + v`.
    Add(Tensor<B, 1>),
    /// `x − (x·u) u` with `u` of unit norm.
    Ablate(Tensor<B, 1>),
    /// Clamp through the SAE: `x + ((t − z_S) ⊙ mask) @ R · scale`.
    Clamp {
        sae: Rc<DeviceSae<B>>,
        ids: Tensor<B, 1, Int>,
        rows: Tensor<B, 2>,
        values: Tensor<B, 1>,
        only_active: bool,
    },
    /// `x + (r − 1) · (z_S @ D)`, `D` the unit decoder rows (scale not applied) or the
    /// reconstruction rows (times the input scale).
    Rescale {
        sae: Rc<DeviceSae<B>>,
        ids: Tensor<B, 1, Int>,
        rows: Tensor<B, 2>,
        factor: f32,
        input_scale: bool,
    },
}

fn compile<B: Backend>(op: &Op, saes: &SaeSet, device: &B::Device) -> Result<Edit<B>> {
    let vector =
        |v: &[f32]| Tensor::<B, 1>::from_data(TensorData::new(v.to_vec(), [v.len()]), device);
    let ids = |f: &[usize]| {
        let ids: Vec<i64> = f.iter().map(|&i| i as i64).collect();
        Tensor::<B, 1, Int>::from_data(TensorData::new(ids, [f.len()]), device)
    };
    Ok(match op {
        Op::Add {
            direction,
            coefficient,
            ..
        } => Edit::Add(vector(direction) * *coefficient),
        Op::Ablate { direction, .. } => {
            let norm = direction.iter().map(|v| v * v).sum::<f32>().sqrt();
            Edit::Ablate(vector(direction) / norm)
        }
        Op::Clamp {
            sae,
            features,
            only_active,
        } => {
            let device_sae = DeviceSae::new(saes.get(sae)?, device);
            let f: Vec<usize> = features.iter().map(|p| p.0).collect();
            let values: Vec<f32> = features.iter().map(|p| p.1).collect();
            Edit::Clamp {
                rows: device_sae.decoder_rows(&f)?,
                sae: Rc::new(device_sae),
                ids: ids(&f),
                values: vector(&values),
                only_active: *only_active,
            }
        }
        Op::Rescale {
            sae,
            features,
            factor,
            basis,
        } => {
            let host = saes.get(sae)?;
            let device_sae = DeviceSae::new(host, device);
            let rows = match basis {
                RescaleBasis::Contribution => device_sae.decoder_rows(features)?,
                RescaleBasis::UnitDecoder => {
                    let w = host.weights();
                    let d = host.d_in();
                    let mut unit = Vec::with_capacity(features.len() * d);
                    for &i in features {
                        let row = w.w_dec.row(i);
                        let norm = row.dot(&row).sqrt().max(1e-12);
                        unit.extend(row.iter().map(|v| v / norm));
                    }
                    Tensor::<B, 2>::from_data(TensorData::new(unit, [features.len(), d]), device)
                }
            };
            Edit::Rescale {
                sae: Rc::new(device_sae),
                ids: ids(features),
                rows,
                factor: *factor,
                input_scale: *basis == RescaleBasis::Contribution,
            }
        }
    })
}

impl<B: Backend> Edit<B> {
    /// The edited rows of `x: [n, width]`.
    fn apply(&self, x: Tensor<B, 2>) -> interp_sae::Result<Tensor<B, 2>> {
        Ok(match self {
            Edit::Add(v) => x + v.clone().unsqueeze::<2>(),
            Edit::Ablate(u) => {
                let d = u.dims()[0];
                let along = x.clone().matmul(u.clone().reshape([d, 1]));
                x - along * u.clone().unsqueeze::<2>()
            }
            Edit::Clamp {
                sae,
                ids,
                rows,
                values,
                only_active,
            } => {
                let (z, scale) = sae.encode_with_scale(x.clone())?;
                let z_sel = z.select(1, ids.clone());
                let mut delta = values.clone().unsqueeze::<2>() - z_sel.clone();
                if *only_active {
                    delta = delta * z_sel.greater_elem(0.0).float();
                }
                x + in_input_space(delta.matmul(rows.clone()), scale)
            }
            Edit::Rescale {
                sae,
                ids,
                rows,
                factor,
                input_scale,
            } => {
                let (z, scale) = sae.encode_with_scale(x.clone())?;
                let dx = z.select(1, ids.clone()).matmul(rows.clone()) * (factor - 1.0);
                let scale = if *input_scale { scale } else { None };
                x + in_input_space(dx, scale)
            }
        })
    }
}

fn in_input_space<B: Backend>(dx: Tensor<B, 2>, scale: Option<Tensor<B, 2>>) -> Tensor<B, 2> {
    match scale {
        Some(s) => dx * s,
        None => dx,
    }
}

/// Runs `f` on the activation as rows `[batch · pos, width]` (per-head hooks flattened over
/// heads) and restores its shape.
fn on_rows<B: Backend>(
    act: Activation<B>,
    f: impl FnOnce(Tensor<B, 2>) -> interp_models::Result<Tensor<B, 2>>,
) -> interp_models::Result<Activation<B>> {
    Ok(match act {
        Activation::Rank3(t) => {
            let [b, p, d] = t.dims();
            Activation::Rank3(f(t.reshape([b * p, d]))?.reshape([b, p, d]))
        }
        Activation::Rank4(t) => {
            let [b, p, h, d] = t.dims();
            Activation::Rank4(f(t.reshape([b * p, h * d]))?.reshape([b, p, h, d]))
        }
    })
}
