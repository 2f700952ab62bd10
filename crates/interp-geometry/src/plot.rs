//! PNG / SVG plots (feature `plot`, on by default): cosine heatmaps with feature labels and
//! histograms of concept-pair statistics against the random baseline. The format follows the
//! file extension.

use std::path::Path;

use interp_core::plot;
use ndarray::ArrayView2;

use crate::error::Result;
use crate::pairs::MatrixAnalysis;

/// Heatmap of a cosine matrix (e.g. from [`crate::similarity_matrix`]) with labelled axes; the
/// colour scale is fixed to `[-1, 1]`.
///
/// # Errors
/// [`crate::Error::Plot`] (bad extension, label counts that do not match the matrix, I/O).
pub fn cosine_heatmap(
    path: &Path,
    title: &str,
    row_labels: &[String],
    col_labels: &[String],
    cosines: ArrayView2<'_, f32>,
) -> Result<()> {
    let (rows, cols) = cosines.dim();
    let values: Vec<f32> = cosines.iter().copied().collect();
    plot::heatmap(
        path,
        title,
        row_labels,
        col_labels,
        &values,
        rows,
        cols,
        Some((-1.0, 1.0)),
    )?;
    Ok(())
}

/// Overlaid histograms of the concept pairs' mean member cosine and the random baseline's
/// (`bins` bins, each group normalised to a density).
///
/// # Errors
/// [`crate::Error::Plot`].
pub fn pair_histogram(path: &Path, analysis: &MatrixAnalysis, bins: usize) -> Result<()> {
    let groups = vec![
        (
            "concept pairs".to_string(),
            analysis.pairs.iter().map(|p| p.stats.mean).collect(),
        ),
        (
            "random pairs".to_string(),
            analysis.random_samples.iter().map(|r| r.mean).collect(),
        ),
    ];
    plot::histogram(
        path,
        &format!(
            "{} cosine: concept pairs vs random (mean over members)",
            analysis.matrix.long_name()
        ),
        "mean cosine",
        &groups,
        bins,
    )?;
    Ok(())
}

/// Histogram of arbitrary groups of cosines (e.g. all-pairs neighbour cosines vs a baseline).
///
/// # Errors
/// [`crate::Error::Plot`].
pub fn cosine_histogram(
    path: &Path,
    title: &str,
    groups: &[(String, Vec<f64>)],
    bins: usize,
) -> Result<()> {
    plot::histogram(path, title, "cosine", groups, bins)?;
    Ok(())
}
