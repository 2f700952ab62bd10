//! interp-steer's integration tests: parity with TransformerLens, directions and scores, the
//! toy world, and bad input.
//!
//! One test binary per crate (each links burn once): each module was a `tests/*.rs` file.

mod bad_input;
mod common;
mod directions_and_scores;
mod parity;
mod toy_world;
