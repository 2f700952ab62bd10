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

pub mod error;
pub mod export;
pub mod graph;
pub mod node;
pub mod stack;
pub mod tables;

pub use error::{Error, Result};
pub use graph::{Direction, Edge, FlowGraph, GraphOptions, LayerThresholds, Node, Thresholds};
pub use node::{Module, NodeId};
pub use stack::{SaeStack, StackSae};
pub use tables::{MatchMethod, MatchTables, Source, Table};

/// The types most programs need.
pub mod prelude {
    pub use crate::{
        Direction, Error, FlowGraph, GraphOptions, MatchMethod, MatchTables, Module, NodeId,
        SaeStack, Source, Thresholds,
    };
}
