//! interp-geometry's integration tests: joint analyses and properties against brute force.
//!
//! One test binary per crate (each links burn once): each module was a `tests/*.rs` file.

mod joint;
mod properties;
