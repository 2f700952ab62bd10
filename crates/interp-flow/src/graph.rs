//! Flow graphs: chains of top-`k` matches across layers (Feature Flow §3.3, App. B.2).
//!
//! **Backward** from `L/res/i`: edges from its matches in `R_{L−1}` (score `s(R)`), `M_L`
//! (`s(M)`) and `A_L` (`s(A)`) to it, then the same from the `R_{L−1}` match, down to layer
//! 0. The residual chain stops where `s(R) < t_res`; module nodes with `s < t_module` are
//! dropped (the paper's 0.5 and 0.15).
//!
//! **Forward** (the paper gives no rule; this is the one we pick): the successors of
//! `L/res/i` are the features of `R_{L+1}` whose backward top-`k` residual match is `i` with
//! `s(R) ≥ t_res` — so a forward edge is exactly a backward edge read the other way, the
//! graphs built from one set of tables agree, and a forward graph is the set of features whose
//! backward chain reaches the start. A feature may have several successors (the chain
//! branches) or none (it ends). Every residual node reached forward gets its module
//! predecessors, as backward, so the graph shows where each successor was processed.
//!
//! **Both**: the union of the two.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::node::{Module, NodeId};
use crate::tables::{MatchTables, Source};

/// Which way a graph grows from its start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowDirection {
    /// Towards earlier layers: "where did this feature come from?" (the paper's preference).
    #[default]
    Backward,
    /// Towards later layers: "where does it go?".
    Forward,
    /// Both ways.
    Both,
}

/// Per-layer threshold overrides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerThresholds {
    /// `t_res` for edges into this layer's residual features.
    pub t_res: Option<f32>,
    /// `t_module` for this layer's MLP and attention features.
    pub t_module: Option<f32>,
}

/// Pruning thresholds (cosines).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// The residual chain is cut where `s(R) < t_res` (default 0.5).
    pub t_res: f32,
    /// MLP and attention nodes with `s < t_module` are dropped (default 0.15).
    pub t_module: f32,
    /// Overrides by layer (Feature Flow: thresholds are "specific for each layer").
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_layer: BTreeMap<usize, LayerThresholds>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            t_res: 0.5,
            t_module: 0.15,
            per_layer: BTreeMap::new(),
        }
    }
}

fn check_cosine(what: &str, v: f32) -> Result<()> {
    if v.is_finite() && (-1.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(Error::BadThreshold {
            what: what.into(),
            value: v as f64,
        })
    }
}

impl Thresholds {
    /// Checks every threshold is a cosine in `[−1, 1]`.
    ///
    /// # Errors
    /// [`Error::BadThreshold`].
    pub fn validate(&self) -> Result<()> {
        check_cosine("t_res", self.t_res)?;
        check_cosine("t_module", self.t_module)?;
        for (l, o) in &self.per_layer {
            if let Some(t) = o.t_res {
                check_cosine(&format!("t_res of layer {l}"), t)?;
            }
            if let Some(t) = o.t_module {
                check_cosine(&format!("t_module of layer {l}"), t)?;
            }
        }
        Ok(())
    }

    /// The threshold for a `source` match of a layer-`layer` residual feature.
    pub fn for_source(&self, layer: usize, source: Source) -> f32 {
        let o = self.per_layer.get(&layer).copied().unwrap_or_default();
        match source {
            Source::Res => o.t_res.unwrap_or(self.t_res),
            Source::Mlp | Source::Att => o.t_module.unwrap_or(self.t_module),
        }
    }
}

/// How to build a graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GraphOptions {
    /// Backward, forward or both.
    pub direction: FlowDirection,
    /// Pruning thresholds.
    pub thresholds: Thresholds,
    /// Matches followed per predecessor kind (1: the paper's top-1; at most the tables' `k`).
    pub top_k: usize,
}

impl Default for GraphOptions {
    fn default() -> Self {
        GraphOptions {
            direction: FlowDirection::Backward,
            thresholds: Thresholds::default(),
            top_k: 1,
        }
    }
}

