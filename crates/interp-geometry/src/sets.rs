//! Small feature sets compared (seed 001): a chosen set against random other features on one
//! activation vector (§1.1.3, [`top_vs_random`]), and features picked from the SAE of every
//! layer matched across layers (§1.1.4, [`cross_layer_best_matches`]).

use std::ops::Range;

use interp_core::rng::SplitMix64;
use interp_sae::Sae;
use ndarray::{Array2, ArrayView1, ArrayView2};
use serde::Serialize;

use crate::directions::{similarity_matrix, Directions};
use crate::error::{check_indices, Error, Result};

/// Random features to compare a chosen set with: [`random_other_features`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RandomFeatures {
    /// The features drawn, those active first.
    pub features: Vec<usize>,
    /// How many of them were drawn among the active features (`acts > 0`).
    pub n_active: usize,
}

/// `n` distinct features of `acts` (one activation per feature) outside `exclude`, seeded:
/// first a shuffle (SplitMix64 `seed`) of the active features (`acts > 0`), and when fewer than
/// `n` are active, the rest drawn uniformly among all features — an inactive feature has the
/// zero activation-weighted representation. Fewer than `n` come back only when fewer than `n`
/// features lie outside `exclude`.
///
/// # Errors
/// [`Error::IndexOutOfRange`] for an `exclude` index `≥ acts.len()`.
pub fn random_other_features(
    acts: ArrayView1<'_, f32>,
    exclude: &[usize],
    n: usize,
    seed: u64,
) -> Result<RandomFeatures> {
    let d = acts.len();
    check_indices("excluded features", exclude, d)?;
    let mut active: Vec<usize> = (0..d)
        .filter(|i| acts[*i] > 0.0 && !exclude.contains(i))
        .collect();
    let mut rng = SplitMix64::new(seed);
    rng.shuffle(&mut active);
    let mut features: Vec<usize> = active.into_iter().take(n).collect();
    let n_active = features.len();
    let outside = (0..d).filter(|i| !exclude.contains(i)).count();
    while features.len() < n.min(outside) {
        let f = rng.below(d);
        if !exclude.contains(&f) && !features.contains(&f) {
            features.push(f);
        }
    }
    Ok(RandomFeatures { features, n_active })
}

/// The mean of the cells `m[i, j]` with `i ∈ rows`, `j ∈ cols` and `i ≠ j` (a block of a
/// cosine matrix without its diagonal); NaN when there is no such cell.
///
/// # Errors
/// [`Error::IndexOutOfRange`] when a range passes the matrix.
pub fn off_diagonal_mean(
    m: ArrayView2<'_, f32>,
    rows: Range<usize>,
    cols: Range<usize>,
) -> Result<f32> {
    for (what, r, len) in [("rows", &rows, m.nrows()), ("columns", &cols, m.ncols())] {
        if r.end > len {
            return Err(Error::IndexOutOfRange {
                what: what.into(),
                index: r.end - 1,
                len,
            });
        }
    }
    let cells: Vec<f32> = rows
        .flat_map(|i| cols.clone().map(move |j| (i, j)))
        .filter(|(i, j)| i != j)
        .map(|(i, j)| m[[i, j]])
        .collect();
    Ok(if cells.is_empty() {
        f32::NAN
    } else {
        cells.iter().sum::<f32>() / cells.len() as f32
    })
}

/// A chosen set of features against random other features on one activation vector:
/// [`top_vs_random`].
#[derive(Clone, Debug)]
pub struct TopVsRandom {
    /// The chosen features, then the random ones.
    pub features: Vec<usize>,
    /// How many of `features` are the chosen ones.
    pub n_top: usize,
    /// How many random features were drawn among the active ones.
    pub n_random_active: usize,
    /// Cosines of the activation-weighted representations `a_i · W_dec[i]`, in `features`
    /// order.
    pub activation_weighted: Array2<f32>,
    /// Cosines of the decoder rows, in `features` order.
    pub decoder: Array2<f32>,
    /// Mean activation-weighted cosine among the chosen features.
    pub mean_within_top: f32,
    /// … between a chosen and a random feature.
    pub mean_top_vs_random: f32,
    /// … among the random features.
    pub mean_within_random: f32,
}

