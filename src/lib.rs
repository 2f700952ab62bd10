//! # interp
//!
//! Mechanistic interpretability in Rust: the umbrella crate re-exporting the `interp-*` crates.
//!
//! - [`models`]: transformers with TransformerLens hook points (`interp-models`).
//! - [`sae`]: sparse autoencoders (`interp-sae`).
//! - [`geometry`], [`flow`], [`steer`], [`dashboard`]: analyses built on the two above.
//! - [`toy`]: the embedded toy world (corpus, tiny GPT-2, SAEs) every example runs on offline.
//! - [`subject`]: the toy world or a real model and SAE, as the examples load them.
//! - [`plot`]: the PNG/SVG charts the crates draw (heatmaps, bars, lines), for your own figures.
//! - [`report`]: a study's markdown, JSON results and figures in one directory.

pub use interp_core::plot;
pub use interp_core::report;
pub use interp_dashboard as dashboard;
pub use interp_flow as flow;
pub use interp_geometry as geometry;
pub use interp_models as models;
pub use interp_sae as sae;
pub use interp_steer as steer;
pub use interp_toy as toy;

pub mod subject;

/// Everything needed for everyday use.
pub mod prelude {
    pub use interp_models::prelude::*;
    pub use interp_sae::hooked::{run_with_sae, DeviceSae};
    pub use interp_sae::{Sae, SaeConfig, SparseCodes};
}
