//! A static SVG drawing, laid out by us (no graphviz at run time).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{complete, escape, module_colour, strength};
use crate::graph::{Edge, FlowGraph};
use crate::node::{Module, NodeId};

/// Width of a layer's column.
const COL: f64 = 190.0;
/// Height of a node's row within a lane.
const ROW: f64 = 54.0;
/// Space between two module lanes.
const LANE_GAP: f64 = 12.0;
/// Left margin (the lane labels).
const LEFT: f64 = 56.0;
/// Node radius.
const R: f64 = 15.0;
/// Height of the title row.
const TITLE_H: f64 = 30.0;
/// Edges drawn with their cosine as text, at most (more would be unreadable).
const MAX_EDGE_LABELS: usize = 150;

/// Where everything goes.
pub(crate) struct Layout {
    /// Node centres.
    pub(crate) at: BTreeMap<NodeId, (f64, f64)>,
    /// `(layer, centre x)` of each column.
    columns: Vec<(usize, f64)>,
    /// `(module, top y, height)` of each lane.
    lanes: Vec<(Module, f64, f64)>,
    /// y of the legend row.
    legend_y: f64,
    /// The drawing's size.
    pub(crate) width: f64,
    pub(crate) height: f64,
}

/// Columns = layers (earlier left), within each a lane per module present (emb, att, mlp, res
/// from top to bottom, as high as the most nodes any layer has there), nodes by feature.
pub(crate) fn layout(g: &FlowGraph, with_title: bool) -> Layout {
    let mut cells: BTreeMap<(usize, Module), Vec<NodeId>> = BTreeMap::new();
    for n in &g.nodes {
        cells.entry((n.layer, n.module)).or_default().push(n.id);
    }
    let mut layers: Vec<usize> = cells.keys().map(|&(l, _)| l).collect();
    layers.dedup();
    let columns: Vec<(usize, f64)> = layers
        .iter()
        .enumerate()
        .map(|(i, &l)| (l, LEFT + (i as f64 + 0.5) * COL))
        .collect();
    let column_x: BTreeMap<usize, f64> = columns.iter().copied().collect();
    let legend_y = if with_title { TITLE_H + 16.0 } else { 16.0 };
    let mut y = legend_y + 36.0;
    let mut lanes = Vec::new();
    let mut at = BTreeMap::new();
    for m in Module::ALL {
        let rows = cells
            .iter()
            .filter(|((_, cm), _)| *cm == m)
            .map(|(_, ids)| ids.len())
            .max()
            .unwrap_or(0);
        if rows == 0 {
            continue;
        }
        let h = rows as f64 * ROW;
        for ((l, _), ids) in cells.iter().filter(|((_, cm), _)| *cm == m) {
            for (r, id) in ids.iter().enumerate() {
                at.insert(*id, (column_x[l], y + (r as f64 + 0.4) * ROW));
            }
        }
        lanes.push((m, y, h));
        y += h + LANE_GAP;
    }
    Layout {
        at,
        width: (LEFT + columns.len() as f64 * COL + 16.0).max(520.0),
        height: y + 8.0,
        columns,
        lanes,
        legend_y,
    }
}

/// `p + d · (q − p)/|q − p|` (p when they coincide).
fn towards(p: (f64, f64), q: (f64, f64), d: f64) -> (f64, f64) {
    let (dx, dy) = (q.0 - p.0, q.1 - p.1);
    let n = dx.hypot(dy);
    if n < 1e-9 {
        p
    } else {
        (p.0 + d * dx / n, p.1 + d * dy / n)
    }
}

