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

use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::register_font;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// DejaVu Sans 2.37 (Bitstream Vera license, see `assets/DejaVuSans-LICENSE.txt`).
const FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
/// The family every chart uses; the embedded font is registered under this name.
const FONT: &str = "sans-serif";

/// Size of line charts, histograms and bar charts, in pixels.
const CHART_SIZE: (u32, u32) = (900, 600);
/// Most bins a histogram may have.
pub const MAX_BINS: usize = 10_000;
/// Heatmaps larger than this along an axis are drawn block-averaged (see [`heatmap`]).
pub const MAX_HEATMAP_CELLS: usize = 512;
/// Up to this many rows / columns every one gets a tick label; beyond, every k-th.
const ALL_LABELS_UP_TO: usize = 64;
/// Longest tick label drawn; longer ones are shortened with an ellipsis.
const MAX_LABEL_CHARS: usize = 24;

/// Series colours (Tableau 10), cycled.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
/// Diverging map ends (ColorBrewer RdBu) and its centre.
const NEG: RGBColor = RGBColor(33, 102, 172);
const POS: RGBColor = RGBColor(178, 24, 43);
const MID: RGBColor = RGBColor(247, 247, 247);
/// Heatmap cells whose value is not finite.
const MISSING: RGBColor = RGBColor(170, 170, 170);

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

/// One named line of a [`line_chart`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// Legend entry (series with an empty name get none).
    pub name: String,
    /// `(x, y)` points, drawn in the given order.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A series from its name and points.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.into(),
            points,
        }
    }
}

/// Line chart of several series with a legend; `log_y` plots the y axis on a log10 scale
/// (non-positive values skipped).
///
/// Non-finite points are skipped and break the line there; a point with no drawn neighbour,
/// and every point of a series with at most 40 points, also gets a marker. The legend lists
/// the series with a non-empty name, in the corner the lines cross least.
///
/// # Errors
/// [`PlotError::EmptyData`] if `series` is empty or holds no drawable point;
/// [`PlotError::InvalidArgument`] if the x or (linear) y values span more than f64 holds; and
/// the errors of every plot.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_y: bool,
) -> Result<(), PlotError> {
    let format = Format::of(path)?;
    if series.is_empty() {
        return Err(empty("series"));
    }
    let keep = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!log_y || y > 0.0);
    let mut xs = Bounds::default();
    let mut ys = Bounds::default();
    let lines: Vec<Line> = series
        .iter()
        .map(|s| {
            let mut segments: Vec<Vec<(f64, f64)>> = vec![];
            let mut open = false;
            for p in &s.points {
                if keep(p) {
                    xs.add(p.0);
                    ys.add(p.1);
                    if !open {
                        segments.push(vec![]);
                        open = true;
                    }
                    if let Some(seg) = segments.last_mut() {
                        seg.push(*p);
                    }
                } else {
                    open = false;
                }
            }
            let markers = segments.iter().map(Vec::len).sum::<usize>() <= 40;
            Line {
                name: s.name.clone(),
                segments,
                markers,
            }
        })
        .collect();
    let (Some(x_range), Some(y_range)) = (xs.range(), ys.range()) else {
        return Err(empty(if log_y {
            "finite points with positive y"
        } else {
            "finite points"
        }));
    };
    let fig = LineFigure {
        title,
        x_label,
        y_label,
        lines,
        x: axis(x_range, 0.02, "x values")?,
        y: if log_y {
            log_padded(y_range)
        } else {
            axis(y_range, 0.05, "y values")?
        },
        log_y,
    };
    render(path, format, &fig)
}

/// Overlaid histograms (same bins for all groups, each normalised to a density so groups of
/// different sizes compare), with legend.
///
/// The `bins` equal-width bins span the finite values of all groups together. A group's bar
/// heights are `count / (n_group · bin_width)`, so each group's area is 1; its legend entry
/// reads `name (n=…)`. Non-finite values are skipped (and not counted in `n`).
///
/// # Errors
/// [`PlotError::EmptyData`] if `groups` is empty or holds no finite value;
/// [`PlotError::InvalidArgument`] if `bins` is 0 or above [`MAX_BINS`] or the values span more
/// than f64 holds; and the errors of every plot.
pub fn histogram(
    path: &Path,
    title: &str,
    x_label: &str,
    groups: &[(String, Vec<f64>)],
    bins: usize,
) -> Result<(), PlotError> {
    let format = Format::of(path)?;
    if bins == 0 || bins > MAX_BINS {
        return Err(PlotError::InvalidArgument {
            reason: format!("histogram bins must be in 1..={MAX_BINS}, got {bins}"),
        });
    }
    if groups.is_empty() {
        return Err(empty("groups"));
    }
    let mut all = Bounds::default();
    groups
        .iter()
        .flat_map(|(_, v)| v)
        .filter(|v| v.is_finite())
        .for_each(|&v| all.add(v));
    let Some(range) = all.range() else {
        return Err(empty("finite values"));
    };
    let Range { start: lo, end: hi } = axis(range, 0.0, "histogram values")?;
    let width = (hi - lo) / bins as f64;
    let mut max_density = 0.0f64;
    let hists: Vec<(String, Vec<f64>)> = groups
        .iter()
        .map(|(name, values)| {
            let mut counts = vec![0usize; bins];
            let mut n = 0usize;
            for &v in values.iter().filter(|v| v.is_finite()) {
                // `as` saturates, and the last bin is closed: v == hi lands in it.
                let i = (((v - lo) / width).floor() as usize).min(bins - 1);
                counts[i] += 1;
                n += 1;
            }
            let scale = if n == 0 {
                0.0
            } else {
                1.0 / (n as f64 * width)
            };
            let density: Vec<f64> = counts.iter().map(|&c| c as f64 * scale).collect();
            max_density = density.iter().copied().fold(max_density, f64::max);
            (format!("{name} (n={n})"), density)
        })
        .collect();
    let y_top = if max_density.is_finite() && max_density > 0.0 {
        max_density * 1.08
    } else {
        1.0
    };
    let fig = HistFigure {
        title,
        x_label,
        hists,
        lo,
        width,
        x: lo..hi,
        y_top,
    };
    render(path, format, &fig)
}

