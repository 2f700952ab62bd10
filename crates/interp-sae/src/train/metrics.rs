//! What training records: [`StepMetrics`] (one line of `metrics.jsonl` per logging interval),
//! the interval accumulator behind them, and the log10 feature-density bins they count
//! latents in. The trainer writes these and the plots read them; this file imports neither.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Edges of the log10 feature-density histogram: `[-∞ (never fired), -8, -7.5, …, 0]`.
pub(super) const DENSITY_LOG10_MIN: f64 = -8.0;
pub(super) const DENSITY_BIN_WIDTH: f64 = 0.5;
pub(super) const DENSITY_BINS: usize = 16;

/// The density-histogram bin of a latent: 0 if it never fired in the interval, else `1 +` the
/// half-decade bin of its log10 firing density (clamped to the first and last bin).
pub(super) fn density_bin(fired: bool, log10_density: f64) -> usize {
    if !fired {
        0
    } else {
        1 + (((log10_density - DENSITY_LOG10_MIN) / DENSITY_BIN_WIDTH)
            .floor()
            .max(0.0) as usize)
            .min(DENSITY_BINS - 1)
    }
}

/// The label of density-histogram bin `bin`: `"never"` for 0, else the bin's lower log10 edge.
pub(super) fn density_bin_label(bin: usize) -> String {
    if bin == 0 {
        "never".to_string()
    } else {
        format!(
            "{:.1}",
            DENSITY_LOG10_MIN + DENSITY_BIN_WIDTH * (bin - 1) as f64
        )
    }
}

/// Metrics of one logging interval (means over its steps), one line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Steps completed.
    pub step: u64,
    /// Tokens seen.
    pub tokens: u64,
    /// Learning rate of the last step.
    pub lr: f32,
    /// Total loss.
    pub loss: f64,
    /// `mean_b ‖x − x̂‖²` (on scaled inputs when inputs are normalised).
    pub mse: f64,
    /// L1 (ReLU) or L0 (JumpReLU) term without coefficient; 0 for TopK families.
    pub sparsity: f64,
    /// Sparsity coefficient in effect (after warm-up).
    pub sparsity_coef: f32,
    /// AuxK loss (TopK families).
    pub aux_loss: f64,
    /// Mean active latents per token.
    pub l0: f64,
    /// Fraction of variance unexplained, `Σ‖x − x̂‖² / Σ‖x − μ‖²` with μ the per-dimension mean
    /// of each batch.
    pub fvu: f64,
    /// Fraction of latents that did not fire for `dead_after_steps` steps.
    pub dead_fraction: f64,
    /// Counts of latents by log10 firing density over the interval: bin 0 never fired, bin `b ≥
    /// 1` covers `[-8 + (b-1)/2, -8 + b/2)` (the first also takes anything rarer).
    pub density_histogram: Vec<u32>,
    /// Off-diagonal mean |cos| between decoder rows (seed 002's orthogonality), when computed.
    pub decoder_mean_abs_cos: Option<f64>,
    /// Off-diagonal max |cos| between decoder rows, when computed.
    pub decoder_max_abs_cos: Option<f64>,
    /// Latents resampled or re-initialised during the interval.
    pub revived: u64,
    /// What an [`Evaluator`](super::Evaluator) reported (CE loss recovered, KL, …).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub eval: Map<String, Value>,
}

impl StepMetrics {
    /// The line seed 002 logs: `Step 100 | Loss: 12.8732 | off_diag_mean: 0.0300` (the
    /// orthogonality as `n/a` when this interval did not measure it).
    pub fn write_up_line(&self) -> String {
        let ortho = self
            .decoder_mean_abs_cos
            .map_or_else(|| "n/a".to_string(), |c| format!("{c:.4}"));
        format!(
            "Step {} | Loss: {:.4} | off_diag_mean: {ortho}",
            self.step, self.loss
        )
    }
}

/// Sums over the steps of the current logging interval (saved in checkpoints).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Accumulator {
    pub(super) steps: u64,
    pub(super) loss: f64,
    pub(super) mse: f64,
    pub(super) sparsity: f64,
    pub(super) aux: f64,
    pub(super) l0: f64,
    pub(super) sq_err: f64,
    pub(super) sq_var: f64,
    pub(super) revived: u64,
}

/// The metrics log in an output directory.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// Appends `m` to the metrics log at `path` as one JSON line.
pub(super) fn append_line(path: &Path, m: &StepMetrics) -> Result<()> {
    let line = serde_json::to_string(m).expect("metrics serialise") + "\n";
    OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_up_line_has_seed_002s_format() {
        let mut m: StepMetrics = serde_json::from_value(serde_json::json!({
            "step": 100, "tokens": 0, "lr": 0.0, "loss": 12.87321, "mse": 0.0, "sparsity": 0.0,
            "sparsity_coef": 0.0, "aux_loss": 0.0, "l0": 0.0, "fvu": 0.0, "dead_fraction": 0.0,
            "density_histogram": [], "decoder_mean_abs_cos": 0.03004, "decoder_max_abs_cos": 0.5,
            "revived": 0
        }))
        .unwrap();
        assert_eq!(
            m.write_up_line(),
            "Step 100 | Loss: 12.8732 | off_diag_mean: 0.0300"
        );
        m.decoder_mean_abs_cos = None;
        assert_eq!(
            m.write_up_line(),
            "Step 100 | Loss: 12.8732 | off_diag_mean: n/a"
        );
    }
}
