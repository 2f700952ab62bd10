//! Synthetic activations with a known dictionary in superposition, and the mean max cosine
//! similarity (MMCS) that scores how well a trained SAE recovered it.

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use super::params::normalize_rows;
use interp_core::rng::SplitMix64;

/// A ground-truth dictionary and activations built from it.
#[derive(Clone, Debug)]
pub struct SyntheticData {
    /// True feature directions, unit rows `[n_features, d]`.
    pub dictionary: Array2<f32>,
    /// Activations `[n, d]`: each a sparse non-negative combination of dictionary rows.
    pub activations: Array2<f32>,
}

/// `n` activations in `d` dimensions from `n_features` random unit directions, each feature
/// active independently with probability `mean_active / n_features` and magnitude uniform in
/// `[0.5, 1.5)` (seeded).
pub fn superposition(
    d: usize,
    n_features: usize,
    mean_active: f64,
    n: usize,
    seed: u64,
) -> SyntheticData {
    let mut rng = SplitMix64::stream(seed, 1);
    let mut dictionary = Array2::from_shape_simple_fn((n_features, d), || rng.normal());
    normalize_rows(&mut dictionary, 1.0);
    let p = mean_active / n_features as f64;
    let rows: Vec<Vec<f32>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut g = SplitMix64::stream(seed ^ 0x5eed, i as u64 + 2);
            let mut x = vec![0.0f32; d];
            for f in 0..n_features {
                if g.uniform() < p {
                    let a = 0.5 + g.uniform() as f32;
                    x.iter_mut()
                        .zip(dictionary.row(f))
                        .for_each(|(x, &w)| *x += a * w);
                }
            }
            x
        })
        .collect();
    let activations = Array2::from_shape_vec((n, d), rows.concat()).expect("n × d values");
    SyntheticData {
        dictionary,
        activations,
    }
}

/// Mean over the rows of `truth` of the largest cosine similarity with any row of `learned`
/// (1.0 means every true feature has an exact match).
pub fn mean_max_cosine(truth: ArrayView2<'_, f32>, learned: ArrayView2<'_, f32>) -> f64 {
    let mut t = truth.to_owned();
    let mut l = learned.to_owned();
    normalize_rows(&mut t, 1.0);
    normalize_rows(&mut l, 1.0);
    let sims = t.dot(&l.t());
    sims.axis_iter(Axis(0))
        .map(|r| r.iter().copied().fold(f32::MIN, f32::max) as f64)
        .sum::<f64>()
        / truth.nrows() as f64
}
