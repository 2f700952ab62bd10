//! # interp-sae
//!
//! Sparse autoencoders: architectures, loaders for public formats, encode/decode kernels, training. (Work in progress: see the project issues.)
