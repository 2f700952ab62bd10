//! One feature's page: its numbers, histogram, logit lens, nearest features, top activations
//! and random examples per activation band.

use std::collections::BTreeSet;

use super::html::{escape, example, head, num, script_json, token_label};
use super::{histogram, Dashboard, FeatureView};

/// The page's path relative to the site's root.
pub(super) fn path(feature: usize) -> String {
    format!("features/{feature}.html")
}

fn link(feature: usize, shown: &BTreeSet<usize>) -> String {
    if shown.contains(&feature) {
        format!("<a href=\"{feature}.html\">{feature}</a>")
    } else {
        feature.to_string()
    }
}

fn logits_table(d: &Dashboard, id: &str, title: &str, rows: &[(u32, f32)], class: &str) -> String {
    let mut out = format!("<div><h2>{title}</h2><table id=\"{id}\">");
    for &(t, v) in rows {
        out.push_str(&format!(
            "<tr><td class=\"example\">{}</td><td class=\"{class}\">{}</td></tr>",
            escape(&token_label(d.token(t))),
            num(f64::from(v))
        ));
    }
    out.push_str("</table></div>");
    out
}

/// The page of `v`; `prev` / `next` are the neighbouring shown features.
pub(super) fn render(
    d: &Dashboard,
    v: &FeatureView,
    shown: &BTreeSet<usize>,
    prev: Option<usize>,
    next: Option<usize>,
) -> String {
    let f = v.feature;
    let mut out = head(&format!("Feature {f} · {}", d.info.hook));
    out.push_str("<body>\n<nav><a href=\"../index.html\">all features</a>");
    if let Some(p) = prev {
        out.push_str(&format!(" · <a id=\"prev\" href=\"{p}.html\">← {p}</a>"));
    }
    if let Some(n) = next {
        out.push_str(&format!(" · <a id=\"next\" href=\"{n}.html\">{n} →</a>"));
    }
    out.push_str("</nav>\n");
    out.push_str(&format!(
        "<h1 id=\"feature-title\">Feature {f}</h1><p class=\"meta\">{} · d_sae {}{}</p>\n",
        escape(&d.info.hook),
        d.info.d_sae,
        d.info
            .model
            .as_ref()
            .map_or(String::new(), |m| format!(" · {}", escape(m)))
    ));
    if let Some(e) = &v.explanation {
        out.push_str(&format!("<p id=\"explanation\">{}</p>\n", escape(e)));
    }
    if let Some(g) = &v.flow_graph {
        out.push_str(&format!(
            "<p><a id=\"flow-link\" href=\"../{}\">flow graph of this feature</a></p>\n",
            escape(g)
        ));
    }
    out.push_str(&format!(
        "<div class=\"cols\"><div><h2>Activations</h2><table id=\"stats\">\
         <tr><td>density</td><td>{}% ({} of {} tokens)</td></tr>\
         <tr><td>max</td><td>{}</td></tr><tr><td>mean when firing</td><td>{}</td></tr></table>\
         {}</div>\n",
        num(v.density * 100.0),
        v.fired,
        d.info.tokens,
        num(f64::from(v.max)),
        num(v.mean),
        histogram::svg(&v.histogram, v.histogram_bin_width, v.density),
    ));
    match &v.logit_lens {
        Some(l) => {
            out.push_str(&logits_table(
                d,
                "logits-promoted",
                "Promoted tokens",
                &l.promoted,
                "pos",
            ));
            out.push_str(&logits_table(
                d,
                "logits-suppressed",
                "Suppressed tokens",
                &l.suppressed,
                "neg",
            ));
        }
        None => out.push_str(
            "<div><h2>Logit lens</h2><p class=\"meta\">not available: the SAE's decoder is \
             not in the residual stream</p></div>",
        ),
    }
    out.push_str("<div><h2>Nearest features</h2><table id=\"neighbours\"><tr><th>feature</th><th>decoder cosine</th></tr>");
    for &(j, c) in &v.neighbours {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td></tr>",
            link(j, shown),
            num(f64::from(c))
        ));
    }
    out.push_str("</table></div></div>\n");

    out.push_str("<div id=\"hover-info\">hover a token</div>\n<section id=\"top-examples\"><h2>Top activations</h2>\n");
    if v.top.is_empty() {
        out.push_str("<p class=\"meta\">This feature never fired in the pass.</p>\n");
    }
    for e in &v.top {
        out.push_str(&example(d, e, v.max));
    }
    out.push_str("</section>\n<section id=\"bands\">\n");
    for b in &v.bands {
        out.push_str(&format!(
            "<div class=\"band\" data-lower=\"{}\" data-upper=\"{}\"><h2>Interval [{}, {}): {} activations, {} shown</h2>\n",
            b.lower,
            b.upper,
            num(f64::from(b.lower)),
            num(f64::from(b.upper)),
            b.seen,
            b.examples.len()
        ));
        for e in &b.examples {
            out.push_str(&example(d, e, v.max));
        }
        out.push_str("</div>\n");
    }
    out.push_str("</section>\n");
    out.push_str(&format!(
        "<script type=\"application/json\" id=\"feature-data\">{}</script>\n<script>{SCRIPT}</script>\n</body></html>\n",
        script_json(v)
    ));
    out
}

/// Shows the hovered token and its activation in the corner box.
const SCRIPT: &str = "\
(function(){var info=document.getElementById('hover-info');\
document.querySelectorAll('.tok').forEach(function(s){s.addEventListener('mouseover',function(){\
info.textContent=s.title;});});\
var data=JSON.parse(document.getElementById('feature-data').textContent);\
document.body.setAttribute('data-feature',String(data.feature));})();";
