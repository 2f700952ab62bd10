//! Flow graph exports: DOT, SVG drawn by us (no graphviz at run time), a self-contained HTML
//! viewer, and circuit-tracer's graph JSON.

mod circuit;
mod dot;
mod html;
mod svg;

use std::path::Path;

pub use circuit::to_circuit_json;
pub use dot::to_dot;
pub use html::to_html;
pub use svg::to_svg;

use crate::error::Result;
use crate::graph::{write_text, FlowGraph};

/// Writes `{stem}.json`, `.dot`, `.svg`, `.html` and `{stem}.circuit.json` into `dir`, each
/// atomically.
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
