//! Loss curves and feature-density histograms of a finished run.

use std::path::Path;

use interp_core::plot::{bar_chart, line_chart, Series};

use super::metrics::{density_bin_label, StepMetrics};
use crate::error::{Error, Result};

/// Writes `loss.{png,svg}` (MSE, FVU and loss against steps, log scale),
/// `sparsity.{png,svg}` (L0 and dead fraction against steps) and `density.{png,svg}` (latents
/// per log10 firing-density bin at the last interval) into `dir`.
pub(crate) fn write_plots(dir: &Path, history: &[StepMetrics]) -> Result<()> {
    let Some(last) = history.last() else {
        return Ok(());
    };
    let series = |name: &str, f: fn(&StepMetrics) -> f64| Series {
        name: name.into(),
        points: history.iter().map(|m| (m.step as f64, f(m))).collect(),
    };
    let plot_err = |e: interp_core::plot::PlotError| Error::Data {
        reason: format!("plotting: {e}"),
    };
    let bars: Vec<(String, f64)> = last
        .density_histogram
        .iter()
        .enumerate()
        .map(|(b, &n)| (density_bin_label(b), n as f64))
        .collect();
    for ext in ["png", "svg"] {
        line_chart(
            &dir.join(format!("loss.{ext}")),
            "Reconstruction",
            "step",
            "value (log scale)",
            &[
                series("mse", |m| m.mse),
                series("fvu", |m| m.fvu),
                series("loss", |m| m.loss),
            ],
            true,
        )
        .map_err(plot_err)?;
        line_chart(
            &dir.join(format!("sparsity.{ext}")),
            "Sparsity and dead latents",
            "step",
            "value",
            &[
                series("L0", |m| m.l0),
                series("dead fraction × 100", |m| 100.0 * m.dead_fraction),
            ],
            false,
        )
        .map_err(plot_err)?;
        bar_chart(
            &dir.join(format!("density.{ext}")),
            &format!("Feature density at step {} (log10 bins)", last.step),
            "latents",
            &bars,
        )
        .map_err(plot_err)?;
    }
    Ok(())
}
