//! Multi-layer steering (Feature Flow §4.2, §5.3): the features of a flow graph become one
//! interp-steer plan — each feature's decoder direction added at its own hook — with one
//! coefficient spread over layers by a [`Schedule`] (constant, exponential `s·e^{αl}`, or
//! linear), against single-layer steering of the initial feature.

use interp_steer::{Direction, FeatureDirectionOptions, Positions, Schedule, SteeringPlan};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::graph::FlowGraph;
use crate::node::{Module, NodeId};
use crate::stack::SaeStack;

/// How a set of features is turned into a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SteerOptions {
    /// The base coefficient s.
    pub coefficient: f32,
    /// How s is spread over layers.
    pub schedule: Schedule,
    /// Unit-normalise decoder rows, and/or fold JumpReLU thresholds (`θ_i · W_dec[i]`, as
    /// the paper does following Mechanistic Permutability).
    pub direction: FeatureDirectionOptions,
    /// Positions steered (the paper's activation task: all tokens).
    pub positions: Positions,
}

impl Default for SteerOptions {
    fn default() -> Self {
        SteerOptions {
            coefficient: 1.0,
            schedule: Schedule::Constant,
            direction: FeatureDirectionOptions {
                unit_norm: true,
                fold_threshold: false,
            },
            positions: Positions::All,
        }
    }
}

/// A plan adding every feature of `nodes` (`h ← h + s′·v` at each feature's hook, `s′` from
/// the schedule at the feature's layer).
///
/// # Errors
/// [`Error::Invalid`] for no nodes; [`Error::NoSae`] / [`Error::FeatureOutOfRange`];
/// direction errors (e.g. `fold_threshold` on an SAE without thresholds).
pub fn plan_for_nodes(
    stack: &SaeStack,
    nodes: &[NodeId],
    opts: &SteerOptions,
) -> Result<SteeringPlan> {
    if nodes.is_empty() {
        return Err(Error::invalid("steering", "no features to steer"));
    }
    let mut plan = SteeringPlan::new();
    for &node in nodes {
        let e = stack.check_node(node)?;
        let d = Direction::from_features(&e.sae, &[(node.feature, 1.0)], opts.direction)?;
        let c = opts.schedule.coefficient(opts.coefficient, node.layer);
        plan = plan.add(e.hook, &d, c, opts.positions.clone());
    }
    Ok(plan)
}

impl FlowGraph {
    /// The graph's nodes of `modules` at layers `≤ up_to` (`None`: all layers): the
    /// "cumulative" set of the paper (layers 0..l).
    pub fn nodes_where(&self, modules: &[Module], up_to: Option<usize>) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|n| modules.contains(&n.module) && up_to.is_none_or(|l| n.layer <= l))
            .map(|n| n.id)
            .collect()
    }

    /// The graph's nodes of `modules` at exactly `layer`: the "single-layer" set.
    pub fn nodes_at(&self, modules: &[Module], layer: usize) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|n| modules.contains(&n.module) && n.layer == layer)
            .map(|n| n.id)
            .collect()
    }
}
