//! Histograms: [`histogram`] overlays groups of values as densities over shared bins.

use std::ops::Range;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::colour::PALETTE;
use super::layout::{
    axis, axis_formatter, draw_axes, draw_legend, legend_corner, titled_chart, Axes, Bounds,
    CHART_SIZE,
};
use super::render::{de, empty, render, Figure, Format};
use super::{PlotError, MAX_BINS};

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
        let mut chart = titled_chart(root, self.title, 48)
            .build_cartesian_2d(self.x.clone(), 0.0..self.y_top)
            .map_err(de)?;
        let x_fmt = axis_formatter(&self.x);
        let y_fmt = axis_formatter(&(0.0..self.y_top));
        draw_axes(
            &mut chart,
            Axes {
                x_desc: Some(self.x_label),
                y_desc: "density",
                x_labels: &x_fmt,
                y_labels: &y_fmt,
                x_grid: true,
            },
        )?;
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
        draw_legend(&mut chart, legend_corner(tops, false))
    }
}
