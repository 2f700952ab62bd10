//! The toy world's antonym ground truth for seed 004: for each antonym dimension of the corpus
//! (big / small, bright / dark, fast / slow, success / failure, hot / cold), the SAE features
//! that separate each pole's words from every other word, and the concept pairs they make.

use interp_geometry::pairs::{Concept, ConceptPair, PairSet};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::corpus::{Antonym, Label};
use crate::error::{Error, Result};
use crate::eval::{separating_features, Separating};

/// The features of one pole of an antonym dimension.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoleFeatures {
    /// The dimension.
    pub dim: Antonym,
    /// The pole (big, bright, fast, success, hot are positive).
    pub positive: bool,
    /// Its English word.
    pub word: String,
    /// Words of this pole among the rows.
    pub n_words: usize,
    /// The separating features, best gate first (see [`antonym_pole_features`]).
    pub features: Vec<Separating>,
    /// For each feature, the AUROC of this pole's words against the opposite pole's only: a
    /// feature of the dimension (firing on big and small alike) has ≈ 0.5 here.
    pub auroc_vs_opposite: Vec<f64>,
}

/// The header of [`PoleFeatures::table_row`].
pub const POLE_TABLE_HEADER: [&str; 5] = [
    "dimension",
    "pole",
    "words",
    "features (AUROC vs all other words / vs the opposite pole's)",
    "gate (both ≥ threshold)",
];

impl PoleFeatures {
    /// A markdown table row under [`POLE_TABLE_HEADER`], the gate at `threshold`.
    pub fn table_row(&self, threshold: f64) -> Vec<String> {
        let features: Vec<String> = (self.features.iter().zip(&self.auroc_vs_opposite))
            .map(|(s, o)| format!("{} ({:.3} / {o:.3})", s.feature, s.auroc))
            .collect();
        let gate = if self.gate_auroc() >= threshold {
            "pass"
        } else {
            "FAIL"
        };
        vec![
            self.dim.name().to_string(),
            self.word.clone(),
            self.n_words.to_string(),
            features.join(", "),
            format!("{gate} ({:.3})", self.gate_auroc()),
        ]
    }

    /// The pole's gate: the best over its features of the smaller of the two AUROCs (against
    /// all other words, and against the opposite pole's words).
    pub fn gate_auroc(&self) -> f64 {
        self.features
            .iter()
            .zip(&self.auroc_vs_opposite)
            .map(|(s, &o)| s.auroc.min(o))
            .fold(0.0, f64::max)
    }
}

/// For each pole of each dimension, the features separating its words (rows of `codes`
/// labelled `Label::Antonym { dim, positive }`) both from all other words and from the opposite
/// pole's words: among the `candidates` features with the largest mean difference against all
/// other words, ranked by the smaller of the two AUROCs; those with both ≥ `min_auroc`, at most
/// `per_pole`, and always the best one.
///
/// # Errors
/// [`Error::InvalidArgument`] when `labels` and `codes` disagree in length or a pole has no
/// words (a corpus too small).
pub fn antonym_pole_features(
    codes: &Array2<f32>,
    labels: &[Option<Label>],
    per_pole: usize,
    min_auroc: f64,
    candidates: usize,
) -> Result<Vec<PoleFeatures>> {
    let mut out = Vec::new();
    for dim in Antonym::ALL {
        for positive in [true, false] {
            let is_pos: Vec<bool> = labels
                .iter()
                .map(|l| *l == Some(Label::Antonym { dim, positive }))
                .collect();
            let n_words = is_pos.iter().filter(|&&p| p).count();
            if n_words == 0 {
                return Err(Error::InvalidArgument(format!(
                    "no `{}` word among the {} words: use more documents",
                    dim.pole(positive),
                    labels.len()
                )));
            }
            let ranked = separating_features(codes, &is_pos, candidates)?;
            let opposite: Vec<bool> = labels
                .iter()
                .map(|l| {
                    *l == Some(Label::Antonym {
                        dim,
                        positive: !positive,
                    })
                })
                .collect();
            // Every candidate with its AUROC against the opposite pole; ranked by the smaller
            // of the two, so a feature of the whole dimension does not stand for a pole.
            let mut scored = ranked
                .iter()
                .map(|s| {
                    let col = codes.column(s.feature);
                    let side = |mask: &[bool]| -> Vec<f64> {
                        col.iter()
                            .zip(mask)
                            .filter(|(_, &m)| m)
                            .map(|(&v, _)| f64::from(v))
                            .collect()
                    };
                    interp_geometry::stats::mann_whitney_u(&side(&is_pos), &side(&opposite))
                        .map(|m| (*s, m.effect))
                        .map_err(|e| Error::InvalidArgument(e.to_string()))
                })
                .collect::<Result<Vec<_>>>()?;
            scored.sort_by(|x, y| x.0.auroc.min(x.1).total_cmp(&y.0.auroc.min(y.1)).reverse());
            let (keep, auroc_vs_opposite): (Vec<Separating>, Vec<f64>) = scored
                .into_iter()
                .enumerate()
                .filter(|(i, (s, o))| *i == 0 || s.auroc.min(*o) >= min_auroc)
                .take(per_pole.max(1))
                .map(|(_, x)| x)
                .unzip();
            out.push(PoleFeatures {
                dim,
                positive,
                word: dim.pole(positive).to_string(),
                n_words,
                features: keep,
                auroc_vs_opposite,
            });
        }
    }
    Ok(out)
}

