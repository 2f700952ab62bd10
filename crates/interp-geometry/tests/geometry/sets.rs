//! `sets`: random comparison features, off-diagonal block means, the top-vs-random comparison
//! and the cross-layer best match, on hand-built inputs whose answers are worked out here.

use interp_geometry::{
    cross_layer_best_matches, off_diagonal_mean, random_other_features, top_vs_random,
    DistanceMean, Error, LayerMatch,
};
use interp_sae::{Architecture, Sae, SaeConfig, SaeWeights};
use ndarray::{array, Array1, Array2};

#[test]
fn random_features_prefer_active_ones_and_never_repeat_or_excluded() {
    let acts = array![0.0f32, 2.0, 0.0, 1.0, 0.5, 0.0, 3.0, 0.0];
    // Active and not excluded: 3, 4, 6 (1 is excluded). Asking for 2 draws only among them.
    let r = random_other_features(acts.view(), &[1], 2, 7).unwrap();
    assert_eq!((r.features.len(), r.n_active), (2, 2));
    assert!(r.features.iter().all(|f| [3, 4, 6].contains(f)), "{r:?}");
    // Asking for 5: the three active ones first, then two inactive, none excluded or repeated.
    let r = random_other_features(acts.view(), &[1], 5, 7).unwrap();
    assert_eq!(r.n_active, 3);
    let mut first: Vec<usize> = r.features[..3].to_vec();
    first.sort_unstable();
    assert_eq!(first, vec![3, 4, 6]);
    let mut all = r.features.clone();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 5);
    assert!(!r.features.contains(&1));
    assert!(r.features[3..].iter().all(|&f| acts[f] == 0.0));
    // More than there are outside `exclude`: all of them.
    let r = random_other_features(acts.view(), &[0, 1], 100, 1).unwrap();
    assert_eq!(r.features.len(), 6);
    // The same seed draws the same features; the seed matters.
    let a = random_other_features(acts.view(), &[], 3, 11).unwrap();
    assert_eq!(a, random_other_features(acts.view(), &[], 3, 11).unwrap());
    let draws: Vec<_> = (0..16)
        .map(|s| {
            random_other_features(acts.view(), &[], 2, s)
                .unwrap()
                .features
        })
        .collect();
    assert!(draws.iter().any(|d| d != &draws[0]), "{draws:?}");
    assert!(matches!(
        random_other_features(acts.view(), &[8], 1, 0),
        Err(Error::IndexOutOfRange {
            index: 8,
            len: 8,
            ..
        })
    ));
}

#[test]
fn off_diagonal_means_skip_the_diagonal() {
    let m = array![[1.0f32, 0.2, 0.4], [0.2, 1.0, 0.6], [0.4, 0.6, 1.0]];
    let mean = |r, c| off_diagonal_mean(m.view(), r, c).unwrap();
    assert!((mean(0..2, 0..2) - 0.2).abs() < 1e-6);
    assert!((mean(0..2, 2..3) - 0.5).abs() < 1e-6);
    assert!((mean(0..3, 0..3) - 0.4).abs() < 1e-6);
    assert!(mean(1..2, 1..2).is_nan(), "only a diagonal cell");
    assert!(matches!(
        off_diagonal_mean(m.view(), 0..4, 0..1),
        Err(Error::IndexOutOfRange {
            index: 3,
            len: 3,
            ..
        })
    ));
}

/// A ReLU SAE over 2-d inputs with decoder rows `w_dec`.
fn sae(w_dec: Array2<f32>) -> Sae {
    let d_sae = w_dec.nrows();
    let cfg = SaeConfig::new(Architecture::Standard, 2, d_sae);
    let weights = SaeWeights {
        w_enc: w_dec.t().to_owned(),
        w_dec,
        b_enc: Array1::zeros(d_sae),
        b_dec: Array1::zeros(2),
        threshold: None,
        gated: None,
    };
    Sae::new(cfg, weights).unwrap()
}