/// Heatmap of a row-major `rows × cols` matrix with labelled axes (labels may be empty slices
/// → indices), a diverging colour map (blue–white–red) symmetric around 0 when `range` is None
/// and values have both signs, and a colour bar.
///
/// Row 0 is at the top. Without `range`, values of one sign use half the map: white at the
/// smallest value to red at the largest (all ≥ 0), or blue at the smallest to white at the
/// largest (all ≤ 0); a constant matrix is drawn against `[0, value]`. With `range = (lo, hi)`
/// the map runs from blue at `lo` to red at `hi`, white at 0 when `lo < 0 < hi`, and values
/// outside are clamped. Non-finite cells are grey.
///
/// Cells are square: the longer side of the matrix spans about 720 pixels, with cells of 8 to
/// 80 pixels (but at most 1024 pixels a side); very thin matrices are stretched to at least
/// 120 × 160 pixels. Up to 64 rows / columns each gets its label (if 9 pixels apart); beyond,
/// every k-th. Column labels too wide for their cell are written vertically, and labels longer
/// than 24 characters are shortened with an ellipsis.
/// Beyond [`MAX_HEATMAP_CELLS`] along an axis, blocks of cells are averaged (NaN ignored) so
/// at most that many are drawn; axes and labels keep the original indices.
///
/// # Errors
/// [`PlotError::EmptyData`] if `rows` or `cols` is 0; [`PlotError::Shape`] if
/// `values.len() != rows * cols` or a non-empty label slice does not have `rows` / `cols`
/// entries; [`PlotError::NonFinite`] / [`PlotError::InvalidArgument`] for a non-finite or
/// empty (`lo >= hi`) `range`; and the errors of every plot.
#[allow(clippy::too_many_arguments)]
pub fn heatmap(
    path: &Path,
    title: &str,
    row_labels: &[String],
    col_labels: &[String],
    values: &[f32],
    rows: usize,
    cols: usize,
    range: Option<(f32, f32)>,
) -> Result<(), PlotError> {
    let format = Format::of(path)?;
    ensure_font()?;
    if rows == 0 || cols == 0 {
        return Err(empty("heatmap cells (rows or cols is 0)"));
    }
    let Some(n) = rows.checked_mul(cols) else {
        return Err(PlotError::InvalidArgument {
            reason: format!("heatmap {rows} x {cols} overflows"),
        });
    };
    if values.len() != n {
        return Err(PlotError::Shape {
            what: format!("heatmap values for {rows} x {cols}"),
            expected: n,
            actual: values.len(),
        });
    }
    for (labels, count, what) in [
        (row_labels, rows, "row labels"),
        (col_labels, cols, "column labels"),
    ] {
        if !labels.is_empty() && labels.len() != count {
            return Err(PlotError::Shape {
                what: what.into(),
                expected: count,
                actual: labels.len(),
            });
        }
    }
    let (lo, hi) = match range {
        Some((lo, hi)) => {
            if !lo.is_finite() || !hi.is_finite() {
                return Err(PlotError::NonFinite {
                    what: "heatmap range".into(),
                });
            }
            if lo >= hi {
                return Err(PlotError::InvalidArgument {
                    reason: format!("heatmap range ({lo}, {hi}) is empty"),
                });
            }
            (lo as f64, hi as f64)
        }
        None => auto_colour_range(values),
    };

    // Block-average down to at most MAX_HEATMAP_CELLS per axis.
    let (fr, fc) = (
        rows.div_ceil(MAX_HEATMAP_CELLS),
        cols.div_ceil(MAX_HEATMAP_CELLS),
    );
    let (br, bc) = (rows.div_ceil(fr), cols.div_ceil(fc));
    let mut cells = Vec::with_capacity(br * bc);
    for bi in 0..br {
        for bj in 0..bc {
            let (r0, r1) = (bi * fr, ((bi + 1) * fr).min(rows));
            let (c0, c1) = (bj * fc, ((bj + 1) * fc).min(cols));
            let (mut sum, mut k) = (0.0f64, 0usize);
            for r in r0..r1 {
                for &v in &values[r * cols + c0..r * cols + c1] {
                    if v.is_finite() {
                        sum += v as f64;
                        k += 1;
                    }
                }
            }
            let mean = if k == 0 { f64::NAN } else { sum / k as f64 };
            cells.push(Cell {
                x: c0 as f64..c1 as f64,
                y: (rows - r1) as f64..(rows - r0) as f64,
                colour: colour_of(mean, lo, hi),
            });
        }
    }

    let cell_px = (720.0 / br.max(bc) as f64).clamp(8.0, 80.0);
    let cell_px = if br.max(bc) as f64 * cell_px > 1024.0 {
        1024.0 / br.max(bc) as f64
    } else {
        cell_px
    };
    // A floor keeps the colour bar readable and thin matrices visible (cells stretch).
    let area = (
        ((bc as f64 * cell_px).round() as u32).max(120),
        ((br as f64 * cell_px).round() as u32).max(160),
    );
    let row_names = labels_or_indices(row_labels, rows);
    let col_names = labels_or_indices(col_labels, cols);
    let row_ticks = tick_indices(rows, area.1 as f64 / rows as f64);
    let col_ticks = tick_indices(cols, area.0 as f64 / cols as f64);
    let label_font = (cell_px * 0.8).clamp(9.0, 14.0);
    let col_spacing = area.0 as f64 / cols as f64 * step_of(&col_ticks) as f64;
    let col_width = col_ticks
        .iter()
        .map(|&j| text_width(&col_names[j], label_font))
        .fold(0.0, f64::max);
    let rotate_cols = col_width > col_spacing * 0.9;
    let row_width = row_ticks
        .iter()
        .map(|&i| text_width(&row_names[i], label_font))
        .fold(0.0, f64::max);
    let left = (row_width + 14.0).clamp(30.0, 260.0) as u32;
    let bottom = if rotate_cols {
        (col_width + 14.0).clamp(30.0, 260.0) as u32
    } else {
        30
    };
    let title_h = 44u32;
    let colour_bar_w = 110u32;
    let margin = 12u32;
    let min_w = (text_width(title, 22.0) as u32 + 2 * margin).max(360);
    let natural_w = margin + left + area.0 + margin + colour_bar_w;
    let size = (
        natural_w.max(min_w),
        (title_h + margin + area.1 + bottom + margin).max(220),
    );
    let fig = HeatFigure {
        title,
        rows,
        cols,
        cells,
        row_names,
        col_names,
        row_ticks,
        col_ticks,
        rotate_cols,
        label_font,
        lo,
        hi,
        size,
        left,
        bottom,
        title_h,
        margin,
        colour_bar_w,
        pad_x: (size.0 - natural_w.min(size.0)) / 2,
        pad_y: size.1 - (title_h + margin + area.1 + bottom + margin).min(size.1),
    };
    render(path, format, &fig)
}