/// The cubic from the rim of `a`'s circle to the rim of `b`'s, and its midpoint.
fn curve(a: (f64, f64), b: (f64, f64)) -> ([(f64, f64); 4], (f64, f64)) {
    let (c1, c2) = if (a.0 - b.0).abs() < 1.0 {
        // Same layer (a module feeding its residual feature): leave to the right, bow, and
        // come in from above right (clear of the residual edges leaving the target).
        let bow = (0.4 * (b.1 - a.1).abs()).clamp(36.0, COL / 2.0 - 20.0);
        let down = if b.1 >= a.1 { 1.0 } else { -1.0 };
        ((a.0 + bow, a.1), (b.0 + 0.45 * bow, b.1 - down * 0.9 * bow))
    } else {
        let mx = (a.0 + b.0) / 2.0;
        ((mx, a.1), (mx, b.1))
    };
    let p0 = towards(a, c1, R);
    let p3 = towards(b, c2, R + 1.0);
    let mid = (
        (p0.0 + 3.0 * c1.0 + 3.0 * c2.0 + p3.0) / 8.0,
        (p0.1 + 3.0 * c1.1 + 3.0 * c2.1 + p3.1) / 8.0,
    );
    ([p0, c1, c2, p3], mid)
}

fn edge_svg(s: &mut String, e: &Edge, lay: &Layout, labels: bool) {
    let (Some(&a), Some(&b)) = (lay.at.get(&e.source), lay.at.get(&e.target)) else {
        return;
    };
    let ([p0, c1, c2, p3], mid) = curve(a, b);
    let w = strength(e.score);
    let (src, dst) = (escape(&e.source.to_string()), escape(&e.target.to_string()));
    let _ = writeln!(
        s,
        r##"<path class="edge" data-source="{src}" data-target="{dst}" data-score="{score:.4}" d="M{:.1},{:.1} C{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}" fill="none" stroke="#555555" stroke-width="{sw:.2}" stroke-opacity="{op:.2}"{dash} marker-end="url(#flow-arrow)"><title>{src} → {dst}: cosine {score:.3}</title></path>"##,
        p0.0,
        p0.1,
        c1.0,
        c1.1,
        c2.0,
        c2.1,
        p3.0,
        p3.1,
        score = e.score,
        sw = 0.75 + 5.0 * w,
        op = 0.25 + 0.75 * w,
        dash = if e.score < 0.0 {
            r#" stroke-dasharray="5 3""#
        } else {
            ""
        },
    );
    if labels {
        let _ = writeln!(
            s,
            r#"<text class="edge-label" data-source="{src}" data-target="{dst}" x="{:.1}" y="{:.1}" text-anchor="middle">{:.2}</text>"#,
            mid.0,
            mid.1 + 3.0,
            e.score
        );
    }
}

