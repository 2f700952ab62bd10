//! circuit-tracer's graph JSON.

use serde_json::{json, Value};

use super::complete;
use crate::graph::FlowGraph;
use crate::node::{Module, NodeId};

/// The "token position" of a module: its lane in the frontend.
fn ctx(m: Module) -> usize {
    match m {
        Module::Emb => 0,
        Module::Att => 1,
        Module::Mlp => 2,
        Module::Res => 3,
    }
}

/// The "prompt": one pseudo-token per module, in [`ctx`] order.
const POSITIONS: [&str; 4] = ["emb", "att", "mlp", "res"];

/// circuit-tracer's feature-node id, `{layer}_{feature}_{ctx_idx}`.
fn node_id(id: NodeId) -> String {
    format!("{}_{}_{}", id.layer, id.feature, ctx(id.module))
}

/// `x` as the f64 with the same shortest decimal form (`0.9`, not `0.8999999761581421`).
fn tidy(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::NAN)
}

/// The graph in the JSON layout that circuit-tracer's attribution-graph frontend loads (what
/// its `create_graph_files` writes as `graph_data/{slug}.json`), named `slug`.
///
/// - `metadata`: `slug`, `scan` (`"interp-flow"`), `transcoder_list` (empty), `prompt_tokens`,
///   `prompt`, `node_threshold` (`null`: influence pruning does not apply, so the frontend
///   shows no pruning slider), and `info` with the generator.
/// - `qParams`: `pinnedIds`, `supernodes` (empty), `linkType` `"both"`, `clickedId`,
///   `sg_pos` (empty), as circuit-tracer starts them.
/// - `nodes`: one per flow node, all `feature_type` `"cross layer transcoder"` (an ordinary
///   feature node, which keeps its `clerp` label; `"embedding"` would replace the label by a
///   prompt token's).
/// - `links`: one per edge, `source` and `target` node ids and `weight` the cosine.
///
/// **Mapping.** A flow graph is data-free: it has no prompt and no token positions. The
/// frontend lays nodes out by `layer` (rows) and `ctx_idx` (the position, columns), so the
/// position carries the module instead: `ctx_idx` 0 `emb`, 1 `att`, 2 `mlp`, 3 `res`, and
/// `prompt_tokens` is `["emb", "att", "mlp", "res"]`, giving a layers × modules grid. (With
/// every node at position 0 two modules' features with the same layer and index would share
/// an id, and the frontend drops "features" present at more than 2/3 of the positions, which
/// with a one-token prompt would be all of them.) Per node: `node_id` = `jsNodeId` =
/// `{layer}_{feature}_{ctx_idx}` (circuit-tracer's feature-node form, unique here),
/// `feature` the SAE latent, `layer` the layer as a string, `reverse_ctx_idx` `3 − ctx_idx`,
/// `clerp` our id (`12/res/4230`), `influence` and `activation` `null` (no data),
/// `token_prob` 0, `is_target_logit` false, `run_idx` 0.
pub fn to_circuit_json(g: &FlowGraph, slug: &str) -> Value {
    let g = complete(g);
    let nodes: Vec<Value> = g
        .nodes
        .iter()
        .map(|n| {
            let c = ctx(n.module);
            json!({
                "node_id": node_id(n.id),
                "feature": n.feature,
                "layer": n.layer.to_string(),
                "ctx_idx": c,
                "feature_type": "cross layer transcoder",
                "token_prob": 0.0,
                "is_target_logit": false,
                "run_idx": 0,
                "reverse_ctx_idx": POSITIONS.len() - 1 - c,
                "jsNodeId": node_id(n.id),
                "clerp": n.id.to_string(),
                "influence": Value::Null,
                "activation": Value::Null,
            })
        })
        .collect();
    let links: Vec<Value> = g
        .edges
        .iter()
        .map(|e| {
            json!({
                "source": node_id(e.source),
                "target": node_id(e.target),
                "weight": tidy(e.score),
            })
        })
        .collect();
    json!({
        "metadata": {
            "slug": slug,
            "scan": "interp-flow",
            "transcoder_list": [],
            "prompt_tokens": POSITIONS,
            "prompt": "feature flow (data-free): positions are modules (emb, att, mlp, res)",
            "node_threshold": Value::Null,
            "info": {"generator": {"name": "interp-flow", "version": env!("CARGO_PKG_VERSION")}},
        },
        "qParams": {
            "pinnedIds": [],
            "supernodes": [],
            "linkType": "both",
            "clickedId": "",
            "sg_pos": "",
        },
        "nodes": nodes,
        "links": links,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::super::sample_graph;
    use super::*;

    #[test]
    fn circuit_json_has_circuit_tracers_fields() {
        let g = sample_graph();
        let v = to_circuit_json(&g, "x");
        for key in ["metadata", "qParams", "nodes", "links"] {
            assert!(v.get(key).is_some(), "{key}");
        }
        // Every field circuit-tracer's pydantic models (frontend/graph_models.py) declare.
        for key in [
            "slug",
            "scan",
            "transcoder_list",
            "prompt_tokens",
            "prompt",
            "node_threshold",
        ] {
            assert!(v["metadata"].get(key).is_some(), "metadata.{key}");
        }
        assert_eq!(v["metadata"]["slug"], "x");
        for key in ["pinnedIds", "supernodes", "linkType", "clickedId", "sg_pos"] {
            assert!(v["qParams"].get(key).is_some(), "qParams.{key}");
        }
        let nodes = v["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), g.nodes.len());
        for n in nodes {
            for key in [
                "node_id",
                "feature",
                "layer",
                "ctx_idx",
                "feature_type",
                "token_prob",
                "is_target_logit",
                "run_idx",
                "reverse_ctx_idx",
                "jsNodeId",
                "clerp",
                "influence",
                "activation",
            ] {
                assert!(n.get(key).is_some(), "node.{key}");
            }
            assert!(n["layer"].is_string() && n["feature"].is_u64() && n["ctx_idx"].is_u64());
            let ctx = n["ctx_idx"].as_u64().unwrap() as usize;
            let module = n["clerp"].as_str().unwrap().split('/').nth(1).unwrap();
            assert_eq!(v["metadata"]["prompt_tokens"][ctx], module);
        }
        let ids: BTreeSet<&str> = nodes
            .iter()
            .map(|n| n["node_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), nodes.len(), "node ids are unique");
        assert_eq!(nodes[0]["clerp"], "0/emb/5");
        assert_eq!(nodes[0]["node_id"], "0_5_0");
    }

    #[test]
    fn one_link_per_edge_with_its_cosine() {
        let g = sample_graph();
        let v = to_circuit_json(&g, "x");
        let ids: BTreeSet<&str> = v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["node_id"].as_str().unwrap())
            .collect();
        let links = v["links"].as_array().unwrap();
        assert_eq!(links.len(), g.edges.len());
        for (l, e) in links.iter().zip(&g.edges) {
            assert_eq!(l["source"], node_id(e.source));
            assert_eq!(l["target"], node_id(e.target));
            assert!(ids.contains(l["source"].as_str().unwrap()));
            assert!(ids.contains(l["target"].as_str().unwrap()));
            assert!((l["weight"].as_f64().unwrap() - f64::from(e.score)).abs() < 1e-6);
        }
        let l = links
            .iter()
            .find(|l| l["source"] == "0_1_3" && l["target"] == "1_2_3")
            .unwrap();
        assert!((l["weight"].as_f64().unwrap() - 0.9).abs() < 1e-6);
    }
}
