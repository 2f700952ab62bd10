//! The `interp` binary's contracts, one module per subcommand family.
//!
//! One test binary per crate (each links burn once): each module was a `tests/*.rs` file.

mod cache;
mod common;
mod dashboard;
mod flow;
mod geometry;
mod sae;
mod shell;
mod steer;
mod train;
