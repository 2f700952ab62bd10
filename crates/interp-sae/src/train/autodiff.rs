//! The training step on any burn autodiff backend.
//!
//! The same losses as the hand-derived CPU step ([`super::step`]), written as burn tensor
//! operations and differentiated by burn. Latent selection (TopK, BatchTopK, AuxK) is a constant
//! mask, as in every SAE trainer: gradients reach only the selected pre-activations. JumpReLU's
//! threshold gets the straight-through estimators of Rajamanoharan et al. (2024) through the
//! identity `f(θ) − detach(f(θ))`, whose value is 0 and whose gradient is `f′(θ)`.
//!
//! Codes are dense `[batch, d_sae]` here, so this path does not have the sparse backward pass
//! of the CPU step; it exists to run training on GPU backends and to check the hand-derived
//! gradients against an independent derivation.

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};
use ndarray::{Array1, Array2, ArrayView2};

use super::config::TrainArch;
use super::params::ParamSet;
use super::step::{squared_errors, total_variance, GradientEngine, StepSettings, StepStats};
use crate::device::{tensor1, tensor2, to_host};
use crate::error::{Error, Result};

/// Gradients from burn autodiff on backend `B`, on `device`.
pub(crate) struct BurnAutodiff<B: AutodiffBackend> {
    pub device: B::Device,
}

/// The parameters as leaf tensors that track gradients.
struct Leaves<B: AutodiffBackend> {
    w_enc: Tensor<B, 2>,
    b_enc: Tensor<B, 1>,
    w_dec: Tensor<B, 2>,
    b_dec: Tensor<B, 1>,
    log_threshold: Option<Tensor<B, 1>>,
}

impl<B: AutodiffBackend> BurnAutodiff<B> {
    fn leaves(&self, p: &ParamSet) -> Leaves<B> {
        let d = &self.device;
        Leaves {
            w_enc: tensor2::<B>(&p.w_enc, d).require_grad(),
            b_enc: tensor1::<B>(&p.b_enc, d).require_grad(),
            w_dec: tensor2::<B>(&p.w_dec, d).require_grad(),
            b_dec: tensor1::<B>(&p.b_dec, d).require_grad(),
            log_threshold: (!p.log_threshold.is_empty())
                .then(|| tensor1::<B>(&p.log_threshold, d).require_grad()),
        }
    }
}

/// `t` read back as a host matrix of shape `dim`.
fn host2<B: Backend>(t: Tensor<B, 2>, dim: (usize, usize), what: &str) -> Result<Array2<f32>> {
    Array2::from_shape_vec(dim, to_host(t, what)?).map_err(|e| Error::Data {
        reason: format!("{what}: {e}"),
    })
}

/// A scalar tensor's value.
fn scalar<B: Backend>(t: Tensor<B, 1>) -> f64 {
    t.into_scalar().elem::<f64>()
}

// Selection runs on the inner backend: burn's autodiff backend does not implement `topk`.

/// `mask` (`[batch, d_sae]`, 0/1) of the `k` largest positive entries of each row of `pre`.
fn top_k_mask<B: Backend>(pre: &Tensor<B, 2>, k: usize) -> Tensor<B, 2> {
    let kth = pre.clone().topk(k, 1).narrow(1, k - 1, 1);
    let selected = (pre.clone() - kth).greater_equal_elem(0.0).float();
    selected * pre.clone().greater_elem(0.0).float()
}

/// BatchTopK's mask of the `k · batch` largest positive entries of the batch, and the smallest
/// value kept (`None` when nothing is positive).
fn batch_top_k_mask<B: Backend>(pre: &Tensor<B, 2>, k: usize) -> (Tensor<B, 2>, Option<f32>) {
    let [b, f] = pre.dims();
    let want = (k * b).min(b * f);
    let positive = pre.clone().greater_elem(0.0);
    let flat = pre.clone().clamp_min(0.0).reshape([b * f]);
    let nth = scalar(flat.topk(want, 0).narrow(0, want - 1, 1)) as f32;
    let threshold = if nth > 0.0 {
        nth
    } else {
        // Fewer than k·batch positive entries: keep them all.
        let min_positive = pre
            .clone()
            .mask_fill(positive.clone().bool_not(), f32::INFINITY);
        scalar(min_positive.min()) as f32
    };
    let mask = pre
        .clone()
        .greater_equal_elem(threshold)
        .float()
        .mul(positive.float());
    (mask, threshold.is_finite().then_some(threshold))
}