/// Vertical bar chart with one labelled bar per entry.
///
/// Bars start at 0 (negative values point down). A non-finite value gets no bar, but its label
/// stays. With at most 24 bars each is annotated with its value. Up to 64 bars each gets its
/// label; beyond, every k-th; labels too wide for their bar are drawn vertically.
///
/// # Errors
/// [`PlotError::EmptyData`] if `bars` is empty or no value is finite;
/// [`PlotError::InvalidArgument`] if the values span more than f64 holds; and the errors of
/// every plot.
pub fn bar_chart(
    path: &Path,
    title: &str,
    y_label: &str,
    bars: &[(String, f64)],
) -> Result<(), PlotError> {
    let format = Format::of(path)?;
    ensure_font()?;
    if bars.is_empty() {
        return Err(empty("bars"));
    }
    let mut ys = Bounds::default();
    ys.add(0.0);
    let finite = bars.iter().filter(|b| b.1.is_finite()).count();
    if finite == 0 {
        return Err(empty("finite bar values"));
    }
    bars.iter()
        .filter(|b| b.1.is_finite())
        .for_each(|b| ys.add(b.1));
    let y = axis(ys.range().unwrap_or(0.0..1.0), 0.08, "bar values")?;
    let n = bars.len();
    let names: Vec<String> = bars.iter().map(|b| shorten(&b.0)).collect();
    let plot_w = CHART_SIZE.0 as f64 - 120.0;
    let ticks = tick_indices(n, plot_w / n as f64);
    let spacing = plot_w / n as f64 * step_of(&ticks) as f64;
    let widest = ticks
        .iter()
        .map(|&i| text_width(&names[i], 13.0))
        .fold(0.0, f64::max);
    let rotate = widest > spacing * 0.9;
    let fig = BarFigure {
        title,
        y_label,
        values: bars.iter().map(|b| b.1).collect(),
        names,
        ticks,
        rotate,
        bottom: if rotate {
            (widest + 14.0).clamp(40.0, 220.0) as u32
        } else {
            40
        },
        y,
    };
    render(path, format, &fig)
}

// ---------------------------------------------------------------------------------------------
// Rendering

/// The output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Png,
    Svg,
}

impl Format {
    fn of(path: &Path) -> Result<Self, PlotError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("png") => Ok(Format::Png),
            Some("svg") => Ok(Format::Svg),
            _ => Err(PlotError::UnsupportedExtension {
                path: path.to_path_buf(),
            }),
        }
    }
}

/// A chart ready to draw on any plotters backend.
trait Figure {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

/// Maps a plotters error to its text.
fn de<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn empty(what: &str) -> PlotError {
    PlotError::EmptyData { what: what.into() }
}

/// Registers the embedded font under [`FONT`], once per process.
fn ensure_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok());
    if ok {
        Ok(())
    } else {
        Err(PlotError::Font)
    }
}

/// Draws `fig` into `path` atomically. plotters panics are caught and reported as
/// [`PlotError::Draw`].
fn render<F: Figure>(path: &Path, format: Format, fig: &F) -> Result<(), PlotError> {
    ensure_font()?;
    let draw_err = |reason: String| PlotError::Draw {
        path: path.to_path_buf(),
        reason,
    };
    let size = fig.size();
    match format {
        Format::Svg => {
            let mut svg = String::new();
            let drawn = catch_unwind(AssertUnwindSafe(|| {
                let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
                fig.draw(&root)?;
                root.present().map_err(de)
            }));
            flatten(drawn).map_err(draw_err)?;
            crate::io::write_atomic(path, svg.as_bytes()).map_err(|e| match e {
                crate::Error::Io { path, source } => PlotError::Io { path, source },
                other => draw_err(other.to_string()),
            })
        }
        Format::Png => crate::io::write_atomic_with(
            path,
            // The temporary keeps the .png extension: the encoder picks the format from it.
            ".png",
            |tmp| {
                let drawn = catch_unwind(AssertUnwindSafe(|| {
                    let root = BitMapBackend::new(tmp, size).into_drawing_area();
                    fig.draw(&root)?;
                    root.present().map_err(de)
                }));
                flatten(drawn).map_err(draw_err)
            },
            |source| PlotError::Io {
                path: path.to_path_buf(),
                source,
            },
        ),
    }
}

/// A caught panic becomes an error message.
fn flatten(drawn: std::thread::Result<Result<(), String>>) -> Result<(), String> {
    drawn.unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        Err(format!("plotters panicked: {msg}"))
    })
}

