//! The activation histogram of a feature as inline SVG.

use super::html::num;

/// Bars of `counts` (bin `i` covers `[i·width, (i+1)·width)`), titled with the density.
pub(super) fn svg(counts: &[u64], width: f32, density: f64) -> String {
    let (w, h, pad) = (460.0f64, 160.0f64, 28.0f64);
    let mut out = format!(
        "<svg id=\"histogram\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{}\" \
         role=\"img\" aria-label=\"activation histogram\">\
         <text x=\"{pad}\" y=\"14\" font-size=\"12\">DENSITY = {}%</text>",
        h + 20.0,
        num(density * 100.0)
    );
    let peak = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let n = counts.len().max(1) as f64;
    let bar = (w - 2.0 * pad) / n;
    for (i, &c) in counts.iter().enumerate() {
        let bh = (h - 40.0) * c as f64 / peak;
        let lo = f64::from(width) * i as f64;
        out.push_str(&format!(
            "<rect class=\"bin\" x=\"{:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{bh:.2}\" \
             fill=\"#e67e22\" data-count=\"{c}\"><title>[{}, {}): {c}</title></rect>",
            pad + bar * i as f64,
            h - 10.0 - bh,
            (bar - 0.5).max(0.5),
            num(lo),
            num(lo + f64::from(width)),
        ));
    }
    let top = f64::from(width) * n;
    out.push_str(&format!(
        "<line x1=\"{pad}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"#333\"/>\
         <text x=\"{pad}\" y=\"{ty}\" font-size=\"11\">0</text>\
         <text x=\"{x2}\" y=\"{ty}\" font-size=\"11\" text-anchor=\"end\">{}</text></svg>",
        num(top),
        y = h - 10.0,
        x2 = w - pad,
        ty = h + 6.0,
    ));
    out
}
