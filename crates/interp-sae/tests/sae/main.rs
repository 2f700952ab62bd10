//! interp-sae's integration tests that need no burn: parity with SAELens and the reference
//! formats, properties of the kernels, the torch `.npy`/pickle readers, training, bad input, and
//! SAE sources keyed by hook.
//!
//! One test binary per crate (each links burn once): each module was a `tests/*.rs` file.

mod bad_input;
mod parity;
mod properties;
mod source;
mod torch_npy;
mod train;