// ---------------------------------------------------------------------------------------------
// Figures

struct Line {
    name: String,
    segments: Vec<Vec<(f64, f64)>>,
    markers: bool,
}

struct LineFigure<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    lines: Vec<Line>,
    x: Range<f64>,
    y: Range<f64>,
    log_y: bool,
}

impl Figure for LineFigure<'_> {
    fn size(&self) -> (u32, u32) {
        CHART_SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(de)?;
        let mut builder = ChartBuilder::on(root);
        builder
            .caption(self.title, (FONT, 22))
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size(78);
        let x_fmt = axis_formatter(&self.x);
        // The legend goes to the corner with the least data, sampled along the lines.
        let f = |v: f64| if self.log_y { v.log10() } else { v };
        let (y0, y1) = (f(self.y.start), f(self.y.end));
        let frac = |&(x, y): &(f64, f64)| {
            (
                (x - self.x.start) / (self.x.end - self.x.start),
                (f(y) - y0) / (y1 - y0),
            )
        };
        let samples = self.lines.iter().flat_map(|l| &l.segments).flat_map(|seg| {
            let first = seg.first().map(frac);
            let steps = seg.windows(2).flat_map(move |w| {
                let (a, b) = (frac(&w[0]), frac(&w[1]));
                (1..=4).map(move |k| {
                    let t = k as f64 / 4.0;
                    (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t)
                })
            });
            first.into_iter().chain(steps)
        });
        let corner = legend_corner(samples, true);
        if self.log_y {
            let mut chart = builder
                .build_cartesian_2d(self.x.clone(), Ticked::log(self.y.clone()))
                .map_err(de)?;
            chart
                .configure_mesh()
                .x_desc(self.x_label)
                .y_desc(self.y_label)
                .axis_desc_style((FONT, 16))
                .label_style((FONT, 13))
                .x_label_formatter(&x_fmt)
                .y_label_formatter(&|v| fmt_num(*v))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(de)?;
            draw_lines(&mut chart, &self.lines, corner.clone())
        } else {
            let mut chart = builder
                .build_cartesian_2d(self.x.clone(), self.y.clone())
                .map_err(de)?;
            let y_fmt = axis_formatter(&self.y);
            chart
                .configure_mesh()
                .x_desc(self.x_label)
                .y_desc(self.y_label)
                .axis_desc_style((FONT, 16))
                .label_style((FONT, 13))
                .x_label_formatter(&x_fmt)
                .y_label_formatter(&y_fmt)
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(de)?;
            draw_lines(&mut chart, &self.lines, corner.clone())
        }
    }
}

fn draw_lines<'a, DB, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    lines: &[Line],
    legend: SeriesLabelPosition,
) -> Result<(), String>
where
    DB: DrawingBackend + 'a,
    Y: Ranged<ValueType = f64>,
{
    let mut any_named = false;
    for (k, line) in lines.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        let style = colour.stroke_width(2);
        let paths = line
            .segments
            .iter()
            .filter(|s| s.len() > 1)
            .map(|s| PathElement::new(s.clone(), style));
        let anno = chart.draw_series(paths).map_err(de)?;
        if !line.name.is_empty() {
            any_named = true;
            anno.label(line.name.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 22, y)], colour.stroke_width(2))
            });
        }
        let dots = line
            .segments
            .iter()
            .filter(|s| line.markers || s.len() == 1)
            .flatten()
            .map(|&p| Circle::new(p, 3, colour.filled()));
        chart.draw_series(dots).map_err(de)?;
    }
    if any_named {
        chart
            .configure_series_labels()
            .position(legend)
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .draw()
            .map_err(de)?;
    }
    Ok(())
}

struct HistFigure<'a> {
    title: &'a str,
    x_label: &'a str,
    /// Legend label and per-bin density of each group.
    hists: Vec<(String, Vec<f64>)>,
    lo: f64,
    width: f64,
    x: Range<f64>,
    y_top: f64,
}

impl Figure for HistFigure<'_> {
    fn size(&self) -> (u32, u32) {
        CHART_SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(de)?;
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, (FONT, 22))
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size(78)
            .build_cartesian_2d(self.x.clone(), 0.0..self.y_top)
            .map_err(de)?;
        let x_fmt = axis_formatter(&self.x);
        let y_fmt = axis_formatter(&(0.0..self.y_top));
        chart
            .configure_mesh()
            .x_desc(self.x_label)
            .y_desc("density")
            .axis_desc_style((FONT, 16))
            .label_style((FONT, 13))
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(de)?;
        let edge = |i: usize| self.lo + i as f64 * self.width;
        for (k, (label, density)) in self.hists.iter().enumerate() {
            let colour = PALETTE[k % PALETTE.len()];
            let fill = colour.mix(0.3).filled();
            chart
                .draw_series(
                    density
                        .iter()
                        .enumerate()
                        .filter(|(_, &d)| d > 0.0)
                        .map(|(i, &d)| Rectangle::new([(edge(i), 0.0), (edge(i + 1), d)], fill)),
                )
                .map_err(de)?;
            // The outline: a step line from the first to the last non-empty bin, down to 0 at
            // both ends; none for a group without values (it still gets its legend entry).
            let first = density.iter().position(|&d| d > 0.0);
            let last = density.iter().rposition(|&d| d > 0.0);
            let outline = first.zip(last).map(|(first, last)| {
                let mut points = vec![(edge(first), 0.0)];
                for (i, &d) in density.iter().enumerate().take(last + 1).skip(first) {
                    points.push((edge(i), d));
                    points.push((edge(i + 1), d));
                }
                points.push((edge(last + 1), 0.0));
                PathElement::new(points, colour.stroke_width(2))
            });
            chart
                .draw_series(outline)
                .map_err(de)?
                .label(label.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 18, y + 6)], colour.mix(0.6).filled())
                });
        }
        // Bars rise from 0, so only the upper corners can be free.
        let (x_span, lo) = (self.x.end - self.x.start, self.x.start);
        let tops = self.hists.iter().flat_map(|(_, density)| {
            density.iter().enumerate().map(move |(i, &d)| {
                let centre = self.lo + (i as f64 + 0.5) * self.width;
                ((centre - lo) / x_span, d / self.y_top)
            })
        });
        chart
            .configure_series_labels()
            .position(legend_corner(tops, false))
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .draw()
            .map_err(de)?;
        Ok(())
    }
}

