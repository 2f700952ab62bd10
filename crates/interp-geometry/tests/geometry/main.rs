//! interp-geometry's integration tests: joint analyses, properties against brute force, and
//! the feature-set comparisons of seed 001.
//!
//! One test binary per crate (each links burn once): each module was a `tests/*.rs` file.

mod joint;
mod properties;
mod sets;
