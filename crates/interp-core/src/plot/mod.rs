//! Small PNG / SVG plots for training curves and feature-geometry figures (feature `plot`).
//!
//! Four chart kinds — [`line_chart`], [`histogram`], [`heatmap`] and [`bar_chart`] — each
//! writing one file whose format follows the path's extension: `.png` (raster, rendered on the
//! CPU) or `.svg` (vector, text kept as `<text>` elements), case-insensitive. Any other
//! extension is [`PlotError::UnsupportedExtension`].
//!
//! Text is drawn with DejaVu Sans, embedded in the crate and registered with plotters once, as
//! the `sans-serif` family: no system font library is needed.
//!
//! Files are written atomically: rendered to a temporary file in the destination directory
//! (created if missing), then renamed over `path`, so a reader never sees a half-written plot.
//!
//! # Bad input
//!
//! No function panics on bad input; each returns a typed [`PlotError`]. The rules:
//! - **Non-finite values (NaN, ±∞) are skipped**, never an error: a line breaks at them, a
//!   histogram ignores them, a bar is left empty (its label stays), a heatmap cell is drawn grey.
//!   With `log_y`, non-positive y values are skipped the same way.
//! - Nothing left to draw (no series / groups / bars, or only skipped values) is
//!   [`PlotError::EmptyData`]. A heatmap with only non-finite cells is still drawn (all grey).
//! - Constant data is fine: a degenerate axis range is widened around the value.
//! - Inconsistent shapes (heatmap `values.len() != rows * cols`, label counts) are
//!   [`PlotError::Shape`]; meaningless arguments (`bins == 0` or above [`MAX_BINS`], an empty or
//!   inverted heatmap `range`) are [`PlotError::InvalidArgument`], a non-finite `range`
//!   [`PlotError::NonFinite`].
//! - Finite data whose span overflows f64 (values near ±`f64::MAX` of both signs on one linear
//!   axis) is [`PlotError::InvalidArgument`]: no axis can be laid out over an infinite span.
//! - Should plotters itself panic, the panic is caught and returned as [`PlotError::Draw`].
//!
//! The errors of every plot: [`PlotError::UnsupportedExtension`] (checked first, before any
//! other), [`PlotError::Font`], [`PlotError::Draw`] and [`PlotError::Io`].
//!
//! # Example
//! ```no_run
//! use interp_core::plot::{line_chart, Series};
//! let loss = Series {
//!     name: "train".into(),
//!     points: (0..100).map(|s| (s as f64, 1.0 / (1.0 + s as f64))).collect(),
//! };
//! line_chart("loss.png".as_ref(), "SAE loss", "step", "MSE", &[loss], true)?;
//! # Ok::<(), interp_core::plot::PlotError>(())
//! ```
//!
//! # Files
//!
//! One file per chart kind — `lines.rs` ([`line_chart`], [`Series`]), `histograms.rs`,
//! `heatmaps.rs`, `bars.rs` — each holding the public function (input checks, data to draw) and
//! its figure (how it is drawn). What they share is written once: `render.rs` (output format,
//! the embedded font, atomic writing, the white canvas, caught plotters panics), `layout.rs`
//! (the titled chart every line, histogram and bar chart opens with, its mesh and legend,
//! axis ranges, ticks, labels and number formats) and `colour.rs` (the series palette and the
//! diverging heatmap map).

use std::path::PathBuf;

mod bars;
mod colour;
mod heatmaps;
mod histograms;
mod layout;
mod lines;
mod render;

pub use bars::bar_chart;
pub use heatmaps::heatmap;
pub use histograms::histogram;
pub use lines::{line_chart, Series};

/// Most bins a histogram may have.
pub const MAX_BINS: usize = 10_000;
/// Heatmaps larger than this along an axis are drawn block-averaged (see [`heatmap`]).
pub const MAX_HEATMAP_CELLS: usize = 512;

/// What can go wrong drawing a plot.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlotError {
    /// The path does not end in `.png` or `.svg`.
    #[error("{path}: unsupported plot format (use a .png or .svg extension)")]
    UnsupportedExtension {
        /// The path asked for.
        path: PathBuf,
    },
    /// Nothing to draw.
    #[error("nothing to plot: no {what}")]
    EmptyData {
        /// What was missing, e.g. `"series"` or `"finite values"`.
        what: String,
    },
    /// A parameter that must be finite is not.
    #[error("{what} is not finite")]
    NonFinite {
        /// The parameter.
        what: String,
    },
    /// Lengths that must agree do not.
    #[error("{what}: expected {expected}, got {actual}")]
    Shape {
        /// What has the wrong length.
        what: String,
        /// The length required.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// A parameter is out of its valid range.
    #[error("invalid plot argument: {reason}")]
    InvalidArgument {
        /// Why.
        reason: String,
    },
    /// The embedded font could not be registered with plotters.
    #[error("the embedded plot font could not be loaded")]
    Font,
    /// plotters failed while drawing or encoding.
    #[error("{path}: drawing failed: {reason}")]
    Draw {
        /// The file being drawn.
        path: PathBuf,
        /// plotters' error, as text.
        reason: String,
    },
    /// The file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}