struct Cell {
    x: Range<f64>,
    y: Range<f64>,
    colour: RGBColor,
}

struct HeatFigure<'a> {
    title: &'a str,
    rows: usize,
    cols: usize,
    cells: Vec<Cell>,
    row_names: Vec<String>,
    col_names: Vec<String>,
    row_ticks: Vec<usize>,
    col_ticks: Vec<usize>,
    rotate_cols: bool,
    label_font: f64,
    lo: f64,
    hi: f64,
    size: (u32, u32),
    left: u32,
    bottom: u32,
    title_h: u32,
    margin: u32,
    colour_bar_w: u32,
    /// Extra width / height (image minimum size) spread around the matrix.
    pad_x: u32,
    pad_y: u32,
}

impl Figure for HeatFigure<'_> {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(de)?;
        let w = self.size.0;
        let title_style =
            TextStyle::from((FONT, 22).into_font()).pos(Pos::new(HPos::Center, VPos::Center));
        root.draw_text(
            self.title,
            &title_style,
            (w as i32 / 2, self.title_h as i32 / 2 + 4),
        )
        .map_err(de)?;
        let body = root.margin(
            self.title_h + self.pad_y / 2,
            self.margin,
            self.margin,
            self.margin,
        );
        let body_w = w.saturating_sub(2 * self.margin);
        let split = body_w.saturating_sub(self.colour_bar_w + self.pad_x);
        let (main, bar) = body.split_horizontally(split as i32);
        let main = main.margin(0, self.pad_y - self.pad_y / 2, self.pad_x, 0);

        let rows = self.rows as f64;
        let x_keys: Vec<f64> = self.col_ticks.iter().map(|&j| j as f64 + 0.5).collect();
        let y_keys: Vec<f64> = self
            .row_ticks
            .iter()
            .map(|&i| rows - i as f64 - 0.5)
            .collect();
        let mut chart = ChartBuilder::on(&main)
            .x_label_area_size(self.bottom)
            .y_label_area_size(self.left)
            .build_cartesian_2d(
                Ticked::new(0.0..self.cols as f64, x_keys),
                Ticked::new(0.0..rows, y_keys),
            )
            .map_err(de)?;
        let col_name = |v: &f64| {
            let j = v.floor().max(0.0) as usize;
            self.col_names.get(j).cloned().unwrap_or_default()
        };
        let row_name = |v: &f64| {
            let i = (rows - v).floor().max(0.0) as usize;
            self.row_names.get(i).cloned().unwrap_or_default()
        };
        let font = (FONT, self.label_font);
        let no_label = |_: &f64| String::new();
        chart
            .configure_mesh()
            .disable_mesh()
            .label_style(font)
            .x_label_formatter(if self.rotate_cols {
                &no_label
            } else {
                &col_name
            })
            .y_label_formatter(&row_name)
            .draw()
            .map_err(de)?;
        if self.rotate_cols {
            let at = self.col_ticks.iter().map(|&j| (j as f64 + 0.5, 0.0));
            vertical_labels(root, &chart, at, &col_name, self.label_font)?;
        }
        chart
            .draw_series(self.cells.iter().map(|c| {
                Rectangle::new(
                    [(c.x.start, c.y.start), (c.x.end, c.y.end)],
                    c.colour.filled(),
                )
            }))
            .map_err(de)?;

        // The colour bar, aligned with the matrix.
        let bar = bar.margin(0, self.bottom + self.pad_y - self.pad_y / 2, 24, 0);
        let (lo, hi) = (self.lo, self.hi);
        let mut cb = ChartBuilder::on(&bar)
            .set_label_area_size(LabelAreaPosition::Right, 62)
            .build_cartesian_2d(0.0..1.0, lo..hi)
            .map_err(de)?;
        let fmt = axis_formatter(&(lo..hi));
        cb.configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_labels(7)
            .y_label_style((FONT, 12))
            .y_label_formatter(&fmt)
            .draw()
            .map_err(de)?;
        const STEPS: usize = 128;
        let step = (hi - lo) / STEPS as f64;
        cb.draw_series((0..STEPS).map(|i| {
            let a = lo + i as f64 * step;
            let colour = colour_of(a + step / 2.0, lo, hi);
            Rectangle::new([(0.0, a), (1.0, a + step)], colour.filled())
        }))
        .map_err(de)?;
        cb.draw_series(std::iter::once(Rectangle::new(
            [(0.0, lo), (1.0, hi)],
            RGBColor(120, 120, 120).stroke_width(1),
        )))
        .map_err(de)?;
        Ok(())
    }
}

struct BarFigure<'a> {
    title: &'a str,
    y_label: &'a str,
    names: Vec<String>,
    values: Vec<f64>,
    ticks: Vec<usize>,
    rotate: bool,
    bottom: u32,
    y: Range<f64>,
}

