//! A static SVG drawing: one column per layer (earlier layers left), within a column the
//! modules in forward order (emb, att, mlp, res) from top to bottom, one row per node; edges as
//! curves whose width and opacity follow the cosine.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::dot::module_colour;
use super::escape;
use crate::graph::FlowGraph;
use crate::node::{Module, NodeId};

const COL: f64 = 200.0;
const ROW: f64 = 56.0;
const LEFT: f64 = 90.0;
const TOP: f64 = 80.0;
const R: f64 = 18.0;

/// Node positions and the drawing's size.
pub(crate) struct Layout {
    pub(crate) at: BTreeMap<NodeId, (f64, f64)>,
    pub(crate) width: f64,
    pub(crate) height: f64,
}

pub(crate) fn layout(g: &FlowGraph) -> Layout {
    let mut layers: Vec<usize> = g.nodes.iter().map(|n| n.layer).collect();
    layers.dedup();
    let mut at = BTreeMap::new();
    let mut rows = 0usize;
    for (ci, &l) in layers.iter().enumerate() {
        // Nodes are sorted by (layer, module, feature): module order within the column.
        let column: Vec<NodeId> = g
            .nodes
            .iter()
            .filter(|n| n.layer == l)
            .map(|n| n.id)
            .collect();
        for (ri, id) in column.iter().enumerate() {
            at.insert(*id, (LEFT + ci as f64 * COL, TOP + ri as f64 * ROW));
        }
        rows = rows.max(column.len());
    }
    Layout {
        at,
        width: LEFT * 2.0 + (layers.len().max(1) - 1) as f64 * COL + 60.0,
        height: TOP + rows.max(1) as f64 * ROW + 40.0,
    }
}

/// The `<g>` with edges and nodes (shared with the HTML viewer); nodes carry `class="node"`
/// and `data-id`, edges `class="edge"`, `data-source`, `data-target`.
pub(crate) fn body(g: &FlowGraph, lay: &Layout) -> String {
    let mut s = String::new();
    let mut layers: Vec<usize> = g.nodes.iter().map(|n| n.layer).collect();
    layers.dedup();
    for (ci, l) in layers.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="layer-label">layer {l}</text>"#,
            LEFT + ci as f64 * COL,
            TOP - 40.0
        );
    }
    for e in &g.edges {
        let (Some(&(x1, y1)), Some(&(x2, y2))) = (lay.at.get(&e.source), lay.at.get(&e.target))
        else {
            continue;
        };
        let w = 0.5 + 5.0 * e.score.clamp(0.0, 1.0) as f64;
        let op = 0.25 + 0.75 * e.score.clamp(0.0, 1.0) as f64;
        let mx = (x1 + x2) / 2.0;
        let path = if (x1 - x2).abs() < 1.0 {
            // Same layer (a module feeding its residual feature): bow to the right.
            format!(
                "M{x1:.1},{y1:.1} C{:.1},{y1:.1} {:.1},{y2:.1} {x2:.1},{y2:.1}",
                x1 + 70.0,
                x2 + 70.0
            )
        } else {
            format!("M{x1:.1},{y1:.1} C{mx:.1},{y1:.1} {mx:.1},{y2:.1} {x2:.1},{y2:.1}")
        };
        let _ = writeln!(
            s,
            r##"<path class="edge" data-source="{}" data-target="{}" d="{path}" fill="none" stroke="#555" stroke-width="{w:.2}" stroke-opacity="{op:.2}"><title>{} → {}: {:.3}</title></path>"##,
            e.source, e.target, e.source, e.target, e.score
        );
    }
    for n in &g.nodes {
        let (x, y) = lay.at[&n.id];
        let _ = writeln!(
            s,
            r#"<g class="node" data-id="{id}"><circle cx="{x:.1}" cy="{y:.1}" r="{R}" fill="{c}"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" class="node-label">{id}</text></g>"#,
            y + R + 14.0,
            id = escape(&n.id.to_string()),
            c = module_colour(n.module)
        );
    }
    s
}

/// The legend of module colours.
fn legend(width: f64) -> String {
    let mut s = String::new();
    for (i, m) in Module::ALL.iter().enumerate() {
        let x = width - 110.0;
        let y = 20.0 + i as f64 * 16.0;
        let _ = writeln!(
            s,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="5" fill="{}"/><text x="{:.1}" y="{:.1}" class="legend">{}</text>"#,
            module_colour(*m),
            x + 10.0,
            y + 4.0,
            m.name()
        );
    }
    s
}

/// The graph as a standalone SVG document titled `title`.
pub fn to_svg(g: &FlowGraph, title: &str) -> String {
    let lay = layout(g);
    let width = lay.width.max(420.0);
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="Helvetica, Arial, sans-serif" font-size="11">
<style>.layer-label{{font-weight:bold}} .node-label{{fill:#222}}</style>
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="20" font-size="14" font-weight="bold">{title}</text>
{legend}{body}</svg>
"#,
        w = width,
        h = lay.height,
        title = escape(title),
        legend = legend(width),
        body = body(g, &lay)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn svg_is_well_formed_and_draws_every_node_and_edge() {
        let g = super::super::sample_graph();
        let svg = super::to_svg(&g, "a <title> & more");
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        let nodes = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("node"))
            .count();
        let edges = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("edge"))
            .count();
        assert_eq!((nodes, edges), (g.nodes.len(), g.edges.len()));
        assert!(svg.contains("a &lt;title&gt; &amp; more"));
    }
}
