//! Heatmaps: [`heatmap`] of a matrix with labelled axes, a diverging colour map and a colour
//! bar; large matrices are block-averaged.

use std::ops::Range;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::colour::{auto_colour_range, colour_of};
use super::layout::{
    axis_formatter, labels_or_indices, step_of, text_width, tick_indices, vertical_labels, Ticked,
};
use super::render::{de, empty, ensure_font, render, Figure, Format, FONT};
use super::{PlotError, MAX_HEATMAP_CELLS};

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