/// One concept pair per dimension: the positive pole's features against the negative pole's
/// (`"size"`: `big` vs `small`), for `interp_geometry::pairs`. A feature listed for both poles
/// (one that fires on the dimension rather than a pole) is left out of both; a dimension with
/// a pole left without features is left out.
pub fn antonym_pairs(poles: &[PoleFeatures]) -> PairSet {
    let pairs = Antonym::ALL
        .iter()
        .filter_map(|&dim| {
            let pole = |positive| {
                poles
                    .iter()
                    .find(|p| p.dim == dim && p.positive == positive)
            };
            let (a, b) = (pole(true)?, pole(false)?);
            let ids = |p: &PoleFeatures| p.features.iter().map(|s| s.feature).collect::<Vec<_>>();
            let (fa, fb) = (ids(a), ids(b));
            let concept = |p: &PoleFeatures, own: &[usize], other: &[usize]| Concept {
                name: p.word.clone(),
                features: own.iter().copied().filter(|f| !other.contains(f)).collect(),
            };
            let (ca, cb) = (concept(a, &fa, &fb), concept(b, &fb, &fa));
            (!ca.features.is_empty() && !cb.features.is_empty()).then(|| ConceptPair {
                name: dim.name().to_string(),
                a: ca,
                b: cb,
            })
        })
        .collect();
    PairSet { pairs }
}

/// The `n` distinct words (lower-cased) on which `feature` is strongest, strongest first.
pub fn top_words(codes: &Array2<f32>, words: &[String], feature: usize, n: usize) -> Vec<String> {
    let col = codes.column(feature);
    let mut order: Vec<usize> = (0..col.len().min(words.len()))
        .filter(|&i| col[i] > 0.0)
        .collect();
    order.sort_by(|&a, &b| col[b].total_cmp(&col[a]));
    let mut out: Vec<String> = Vec::new();
    for i in order {
        let w = words[i].to_lowercase();
        if !out.contains(&w) {
            out.push(w);
            if out.len() == n {
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Words: 10 "big", 10 "small", 20 others (size words only; other dimensions absent).
    fn planted() -> (Array2<f32>, Vec<Option<Label>>) {
        let n = 40;
        let label = |i: usize| match i {
            0..10 => Some(Label::Antonym {
                dim: Antonym::Size,
                positive: true,
            }),
            10..20 => Some(Label::Antonym {
                dim: Antonym::Size,
                positive: false,
            }),
            _ => None,
        };
        // Feature 0 fires on both poles (the dimension), 1 on big only, 2 on small only.
        let codes = Array2::from_shape_fn((n, 4), |(i, f)| match (f, i) {
            (0, 0..20) => 5.0,
            (1, 0..10) => 1.0 + i as f32 * 0.01,
            (2, 10..20) => 1.0,
            (3, _) => (i % 3) as f32,
            _ => 0.0,
        });
        (codes, (0..n).map(label).collect())
    }

    #[test]
    fn a_pole_is_given_by_its_own_feature_not_by_the_dimensions() {
        let (codes, labels) = planted();
        let size = |labels: &[Option<Label>]| {
            // Add one word of every other pole so each pole has words.
            let mut labels = labels.to_vec();
            let mut codes = codes.clone();
            for dim in Antonym::ALL.into_iter().skip(1) {
                for positive in [true, false] {
                    labels.push(Some(Label::Antonym { dim, positive }));
                    codes
                        .push_row(ndarray::ArrayView1::from(&[0.0, 0.0, 0.0, 0.0]))
                        .unwrap();
                }
            }
            antonym_pole_features(&codes, &labels, 2, 0.9, 4).unwrap()
        };
        let poles = size(&labels);
        let big = &poles[0];
        assert_eq!(
            (big.dim, big.positive, big.n_words),
            (Antonym::Size, true, 10)
        );
        assert_eq!(big.features[0].feature, 1);
        assert_eq!(
            big.features.len(),
            1,
            "feature 0 fires on small too: not a `big` feature"
        );
        assert!((big.auroc_vs_opposite[0] - 1.0).abs() < 1e-9);
        assert!(big.gate_auroc() >= 0.9);
        assert_eq!(poles[1].features[0].feature, 2);
        let set = antonym_pairs(&poles);
        assert_eq!(set.pairs[0].name, "size");
        assert_eq!(
            (
                set.pairs[0].a.features.clone(),
                set.pairs[0].b.features.clone()
            ),
            (vec![1], vec![2])
        );
        let e = antonym_pole_features(&codes, &labels, 2, 0.9, 4).unwrap_err();
        assert!(e.to_string().contains("no `bright` word"), "{e}");
    }

    #[test]
    fn a_feature_both_poles_share_is_left_out_of_the_pairs() {
        let pole = |positive, features: &[usize]| PoleFeatures {
            dim: Antonym::Speed,
            positive,
            word: Antonym::Speed.pole(positive).into(),
            n_words: 3,
            features: features
                .iter()
                .map(|&feature| Separating {
                    feature,
                    auroc: 0.95,
                    firing_rate: 1.0,
                })
                .collect(),
            auroc_vs_opposite: vec![0.5; features.len()],
        };
        let set = antonym_pairs(&[pole(true, &[7, 8]), pole(false, &[8, 9])]);
        assert_eq!(
            (
                set.pairs[0].a.features.clone(),
                set.pairs[0].b.features.clone()
            ),
            (vec![7], vec![9])
        );
        assert!(antonym_pairs(&[pole(true, &[8]), pole(false, &[8])])
            .pairs
            .is_empty());
        let codes = Array2::from_shape_vec((4, 1), vec![1.0, 3.0, 0.0, 2.0]).unwrap();
        let words: Vec<String> = ["Fast", "quick", "slow", "FAST"].map(String::from).into();
        assert_eq!(top_words(&codes, &words, 0, 5), ["quick", "fast"]);
    }
}
