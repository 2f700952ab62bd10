//! circuit-tracer's graph JSON (the file its attribution-graph frontend loads: `metadata`,
//! `qParams`, `nodes`, `links`).
//!
//! Mapping: a flow graph is data-free, so there are no token positions; the frontend's
//! position axis (`ctx_idx`) carries the module instead — 0 `emb`, 1 `att`, 2 `mlp`, 3
//! `res` — so the graph appears as layers × modules. `node_id` and `jsNodeId` are
//! `{layer}_{feature}_{ctx_idx}` as circuit-tracer writes them, `clerp` (the label) our node id
//! (`12/res/4230`), `feature_type` `"cross layer transcoder"` (a feature node), `feature` the
//! SAE latent; link weights are the cosines.

use serde_json::{json, Value};

use crate::graph::FlowGraph;
use crate::node::{Module, NodeId};

fn ctx(m: Module) -> usize {
    match m {
        Module::Emb => 0,
        Module::Att => 1,
        Module::Mlp => 2,
        Module::Res => 3,
    }
}

fn node_id(id: NodeId) -> String {
    format!("{}_{}_{}", id.layer, id.feature, ctx(id.module))
}

/// The graph in circuit-tracer's JSON layout, with `slug` as its name.
pub fn to_circuit_json(g: &FlowGraph, slug: &str) -> Value {
    let nodes: Vec<Value> = g
        .nodes
        .iter()
        .map(|n| {
            json!({
                "node_id": node_id(n.id),
                "jsNodeId": node_id(n.id),
                "feature": n.feature,
                "layer": n.layer.to_string(),
                "ctx_idx": ctx(n.module),
                "reverse_ctx_idx": 3 - ctx(n.module),
                "feature_type": "cross layer transcoder",
                "token_prob": 0.0,
                "is_target_logit": false,
                "run_idx": 0,
                "clerp": n.id.to_string(),
                "influence": Value::Null,
                "activation": Value::Null,
            })
        })
        .collect();
    let links: Vec<Value> = g
        .edges
        .iter()
        .map(|e| json!({"source": node_id(e.source), "target": node_id(e.target), "weight": e.score}))
        .collect();
    json!({
        "metadata": {
            "slug": slug,
            "scan": "interp-flow",
            "prompt_tokens": ["emb", "att", "mlp", "res"],
            "prompt": "feature flow (data-free): positions are modules",
            "node_threshold": Value::Null,
            "schema_version": 1,
            "info": {"generator": {"name": "interp-flow", "version": env!("CARGO_PKG_VERSION")}},
        },
        "qParams": {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""},
        "nodes": nodes,
        "links": links,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn circuit_json_has_one_node_per_node_and_one_link_per_edge() {
        let g = super::super::sample_graph();
        let v = super::to_circuit_json(&g, "x");
        for key in ["metadata", "qParams", "nodes", "links"] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v["nodes"].as_array().unwrap().len(), g.nodes.len());
        let links = v["links"].as_array().unwrap();
        assert_eq!(links.len(), g.edges.len());
        let l = links
            .iter()
            .find(|l| l["target"] == "1_2_3" && l["source"] == "0_1_3")
            .unwrap();
        assert!((l["weight"].as_f64().unwrap() - 0.9).abs() < 1e-6);
        assert_eq!(v["nodes"][0]["clerp"], "0/emb/5");
    }
}
