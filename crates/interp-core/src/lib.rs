//! Foundations shared by the interp-rs crates that must not depend on a tensor framework:
//! memory-mapped safetensors reading (any float dtype to f32), atomic file writes, and the
//! CPU matrix multiply (`gemm` crate, or OpenBLAS with the `blas` feature), run-time choice
//! of SIMD instruction set for CPU kernels (module `simd`), text corpora read as documents
//! and cut into token windows (module `corpus`), study reports as markdown, JSON and figures
//! (module `report`); with the `plot` feature, PNG / SVG charts (module `plot`).
//!
//! `interp-sae` builds on this crate alone, so `cargo add interp-sae` does not pull burn.

#[cfg(feature = "blas")]
extern crate blas_src;

pub mod browser;
pub mod corpus;
mod error;
#[cfg(feature = "hub")]
pub mod hub;
pub mod io;
pub mod matmul;
#[cfg(feature = "plot")]
pub mod plot;
pub mod report;
pub mod rng;
pub mod simd;
pub mod tiles;

pub use error::{Error, Result};
pub use io::{
    write_atomic, write_atomic_with, write_safetensors, write_safetensors_with_metadata,
    HostTensor, SafetensorsFile,
};
pub use matmul::{matmul_acc, matmul_into, matmul_into_single_thread};
pub use tiles::{gram_stats, GramStats};
