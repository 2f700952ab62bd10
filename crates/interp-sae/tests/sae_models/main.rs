//! interp-sae's integration tests on a model (`models` feature): SAEs attached to hook points,
//! the activation store, probes, and CE loss with the SAE spliced in.
//!
//! One test binary per crate (each links burn once): each module was a `tests/*.rs` file.

mod hooked;
mod probe;
mod splice;
mod store;