impl Figure for BarFigure<'_> {
    fn size(&self) -> (u32, u32) {
        (CHART_SIZE.0, CHART_SIZE.1 + self.bottom.saturating_sub(40))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(de)?;
        let n = self.values.len() as f64;
        let keys: Vec<f64> = self.ticks.iter().map(|&i| i as f64).collect();
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, (FONT, 22))
            .margin(14)
            .x_label_area_size(self.bottom)
            .y_label_area_size(78)
            .build_cartesian_2d(Ticked::new(-0.5..n - 0.5, keys), self.y.clone())
            .map_err(de)?;
        let name = |v: &f64| {
            let i = v.round().max(0.0) as usize;
            self.names.get(i).cloned().unwrap_or_default()
        };
        let no_label = |_: &f64| String::new();
        let y_fmt = axis_formatter(&self.y);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc(self.y_label)
            .axis_desc_style((FONT, 16))
            .label_style((FONT, 13))
            .x_label_formatter(if self.rotate { &no_label } else { &name })
            .y_label_formatter(&y_fmt)
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(de)?;
        if self.rotate {
            let at = self.ticks.iter().map(|&i| (i as f64, self.y.start));
            vertical_labels(root, &chart, at, &name, 13.0)?;
        }
        let colour = PALETTE[0];
        let finite = || {
            self.values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(i, &v)| (i as f64, v))
        };
        chart
            .draw_series(
                finite()
                    .map(|(x, v)| Rectangle::new([(x - 0.4, 0.0), (x + 0.4, v)], colour.filled())),
            )
            .map_err(de)?;
        if self.y.start < 0.0 {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(-0.5, 0.0), (n - 0.5, 0.0)],
                    BLACK.stroke_width(1),
                )))
                .map_err(de)?;
        }
        if self.values.len() <= 24 {
            let above =
                TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
            let below =
                TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
            chart
                .draw_series(finite().map(|(x, v)| {
                    let style = if v >= 0.0 {
                        above.clone()
                    } else {
                        below.clone()
                    };
                    Text::new(fmt_num(v), (x, v), style)
                }))
                .map_err(de)?;
        }
        Ok(())
    }
}

/// Tick labels written bottom-to-top below the x axis, ending just under each point of `at`
/// (plotters centres rotated mesh labels on the tick, across the axis).
fn vertical_labels<'a, DB, X, Y>(
    root: &DrawingArea<DB, Shift>,
    chart: &ChartContext<'a, DB, Cartesian2d<X, Y>>,
    at: impl Iterator<Item = (f64, f64)>,
    label: &dyn Fn(&f64) -> String,
    size: f64,
) -> Result<(), String>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let style = TextStyle::from((FONT, size).into_font())
        .transform(FontTransform::Rotate270)
        .pos(Pos::new(HPos::Right, VPos::Center));
    let origin = root.get_base_pixel();
    for (x, y) in at {
        let (px, py) = chart.backend_coord(&(x, y));
        let pos = (px - origin.0, py - origin.1 + 9);
        root.draw_text(&label(&x), &style, pos).map_err(de)?;
    }
    Ok(())
}

/// The legend corner that covers the fewest of `points` (in axis fractions, 0 to 1), preferring
/// upper right, then upper left (then lower right, lower left, with `lower`).
fn legend_corner(points: impl Iterator<Item = (f64, f64)>, lower: bool) -> SeriesLabelPosition {
    let mut counts = [0usize; 4];
    for (x, y) in points {
        let (left, right) = (x < 0.45, x > 0.55);
        let (low, up) = (y < 0.4, y > 0.6);
        for (i, hit) in [up && right, up && left, low && right, low && left]
            .into_iter()
            .enumerate()
        {
            counts[i] += usize::from(hit);
        }
    }
    let n = if lower { 4 } else { 2 };
    match (0..n).min_by_key(|&i| counts[i]).unwrap_or(0) {
        0 => SeriesLabelPosition::UpperRight,
        1 => SeriesLabelPosition::UpperLeft,
        2 => SeriesLabelPosition::LowerRight,
        _ => SeriesLabelPosition::LowerLeft,
    }
}

// ---------------------------------------------------------------------------------------------
// Ranges, colours, labels

/// An f64 axis, linear or log10, with ticks chosen here: plotters' own `WithKeyPoints` over
/// f64 cannot take a mesh label formatter, and its log axis labels too few ticks on ranges of
/// about a decade.
struct Ticked {
    range: Range<f64>,
    log: bool,
    /// Labelled ticks (and major grid lines).
    bold: Vec<f64>,
    /// Minor grid lines.
    light: Vec<f64>,
}

impl Ticked {
    /// A linear axis with labelled ticks exactly at `keys` and no minor grid.
    fn new(range: Range<f64>, keys: Vec<f64>) -> Self {
        Ticked {
            range,
            log: false,
            bold: keys,
            light: vec![],
        }
    }

