//! interp-geometry against brute force (proptest), planted structure, and bad input.

use interp_geometry::extremes::{nearest_neighbors_with, top_k_matches_with};
use interp_geometry::matching::sparse_assignment;
use interp_geometry::pairs::pair_stats;
use interp_geometry::prelude::*;
use interp_geometry::{extremes_with, paired_cosines, TileShape};
use interp_sae::{Architecture, Sae, SaeConfig, SaeWeights};
use ndarray::{Array1, Array2};
use proptest::prelude::*;

fn random(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Array2::from_shape_simple_fn((rows, cols), || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        // Sum of uniforms: roughly Gaussian.
        (0..4)
            .map(|k| ((s.rotate_left(16 * k) >> 40) as f32 / (1u64 << 24) as f32) - 0.5)
            .sum()
    })
}

fn cos(a: &Array2<f32>, i: usize, b: &Array2<f32>, j: usize) -> f32 {
    let (x, y) = (a.row(i), b.row(j));
    let (nx, ny) = (x.dot(&x).sqrt() as f64, y.dot(&y).sqrt() as f64);
    if nx == 0.0 || ny == 0.0 {
        return 0.0;
    }
    (x.iter()
        .zip(y)
        .map(|(&p, &q)| p as f64 * q as f64)
        .sum::<f64>()
        / (nx * ny)) as f32
}

/// All pair cosines, brute force: within one set (`i < j`) or across two.
fn brute_pairs(a: &Array2<f32>, b: Option<&Array2<f32>>) -> Vec<(usize, usize, f32)> {
    let mut v = Vec::new();
    match b {
        None => {
            for i in 0..a.nrows() {
                for j in i + 1..a.nrows() {
                    v.push((i, j, cos(a, i, a, j)));
                }
            }
        }
        Some(b) => {
            for i in 0..a.nrows() {
                for j in 0..b.nrows() {
                    v.push((i, j, cos(a, i, b, j)));
                }
            }
        }
    }
    v
}

const TOL: f32 = 2e-5;

fn check_extremes(a: &Array2<f32>, b: Option<&Array2<f32>>, got: &Extremes, top: usize) {
    let mut all = brute_pairs(a, b);
    let n = top.min(all.len());
    assert_eq!(got.most_aligned.len(), n);
    assert_eq!(got.most_opposed.len(), n);
    let other = b.unwrap_or(a);
    for p in got.most_aligned.iter().chain(&got.most_opposed) {
        if b.is_none() {
            assert!(p.i < p.j, "{p:?}");
        }
        assert!((p.cos - cos(a, p.i, other, p.j)).abs() < TOL, "{p:?}");
    }
    all.sort_by(|x, y| y.2.total_cmp(&x.2));
    for (k, p) in got.most_aligned.iter().enumerate() {
        assert!(
            (p.cos - all[k].2).abs() < TOL,
            "aligned rank {k}: {p:?} vs {:?}",
            all[k]
        );
    }
    all.reverse();
    for (k, p) in got.most_opposed.iter().enumerate() {
        assert!(
            (p.cos - all[k].2).abs() < TOL,
            "opposed rank {k}: {p:?} vs {:?}",
            all[k]
        );
    }
    // No pair twice.
    let mut seen: Vec<_> = got.most_aligned.iter().map(|p| (p.i, p.j)).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), n);
}

fn check_neighbors(a: &Array2<f32>, b: Option<&Array2<f32>>, nb: &Neighbors, k: usize) {
    let other = b.unwrap_or(a);
    let candidates = if b.is_none() {
        other.nrows() - 1
    } else {
        other.nrows()
    };
    assert_eq!(nb.k, k.min(candidates));
    for i in 0..a.nrows() {
        let mut want: Vec<f32> = (0..other.nrows())
            .filter(|&j| b.is_some() || j != i)
            .map(|j| cos(a, i, other, j))
            .collect();
        want.sort_by(|x, y| y.total_cmp(x));
        let (idx, sc) = nb.row(i);
        for e in 0..nb.k {
            assert!((sc[e] - want[e]).abs() < TOL, "row {i} rank {e}");
            let j = idx[e] as usize;
            assert!(b.is_some() || j != i);
            assert!((sc[e] - cos(a, i, other, j)).abs() < TOL);
        }
    }
}

