//! Training sparse autoencoders on CPU.

mod rng;
mod source;

pub use rng::SplitMix64;
pub use source::{ActivationMatrix, ActivationSource};