/// AuxK's mask: the `k_aux` largest positive entries of each row among dead latents.
fn aux_mask<B: Backend>(pre: &Tensor<B, 2>, dead: &[bool], k_aux: usize) -> Tensor<B, 2> {
    let device = pre.device();
    let f = dead.len();
    let dead_row = Array2::from_shape_fn((1, f), |(_, i)| if dead[i] { 1.0 } else { 0.0 });
    let dead_row = tensor2::<B>(&dead_row, &device);
    // Alive latents drop far below any pre-activation, so only dead ones can be selected.
    let n_dead = dead.iter().filter(|&&d| d).count();
    let candidates = pre.clone() - (dead_row.clone().neg() + 1.0) * 1e30;
    top_k_mask(&candidates, k_aux.min(n_dead)) * dead_row
}

impl<B: AutodiffBackend> GradientEngine for BurnAutodiff<B> {
    fn name(&self) -> String {
        format!("burn autodiff ({:?})", self.device)
    }

    fn forward_backward(
        &mut self,
        params: &ParamSet,
        x: ArrayView2<'_, f32>,
        s: &StepSettings<'_>,
        grads: &mut ParamSet,
    ) -> Result<(StepStats, Option<f32>)> {
        let (batch, d_in) = x.dim();
        let inv_b = 1.0 / batch as f64;
        let p = self.leaves(params);
        let x_dev = tensor2::<B>(&x.to_owned(), &self.device);
        let x_c = if s.apply_b_dec {
            x_dev.clone() - p.b_dec.clone().unsqueeze::<2>()
        } else {
            x_dev.clone()
        };
        let pre = x_c.matmul(p.w_enc.clone().transpose()) + p.b_enc.clone().unsqueeze::<2>();
        let pre_const = pre.clone().detach();
        let pre_inner = pre.clone().inner();

        let mut min_kept = None;
        let mut sparsity: Option<Tensor<B, 1>> = None;
        let (z, active) = match *s.arch {
            TrainArch::TopK { k, .. } => {
                let mask = Tensor::from_inner(top_k_mask(&pre_inner, k));
                (pre.clone() * mask.clone(), mask)
            }
            TrainArch::BatchTopK { k, .. } => {
                let (mask, kept) = batch_top_k_mask(&pre_inner, k);
                let mask = Tensor::from_inner(mask);
                min_kept = kept;
                (pre.clone() * mask.clone(), mask)
            }
            TrainArch::Relu {
                weight_by_decoder_norm,
                ..
            } => {
                let z = burn::tensor::activation::relu(pre.clone());
                let per_latent = z.clone().sum_dim(0).squeeze_dim::<1>(0);
                sparsity = Some(if weight_by_decoder_norm {
                    let norms = p.w_dec.clone().powi_scalar(2).sum_dim(1).sqrt();
                    (per_latent * norms.squeeze_dim::<1>(1)).sum()
                } else {
                    per_latent.sum()
                });
                let active = pre_const.clone().greater_elem(0.0).float();
                (z, active)
            }
            TrainArch::JumpRelu { bandwidth, .. } => {
                let log_t = p.log_threshold.clone().ok_or_else(|| Error::TrainConfig {
                    reason: "JumpReLU training without thresholds".into(),
                })?;
                let theta = log_t.exp().unsqueeze::<2>();
                let theta_const = theta.clone().detach();
                let eps = f64::from(bandwidth);
                let active = (pre_const.clone() - theta_const.clone())
                    .greater_elem(0.0)
                    .float();
                // Rectangle kernel of width ε around θ.
                let window = (pre_const.clone() - theta_const.clone())
                    .abs()
                    .lower_elem(0.5 * eps)
                    .float();
                // ∂z/∂θ = −(θ/ε)·K and ∂L0/∂θ = −K/ε, as zero-valued terms.
                let z_ste = window.clone() * theta_const.neg() / eps * theta.clone();
                let l0_ste = window / (-eps) * theta;
                let z = pre.clone() * active.clone() + z_ste.clone() - z_ste.detach();
                let l0 = active.clone().sum() + l0_ste.clone().sum() - l0_ste.sum().detach();
                sparsity = Some(l0);
                (z, active)
            }
        };

        let x_hat = z.matmul(p.w_dec.clone()) + p.b_dec.clone().unsqueeze::<2>();
        let mse = (x_hat.clone() - x_dev.clone()).powi_scalar(2).sum() * inv_b;
        let mut loss = mse;
        if let Some(sp) = &sparsity {
            loss = loss + sp.clone() * (f64::from(s.sparsity_coef) * inv_b);
        }
        let mut aux_value = 0.0;
        if let Some((k_aux, coef)) = s.arch.aux(d_in) {
            let n_dead = s.dead.iter().filter(|&&d| d).count();
            if n_dead > 0 && coef != 0.0 {
                let scale = f64::from(coef) * (n_dead as f64 / k_aux as f64).min(1.0);
                let aux_z = pre.clone() * Tensor::from_inner(aux_mask(&pre_inner, s.dead, k_aux));
                let residual = (x_dev - x_hat.clone()).detach();
                let aux_hat = aux_z.matmul(p.w_dec.clone());
                let aux = (residual - aux_hat).powi_scalar(2).sum() * (scale * inv_b);
                aux_value = scalar(aux.clone());
                loss = loss + aux;
            }
        }

        let tape = loss.backward();
        let grad2 = |t: &Tensor<B, 2>, out: &mut Array2<f32>, what: &str| -> Result<()> {
            match t.grad(&tape) {
                Some(g) => {
                    let dim = out.dim();
                    out.assign(&host2(g, dim, what)?);
                }
                None => out.fill(0.0),
            }
            Ok(())
        };
        grad2(&p.w_enc, &mut grads.w_enc, "the W_enc gradient")?;
        grad2(&p.w_dec, &mut grads.w_dec, "the W_dec gradient")?;
        let grad1 = |t: &Tensor<B, 1>, out: &mut Array1<f32>, what: &str| -> Result<()> {
            match t.grad(&tape) {
                Some(g) => out.assign(&Array1::from(to_host(g, what)?)),
                None => out.fill(0.0),
            }
            Ok(())
        };
        grad1(&p.b_enc, &mut grads.b_enc, "the b_enc gradient")?;
        grad1(&p.b_dec, &mut grads.b_dec, "the b_dec gradient")?;
        if let Some(t) = &p.log_threshold {
            grad1(t, &mut grads.log_threshold, "the threshold gradient")?;
        }

        let fired: Vec<u32> = to_host(active.sum_dim(0), "firing counts")?
            .into_iter()
            .map(|c| c.round() as u32)
            .collect();
        let x_hat = host2(x_hat.detach(), (batch, d_in), "x̂")?;
        let sq_err: f64 = squared_errors(x, &x_hat)
            .iter()
            .map(|&e| f64::from(e))
            .sum();
        let sparsity = sparsity.map_or(0.0, |t| scalar(t.detach()) * inv_b);
        let mse = sq_err * inv_b;
        let stats = StepStats {
            loss: mse + f64::from(s.sparsity_coef) * sparsity + aux_value,
            mse,
            sparsity,
            aux: aux_value,
            l0: fired.iter().map(|&f| f64::from(f)).sum::<f64>() * inv_b,
            sq_err,
            sq_var: total_variance(x),
            fired,
        };
        Ok((stats, min_kept))
    }
}
