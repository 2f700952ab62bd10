//! Sparse autoencoders for mechanistic interpretability.
//!
//! - [`Sae`]: ReLU ("standard"), TopK, JumpReLU (also BatchTopK / Matryoshka as SAELens saves
//!   them) and Gated SAEs in SAELens layout, with input normalisation (`layer_norm`,
//!   `constant_norm_rescale`), encode / decode / forward / error term, feature directions, and
//!   folding of decoder norms or activation scales into the weights.
//! - [`formats`]: SAELens (read and write), Gemma Scope `params.npz`, OpenAI `.pt` (through a
//!   pickle reader that never executes code), Llama Scope and sparsify; [`formats::load`]
//!   detects which; [`registry`] maps SAELens release ids to hub files (`hub` feature);
//!   [`source::SaeSource`] finds the SAE at a hook in a directory or a release.
//! - [`probe`]: the features that fire on a word (summed over its sub-tokens, averaged over
//!   prompts, several SAEs from one forward; `models` feature) and the top features of an
//!   activation vector.
//! - Fast CPU kernels: encode is a blocked GEMM with the nonlinearity (TopK selection included)
//!   fused in; decode of [`SparseCodes`] reads only the decoder rows of active latents.
//!
//! - [`train`]: SAE training (ReLU-L1, TopK + AuxK, BatchTopK, JumpReLU) with a hand-derived,
//!   sparse backward pass on the CPU, or burn autodiff on any backend (`burn` feature).
//!
//! This crate does not depend on a tensor framework; the `burn` feature adds training through
//! burn autodiff, and the `models` feature burn-tensor encode/decode and SAEs attached to
//! `interp-models` hook points.
//!
//! ```
//! use interp_sae::prelude::*;
//! use ndarray::{array, Array1, Array2};
//!
//! // A 2-latent ReLU SAE over 2-d inputs.
//! let cfg = SaeConfig::new(Architecture::Standard, 2, 2);
//! let weights = SaeWeights {
//!     w_enc: array![[1.0, -1.0], [0.0, 1.0]],
//!     w_dec: array![[1.0, 0.0], [0.0, 1.0]],
//!     b_enc: Array1::zeros(2),
//!     b_dec: Array1::zeros(2),
//!     threshold: None,
//!     gated: None,
//! };
//! let sae = Sae::new(cfg, weights)?;
//! let codes = sae.encode_sparse(array![[2.0, 1.0]].view())?;
//! assert_eq!(codes.row(0), (&[0u32][..], &[2.0f32][..]));
//! let x_hat: Array2<f32> = sae.decode_sparse(&codes)?;
//! assert_eq!(x_hat, array![[2.0, 0.0]]);
//! # Ok::<(), interp_sae::Error>(())
//! ```

mod config;
#[cfg(feature = "burn")]
mod device;
mod error;
pub mod formats;
#[cfg(feature = "models")]
pub mod hooked;
mod kernels;
pub mod probe;
pub mod registry;
mod sae;
pub mod source;
mod sparse;
#[cfg(feature = "models")]
pub mod splice;
#[cfg(feature = "models")]
pub mod store;
pub mod train;

pub use config::{Architecture, Normalization, SaeConfig, SaeMetadata};
pub use error::{Error, Result};
pub use formats::{load, Format};
pub use sae::{GatedWeights, Sae, SaeWeights};
pub use sparse::{RowNorm, SparseCodes};

/// The types most programs need.
pub mod prelude {
    pub use crate::{
        load, Architecture, Error, Format, Normalization, Sae, SaeConfig, SaeWeights, SparseCodes,
    };
}
