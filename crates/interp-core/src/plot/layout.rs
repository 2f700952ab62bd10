//! Layout shared by the charts: the titled chart that line charts, histograms and bar charts
//! open with, its mesh and legend; axis ranges (linear and log10), tick placement, tick
//! labels and number formats.

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::render::{de, FONT};
use super::PlotError;

/// Size of line charts, histograms and bar charts, in pixels.
pub(super) const CHART_SIZE: (u32, u32) = (900, 600);
/// Up to this many rows / columns every one gets a tick label; beyond, every k-th.
const ALL_LABELS_UP_TO: usize = 64;
/// Longest tick label drawn; longer ones are shortened with an ellipsis.
const MAX_LABEL_CHARS: usize = 24;

// ---------------------------------------------------------------------------------------------
// The chart frame

/// The opening of a line chart, histogram or bar chart: `title` as the caption, a 14-pixel
/// margin, `x_label_area` pixels below the plot for x tick labels and 78 left of it for y.
pub(super) fn titled_chart<'a, 'b, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    x_label_area: u32,
) -> ChartBuilder<'a, 'b, DB> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(title, (FONT, 22))
        .margin(14)
        .x_label_area_size(x_label_area)
        .y_label_area_size(78);
    builder
}

/// The axes of a [`titled_chart`]: descriptions, tick labels and grid.
pub(super) struct Axes<'f> {
    /// The x axis description; `None` draws none.
    pub(super) x_desc: Option<&'f str>,
    /// The y axis description.
    pub(super) y_desc: &'f str,
    /// Tick labels of the x axis.
    pub(super) x_labels: &'f dyn Fn(&f64) -> String,
    /// Tick labels of the y axis.
    pub(super) y_labels: &'f dyn Fn(&f64) -> String,
    /// Whether vertical grid lines are drawn.
    pub(super) x_grid: bool,
}

/// Draws `axes` on `chart`: descriptions at 16 px, tick labels at 13 px, a light grey grid.
pub(super) fn draw_axes<DB, X, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, Y>>,
    axes: Axes<'_>,
) -> Result<(), String>
where
    DB: DrawingBackend,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let mut mesh = chart.configure_mesh();
    if !axes.x_grid {
        mesh.disable_x_mesh();
    }
    if let Some(x_desc) = axes.x_desc {
        mesh.x_desc(x_desc);
    }
    mesh.y_desc(axes.y_desc)
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 13))
        .x_label_formatter(axes.x_labels)
        .y_label_formatter(axes.y_labels)
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(de)
}

/// Draws the legend of the labelled series of `chart` at `position`: 14 px text on a
/// translucent white box with a grey border.
pub(super) fn draw_legend<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<(), String>
where
    DB: DrawingBackend + 'a,
    CT: CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(160, 160, 160))
        .draw()
        .map_err(de)
}

/// Tick labels written bottom-to-top below the x axis, ending just under each point of `at`
/// (plotters centres rotated mesh labels on the tick, across the axis).
pub(super) fn vertical_labels<'a, DB, X, Y>(
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
pub(super) fn legend_corner(
    points: impl Iterator<Item = (f64, f64)>,
    lower: bool,
) -> SeriesLabelPosition {
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
// Ranges

/// An f64 axis, linear or log10, with ticks chosen here: plotters' own `WithKeyPoints` over
/// f64 cannot take a mesh label formatter, and its log axis labels too few ticks on ranges of
/// about a decade.
pub(super) struct Ticked {
    range: Range<f64>,
    log: bool,
    /// Labelled ticks (and major grid lines).
    bold: Vec<f64>,
    /// Minor grid lines.
    light: Vec<f64>,
}

impl Ticked {
    /// A linear axis with labelled ticks exactly at `keys` and no minor grid.
    pub(super) fn new(range: Range<f64>, keys: Vec<f64>) -> Self {
        Ticked {
            range,
            log: false,
            bold: keys,
            light: vec![],
        }
    }

    /// A log10 axis over a positive range: ticks at powers of ten, plus 2× and 5× (or every
    /// 1–9×) multiples when it spans few decades.
    pub(super) fn log(range: Range<f64>) -> Self {
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
pub(super) struct Bounds(Option<(f64, f64)>);

impl Bounds {
    pub(super) fn add(&mut self, v: f64) {
        self.0 = Some(match self.0 {
            None => (v, v),
            Some((lo, hi)) => (lo.min(v), hi.max(v)),
        });
    }
    pub(super) fn range(&self) -> Option<Range<f64>> {
        self.0.map(|(lo, hi)| lo..hi)
    }
}

/// Widens an empty (constant-data) range around its value (towards 0 only, where the other
/// side would overflow); leaves others alone.
pub(super) fn widen(r: Range<f64>) -> Range<f64> {
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
pub(super) fn axis(r: Range<f64>, frac: f64, what: &str) -> Result<Range<f64>, PlotError> {
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
pub(super) fn log_padded(r: Range<f64>) -> Range<f64> {
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

// ---------------------------------------------------------------------------------------------
// Ticks, labels and numbers

/// Indices that get a tick label: all up to [`ALL_LABELS_UP_TO`] if they are at least 9 pixels
/// apart, else every k-th (k from 1, 2, 5, 10, 20, 50, …).
pub(super) fn tick_indices(n: usize, px_per_index: f64) -> Vec<usize> {
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
pub(super) fn step_of(ticks: &[usize]) -> usize {
    ticks.get(1).map_or(1, |&b| b - ticks[0]).max(1)
}

pub(super) fn labels_or_indices(labels: &[String], n: usize) -> Vec<String> {
    if labels.is_empty() {
        (0..n).map(|i| i.to_string()).collect()
    } else {
        labels.iter().map(|l| shorten(l)).collect()
    }
}

/// A label cut to [`MAX_LABEL_CHARS`] characters, with an ellipsis.
pub(super) fn shorten(label: &str) -> String {
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
pub(super) fn text_width(text: &str, size: f64) -> f64 {
    (FONT, size)
        .into_font()
        .box_size(text)
        .map(|(w, _)| w as f64)
        .unwrap_or(text.chars().count() as f64 * size * 0.5)
}

/// Tick labels for a linear axis over `r`: as many decimals as the span needs, scientific
/// notation for very large or small magnitudes.
pub(super) fn axis_formatter(r: &Range<f64>) -> impl Fn(&f64) -> String {
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
pub(super) fn fmt_num(v: f64) -> String {
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