#[test]
fn top_versus_random_cosines_are_the_decoder_cosines_signed_by_activation() {
    // Decoder rows at 0°, 60°, 90° and 180°.
    let (c, s) = (0.5f32, 0.75f32.sqrt());
    let sae = sae(array![[1.0, 0.0], [c, s], [0.0, 1.0], [-1.0, 0.0]]);
    // Features 0 and 1 are the "top" ones; 2 is active, 3 inactive: with n_random = 2 the
    // random ones are 2 (active) then 3 (zero representation).
    let acts = array![2.0f32, 1.0, 0.5, 0.0];
    let got = top_vs_random(&sae, acts.view(), &[0, 1], 2, 3).unwrap();
    assert_eq!(got.features, vec![0, 1, 2, 3]);
    assert_eq!((got.n_top, got.n_random_active), (2, 1));
    let want = array![
        [1.0, c, 0.0, 0.0],
        [c, 1.0, s, 0.0],
        [0.0, s, 1.0, 0.0],
        [0.0, 0.0, 0.0, 0.0],
    ];
    for (g, w) in got.activation_weighted.iter().zip(&want) {
        assert!((g - w).abs() < 1e-6, "{:?}", got.activation_weighted);
    }
    // The decoder cosines include the inactive feature's: -1 with feature 0.
    assert!((got.decoder[[0, 3]] + 1.0).abs() < 1e-6);
    assert!((got.mean_within_top - c).abs() < 1e-6);
    assert!((got.mean_top_vs_random - s / 4.0).abs() < 1e-6);
    assert!(got.mean_within_random.abs() < 1e-6);
    assert!(matches!(
        top_vs_random(&sae, acts.view(), &[4], 1, 0),
        Err(Error::IndexOutOfRange { .. })
    ));
    assert!(matches!(
        top_vs_random(&sae, array![1.0f32].view(), &[0], 1, 0),
        Err(Error::LengthMismatch { .. })
    ));
}

#[test]
fn cross_layer_best_matches_by_hand() {
    // Features 0, 1 from layer 0; 2 from layer 1; 3, 4 from layer 3.
    let layers = [0, 0, 1, 3, 3];
    let m = array![
        [1.0f32, 0.1, 0.5, 0.7, 0.2],
        [0.1, 1.0, 0.3, -0.1, -0.4],
        [0.5, 0.3, 1.0, 0.6, 0.9],
        [0.7, -0.1, 0.6, 1.0, 0.0],
        [0.2, -0.4, 0.9, 0.0, 1.0],
    ];
    let got = cross_layer_best_matches(m.view(), &layers).unwrap();
    let best = |feature, matched, cosine| LayerMatch {
        feature,
        matched,
        cosine,
    };
    assert_eq!(
        got.best,
        vec![
            best(0, 3, 0.7),
            best(1, 2, 0.3),
            best(2, 4, 0.9),
            best(3, 0, 0.7),
            best(4, 2, 0.9),
        ]
    );
    // Distance 1: (0→L1 0.5), (1→L1 0.3), (2→L0 0.5); distance 2: (2→L3 0.9), (3→L1 0.6),
    // (4→L1 0.9); distance 3: (0→L3 0.7), (1→L3 -0.1), (3→L0 0.7), (4→L0 0.2).
    let want = [(1, 1.3 / 3.0, 3), (2, 2.4 / 3.0, 3), (3, 1.5 / 4.0, 4)];
    assert_eq!(got.by_distance.len(), 3);
    for (g, &(distance, mean, n)) in got.by_distance.iter().zip(&want) {
        let DistanceMean {
            distance: d,
            mean_best_cosine,
            n: count,
        } = *g;
        assert_eq!((d, count), (distance, n));
        assert!((mean_best_cosine - mean).abs() < 1e-6, "{g:?}");
    }
    // One layer only: nothing to match.
    let one = cross_layer_best_matches(m.view(), &[2; 5]).unwrap();
    assert!(one.best.is_empty() && one.by_distance.is_empty());
    assert!(matches!(
        cross_layer_best_matches(m.view(), &[0, 1]),
        Err(Error::LengthMismatch {
            expected: 2,
            actual: 5,
            ..
        })
    ));
}
