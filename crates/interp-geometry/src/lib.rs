//! # interp-geometry
//!
//! Feature geometry: cosine structure of SAE features, all-pairs extremes, cross-layer matching. (Work in progress.)
