//! SAEs on burn tensors (any backend, GPU included) and attached to `interp-models` hook points
//! (the `models` feature).
//!
//! [`DeviceSae`] computes exactly what [`Sae`] computes, with burn ops; [`run_with_sae`] runs a
//! [`HookedTransformer`] and returns the SAE's latent activations at the SAE's hook, optionally
//! splicing the reconstruction into the forward pass (SAELens `HookedSAETransformer`).

use std::cell::RefCell;
use std::rc::Rc;

use burn::tensor::{backend::Backend, IndexingUpdateOp, Tensor};
use interp_models::hooks::{Activation as HookActivation, HookPoint, HookSpec, Positions};
use interp_models::{Batch, HookedTransformer};

use crate::config::{Architecture, Normalization, SaeConfig};
use crate::device::{tensor1, tensor2};
use crate::error::{Error, Result};
use crate::sae::Sae;

/// An [`Sae`] whose weights live on a burn device.
#[derive(Clone, Debug)]
pub struct DeviceSae<B: Backend> {
    cfg: SaeConfig,
    w_enc: Tensor<B, 2>,
    w_dec: Tensor<B, 2>,
    b_enc: Tensor<B, 1>,
    b_dec: Tensor<B, 1>,
    threshold: Option<Tensor<B, 1>>,
    /// `(b_gate, b_mag, exp(r_mag))`.
    gated: Option<(Tensor<B, 1>, Tensor<B, 1>, Tensor<B, 1>)>,
    dec_norm: Option<Tensor<B, 1>>,
}

/// Per-row `(shift, scale)` of an input normalisation, `[n, 1]` each.
type RowStats<B> = (Tensor<B, 2>, Tensor<B, 2>);

/// Where the hook closure leaves `(feature_acts, sae_out)`.
type Captured<B> = Rc<RefCell<Option<(Tensor<B, 3>, Tensor<B, 3>)>>>;

