//! Colours: the series palette (Tableau 10) and the diverging heatmap map (ColorBrewer RdBu).

use std::ops::Range;

use plotters::style::RGBColor;

use super::layout::Bounds;

/// Series colours (Tableau 10), cycled.
pub(super) const PALETTE: [RGBColor; 10] = [
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

/// The colour range of a heatmap without an explicit one (see [`heatmap`](super::heatmap)).
pub(super) fn auto_colour_range(values: &[f32]) -> (f64, f64) {
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
pub(super) fn colour_of(v: f64, lo: f64, hi: f64) -> RGBColor {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_range_of_constant_data_is_widened() {
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
}