fn shape_strategy() -> impl Strategy<Value = TileShape> {
    (1usize..9, 1usize..13).prop_map(|(rows, cols)| TileShape { rows, cols })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn extremes_within_one_set_match_brute_force(
        n in 2usize..40, d in 1usize..9, top in 1usize..12, seed in any::<u64>(),
        shape in shape_strategy(), zero_row in proptest::option::of(0usize..40),
    ) {
        let mut a = random(n, d, seed);
        if let Some(z) = zero_row.filter(|&z| z < n) {
            a.row_mut(z).fill(0.0);
        }
        let dirs = Directions::from_rows(a.view()).unwrap();
        let got = extremes_with(&dirs, None, top, shape).unwrap();
        check_extremes(&a, None, &got, top);
    }

    #[test]
    fn extremes_between_two_sets_match_brute_force(
        n in 1usize..30, m in 1usize..30, d in 1usize..9, top in 1usize..12,
        seed in any::<u64>(), shape in shape_strategy(),
    ) {
        let a = random(n, d, seed);
        let b = random(m, d, seed ^ 0xABCD);
        let (da, db) = (Directions::from_rows(a.view()).unwrap(), Directions::from_rows(b.view()).unwrap());
        let got = extremes_with(&da, Some(&db), top, shape).unwrap();
        check_extremes(&a, Some(&b), &got, top);
    }

    #[test]
    fn neighbors_and_matches_match_brute_force(
        n in 2usize..35, m in 1usize..25, d in 1usize..7, k in 1usize..8,
        seed in any::<u64>(), shape in shape_strategy(),
    ) {
        let a = random(n, d, seed);
        let b = random(m, d, seed ^ 0x1234);
        let da = Directions::from_rows(a.view()).unwrap();
        let db = Directions::from_rows(b.view()).unwrap();
        check_neighbors(&a, None, &nearest_neighbors_with(&da, k, shape), k);
        check_neighbors(&a, Some(&b), &top_k_matches_with(&da, &db, k, shape).unwrap(), k);
    }

    #[test]
    fn antipodality_and_gram_stats_match_brute_force(
        n in 2usize..30, d in 1usize..7, seed in any::<u64>(),
    ) {
        let e = random(n, d, seed);
        let w = random(n, d, seed ^ 0x77);
        let got = antipodality(
            &Directions::from_rows(e.view()).unwrap(),
            &Directions::from_rows(w.view()).unwrap(),
        ).unwrap();
        for (i, a) in got.iter().enumerate() {
            let best = (0..n).filter(|&j| j != i)
                .map(|j| cos(&e, i, &e, j) * cos(&w, i, &w, j))
                .fold(f32::NEG_INFINITY, f32::max);
            prop_assert!((a.score - best).abs() < 1e-4, "{i}: {a:?} vs {best}");
            let j = a.partner.unwrap();
            prop_assert!(j != i);
            prop_assert!((a.score - cos(&e, i, &e, j) * cos(&w, i, &w, j)).abs() < 1e-4);
        }
        let g = gram_stats(e.view());
        let pairs = brute_pairs(&e, None);
        let mean = pairs.iter().map(|p| p.2.abs() as f64).sum::<f64>() / pairs.len() as f64;
        let max = pairs.iter().map(|p| p.2.abs() as f64).fold(0.0, f64::max);
        prop_assert!((g.mean_abs_off_diagonal - mean).abs() < 1e-5);
        prop_assert!((g.max_abs_off_diagonal - max).abs() < 1e-5);
    }
}

/// 2000 random directions in 64-d with an exact antipodal pair and a near-duplicate pair
/// planted: both are found at rank 1, whatever the tiling.
#[test]
fn planted_antipodal_and_near_duplicate_pairs_rank_first() {
    let mut w = random(2000, 64, 42);
    let r17 = w.row(17).to_owned();
    w.row_mut(1234).assign(&(-&r17 * 3.0));
    let noise = random(1, 64, 7).row(0).to_owned() * 0.01;
    let r3 = w.row(3).to_owned();
    w.row_mut(1500).assign(&(&r3 + &noise));
    let dirs = Directions::from_rows(w.view()).unwrap();
    for shape in [
        TileShape::default(),
        TileShape {
            rows: 100,
            cols: 300,
        },
        TileShape { rows: 7, cols: 5 },
    ] {
        let ex = extremes_with(&dirs, None, 5, shape).unwrap();
        let (a, o) = (ex.most_aligned[0], ex.most_opposed[0]);
        assert_eq!((a.i, a.j), (3, 1500), "{shape:?}");
        assert!(a.cos > 0.999);
        assert_eq!((o.i, o.j), (17, 1234), "{shape:?}");
        assert!((o.cos + 1.0).abs() < 1e-5);
        // Sorted, and the runners-up are ordinary random pairs.
        assert!(ex.most_aligned.windows(2).all(|p| p[0].cos >= p[1].cos));
        assert!(ex.most_opposed.windows(2).all(|p| p[0].cos <= p[1].cos));
        assert!(ex.most_aligned[1].cos < 0.9);
    }
    let nb = nearest_neighbors(&dirs, 3);
    assert_eq!(nb.row(1500).0[0], 3);
    assert_eq!(nb.row(3).0[0], 1500);
    // Cross: the same matrix against itself pairs every feature with itself first.
    let ex = cross_extremes(&dirs, &dirs, 3).unwrap();
    assert!(ex.most_aligned.iter().all(|p| p.i == p.j));
    let o = ex.most_opposed[0];
    assert!(matches!((o.i, o.j), (17, 1234) | (1234, 17)), "{o:?}");
}