    /// A log10 axis over a positive range: ticks at powers of ten, plus 2× and 5× (or every
    /// 1–9×) multiples when it spans few decades.
    fn log(range: Range<f64>) -> Self {
        // Clamped to the decades of positive finite f64 (bounds the loops below).
        let decade = |v: f64| v.log10().clamp(-324.0, 309.0);
        let (a, b) = (decade(range.start).floor(), decade(range.end).ceil());
        let decades = (b - a).max(1.0);
        let inside = |v: &f64| range.start <= *v && *v <= range.end;
        let multiples = |ms: &[f64]| -> Vec<f64> {
            let mut v: Vec<f64> = (a as i32..=b as i32)
                .flat_map(|k| ms.iter().map(move |m| m * 10f64.powi(k)))
                .filter(inside)
                .collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let all = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let step = (decades / 8.0).ceil().max(1.0) as usize;
        let mut bold: Vec<f64> = (a as i32..=b as i32)
            .step_by(step)
            .map(|k| 10f64.powi(k))
            .filter(inside)
            .collect();
        if bold.len() < 3 {
            bold = multiples(&[1.0, 2.0, 5.0]);
        }
        if bold.len() < 3 {
            bold = multiples(&all);
        }
        if bold.len() < 2 {
            bold = RangedCoordf64::from(range.clone()).key_points(5usize);
        }
        let light = if decades <= 6.0 {
            multiples(&all)
        } else {
            vec![]
        };
        Ticked {
            range,
            log: true,
            bold,
            light,
        }
    }
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let f = |v: f64| if self.log { v.log10() } else { v };
        let (lo, hi, v) = (f(self.range.start), f(self.range.end), f(*value));
        let t = (v - lo) / (hi - lo);
        // `as` saturates (and maps NaN to 0): no overflow on wild values.
        limit.0 + ((limit.1 - limit.0) as f64 * t + 1e-3).floor() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.bold.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

/// Running min / max of finite values.
#[derive(Default)]
struct Bounds(Option<(f64, f64)>);

impl Bounds {
    fn add(&mut self, v: f64) {
        self.0 = Some(match self.0 {
            None => (v, v),
            Some((lo, hi)) => (lo.min(v), hi.max(v)),
        });
    }
    fn range(&self) -> Option<Range<f64>> {
        self.0.map(|(lo, hi)| lo..hi)
    }
}

/// Widens an empty (constant-data) range around its value (towards 0 only, where the other
/// side would overflow); leaves others alone.
fn widen(r: Range<f64>) -> Range<f64> {
    if r.end > r.start {
        return r;
    }
    let v = r.start;
    let d = if v == 0.0 { 0.5 } else { v.abs() * 0.1 };
    if (v + d).is_finite() && (v - d).is_finite() {
        v - d..v + d
    } else if v > 0.0 {
        v - d..v
    } else {
        v..v + d
    }
}

/// The axis range for data spanning `r` (finite bounds): [`widen`]ed, then a margin of `frac`
/// of the span on both sides, or less where that would overflow f64.
///
/// # Errors
/// [`PlotError::InvalidArgument`] if the span itself overflows f64 (data near ±`f64::MAX`):
/// plotters cannot place ticks on an infinite span.
fn axis(r: Range<f64>, frac: f64, what: &str) -> Result<Range<f64>, PlotError> {
    let w = widen(r.clone());
    let pad = (w.end - w.start) * frac;
    let p = w.start - pad..w.end + pad;
    [p, w, r]
        .into_iter()
        .find(|c| c.end > c.start && (c.end - c.start).is_finite())
        .ok_or_else(|| PlotError::InvalidArgument {
            reason: format!("{what} span more than f64 can represent"),
        })
}

/// A positive range widened for a log axis: a factor 2 around constant data, else 5% of the
/// span (in log space) on both sides; kept within the positive finite f64 range.
fn log_padded(r: Range<f64>) -> Range<f64> {
    let (lo, hi) = (r.start.log10(), r.end.log10());
    let pad = if hi > lo {
        (hi - lo) * 0.05
    } else {
        2f64.log10()
    };
    let start = 10f64.powf(lo - pad);
    let end = 10f64.powf(hi + pad);
    let start = if start > 0.0 {
        start.min(r.start)
    } else {
        r.start
    };
    let end = if end.is_finite() {
        end.max(r.end)
    } else {
        r.end
    };
    if end > start {
        start..end
    } else {
        // Only for a constant at the very ends of the f64 range.
        start / 2.0..(end * 2.0).min(f64::MAX)
    }
}

/// The colour range of a heatmap without an explicit one (see [`heatmap`]).
fn auto_colour_range(values: &[f32]) -> (f64, f64) {
    let mut b = Bounds::default();
    values
        .iter()
        .filter(|v| v.is_finite())
        .for_each(|&v| b.add(v as f64));
    let Some(Range { start: lo, end: hi }) = b.range() else {
        return (-1.0, 1.0);
    };
    if lo < 0.0 && hi > 0.0 {
        let m = lo.abs().max(hi);
        (-m, m)
    } else if hi > lo {
        (lo, hi)
    } else if lo == 0.0 {
        (-1.0, 1.0)
    } else {
        (lo.min(0.0), hi.max(0.0))
    }
}

/// The colour of `v` on the map over `[lo, hi]`: white at 0 (or at the end nearest 0), blue
/// below, red above; clamped outside; grey when not finite.
fn colour_of(v: f64, lo: f64, hi: f64) -> RGBColor {
    if !v.is_finite() {
        return MISSING;
    }
    let v = v.clamp(lo, hi);
    let (t, end) = if lo >= 0.0 {
        ((v - lo) / (hi - lo), POS)
    } else if hi <= 0.0 {
        ((hi - v) / (hi - lo), NEG)
    } else if v >= 0.0 {
        (v / hi, POS)
    } else {
        (v / lo, NEG)
    };
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * t).round() as u8;
    RGBColor(mix(MID.0, end.0), mix(MID.1, end.1), mix(MID.2, end.2))
}

/// Indices that get a tick label: all up to [`ALL_LABELS_UP_TO`] if they are at least 9 pixels
/// apart, else every k-th (k from 1, 2, 5, 10, 20, 50, …).
fn tick_indices(n: usize, px_per_index: f64) -> Vec<usize> {
    let max_labels = if n <= ALL_LABELS_UP_TO {
        n
    } else {
        ALL_LABELS_UP_TO / 2
    };
    let mut step = 1usize;
    let mut k = 0u32;
    while step < n && (n.div_ceil(step) > max_labels || (step as f64) * px_per_index < 9.0) {
        step = [2usize, 5, 10][(k % 3) as usize].saturating_mul(10usize.saturating_pow(k / 3));
        k += 1;
    }
    (0..n).step_by(step.max(1)).collect()
}

/// The spacing of [`tick_indices`]' output.
fn step_of(ticks: &[usize]) -> usize {
    ticks.get(1).map_or(1, |&b| b - ticks[0]).max(1)
}

fn labels_or_indices(labels: &[String], n: usize) -> Vec<String> {
    if labels.is_empty() {
        (0..n).map(|i| i.to_string()).collect()
    } else {
        labels.iter().map(|l| shorten(l)).collect()
    }
}

/// A label cut to [`MAX_LABEL_CHARS`] characters, with an ellipsis.
fn shorten(label: &str) -> String {
    if label.chars().count() <= MAX_LABEL_CHARS {
        label.to_string()
    } else {
        let mut s: String = label.chars().take(MAX_LABEL_CHARS - 1).collect();
        s.push('…');
        s
    }
}

/// Width in pixels of `text` at `size` in the embedded font (a rough estimate if the font
/// cannot lay it out).
fn text_width(text: &str, size: f64) -> f64 {
    (FONT, size)
        .into_font()
        .box_size(text)
        .map(|(w, _)| w as f64)
        .unwrap_or(text.chars().count() as f64 * size * 0.5)
}

/// Tick labels for a linear axis over `r`: as many decimals as the span needs, scientific
/// notation for very large or small magnitudes.
fn axis_formatter(r: &Range<f64>) -> impl Fn(&f64) -> String {
    let span = (r.end - r.start).abs();
    let mag = r.start.abs().max(r.end.abs());
    let scientific = mag >= 1e5 || (mag > 0.0 && mag < 1e-3);
    // Ticks are about span / 10 apart; show one digit below that.
    let tick = if span > 0.0 && span.is_finite() {
        span / 10.0
    } else {
        1.0
    };
    let decimals = (-tick.log10().floor() + 1.0).clamp(0.0, 10.0) as usize;
    let sig = ((mag / tick).log10().ceil() + 1.0).clamp(1.0, 8.0) as usize;
    move |&v: &f64| {
        if v == 0.0 {
            "0".into()
        } else if scientific {
            trim_sci(&format!("{:.*e}", sig.saturating_sub(1), v))
        } else {
            trim_fixed(&format!("{v:.decimals$}"))
        }
    }
}

/// A number for a label: up to 3 significant digits, scientific outside [1e-3, 1e5).
fn fmt_num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        trim_sci(&format!("{v:.2e}"))
    } else {
        let decimals = (2.0 - a.log10().floor()).clamp(0.0, 6.0) as usize;
        trim_fixed(&format!("{v:.decimals$}"))
    }
}