/// The drawing's content: lanes, layer headers, legend, edges, nodes. Nodes are
/// `<g class="node" data-id="2/res/10">`, edges `<path class="edge" data-source data-target
/// data-score>` (shared with the HTML viewer, whose script relies on these).
pub(crate) fn body(g: &FlowGraph, lay: &Layout) -> String {
    let mut s = String::from(
        r##"<defs><marker id="flow-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555555"/></marker></defs>
"##,
    );
    for &(m, y, h) in &lay.lanes {
        let _ = writeln!(
            s,
            r#"<rect class="lane" data-module="{m}" x="8" y="{:.1}" width="{:.1}" height="{h:.1}" rx="6" fill="{c}" fill-opacity="0.07"/><text class="lane-label" x="16" y="{:.1}" fill="{c}">{m}</text>"#,
            y - 4.0,
            lay.width - 16.0,
            y + h / 2.0 - 4.0,
            c = module_colour(m),
        );
    }
    if let Some(&(_, y, _)) = lay.lanes.first() {
        for &(l, x) in &lay.columns {
            let _ = writeln!(
                s,
                r#"<text class="layer-label" x="{x:.1}" y="{:.1}" text-anchor="middle">layer {l}</text>"#,
                y - 12.0
            );
        }
    }
    // Legend: module colours, then what an edge's width means.
    let y = lay.legend_y;
    let mut x = 16.0;
    for m in Module::ALL {
        let _ = writeln!(
            s,
            r#"<circle cx="{:.1}" cy="{y:.1}" r="6" fill="{}"/><text class="legend" x="{:.1}" y="{:.1}">{m}</text>"#,
            x + 6.0,
            module_colour(m),
            x + 16.0,
            y + 4.0
        );
        x += 56.0;
    }
    let _ = writeln!(
        s,
        r##"<path d="M{:.1},{y:.1} h28" stroke="#555555" stroke-width="3.25" stroke-opacity="0.62"/><text class="legend" x="{:.1}" y="{:.1}">edge width, opacity ∝ |cosine|; dashed &lt; 0</text>"##,
        x + 4.0,
        x + 38.0,
        y + 4.0
    );
    // Edges, weakest first so strong ones are drawn on top.
    let labels = g.edges.len() <= MAX_EDGE_LABELS;
    let mut edges: Vec<&Edge> = g.edges.iter().collect();
    edges.sort_by(|a, b| strength(a.score).total_cmp(&strength(b.score)));
    for e in edges {
        edge_svg(&mut s, e, lay, labels);
    }
    for n in &g.nodes {
        let (x, y) = lay.at[&n.id];
        let _ = writeln!(
            s,
            r#"<g class="node" data-id="{id}" data-layer="{}" data-module="{}" data-feature="{}"><title>{id}: layer {}, {}, feature {}</title><circle cx="{x:.1}" cy="{y:.1}" r="{R}" fill="{c}" stroke="white" stroke-width="1.5"/><text class="node-label" x="{x:.1}" y="{:.1}" text-anchor="middle">{id}</text></g>"#,
            n.layer,
            n.module,
            n.feature,
            n.layer,
            n.module,
            n.feature,
            y + R + 11.0,
            id = escape(&n.id.to_string()),
            c = module_colour(n.module)
        );
    }
    s
}

/// The `<style>` of the drawing.
pub(crate) const STYLE: &str = "<style>.layer-label{font-weight:bold;fill:#333}\
.lane-label{font-weight:bold;font-size:12px}.node-label{fill:#222;font-size:10px}\
.edge-label{fill:#333;font-size:9px;paint-order:stroke;stroke:white;stroke-width:3px}\
.legend{fill:#333;font-size:11px}</style>";

/// An `<svg>` element (`id` on it when given), titled when `title` is.
pub(crate) fn svg_element(g: &FlowGraph, title: Option<&str>, id: Option<&str>) -> String {
    let lay = layout(g, title.is_some());
    let id = id
        .map(|i| format!(r#" id="{}""#, escape(i)))
        .unwrap_or_default();
    let title = title
        .map(|t| {
            format!(
                "<title>{t}</title>\n<text x=\"12\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{t}</text>\n",
                t = escape(t)
            )
        })
        .unwrap_or_default();
    format!(
        r#"<svg{id} xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="Helvetica, Arial, sans-serif" font-size="11">
{STYLE}
<rect width="100%" height="100%" fill="white"/>
{title}{body}</svg>"#,
        w = lay.width,
        h = lay.height,
        body = body(g, &lay),
    )
}

/// The graph as a standalone SVG document titled `title`, drawn without graphviz.
///
/// Layers are columns, earlier layers left; within the drawing a horizontal lane per module
/// present (emb, att, mlp, res from top to bottom; colours as in [`super::to_dot`]), nodes as
/// circles labelled with their id, ordered by feature. Edges are curves with an arrowhead
/// from predecessor to successor (edges within a layer bow to the right) whose width and
/// opacity grow with `|cosine|`, labelled with the cosine when there are at most 150 edges;
/// negative cosines are dashed. A legend gives the module colours.
///
/// The output is deterministic: it depends only on the graph's nodes and edges.
pub fn to_svg(g: &FlowGraph, title: &str) -> String {
    let g = complete(g);
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}\n",
        svg_element(&g, Some(title), None)
    )
}

