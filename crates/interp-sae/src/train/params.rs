//! Trainable tensors, their gradients and Adam moments, all in one feature-major layout.

use ndarray::{Array1, Array2, Axis, Zip};
use rayon::prelude::*;

use super::config::TrainConfig;
use interp_core::rng::SplitMix64;

/// One value per trainable tensor. Encoder and decoder are both stored feature-major
/// (`[d_sae, d_in]`, row `i` belongs to latent `i`) so that sparse gradients touch whole rows.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ParamSet {
    /// Encoder rows (`W_enc` transposed).
    pub w_enc: Array2<f32>,
    /// Encoder bias.
    pub b_enc: Array1<f32>,
    /// Decoder rows.
    pub w_dec: Array2<f32>,
    /// Decoder bias (also subtracted from inputs when the input bias is tied).
    pub b_dec: Array1<f32>,
    /// `ln θ` of JumpReLU (empty otherwise).
    pub log_threshold: Array1<f32>,
}

/// Names of the tensors in checkpoints, in [`ParamSet::tensors`] order.
pub(crate) const TENSOR_NAMES: [&str; 5] = ["w_enc", "b_enc", "w_dec", "b_dec", "log_threshold"];

impl ParamSet {
    /// Zeros shaped like the parameters of `cfg`.
    pub fn zeros(cfg: &TrainConfig, jumprelu: bool) -> Self {
        let (f, d) = (cfg.d_sae, cfg.d_in);
        ParamSet {
            w_enc: Array2::zeros((f, d)),
            b_enc: Array1::zeros(f),
            w_dec: Array2::zeros((f, d)),
            b_dec: Array1::zeros(d),
            log_threshold: Array1::zeros(if jumprelu { f } else { 0 }),
        }
    }

    /// Random unit decoder rows (norm 0.1 without the unit-norm constraint), encoder = decoder
    /// transposed (tied initialisation), zero biases, `ln θ₀` thresholds.
    pub fn init(cfg: &TrainConfig, init_threshold: Option<f32>, rng: &mut SplitMix64) -> Self {
        let mut p = ParamSet::zeros(cfg, init_threshold.is_some());
        p.w_dec.iter_mut().for_each(|w| *w = rng.normal());
        let norm = if cfg.unit_norm_decoder { 1.0 } else { 0.1 };
        normalize_rows(&mut p.w_dec, norm);
        p.w_enc.assign(&p.w_dec);
        if let Some(t) = init_threshold {
            p.log_threshold.fill(t.ln());
        }
        p
    }

    /// The tensors as flat slices, in [`TENSOR_NAMES`] order.
    pub fn tensors(&self) -> [&[f32]; 5] {
        [
            self.w_enc.as_slice().expect("standard layout"),
            self.b_enc.as_slice().expect("standard layout"),
            self.w_dec.as_slice().expect("standard layout"),
            self.b_dec.as_slice().expect("standard layout"),
            self.log_threshold.as_slice().expect("standard layout"),
        ]
    }

    /// The tensors as mutable flat slices, in [`TENSOR_NAMES`] order.
    pub fn tensors_mut(&mut self) -> [&mut [f32]; 5] {
        [
            self.w_enc.as_slice_mut().expect("standard layout"),
            self.b_enc.as_slice_mut().expect("standard layout"),
            self.w_dec.as_slice_mut().expect("standard layout"),
            self.b_dec.as_slice_mut().expect("standard layout"),
            self.log_threshold.as_slice_mut().expect("standard layout"),
        ]
    }

    /// Shapes, in [`TENSOR_NAMES`] order.
    pub fn shapes(&self) -> [Vec<usize>; 5] {
        [
            self.w_enc.shape().to_vec(),
            vec![self.b_enc.len()],
            self.w_dec.shape().to_vec(),
            vec![self.b_dec.len()],
            vec![self.log_threshold.len()],
        ]
    }

    /// Sets everything to zero (in parallel: the matrices are large).
    pub fn zero(&mut self) {
        for t in self.tensors_mut() {
            t.par_chunks_mut(1 << 16).for_each(|c| c.fill(0.0));
        }
    }

