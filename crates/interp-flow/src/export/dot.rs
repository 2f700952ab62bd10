//! Graphviz DOT.

use std::fmt::Write as _;

use crate::graph::FlowGraph;
use crate::node::Module;

/// Fill colour of a module's nodes (shared by the DOT, SVG and HTML exports).
pub(crate) fn module_colour(m: Module) -> &'static str {
    match m {
        Module::Emb => "#9e9e9e",
        Module::Att => "#e69f00",
        Module::Mlp => "#009e73",
        Module::Res => "#0072b2",
    }
}

/// The graph as Graphviz DOT, left to right by layer (one `rank=same` group per layer),
/// modules by colour and shape, edges labelled with their cosine and as thick as it is high.
pub fn to_dot(g: &FlowGraph) -> String {
    let mut s = String::from(
        "digraph flow {\n  rankdir=LR;\n  node [style=filled, fontname=\"Helvetica\", fontcolor=white];\n",
    );
    let mut layers: Vec<usize> = g.nodes.iter().map(|n| n.layer).collect();
    layers.dedup();
    for l in layers {
        let _ = writeln!(s, "  subgraph layer_{l} {{\n    rank=same;");
        for n in g.nodes.iter().filter(|n| n.layer == l) {
            let shape = match n.module {
                Module::Res => "ellipse",
                Module::Mlp => "box",
                Module::Att => "diamond",
                Module::Emb => "hexagon",
            };
            let _ = writeln!(
                s,
                "    \"{}\" [shape={shape}, fillcolor=\"{}\"];",
                n.id,
                module_colour(n.module)
            );
        }
        s.push_str("  }\n");
    }
    for e in &g.edges {
        let _ = writeln!(
            s,
            "  \"{}\" -> \"{}\" [label=\"{:.2}\", penwidth={:.2}];",
            e.source,
            e.target,
            e.score,
            0.5 + 4.0 * e.score.clamp(0.0, 1.0)
        );
    }
    s.push_str("}\n");
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn dot_names_every_node_once_and_every_edge() {
        let g = super::super::sample_graph();
        let dot = super::to_dot(&g);
        for n in &g.nodes {
            assert_eq!(dot.matches(&format!("\"{}\" [shape", n.id)).count(), 1);
        }
        assert_eq!(dot.matches(" -> ").count(), g.edges.len());
        assert_eq!(dot.matches("rank=same").count(), 2);
        assert!(dot.contains("\"0/res/1\" -> \"1/res/2\" [label=\"0.90\""));
    }
}