#[test]
fn permutations_between_saes_are_recovered() {
    let a = random(300, 32, 5);
    let perm: Vec<usize> = (0..300).map(|i| (i * 7 + 3) % 300).collect();
    let noise = random(300, 32, 6) * 0.05;
    let b = a.select(ndarray::Axis(0), &perm) + &noise;
    let (da, db) = (
        Directions::from_rows(a.view()).unwrap(),
        Directions::from_rows(b.view()).unwrap(),
    );
    // b[r] ≈ a[perm[r]], so a's feature perm[r] matches b's feature r.
    let mut want = vec![0usize; 300];
    for (r, &p) in perm.iter().enumerate() {
        want[p] = r;
    }
    let dense = permutation_match(&da, &db, 1 << 20).unwrap();
    assert_eq!(dense.matched, 300);
    assert!(dense.matches.iter().zip(&want).all(|(m, &w)| *m == Some(w)));
    let top = top_k_matches(&da, &db, 4).unwrap();
    assert!((0..300).all(|i| top.row(i).0[0] as usize == want[i]));
    let sparse = sparse_assignment(&top, 300, 0.0).unwrap();
    assert_eq!(sparse.matches, dense.matches);
    assert!((sparse.total - dense.total).abs() < 1e-3);
    assert!(permutation_match(&da, &db, 1000).is_err());
}

fn tiny_sae(d_in: usize, d_sae: usize, seed: u64) -> Sae {
    let weights = SaeWeights {
        w_enc: random(d_in, d_sae, seed),
        w_dec: random(d_sae, d_in, seed + 1),
        b_enc: Array1::zeros(d_sae),
        b_dec: Array1::zeros(d_in),
        threshold: None,
        gated: None,
    };
    Sae::new(SaeConfig::new(Architecture::Standard, d_in, d_sae), weights).unwrap()
}

#[test]
fn sae_directions_self_similarity_and_activation_weighting() {
    let sae = tiny_sae(8, 20, 3);
    let dec = Directions::decoder(&sae);
    let enc = Directions::encoder(&sae);
    assert_eq!((dec.len(), dec.dim(), enc.len(), enc.dim()), (20, 8, 20, 8));
    let w = sae.weights();
    let ss = self_similarity(&sae);
    for (i, &s) in ss.iter().enumerate() {
        let e = w.w_enc.column(i).to_owned().insert_axis(ndarray::Axis(0));
        let d = w.w_dec.row(i).to_owned().insert_axis(ndarray::Axis(0));
        assert!((s - cos(&e, 0, &d, 0)).abs() < 1e-5);
    }
    assert_eq!(paired_cosines(&enc, &dec).unwrap(), ss);
    let mut acts = Array1::<f32>::zeros(20);
    acts[2] = 3.0;
    acts[5] = 0.5;
    acts[7] = -1.0;
    let rep = Directions::activation_weighted(&sae, acts.view()).unwrap();
    assert!(rep.is_zero(0) && !rep.is_zero(2));
    assert_eq!(rep.cosine(0, 2).unwrap(), 0.0);
    assert!((rep.cosine(2, 5).unwrap() - dec.cosine(2, 5).unwrap()).abs() < 1e-6);
    assert!((rep.cosine(2, 7).unwrap() + dec.cosine(2, 7).unwrap()).abs() < 1e-6);
    let m = similarity_matrix(&dec, &[0, 5, 19], &enc, &[1, 2]).unwrap();
    assert_eq!(m.dim(), (3, 2));
    assert!((m[[1, 1]] - dec.cosine_with(5, &enc, 2).unwrap()).abs() < 1e-6);
}

