//! # interp-steer
//!
//! Steering with SAE features and vectors. (Work in progress.)
