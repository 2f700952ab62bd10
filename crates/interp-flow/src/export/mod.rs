//! Flow graph exports: DOT, SVG drawn by us (no graphviz at run time), a self-contained HTML
//! viewer, and circuit-tracer's graph JSON.
//!
//! | function | output |
//! |---|---|
//! | [`to_dot`] | Graphviz DOT: one `rank=same` group per layer, modules by colour and shape |
//! | [`to_svg`] | a standalone SVG: layers as columns, module lanes, edges weighted by cosine |
//! | [`to_html`] | one HTML file (inline CSS, JS and data): click a node to list its neighbours |
//! | [`to_circuit_json`] | the graph JSON circuit-tracer's attribution-graph frontend loads |
//! | [`write_all`] | all of them (and the graph's own JSON) into a directory, atomically |
//! | [`write_feature_viewers`] | the HTML viewer of many features' graphs, one file each (dashboards link them) |
//!
//! Every export first completes the graph: endpoints of edges missing from `nodes` are added,
//! and nodes and edges are sorted, so the output depends only on the graph's content.

mod circuit;
mod dot;
mod html;
mod svg;

use std::borrow::Cow;
use std::path::Path;

pub use circuit::to_circuit_json;
pub use dot::to_dot;
pub use html::to_html;
pub use svg::to_svg;

use crate::error::Result;
use crate::graph::{write_text, FlowGraph, GraphOptions};
use crate::node::{Module, NodeId};
use crate::stack::SaeStack;
use crate::tables::MatchTables;

/// Writes `{stem}.json` ([`FlowGraph::to_json`]), `{stem}.dot`, `{stem}.svg`, `{stem}.html`
/// (both titled `title`) and `{stem}.circuit.json` (slug `stem`) into `dir`, each atomically.
///
/// circuit-tracer's frontend loads a graph as `graph_data/{slug}.json`: to view the last one
/// there, copy it to `graph_data/{stem}.json` and add its `metadata` to the
/// `data/graph-metadata.json` list.
///
/// # Errors
/// [`crate::Error::Io`] / [`crate::Error::Malformed`] when writing fails.
pub fn write_all(g: &FlowGraph, dir: &Path, stem: &str, title: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
    g.save(&dir.join(format!("{stem}.json")))?;
    write_text(&dir.join(format!("{stem}.dot")), &to_dot(g))?;
    write_text(&dir.join(format!("{stem}.svg")), &to_svg(g, title))?;
    write_text(&dir.join(format!("{stem}.html")), &to_html(g, title))?;
    let circuit = serde_json::to_string_pretty(&to_circuit_json(g, stem)).expect("json");
    write_text(&dir.join(format!("{stem}.circuit.json")), &circuit)
}

/// The stack node of `feature` of the SAE at `hook` (e.g. `blocks.2.hook_resid_post` →
/// `2/res/<feature>`); `None` when no SAE of the stack reads `hook`.
pub fn node_of_hook(stack: &SaeStack, hook: &str, feature: usize) -> Option<NodeId> {
    stack
        .slots()
        .find(|(_, e)| e.hook.to_string() == hook)
        .map(|((layer, module), _)| NodeId::new(layer, module, feature))
}

/// Writes the HTML viewer ([`to_html`]) of each node's flow graph to
/// `dir/<layer>-<module>-<feature>.html`, atomically; returns the file names in `nodes`' order.
///
/// # Errors
/// Those of [`FlowGraph::build`] (a node the tables do not cover); [`crate::Error::Io`].
pub fn write_feature_viewers(
    tables: &MatchTables,
    nodes: &[NodeId],
    opts: &GraphOptions,
    dir: &Path,
) -> Result<Vec<String>> {
    nodes
        .iter()
        .map(|&node| {
            let g = FlowGraph::build(tables, node, opts)?;
            let name = format!("{}.html", node.to_string().replace('/', "-"));
            write_text(
                &dir.join(&name),
                &to_html(&g, &format!("Flow graph of {node}")),
            )?;
            Ok(name)
        })
        .collect()
}

/// The graph with every edge endpoint among its nodes and nodes and edges sorted (borrowed when
/// it already is).
pub(crate) fn complete(g: &FlowGraph) -> Cow<'_, FlowGraph> {
    let sorted_nodes = g.nodes.windows(2).all(|w| w[0].id < w[1].id);
    let sorted_edges = g
        .edges
        .windows(2)
        .all(|w| (w[0].target, w[0].source) < (w[1].target, w[1].source));
    let covered = g
        .edges
        .iter()
        .all(|e| g.contains(e.source) && g.contains(e.target));
    if sorted_nodes && sorted_edges && covered {
        Cow::Borrowed(g)
    } else {
        Cow::Owned(FlowGraph::union([g.clone()]))
    }
}

/// Fill colour of a module's nodes (the Okabe–Ito palette; shared by DOT, SVG and HTML).
pub(crate) fn module_colour(m: Module) -> &'static str {
    match m {
        Module::Emb => "#7f7f7f",
        Module::Att => "#e69f00",
        Module::Mlp => "#009e73",
        Module::Res => "#0072b2",
    }
}

/// A cosine's strength for drawing: `|score|` clamped to `[0, 1]` (0 for NaN).
pub(crate) fn strength(score: f32) -> f64 {
    if score.is_nan() {
        0.0
    } else {
        f64::from(score.abs().min(1.0))
    }
}

/// Escapes `&`, `<`, `>`, `"` and `'` for XML and HTML text and attributes.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The test graph: `0/emb/5 → 0/res/1 → 1/res/2 ← 1/mlp/3, 1/att/4`.
#[cfg(test)]
pub(crate) fn sample_graph() -> FlowGraph {
    let id = |s: &str| s.parse().unwrap();
    let edges = [
        ("0/emb/5", "0/res/1", 0.7),
        ("0/res/1", "1/res/2", 0.9),
        ("1/mlp/3", "1/res/2", 0.3),
        ("1/att/4", "1/res/2", 0.2),
    ];
    FlowGraph::union([FlowGraph {
        nodes: Vec::new(),
        edges: edges
            .iter()
            .map(|&(s, t, score)| crate::graph::Edge {
                source: id(s),
                target: id(t),
                score,
            })
            .collect(),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_adds_missing_endpoints_and_borrows_complete_graphs() {
        let g = sample_graph();
        assert!(matches!(complete(&g), Cow::Borrowed(_)));
        let partial = FlowGraph {
            nodes: Vec::new(),
            edges: g.edges.iter().rev().copied().collect(),
        };
        assert_eq!(complete(&partial).into_owned(), g);
    }

    #[test]
    fn write_all_writes_every_format() {
        let dir = tempfile::tempdir().unwrap();
        write_all(&sample_graph(), dir.path(), "g", "T").unwrap();
        for f in ["g.json", "g.dot", "g.svg", "g.html", "g.circuit.json"] {
            assert!(dir.path().join(f).metadata().unwrap().len() > 100, "{f}");
        }
        let back = std::fs::read_to_string(dir.path().join("g.json")).unwrap();
        assert_eq!(FlowGraph::from_json(&back).unwrap(), sample_graph());
    }
}
