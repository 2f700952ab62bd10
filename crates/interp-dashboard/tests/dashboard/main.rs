//! interp-dashboard's integration tests on the toy world (one test binary, one module per
//! concern).

mod bad_input;
mod browser;
mod brute_force;
mod common;
