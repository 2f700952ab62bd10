//! # interp-geometry
//!
//! Geometry of SAE features at full scale (131k features and more) on CPU, without a tensor
//! framework:
//!
//! - [`Directions`]: decoder rows, encoder columns, or activation-weighted representations
//!   `a_i · W_dec[i]` (seeds 000/001), unit-normalised once; [`self_similarity`]
//!   (`cos(W_enc[:, i], W_dec[i])`), [`paired_cosines`], and [`similarity_matrix`] for chosen
//!   feature sets (heatmaps), computed in tiles; [`joint_similarity_matrix`] for features
//!   picked from several SAEs (e.g. one per layer).
//! - [`extremes`]: exhaustive all-pairs searches streamed tile by tile with bounded memory —
//!   the top-`N` most aligned and most opposed pairs within one set or between two
//!   ([`all_pairs_extremes`], [`cross_extremes`]), per-feature nearest neighbours
//!   ([`nearest_neighbors`]), cross-SAE top-`k` matches ([`top_k_matches`]) and
//!   [`antipodality`].
//! - [`pairs`]: concept-pair analysis (seed 004) against a seeded, size-matched random baseline,
//!   with Mann–Whitney U and permutation tests, as JSON and markdown.
//! - [`matching`]: one-to-one permutations between SAEs by exact linear assignment (dense, or
//!   sparse on top-`k` candidates).
//! - [`sets`]: a chosen feature set against random others on one prompt ([`top_vs_random`]),
//!   and features picked per layer matched across layers ([`cross_layer_best_matches`]).
//! - [`gram_stats`]: orthogonality statistics shared with the SAE trainer
//!   (`interp_core::tiles`).
//! - `plot` (feature `plot`, default): heatmaps and histograms as PNG / SVG.
//!
//! Zero vectors (dead features, zero activations) have cosine 0 with everything; see
//! [`Directions`].
//!
//! ```
//! use interp_geometry::prelude::*;
//! use ndarray::array;
//!
//! let w = array![[1.0f32, 0.0], [0.0, 2.0], [-3.0, 0.1], [0.9, 0.1]];
//! let dirs = Directions::from_rows(w.view())?;
//! let ex = all_pairs_extremes(&dirs, 1);
//! assert_eq!((ex.most_aligned[0].i, ex.most_aligned[0].j), (0, 3));
//! assert_eq!((ex.most_opposed[0].i, ex.most_opposed[0].j), (0, 2));
//! # Ok::<(), interp_geometry::Error>(())
//! ```

mod directions;
mod error;
pub mod extremes;
pub mod matching;
pub mod pairs;
#[cfg(feature = "plot")]
pub mod plot;
pub mod sets;
pub mod stats;

pub use directions::{
    joint_similarity_matrix, mean_activations, paired_cosines, self_similarity, similarity_matrix,
    Directions, Matrix,
};
pub use error::{Error, Result};
pub use extremes::{
    all_pairs_extremes, antipodality, cross_extremes, extremes_with, nearest_neighbors,
    top_k_matches, Antipodality, Extremes, Neighbors, Pair,
};
pub use interp_core::tiles::{gram_stats, GramStats, TileShape};
pub use matching::{linear_assignment, permutation_match, sparse_assignment, Assignment};
pub use pairs::{
    analyze_pairs, analyze_sae_pairs, Concept, ConceptPair, PairConfig, PairReport, PairSet,
};
pub use sets::{
    cross_layer_best_matches, off_diagonal_mean, random_other_features, top_vs_random,
    CrossLayerMatches, DistanceMean, LayerMatch, RandomFeatures, TopVsRandom,
};

/// The types and functions most programs need.
pub mod prelude {
    pub use crate::{
        all_pairs_extremes, analyze_pairs, analyze_sae_pairs, antipodality, cross_extremes,
        gram_stats, joint_similarity_matrix, nearest_neighbors, permutation_match, self_similarity,
        similarity_matrix, top_k_matches, Directions, Error, Extremes, Matrix, Neighbors, Pair,
        PairConfig, PairSet,
    };
}