fn trim_fixed(s: &str) -> String {
    if s.contains('.') {
        let t = s.trim_end_matches('0').trim_end_matches('.');
        if t == "-0" {
            "0".into()
        } else {
            t.into()
        }
    } else {
        s.into()
    }
}

fn trim_sci(s: &str) -> String {
    match s.split_once('e') {
        Some((m, e)) => format!("{}e{e}", trim_fixed(m)),
        None => s.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers() {
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(1.0), "1");
        assert_eq!(fmt_num(0.12345), "0.123");
        assert_eq!(fmt_num(-12.5), "-12.5");
        assert_eq!(fmt_num(123456.0), "1.23e5");
        assert_eq!(fmt_num(0.0001), "1e-4");
        let f = axis_formatter(&(0.0..1.0));
        assert_eq!(f(&0.2), "0.2");
        assert_eq!(f(&0.25), "0.25");
        let f = axis_formatter(&(1000.0..1001.0));
        assert_eq!(f(&1000.5), "1000.5");
        let f = axis_formatter(&(0.0..1e6));
        assert_eq!(f(&2e5), "2e5");
    }

    #[test]
    fn ranges_of_constant_data_are_widened() {
        assert_eq!(widen(3.0..3.0), 2.7..3.3);
        assert_eq!(widen(0.0..0.0), -0.5..0.5);
        assert_eq!(widen(f64::MAX..f64::MAX), f64::MAX * 0.9..f64::MAX);
        let r = log_padded(4.0..4.0);
        assert!(
            (r.start - 2.0).abs() < 1e-12 && (r.end - 8.0).abs() < 1e-12,
            "{r:?}"
        );
        let r = log_padded(5e-324..f64::MAX);
        assert!(r == (5e-324..f64::MAX), "{r:?}");
        assert!(axis(-f64::MAX..f64::MAX, 0.1, "v").is_err());
        assert_eq!(axis(0.0..10.0, 0.1, "v").unwrap(), -1.0..11.0);
        assert_eq!(axis(-1.7e308..0.0, 0.1, "v").unwrap(), -1.7e308..0.0);
        assert_eq!(auto_colour_range(&[2.0, 2.0]), (0.0, 2.0));
        assert_eq!(auto_colour_range(&[-1.0, 3.0]), (-3.0, 3.0));
        assert_eq!(auto_colour_range(&[0.0, 0.0]), (-1.0, 1.0));
        assert_eq!(auto_colour_range(&[f32::NAN]), (-1.0, 1.0));
    }

    #[test]
    fn colour_map_is_diverging() {
        assert_eq!(colour_of(0.0, -1.0, 1.0), MID);
        assert_eq!(colour_of(1.0, -1.0, 1.0), POS);
        assert_eq!(colour_of(-5.0, -1.0, 1.0), NEG);
        assert_eq!(colour_of(2.0, 2.0, 4.0), MID);
        assert_eq!(colour_of(4.0, 2.0, 4.0), POS);
        assert_eq!(colour_of(f64::NAN, -1.0, 1.0), MISSING);
    }

    #[test]
    fn tick_indices_thin_out() {
        assert_eq!(tick_indices(5, 50.0), vec![0, 1, 2, 3, 4]);
        assert_eq!(tick_indices(64, 11.0).len(), 64);
        let t = tick_indices(64, 5.0);
        assert_eq!(step_of(&t), 2);
        let t = tick_indices(1000, 0.7);
        assert!(t.len() <= 32, "{}", t.len());
        assert_eq!(tick_indices(1, 1.0), vec![0]);
        assert_eq!(tick_indices(3, 0.01), vec![0]);
    }
}
