//! interp-models' integration tests: parity with TransformerLens and HF transformers for every
//! family, the fast paths against the reference path, hooks, and bad input.
//!
//! One test binary per crate (each links burn once): each module was a `tests/*.rs` file.

mod bad_input;
mod fast_path;
mod hooks;
mod parity_families;
mod parity_gpt2;