/// Seed 001 §1.1.3: the cosines of the activation-weighted representations `a_i · W_dec[i]`
/// (`acts`: one prompt's activations of `sae`) of the features `top` and of `n_random` random
/// others ([`random_other_features`] with `seed`), the same for the decoder rows, and the mean
/// cosine within the chosen set, across, and within the random set.
///
/// # Errors
/// [`Error::LengthMismatch`] when `acts` is not `d_sae` long; [`Error::NonFinite`] for a
/// non-finite activation; [`Error::IndexOutOfRange`] for a feature of `top` past `d_sae`.
pub fn top_vs_random(
    sae: &Sae,
    acts: ArrayView1<'_, f32>,
    top: &[usize],
    n_random: usize,
    seed: u64,
) -> Result<TopVsRandom> {
    let reprs = Directions::activation_weighted(sae, acts)?;
    let others = random_other_features(acts, top, n_random, seed)?;
    let features: Vec<usize> = top.iter().chain(&others.features).copied().collect();
    let cos = similarity_matrix(&reprs, &features, &reprs, &features)?;
    let dec = Directions::decoder(sae);
    let decoder = similarity_matrix(&dec, &features, &dec, &features)?;
    let (nt, n) = (top.len(), features.len());
    Ok(TopVsRandom {
        mean_within_top: off_diagonal_mean(cos.view(), 0..nt, 0..nt)?,
        mean_top_vs_random: off_diagonal_mean(cos.view(), 0..nt, nt..n)?,
        mean_within_random: off_diagonal_mean(cos.view(), nt..n, nt..n)?,
        features,
        n_top: nt,
        n_random_active: others.n_active,
        activation_weighted: cos,
        decoder,
    })
}

/// A feature's best match in another layer: one row of [`CrossLayerMatches::best`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LayerMatch {
    /// The feature (row of the matrix).
    pub feature: usize,
    /// Its best match in any other layer (column of the matrix).
    pub matched: usize,
    /// Their cosine.
    pub cosine: f32,
}

/// The mean best-match cosine at one layer distance: one row of
/// [`CrossLayerMatches::by_distance`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct DistanceMean {
    /// `|layer(a) − layer(b)|`.
    pub distance: usize,
    /// Mean over features of their best cosine with a feature of a layer that far away.
    pub mean_best_cosine: f32,
    /// How many (feature, layer) pairs the mean is over.
    pub n: usize,
}

/// [`cross_layer_best_matches`]: each feature's best match in another layer, and how alike
/// features are by layer distance.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CrossLayerMatches {
    /// For each feature (in order) with a feature in another layer, its best match there.
    pub best: Vec<LayerMatch>,
    /// For each distance with pairs, ascending: the mean over features and layers that far of
    /// the feature's best cosine in that layer.
    pub by_distance: Vec<DistanceMean>,
}

/// Seed 001 §1.1.4: features picked from the SAE of several layers (`layers[r]`: the layer of
/// row `r`) and their joint cosine matrix `m` (e.g. [`crate::joint_similarity_matrix`] of the
/// decoder rows): for every feature, its best match in each other layer (summarised by layer
/// distance — are nearby layers more alike?) and its best match in any other layer (the first
/// layer wins ties; within a layer the last column).
///
/// # Errors
/// [`Error::LengthMismatch`] when `m` is not square with one row per entry of `layers`.
pub fn cross_layer_best_matches(
    m: ArrayView2<'_, f32>,
    layers: &[usize],
) -> Result<CrossLayerMatches> {
    for (what, len) in [("matrix rows", m.nrows()), ("matrix columns", m.ncols())] {
        if len != layers.len() {
            return Err(Error::LengthMismatch {
                what: what.into(),
                expected: layers.len(),
                actual: len,
            });
        }
    }
    let mut distinct = layers.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let max_distance = distinct.last().map_or(0, |&l| l - distinct[0]);
    let mut by_distance: Vec<Vec<f32>> = vec![Vec::new(); max_distance + 1];
    let mut best = Vec::new();
    for (r, &layer_r) in layers.iter().enumerate() {
        let mut found: Option<(usize, f32)> = None;
        for &l in distinct.iter().filter(|&&l| l != layer_r) {
            let in_l = (0..layers.len()).filter(|&c| layers[c] == l);
            if let Some(c) = in_l.max_by(|&a, &b| m[[r, a]].total_cmp(&m[[r, b]])) {
                by_distance[l.abs_diff(layer_r)].push(m[[r, c]]);
                if found.is_none_or(|(_, v)| m[[r, c]] > v) {
                    found = Some((c, m[[r, c]]));
                }
            }
        }
        if let Some((matched, cosine)) = found {
            best.push(LayerMatch {
                feature: r,
                matched,
                cosine,
            });
        }
    }
    let by_distance = by_distance
        .into_iter()
        .enumerate()
        .filter(|(_, v)| !v.is_empty())
        .map(|(distance, v)| DistanceMean {
            distance,
            mean_best_cosine: v.iter().sum::<f32>() / v.len() as f32,
            n: v.len(),
        })
        .collect();
    Ok(CrossLayerMatches { best, by_distance })
}