    /// Global L2 norm.
    pub fn norm(&self) -> f64 {
        self.tensors()
            .iter()
            .map(|t| {
                t.par_chunks(1 << 16)
                    .map(|c| c.iter().map(|&v| v as f64 * v as f64).sum::<f64>())
                    .collect::<Vec<_>>()
                    .into_iter()
                    .sum::<f64>()
            })
            .sum::<f64>()
            .sqrt()
    }

    /// Multiplies everything by `s`.
    pub fn scale(&mut self, s: f32) {
        for t in self.tensors_mut() {
            t.par_chunks_mut(1 << 16)
                .for_each(|c| c.iter_mut().for_each(|v| *v *= s));
        }
    }

    /// Zeros everything that belongs to latent `i` (its rows and bias/threshold entries).
    pub fn zero_latent(&mut self, i: usize) {
        self.w_enc.row_mut(i).fill(0.0);
        self.w_dec.row_mut(i).fill(0.0);
        self.b_enc[i] = 0.0;
        if !self.log_threshold.is_empty() {
            self.log_threshold[i] = 0.0;
        }
    }
}

/// Scales every row of `m` to L2 norm `norm` (zero rows stay zero).
pub(crate) fn normalize_rows(m: &mut Array2<f32>, norm: f32) {
    m.axis_iter_mut(Axis(0))
        .into_par_iter()
        .for_each(|mut row| {
            let n = row.dot(&row).sqrt();
            if n > 0.0 {
                row *= norm / n;
            }
        });
}

/// Adam (Kingma & Ba) with bias correction; `m` and `v` are the moments.
pub(crate) struct Adam<'a> {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// 1-based step count after this update.
    pub t: u64,
    pub m: &'a mut ParamSet,
    pub v: &'a mut ParamSet,
}

impl Adam<'_> {
    /// `p ← p − lr · m̂ / (√v̂ + ε)`.
    pub fn update(self, params: &mut ParamSet, grads: &ParamSet) {
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(self.t.min(i32::MAX as u64) as i32);
        let c2 = 1.0 - b2.powi(self.t.min(i32::MAX as u64) as i32);
        let step = self.lr / c1;
        let c2_sqrt = c2.sqrt();
        let eps = self.eps;
        let ps = params.tensors_mut();
        let gs = grads.tensors();
        let ms = self.m.tensors_mut();
        let vs = self.v.tensors_mut();
        for (((p, g), m), v) in ps.into_iter().zip(gs).zip(ms).zip(vs) {
            const CHUNK: usize = 1 << 14;
            p.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .zip(m.par_chunks_mut(CHUNK))
                .zip(v.par_chunks_mut(CHUNK))
                .for_each(|(((p, g), m), v)| {
                    Zip::from(ndarray::ArrayViewMut1::from(p))
                        .and(ndarray::ArrayView1::from(g))
                        .and(ndarray::ArrayViewMut1::from(m))
                        .and(ndarray::ArrayViewMut1::from(v))
                        .for_each(|p, &g, m, v| {
                            *m = b1 * *m + (1.0 - b1) * g;
                            *v = b2 * *v + (1.0 - b2) * g * g;
                            *p -= step * *m / (v.sqrt() / c2_sqrt + eps);
                        });
                });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::config::TrainArch;

    #[test]
    fn adam_first_step_moves_each_weight_by_lr_against_its_gradient_sign() {
        let cfg = TrainConfig::new(TrainArch::topk(1), 2, 3, 10);
        let mut p = ParamSet::zeros(&cfg, false);
        let mut g = ParamSet::zeros(&cfg, false);
        g.w_dec[[1, 0]] = 5.0;
        g.b_dec[1] = -0.01;
        let (mut m, mut v) = (ParamSet::zeros(&cfg, false), ParamSet::zeros(&cfg, false));
        Adam {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            t: 1,
            m: &mut m,
            v: &mut v,
        }
        .update(&mut p, &g);
        assert!((p.w_dec[[1, 0]] + 0.1).abs() < 1e-5);
        assert!((p.b_dec[1] - 0.1).abs() < 1e-4);
        assert_eq!(p.w_enc[[0, 0]], 0.0);
    }
}