/// A node of a flow graph (JSON: `{"id": "2/res/10", "layer": 2, "module": "res", "feature": 10}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Node {
    /// `layer/module/feature`.
    pub id: NodeId,
    /// The layer.
    pub layer: usize,
    /// The module.
    pub module: Module,
    /// The feature index.
    pub feature: usize,
}

impl From<NodeId> for Node {
    fn from(id: NodeId) -> Self {
        Node {
            id,
            layer: id.layer,
            module: id.module,
            feature: id.feature,
        }
    }
}

/// An edge from a predecessor to its successor, scored by the cosine of their decoder rows.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    /// The predecessor.
    pub source: NodeId,
    /// The successor (a residual feature).
    pub target: NodeId,
    /// The cosine of their decoder rows.
    pub score: f32,
}

/// A flow graph: nodes sorted by layer, module and feature; edges by target then source.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FlowGraph {
    /// The features.
    pub nodes: Vec<Node>,
    /// Predecessor → successor edges.
    pub edges: Vec<Edge>,
}

#[derive(Default)]
struct Builder {
    nodes: BTreeSet<NodeId>,
    edges: BTreeMap<(NodeId, NodeId), f32>,
}

impl Builder {
    fn edge(&mut self, source: NodeId, target: NodeId, score: f32) {
        self.nodes.insert(source);
        self.nodes.insert(target);
        self.edges.insert((target, source), score);
    }

    fn finish(self) -> FlowGraph {
        FlowGraph {
            nodes: self.nodes.into_iter().map(Node::from).collect(),
            edges: self
                .edges
                .into_iter()
                .map(|((target, source), score)| Edge {
                    source,
                    target,
                    score,
                })
                .collect(),
        }
    }
}

/// Checks `start` is a residual feature the tables cover.
fn check_start(tables: &MatchTables, start: NodeId) -> Result<usize> {
    if start.module != Module::Res {
        return Err(Error::invalid(
            "flow graph start",
            format!("`{start}` is not a residual feature: graphs start at `L/res/i`"),
        ));
    }
    let rows = Source::ALL
        .into_iter()
        .find_map(|s| tables.get(start.layer, s).ok())
        .map(|t| t.rows())
        .ok_or_else(|| Error::NoSae {
            layer: start.layer,
            module: "res".into(),
            available: tables.describe(),
        })?;
    if start.feature >= rows {
        return Err(Error::FeatureOutOfRange {
            layer: start.layer,
            module: "res".into(),
            feature: start.feature,
            d_sae: rows,
        });
    }
    Ok(rows)
}

impl FlowGraph {
    /// Builds the graph of `start` (`L/res/i`) from `tables`.
    ///
    /// # Errors
    /// [`Error::BadThreshold`]; [`Error::Invalid`] for a non-residual start or `top_k` of 0
    /// or above the tables' `k`; [`Error::NoSae`] / [`Error::FeatureOutOfRange`] for a start
    /// the tables do not cover.
    pub fn build(tables: &MatchTables, start: NodeId, opts: &GraphOptions) -> Result<Self> {
        opts.thresholds.validate()?;
        if opts.top_k == 0 || opts.top_k > tables.k {
            return Err(Error::invalid(
                "top_k",
                format!(
                    "must be in 1..={} (the tables' k), got {}",
                    tables.k, opts.top_k
                ),
            ));
        }
        check_start(tables, start)?;
        let mut b = Builder::default();
        b.nodes.insert(start);
        let mut res_nodes = vec![start];
        if matches!(
            opts.direction,
            FlowDirection::Backward | FlowDirection::Both
        ) {
            res_nodes.extend(backward_chain(tables, start, opts));
        }
        if matches!(opts.direction, FlowDirection::Forward | FlowDirection::Both) {
            res_nodes.extend(forward_chain(tables, start, opts, &mut b));
        }
        let walk_back = matches!(
            opts.direction,
            FlowDirection::Backward | FlowDirection::Both
        );
        let mut seen = BTreeSet::new();
        for node in res_nodes {
            if !seen.insert(node) {
                continue;
            }
            for source in Source::ALL {
                if source == Source::Res && !walk_back {
                    continue;
                }
                let Ok(table) = tables.get(node.layer, source) else {
                    continue;
                };
                let t = opts.thresholds.for_source(node.layer, source);
                for (j, s) in table.row(node.feature).take(opts.top_k) {
                    if s >= t {
                        b.edge(source.node(node.layer, j), node, s);
                    }
                }
            }
        }
        Ok(b.finish())
    }

