//! Bar charts: [`bar_chart`], one labelled vertical bar per entry.

use std::ops::Range;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::colour::PALETTE;
use super::layout::{
    axis, axis_formatter, draw_axes, fmt_num, shorten, step_of, text_width, tick_indices,
    titled_chart, vertical_labels, Axes, Bounds, Ticked, CHART_SIZE,
};
use super::render::{de, empty, ensure_font, render, Figure, Format, FONT};
use super::PlotError;

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
        let n = self.values.len() as f64;
        let keys: Vec<f64> = self.ticks.iter().map(|&i| i as f64).collect();
        let mut chart = titled_chart(root, self.title, self.bottom)
            .build_cartesian_2d(Ticked::new(-0.5..n - 0.5, keys), self.y.clone())
            .map_err(de)?;
        let name = |v: &f64| {
            let i = v.round().max(0.0) as usize;
            self.names.get(i).cloned().unwrap_or_default()
        };
        let no_label = |_: &f64| String::new();
        let y_fmt = axis_formatter(&self.y);
        draw_axes(
            &mut chart,
            Axes {
                x_desc: None,
                y_desc: self.y_label,
                x_labels: if self.rotate { &no_label } else { &name },
                y_labels: &y_fmt,
                x_grid: false,
            },
        )?;
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