impl<B: Backend> DeviceSae<B> {
    /// Copies `sae`'s weights to `device`.
    pub fn new(sae: &Sae, device: &B::Device) -> Self {
        let w = sae.weights();
        let cfg = sae.config().clone();
        let dec_norm = match cfg.architecture {
            Architecture::TopK {
                rescale_acts_by_decoder_norm: true,
                ..
            } => Some(tensor1(&ndarray::Array1::from(sae.decoder_norms()), device)),
            _ => None,
        };
        DeviceSae {
            w_enc: tensor2(&w.w_enc, device),
            w_dec: tensor2(&w.w_dec, device),
            b_enc: tensor1(&w.b_enc, device),
            b_dec: tensor1(&w.b_dec, device),
            threshold: w.threshold.as_ref().map(|t| tensor1(t, device)),
            gated: w.gated.as_ref().map(|g| {
                (
                    tensor1(&g.b_gate, device),
                    tensor1(&g.b_mag, device),
                    tensor1(&g.r_mag.mapv(f32::exp), device),
                )
            }),
            dec_norm,
            cfg,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SaeConfig {
        &self.cfg
    }

    /// Normalised input and the per-row `(shift, scale)` to undo it.
    fn normalize(&self, x: Tensor<B, 2>) -> (Tensor<B, 2>, Option<RowStats<B>>) {
        let d = self.cfg.d_in as f64;
        match self.cfg.normalize_activations {
            Normalization::LayerNorm => {
                let mu = x.clone().mean_dim(1);
                let centered = x - mu.clone();
                let var = centered.clone().powi_scalar(2).sum_dim(1) / (d - 1.0).max(1.0);
                let scale = var.sqrt() + 1e-5;
                (centered / scale.clone(), Some((mu, scale)))
            }
            Normalization::ConstantNormRescale => {
                let scale = x.clone().powi_scalar(2).sum_dim(1).sqrt() / d.sqrt();
                let zero = scale.zeros_like();
                (x / scale.clone(), Some((zero, scale)))
            }
            Normalization::None | Normalization::ExpectedAverageOnlyIn => (x, None),
        }
    }

    fn encode_inner(&self, x: Tensor<B, 2>) -> (Tensor<B, 2>, Option<RowStats<B>>) {
        let (mut x, norm) = self.normalize(x);
        if self.cfg.apply_b_dec_to_input {
            x = x - self.b_dec.clone().unsqueeze();
        }
        let pre = x.matmul(self.w_enc.clone());
        let acts = match &self.cfg.architecture {
            Architecture::Gated => {
                let (b_gate, b_mag, exp_r) = self.gated.clone().expect("gated weights");
                let gate = (pre.clone() + b_gate.unsqueeze()).greater_elem(0.0).float();
                let mag = (pre * exp_r.unsqueeze() + b_mag.unsqueeze()).clamp_min(0.0);
                gate * mag
            }
            arch => {
                let pre = pre + self.b_enc.clone().unsqueeze();
                match arch {
                    Architecture::Standard => pre.clamp_min(0.0),
                    Architecture::JumpRelu => {
                        let t = self.threshold.clone().expect("threshold").unsqueeze();
                        let keep = pre.clone().greater(t).float();
                        pre.clamp_min(0.0) * keep
                    }
                    Architecture::TopK { k, .. } => {
                        let pre = match &self.dec_norm {
                            Some(n) => pre * n.clone().unsqueeze(),
                            None => pre,
                        };
                        let k = (*k).min(self.cfg.d_sae);
                        let (values, indices) = pre.clone().topk_with_indices(k, 1);
                        pre.zeros_like().scatter(
                            1,
                            indices,
                            values.clamp_min(0.0),
                            IndexingUpdateOp::Add,
                        )
                    }
                    Architecture::Gated => unreachable!("handled above"),
                }
            }
        };
        (acts, norm)
    }

    fn check_width(&self, width: usize) -> Result<()> {
        if width != self.cfg.d_in {
            return Err(Error::InputWidth {
                expected: self.cfg.d_in,
                actual: width,
            });
        }
        Ok(())
    }

    /// Latent activations `[n, d_sae]` of `x: [n, d_in]`.
    ///
    /// # Errors
    /// [`Error::InputWidth`] for the wrong width.
    pub fn encode(&self, x: Tensor<B, 2>) -> Result<Tensor<B, 2>> {
        self.check_width(x.dims()[1])?;
        Ok(self.encode_inner(x).0)
    }

    /// Reconstruction `acts @ W_dec + b_dec` (in the normalised space for `layer_norm` /
    /// `constant_norm_rescale` SAEs; [`DeviceSae::forward`] maps back).
    ///
    /// # Errors
    /// [`Error::Shape`] if `acts` is not `[n, d_sae]`.
    pub fn decode(&self, acts: Tensor<B, 2>) -> Result<Tensor<B, 2>> {
        let [n, f] = acts.dims();
        if f != self.cfg.d_sae {
            return Err(Error::Shape {
                key: "feature_acts".into(),
                expected: vec![n, self.cfg.d_sae],
                actual: vec![n, f],
            });
        }
        let acts = match &self.dec_norm {
            Some(norm) => acts / norm.clone().unsqueeze(),
            None => acts,
        };
        Ok(acts.matmul(self.w_dec.clone()) + self.b_dec.clone().unsqueeze())
    }

    /// Latent activations `[n, d_sae]` of `x: [n, d_in]` and the per-row factor `[n, 1]` that
    /// maps the decoder's output space back to the input space (`None` when the SAE does not
    /// normalise its input, i.e. the factor is 1). A change `Δz` of the latents changes the
    /// reconstruction in input space by `(Δz[:, S] @ decoder_rows(S)) · factor`, the rule
    /// steering through an SAE with its error term kept relies on.
    ///
    /// # Errors
    /// [`Error::InputWidth`] for the wrong width.
    pub fn encode_with_scale(
        &self,
        x: Tensor<B, 2>,
    ) -> Result<(Tensor<B, 2>, Option<Tensor<B, 2>>)> {
        self.check_width(x.dims()[1])?;
        let (acts, norm) = self.encode_inner(x);
        Ok((acts, norm.map(|(_, scale)| scale)))
    }

    /// The decoder rows of `features` as one unit of each latent adds them to the
    /// reconstruction, `[k, d_in]`: `W_dec[i]`, divided by `‖W_dec[i]‖` for TopK SAEs that
    /// rescale their activations by the decoder norm.
    ///
    /// # Errors
    /// [`Error::FeatureOutOfRange`] for a feature `≥ d_sae`.
    pub fn decoder_rows(&self, features: &[usize]) -> Result<Tensor<B, 2>> {
        let d_sae = self.cfg.d_sae;
        if let Some(&feature) = features.iter().find(|&&f| f >= d_sae) {
            return Err(Error::FeatureOutOfRange {
                index: feature,
                d_sae,
            });
        }
        let device = self.w_dec.device();
        let ids: Vec<i64> = features.iter().map(|&f| f as i64).collect();
        let ids = Tensor::<B, 1, burn::tensor::Int>::from_data(
            burn::tensor::TensorData::new(ids, [features.len()]),
            &device,
        );
        let rows = self.w_dec.clone().select(0, ids.clone());
        Ok(match &self.dec_norm {
            Some(norm) => rows / norm.clone().select(0, ids).unsqueeze_dim(1),
            None => rows,
        })
    }

    /// `(feature_acts, reconstruction)` of `x: [n, d_in]`, the reconstruction in input space.
    ///
    /// # Errors
    /// [`Error::InputWidth`] for the wrong width.
    pub fn forward(&self, x: Tensor<B, 2>) -> Result<(Tensor<B, 2>, Tensor<B, 2>)> {
        self.check_width(x.dims()[1])?;
        let (acts, norm) = self.encode_inner(x);
        let mut out = self.decode(acts.clone())?;
        if let Some((shift, scale)) = norm {
            out = out * scale + shift;
        }
        Ok((acts, out))
    }
}

/// Output of [`run_with_sae`].
#[derive(Clone, Debug)]
pub struct SaeRun<B: Backend> {
    /// The hook the SAE read.
    pub hook: HookPoint,
    /// Logits `[batch, pos, d_vocab]` (with the reconstruction spliced in when requested).
    pub logits: Tensor<B, 3>,
    /// Latent activations `[batch, pos, d_sae]` (TransformerLens/SAELens
    /// `<hook>.hook_sae_acts_post`).
    pub feature_acts: Tensor<B, 3>,
    /// Reconstructions `[batch, pos, d_in]` (`<hook>.hook_sae_recons`, in input space).
    pub sae_out: Tensor<B, 3>,
}

/// Whether `hook` is the hook `sae` was trained on (its `metadata.hook_name`, compared as hook
/// points; as text when the name does not parse); `None` when the config names no hook. An SAE
/// at another hook than its own is allowed only where the caller asks for it explicitly.
pub fn is_own_hook(sae: &SaeConfig, hook: HookPoint) -> Option<bool> {
    let own = sae.metadata.hook_name.as_deref()?;
    Some(match own.parse::<HookPoint>() {
        Ok(own) => own == hook,
        Err(_) => own == hook.to_string(),
    })
}

/// The hook point an SAE reads, from `metadata.hook_name`, checked against `model`.
///
/// # Errors
/// [`Error::Config`] without a hook name; the model's error for a name it does not have;
/// [`Error::HookWidth`] when the hook's width is not the SAE's `d_in`.
pub fn sae_hook_point<B: Backend>(
    model: &HookedTransformer<B>,
    sae: &SaeConfig,
) -> Result<HookPoint> {
    let name = sae
        .metadata
        .hook_name
        .as_deref()
        .ok_or_else(|| Error::config("<sae config>", "metadata.hook_name is not set"))?;
    let cfg = model.cfg();
    let point = cfg.parse_hook(name)?;
    let width = cfg.hook_width(&point);
    match width {
        Some(w) if w == sae.d_in => Ok(point),
        Some(w) => Err(Error::HookWidth {
            hook: name.to_string(),
            d_in: sae.d_in,
            width: w,
        }),
        None => Err(Error::Unsupported {
            what: format!("an SAE on `{name}`"),
        }),
    }
}

/// Where an SAE attached with [`attach_sae`] leaves what it computed in the last forward pass
/// that reached its hook.
#[derive(Clone)]
pub struct SaeCapture<B: Backend> {
    hook: HookPoint,
    slot: Captured<B>,
}

impl<B: Backend> SaeCapture<B> {
    /// The hook the SAE reads.
    pub fn hook(&self) -> HookPoint {
        self.hook
    }

    /// `(feature_acts [batch, pos, d_sae], sae_out [batch, pos, d_in])` of the last pass, taken
    /// out (`None` if no pass has reached the hook since the last take).
    pub fn take(&self) -> Option<(Tensor<B, 3>, Tensor<B, 3>)> {
        self.slot.borrow_mut().take()
    }
}

/// Adds `sae` at its hook (`metadata.hook_name`) to `spec`, so one forward pass caches what
/// `spec` asks for and runs the SAE (SAELens `HookedSAETransformer`): the returned
/// [`SaeCapture`] holds the latents and reconstruction afterwards. With `splice` the
/// reconstruction replaces the activation downstream, otherwise the forward is unchanged. The
/// SAE runs after the hooks already in `spec` at that point, and a cache of that hook records
/// the activation after it.
///
/// # Errors
/// See [`sae_hook_point`].
pub fn attach_sae<B: Backend>(
    spec: HookSpec<B>,
    model: &HookedTransformer<B>,
    sae: &DeviceSae<B>,
    splice: bool,
) -> Result<(HookSpec<B>, SaeCapture<B>)> {
    let hook = sae_hook_point(model, sae.config())?;
    let captured: Captured<B> = Rc::default();
    let slot = Rc::clone(&captured);
    let module = sae.clone();
    let spec = spec.hook_with(hook, Positions::All, move |act, ctx| {
        let dims = act.dims();
        let (b, p) = (dims[0], dims[1]);
        let flat: Tensor<B, 2> = match act.clone() {
            HookActivation::Rank3(t) => t.reshape([b * p, dims[2]]),
            HookActivation::Rank4(t) => t.reshape([b * p, dims[2] * dims[3]]),
        };
        let (acts, recon) = module
            .forward(flat)
            .map_err(|e| interp_models::Error::HookFailed {
                hook: ctx.point.to_string(),
                message: e.to_string(),
            })?;
        let d_sae = acts.dims()[1];
        let recon3: Tensor<B, 3> = recon.clone().reshape([b, p, recon.dims()[1]]);
        *slot.borrow_mut() = Some((acts.reshape([b, p, d_sae]), recon3.clone()));
        if !splice {
            return Ok(act);
        }
        Ok(match act {
            HookActivation::Rank3(_) => HookActivation::Rank3(recon3),
            HookActivation::Rank4(_) => {
                HookActivation::Rank4(recon.reshape([b, p, dims[2], dims[3]]))
            }
        })
    });
    Ok((
        spec,
        SaeCapture {
            hook,
            slot: captured,
        },
    ))
}

/// Runs `model` on `batch` with `sae` at its hook (`metadata.hook_name`) and returns the
/// latent activations; with `splice` the reconstruction replaces the activation downstream
/// (SAELens `run_with_saes`), otherwise the forward is unchanged.
///
/// # Errors
/// See [`sae_hook_point`]; model errors.
pub fn run_with_sae<B: Backend>(
    model: &HookedTransformer<B>,
    batch: &Batch,
    sae: &DeviceSae<B>,
    splice: bool,
) -> Result<SaeRun<B>> {
    let (spec, capture) = attach_sae(HookSpec::new(), model, sae, splice)?;
    let logits = model.run_with_hooks(batch, &spec)?;
    let (feature_acts, sae_out) = capture.take().expect("the hook runs once per forward");
    Ok(SaeRun {
        hook: capture.hook(),
        logits,
        feature_acts,
        sae_out,
    })
}
