//! # interp-flow
//!
//! Cross-layer feature flow graphs. (Work in progress.)
