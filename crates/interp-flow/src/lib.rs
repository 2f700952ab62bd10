//! Cross-layer feature flow (Laptev et al., *Analyze Feature Flow to Enhance Interpretation and
//! Steering in Language Models*, ICML 2025): where each SAE feature of a layer comes from, found
//! without data by matching decoder rows, chained into flow graphs across layers, checked
//! causally by deactivating predecessors, and used to steer many features over many layers.
//!
//! - [`SaeStack`]: the SAEs of a model keyed by hook (`R_L`, `M_L`, `A_L`; `attn.hook_z` SAEs
//!   mapped through `W_O`).
//! - [`MatchTables`]: every feature's top-`k` predecessors by decoder cosine (or the
//!   permutation match), streamed through GEMM tiles, saved as safetensors.
//! - [`FlowGraph`]: backward / forward graphs with thresholds, as JSON and the exports in
//!   [`export`].
//!
//! Node ids are `layer/module/feature` ([`NodeId`]), modules `res`, `mlp`, `att` (and `emb`
//! for the residual stream entering block 0).

pub mod deactivate;
pub mod error;
pub mod export;
pub mod graph;
pub mod groups;
pub mod node;
mod probe;
pub mod report;
pub mod stack;
pub mod steering;
pub mod tables;

pub use deactivate::{Deactivation, DeactivationOptions, PredecessorMethod};
pub use error::{Error, Result};
pub use graph::{Edge, FlowDirection, FlowGraph, GraphOptions, LayerThresholds, Node, Thresholds};
pub use groups::{Group, GroupOptions, PredecessorGroups};
pub use node::{Module, NodeId};
pub use report::{best_at_coherence, FlowReport, SteeringRow};
pub use stack::{SaeStack, StackSae};
pub use steering::{plan_for_nodes, SteerOptions};
pub use tables::{MatchMethod, MatchTables, Source, Table};

/// The types most programs need.
pub mod prelude {
    pub use crate::{
        Error, FlowDirection, FlowGraph, GraphOptions, MatchMethod, MatchTables, Module, NodeId,
        SaeStack, Source, Thresholds,
    };
}