#[test]
fn bad_input_is_a_typed_error() {
    let a = Directions::from_rows(random(10, 4, 1).view()).unwrap();
    let b = Directions::from_rows(random(10, 5, 2).view()).unwrap();
    assert!(matches!(
        cross_extremes(&a, &b, 3),
        Err(Error::DimensionMismatch { a: 4, b: 5 })
    ));
    assert!(matches!(
        top_k_matches(&a, &b, 3),
        Err(Error::DimensionMismatch { .. })
    ));
    assert!(matches!(
        similarity_matrix(&a, &[0, 10], &a, &[1]),
        Err(Error::IndexOutOfRange {
            index: 10,
            len: 10,
            ..
        })
    ));
    assert!(matches!(
        a.cosine(0, 99),
        Err(Error::IndexOutOfRange { .. })
    ));
    let mut nan = random(3, 3, 1);
    nan[[1, 1]] = f32::NAN;
    assert!(matches!(
        Directions::from_rows(nan.view()),
        Err(Error::NonFinite { .. })
    ));
    let empty: PairSet = serde_json::from_str(r#"{"pairs": []}"#).unwrap();
    let cfg = PairConfig::default();
    assert!(matches!(
        analyze_pairs(&a, Matrix::Dec, &empty, &cfg),
        Err(Error::Empty { .. })
    ));
    let out: PairSet = serde_json::from_str(r#"[{"name": "x", "a": [1], "b": [42]}]"#).unwrap();
    assert!(matches!(
        analyze_pairs(&a, Matrix::Dec, &out, &cfg),
        Err(Error::IndexOutOfRange { index: 42, .. })
    ));
    let no_members: PairSet =
        serde_json::from_str(r#"[{"name": "x", "a": [], "b": [1]}]"#).unwrap();
    assert!(matches!(
        analyze_pairs(&a, Matrix::Dec, &no_members, &cfg),
        Err(Error::Empty { .. })
    ));
    assert!(matches!(
        pair_stats(&a, &[3], &[3]),
        Err(Error::Empty { .. })
    ));
    let sae = tiny_sae(4, 10, 1);
    assert!(matches!(
        Directions::activation_weighted(&sae, Array1::zeros(3).view()),
        Err(Error::LengthMismatch { .. })
    ));
}

#[test]
fn concept_pairs_against_random_baseline() {
    // Features 0..4 are "A", 4..8 are their exact opposites "B"; the rest random.
    let mut w = random(500, 16, 9);
    for i in 0..4 {
        let r = w.row(i).to_owned();
        w.row_mut(4 + i).assign(&(-&r));
    }
    let dirs = Directions::from_rows(w.view()).unwrap();
    let set: PairSet = serde_json::from_str(
        r#"{"pairs": [
            {"name": "p0", "a": {"name": "a0", "features": [0]}, "b": {"name": "b0", "features": [4]}},
            {"name": "p1", "a": {"name": "a1", "features": [1, 2]}, "b": {"name": "b1", "features": [5, 6]}},
            {"name": "p2", "a": [3], "b": [7, 3]}
        ]}"#,
    )
    .unwrap();
    let cfg = PairConfig {
        random: 400,
        seed: 3,
        permutations: 2000,
    };
    let r = analyze_pairs(&dirs, Matrix::Dec, &set, &cfg).unwrap();
    assert_eq!(r.pairs.len(), 3);
    let p0 = &r.pairs[0].stats;
    assert_eq!((p0.n, p0.min.i, p0.min.j), (1, 0, 4));
    assert!((p0.min.cos + 1.0).abs() < 1e-5);
    // 3 vs 3 is skipped: one member pair left.
    assert_eq!(r.pairs[2].stats.n, 1);
    assert_eq!(r.random_samples.len(), 400);
    let min_test = r
        .tests
        .iter()
        .find(|t| t.statistic == interp_geometry::pairs::Statistic::Min)
        .unwrap();
    assert!(min_test.mann_whitney.p < 0.01, "{min_test:?}");
    assert!(min_test.permutation.p < 0.01, "{min_test:?}");
    assert!(r.strongest_opposition.extreme.cos < -0.999);
    for t in &r.tests {
        assert!((0.0..=1.0).contains(&t.mann_whitney.p));
        assert!(t.permutation.p > 0.0 && t.permutation.p <= 1.0);
    }
    // Seeded: the same config reproduces the baseline exactly.
    let again = analyze_pairs(&dirs, Matrix::Dec, &set, &cfg).unwrap();
    assert_eq!(again, r);
    let md = r.to_markdown();
    assert!(md.contains("| p0 | a0 | b0 | 1 |"), "{md}");
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["pairs"][1]["stats"]["n"], 4);
}