#[cfg(test)]
mod tests {
    use super::super::sample_graph;
    use super::*;

    fn parse(svg: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(svg).expect("well-formed XML")
    }

    #[test]
    fn svg_is_well_formed_and_draws_every_node_and_edge() {
        let g = sample_graph();
        let svg = to_svg(&g, "a <title> & \"more\"");
        let doc = parse(&svg);
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(
            root.tag_name().namespace(),
            Some("http://www.w3.org/2000/svg")
        );
        let class = |c: &str| {
            doc.descendants()
                .filter(|n| n.attribute("class") == Some(c))
                .collect::<Vec<_>>()
        };
        let ids: Vec<_> = class("node")
            .iter()
            .map(|n| n.attribute("data-id").unwrap().to_string())
            .collect();
        let want: Vec<_> = g.nodes.iter().map(|n| n.id.to_string()).collect();
        assert_eq!(ids, want);
        let edges = class("edge");
        assert_eq!(edges.len(), g.edges.len());
        assert_eq!(class("edge-label").len(), g.edges.len());
        assert!(svg.contains("a &lt;title&gt; &amp; &quot;more&quot;"));
        // The legend names every module; lanes exist for the modules present.
        let lanes: Vec<_> = class("lane")
            .iter()
            .map(|n| n.attribute("data-module").unwrap())
            .collect();
        assert_eq!(lanes, ["emb", "att", "mlp", "res"]);
        assert_eq!(class("legend").len(), 5);
        // Stronger edges are wider and more opaque.
        let attr = |src: &str, a: &str| -> f64 {
            edges
                .iter()
                .find(|e| e.attribute("data-source") == Some(src))
                .unwrap()
                .attribute(a)
                .unwrap()
                .parse()
                .unwrap()
        };
        assert!(attr("0/res/1", "stroke-width") > attr("1/att/4", "stroke-width"));
        assert!(attr("0/res/1", "stroke-opacity") > attr("1/att/4", "stroke-opacity"));
    }

    #[test]
    fn layers_are_columns_left_to_right_and_modules_are_lanes() {
        let g = sample_graph();
        let lay = layout(&g, true);
        let at = |s: &str| lay.at[&s.parse::<NodeId>().unwrap()];
        // Earlier layers left.
        assert!(at("0/res/1").0 < at("1/res/2").0);
        assert_eq!(at("0/emb/5").0, at("0/res/1").0);
        // Lanes top to bottom: emb, att, mlp, res, at the same height in every layer.
        assert!(at("0/emb/5").1 < at("1/att/4").1);
        assert!(at("1/att/4").1 < at("1/mlp/3").1);
        assert!(at("1/mlp/3").1 < at("1/res/2").1);
        assert_eq!(at("0/res/1").1, at("1/res/2").1);
        // Everything inside the canvas.
        for &(x, y) in lay.at.values() {
            assert!(x - R > 0.0 && x + R < lay.width && y - R > 0.0 && y + R < lay.height);
        }
    }

    #[test]
    fn svg_is_deterministic_and_independent_of_input_order() {
        let g = sample_graph();
        let shuffled = FlowGraph {
            nodes: g.nodes.iter().rev().copied().collect(),
            edges: g.edges.iter().rev().copied().collect(),
        };
        assert_eq!(to_svg(&g, "t"), to_svg(&g, "t"));
        assert_eq!(to_svg(&g, "t"), to_svg(&shuffled, "t"));
    }

    #[test]
    fn empty_and_negative_graphs_still_draw() {
        parse(&to_svg(&FlowGraph::default(), "empty"));
        let mut g = sample_graph();
        g.edges[1].score = -0.4;
        g.edges[2].score = f32::NAN;
        let svg = to_svg(&g, "odd");
        parse(&svg);
        assert_eq!(svg.matches("stroke-dasharray").count(), 1);
    }
}
