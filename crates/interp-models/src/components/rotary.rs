//! Rotary position embeddings (Su et al. 2021), in Hugging Face's "rotate half" layout: the
//! first `dim / 2` dimensions of a head pair with the next `dim / 2`; dimensions past `dim`
//! (Phi-2's partial rotary) pass through.

use burn::tensor::{backend::Backend, Tensor, TensorData};

use crate::config::Rotary;

/// `cos` and `sin` of every (row, position, frequency) of one forward pass.
pub(crate) struct RotaryTables<B: Backend> {
    /// `[batch · pos, dim / 2]`, row-major, for the CPU kernel.
    pub(crate) cos_host: Vec<f32>,
    /// As `cos_host`.
    pub(crate) sin_host: Vec<f32>,
    /// `[batch, pos, 1, dim / 2]`.
    cos: Tensor<B, 4>,
    /// `[batch, pos, 1, dim / 2]`.
    sin: Tensor<B, 4>,
    /// The rotating dimensions of each head.
    pub(crate) dim: usize,
}

impl<B: Backend> RotaryTables<B> {
    /// The tables for `positions` (`[batch · pos]`, row-major) of a batch `[n_batch, n_pos]`.
    pub(crate) fn new(
        rotary: &Rotary,
        positions: &[i64],
        [n_batch, n_pos]: [usize; 2],
        device: &B::Device,
    ) -> Self {
        let inv = rotary.inverse_frequencies();
        let half = inv.len();
        let mut cos_host = Vec::with_capacity(positions.len() * half);
        let mut sin_host = Vec::with_capacity(positions.len() * half);
        for &p in positions {
            for &f in &inv {
                let angle = p as f32 * f;
                cos_host.push(angle.cos());
                sin_host.push(angle.sin());
            }
        }
        let shape = [n_batch, n_pos, 1, half];
        let cos = Tensor::from_data(TensorData::new(cos_host.clone(), shape), device);
        let sin = Tensor::from_data(TensorData::new(sin_host.clone(), shape), device);
        RotaryTables {
            cos_host,
            sin_host,
            cos,
            sin,
            dim: rotary.dim,
        }
    }

    /// Rotates queries or keys `[batch, pos, heads, d_head]`.
    pub(crate) fn apply(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        if let Some(y) = crate::kernels::rotary(&x, &self.cos_host, &self.sin_host, self.dim) {
            return y;
        }
        let d_head = x.dims()[3];
        let half = self.dim / 2;
        let x1 = x.clone().narrow(3, 0, half);
        let x2 = x.clone().narrow(3, half, half);
        let r1 = x1.clone() * self.cos.clone() - x2.clone() * self.sin.clone();
        let r2 = x2 * self.cos.clone() + x1 * self.sin.clone();
        let mut parts = vec![r1, r2];
        if self.dim < d_head {
            parts.push(x.narrow(3, self.dim, d_head - self.dim));
        }
        Tensor::cat(parts, 3)
    }
}
