//! Graphviz DOT.

use std::fmt::Write as _;

use super::{complete, module_colour, strength};
use crate::graph::FlowGraph;
use crate::node::Module;

/// A DOT double-quoted string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn shape(m: Module) -> &'static str {
    match m {
        Module::Res => "ellipse",
        Module::Mlp => "box",
        Module::Att => "diamond",
        Module::Emb => "hexagon",
    }
}

/// The graph as Graphviz DOT (`dot -Tsvg`), left to right by layer.
///
/// - One `subgraph layer_L { rank=same; … }` per layer, its nodes in module order (emb, att,
///   mlp, res) then feature.
/// - Node names are the quoted ids (`"2/res/10"`); the module sets the fill colour (emb grey,
///   att orange, mlp green, res blue, as in the SVG and HTML exports) and the shape (emb
///   hexagon, att diamond, mlp box, res ellipse).
/// - Edges are labelled with their cosine (two decimals), `penwidth` 0.5–4.5 and the colour's
///   opacity grow with `|cosine|`; negative cosines are dashed.
pub fn to_dot(g: &FlowGraph) -> String {
    let g = complete(g);
    let mut s = String::from(
        "digraph flow {\n  rankdir=LR;\n  newrank=true;\n  \
         node [style=filled, fontname=\"Helvetica\", fontsize=10, fontcolor=white];\n  \
         edge [fontname=\"Helvetica\", fontsize=9, arrowsize=0.6];\n",
    );
    let mut layers: Vec<usize> = g.nodes.iter().map(|n| n.layer).collect();
    layers.dedup();
    for l in layers {
        let _ = writeln!(s, "  subgraph layer_{l} {{\n    rank=same;");
        for n in g.nodes.iter().filter(|n| n.layer == l) {
            let _ = writeln!(
                s,
                "    {} [shape={}, fillcolor={}, tooltip={}];",
                quote(&n.id.to_string()),
                shape(n.module),
                quote(module_colour(n.module)),
                quote(&format!("layer {l}, {}, feature {}", n.module, n.feature)),
            );
        }
        s.push_str("  }\n");
    }
    for e in &g.edges {
        let w = strength(e.score);
        let alpha = (64.0 + 191.0 * w).round() as u8;
        let _ = writeln!(
            s,
            "  {} -> {} [label={}, penwidth={:.2}, color={}{}];",
            quote(&e.source.to_string()),
            quote(&e.target.to_string()),
            quote(&format!("{:.2}", e.score)),
            0.5 + 4.0 * w,
            quote(&format!("#404040{alpha:02x}")),
            if e.score < 0.0 { ", style=dashed" } else { "" },
        );
    }
    s.push_str("}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::super::sample_graph;
    use super::*;

    /// The quoted strings of a DOT line, in order.
    fn quoted(line: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur: Option<String> = None;
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match (&mut cur, c) {
                (None, '"') => cur = Some(String::new()),
                (Some(_), '"') => out.push(cur.take().unwrap()),
                (Some(s), '\\') => s.push(chars.next().unwrap()),
                (Some(s), c) => s.push(c),
                (None, _) => {}
            }
        }
        assert!(cur.is_none(), "unterminated string in {line}");
        out
    }

    #[test]
    fn dot_is_structured_by_layer_and_names_every_node_and_edge() {
        let g = sample_graph();
        let dot = to_dot(&g);
        assert!(dot.starts_with("digraph flow {\n") && dot.ends_with("}\n"));
        // Balanced braces outside strings, one rank group per layer holding exactly its nodes.
        let mut depth = 0i32;
        let mut layer: Option<usize> = None;
        let mut declared = Vec::new();
        let mut edges = Vec::new();
        for line in dot.lines() {
            let t = line.trim();
            if let Some(l) = t.strip_prefix("subgraph layer_") {
                layer = Some(l.trim_end_matches(" {").parse().unwrap());
            }
            if t.contains(" -> ") {
                let q = quoted(t);
                assert_eq!(depth, 1, "edges at top level: {t}");
                edges.push((q[0].clone(), q[1].clone(), q[2].clone()));
            } else if t.contains("[shape=") {
                let id = quoted(t).remove(0);
                let id: crate::NodeId = id.parse().unwrap();
                assert_eq!(Some(id.layer), layer, "{t} outside its layer's group");
                assert_eq!(depth, 2);
                declared.push(id);
            }
            depth += t.matches('{').count() as i32 - t.matches('}').count() as i32;
            if t == "}" && depth == 1 {
                layer = None;
            }
            assert!(depth >= 0);
        }
        assert_eq!(depth, 0);
        assert_eq!(declared, g.nodes.iter().map(|n| n.id).collect::<Vec<_>>());
        assert_eq!(dot.matches("rank=same").count(), 2);
        let want: Vec<_> = g
            .edges
            .iter()
            .map(|e| {
                let label = format!("{:.2}", e.score);
                (e.source.to_string(), e.target.to_string(), label)
            })
            .collect();
        assert_eq!(edges, want);
        assert!(dot.contains(r##""0/res/1" -> "1/res/2" [label="0.90", penwidth=4.10"##));
        assert!(dot.contains(r##""1/mlp/3" [shape=box, fillcolor="#009e73""##));
    }

    #[test]
    fn quoting_escapes_quotes_and_backslashes() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quoted(&quote(r#"a"b\c"#)), vec![r#"a"b\c"#.to_string()]);
    }

    #[test]
    fn negative_cosines_are_dashed() {
        let mut g = sample_graph();
        g.edges[0].score = -0.6;
        assert_eq!(to_dot(&g).matches("style=dashed").count(), 1);
    }
}
