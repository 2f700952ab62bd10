//! Line charts: [`line_chart`] of several [`Series`], linear or log10 y axis.

use std::ops::Range;
use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::colour::PALETTE;
use super::layout::{
    axis, axis_formatter, draw_axes, draw_legend, fmt_num, legend_corner, log_padded, titled_chart,
    Axes, Bounds, Ticked, CHART_SIZE,
};
use super::render::{de, empty, render, Figure, Format};
use super::PlotError;

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
        let mut builder = titled_chart(root, self.title, 48);
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
            draw_axes(&mut chart, self.axes(&x_fmt, &|v| fmt_num(*v)))?;
            draw_lines(&mut chart, &self.lines, corner)
        } else {
            let mut chart = builder
                .build_cartesian_2d(self.x.clone(), self.y.clone())
                .map_err(de)?;
            let y_fmt = axis_formatter(&self.y);
            draw_axes(&mut chart, self.axes(&x_fmt, &y_fmt))?;
            draw_lines(&mut chart, &self.lines, corner)
        }
    }
}

impl LineFigure<'_> {
    /// The axes, with these tick labels.
    fn axes<'f>(
        &'f self,
        x_labels: &'f dyn Fn(&f64) -> String,
        y_labels: &'f dyn Fn(&f64) -> String,
    ) -> Axes<'f> {
        Axes {
            x_desc: Some(self.x_label),
            y_desc: self.y_label,
            x_labels,
            y_labels,
            x_grid: true,
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
        draw_legend(chart, legend)?;
    }
    Ok(())
}