    /// The union of several graphs (one per start feature, say).
    pub fn union(graphs: impl IntoIterator<Item = FlowGraph>) -> FlowGraph {
        let mut b = Builder::default();
        for g in graphs {
            b.nodes.extend(g.nodes.iter().map(|n| n.id));
            for e in g.edges {
                b.edge(e.source, e.target, e.score);
            }
        }
        b.finish()
    }

    /// Whether `id` is a node.
    pub fn contains(&self, id: NodeId) -> bool {
        self.nodes.binary_search_by(|n| n.id.cmp(&id)).is_ok()
    }

    /// Edges touching `id` (as source or target).
    pub fn neighbors(&self, id: NodeId) -> impl Iterator<Item = &Edge> + '_ {
        self.edges
            .iter()
            .filter(move |e| e.source == id || e.target == id)
    }

    /// The graph as JSON (the `interp flow graph --out` contract).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("graphs serialise")
    }

    /// Parses a graph written by [`Self::to_json`].
    ///
    /// # Errors
    /// [`Error::Invalid`] for malformed JSON or node ids.
    pub fn from_json(json: &str) -> Result<Self> {
        let mut g: FlowGraph = serde_json::from_str(json)
            .map_err(|e| Error::invalid("flow graph JSON", e.to_string()))?;
        g.nodes.sort();
        Ok(g)
    }

    /// Writes [`Self::to_json`] atomically.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn save(&self, path: &Path) -> Result<()> {
        write_text(path, &self.to_json())
    }
}

/// Writes `text` to `path` atomically (temp file + rename).
pub(crate) fn write_text(path: &Path, text: &str) -> Result<()> {
    interp_core::io::write_atomic(path, text.as_bytes()).map_err(|e| Error::Malformed {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The residual nodes reached backward from `start` (start excluded).
fn backward_chain(tables: &MatchTables, start: NodeId, opts: &GraphOptions) -> Vec<NodeId> {
    let mut out = Vec::new();
    let mut stack = vec![start];
    let mut seen = BTreeSet::from([start]);
    while let Some(node) = stack.pop() {
        let Ok(table) = tables.get(node.layer, Source::Res) else {
            continue;
        };
        let t = opts.thresholds.for_source(node.layer, Source::Res);
        for (j, s) in table.row(node.feature).take(opts.top_k) {
            let pred = Source::Res.node(node.layer, j);
            if s >= t && seen.insert(pred) {
                out.push(pred);
                if pred.module == Module::Res {
                    stack.push(pred);
                }
            }
        }
    }
    out
}

/// The residual nodes reached forward from `start` (start excluded), adding the forward
/// residual edges to `b`.
fn forward_chain(
    tables: &MatchTables,
    start: NodeId,
    opts: &GraphOptions,
    b: &mut Builder,
) -> Vec<NodeId> {
    let mut out = Vec::new();
    let mut frontier = vec![start];
    let mut layer = start.layer;
    while !frontier.is_empty() {
        let next_layer = layer + 1;
        let Ok(table) = tables.get(next_layer, Source::Res) else {
            break;
        };
        let t = opts.thresholds.for_source(next_layer, Source::Res);
        let wanted: BTreeSet<usize> = frontier.iter().map(|n| n.feature).collect();
        let mut next = Vec::new();
        for j in 0..table.rows() {
            for (i, s) in table.row(j).take(opts.top_k) {
                if s >= t && wanted.contains(&i) {
                    let succ = NodeId::res(next_layer, j);
                    b.edge(NodeId::res(layer, i), succ, s);
                    next.push(succ);
                }
            }
        }
        next.sort();
        next.dedup();
        out.extend(next.iter().copied());
        frontier = next;
        layer = next_layer;
    }
    out
}
