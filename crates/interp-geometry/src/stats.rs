//! Two-sample tests and a seeded generator, for comparing concept pairs with random pairs.
//!
//! - [`mann_whitney_u`]: ranks with average ranks for ties; `U₁ = R₁ − n₁(n₁+1)/2`; the normal
//!   approximation `z = (U₁ − n₁n₂/2 ∓ ½) / σ` with the tie-corrected
//!   `σ² = n₁n₂/12 · ((n+1) − Σ(t³−t)/(n(n−1)))` and a continuity correction of ½ towards the
//!   mean; two-sided `p = erfc(|z|/√2)`. (`scipy.stats.mannwhitneyu(x, y,
//!   method="asymptotic")` reports the same `U₁` and `p`.)
//! - [`permutation_test`]: difference of means, two-sided, with `p = (1 + #{|Δ*| ≥ |Δ|}) /
//!   (R + 1)` over `R` seeded random relabellings (never 0).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The seeded generator shared with SAE training (results reproduce across platforms).
pub use interp_core::rng::SplitMix64;

/// Result of a Mann–Whitney U test of `x` against `y`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MannWhitney {
    /// `U` of the first sample (`#{x > y} + ½·#{x = y}` over all pairs).
    pub u: f64,
    /// `U / (n₁ n₂)`: the probability that a random `x` exceeds a random `y` (ties count ½).
    pub effect: f64,
    /// Normal-approximation statistic (tie- and continuity-corrected); 0 if all values tie.
    pub z: f64,
    /// Two-sided p-value of the normal approximation.
    pub p: f64,
}

/// Mann–Whitney U test (two-sided, normal approximation, tie and continuity corrections; see the
/// [module docs](self)).
///
/// # Errors
/// [`Error::Empty`] if a sample is empty; [`Error::NonFinite`] for NaN or infinite values.
pub fn mann_whitney_u(x: &[f64], y: &[f64]) -> Result<MannWhitney> {
    if x.is_empty() || y.is_empty() {
        return Err(Error::empty("Mann–Whitney sample"));
    }
    if x.iter().chain(y).any(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: "Mann–Whitney sample".into(),
        });
    }
    let (n1, n2) = (x.len() as f64, y.len() as f64);
    let mut all: Vec<(f64, bool)> = x
        .iter()
        .map(|&v| (v, true))
        .chain(y.iter().map(|&v| (v, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = all.len();
    let (mut r1, mut tie_term) = (0f64, 0f64);
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let t = (j - i + 1) as f64;
        // 1-based ranks i+1..=j+1 averaged.
        let rank = (i + j + 2) as f64 / 2.0;
        r1 += rank * all[i..=j].iter().filter(|e| e.1).count() as f64;
        tie_term += t * t * t - t;
        i = j + 1;
    }
    let u = r1 - n1 * (n1 + 1.0) / 2.0;
    let nn = n1 + n2;
    let mean = n1 * n2 / 2.0;
    let var = n1 * n2 / 12.0 * ((nn + 1.0) - tie_term / (nn * (nn - 1.0)).max(1.0));
    let (z, p) = if var > 0.0 {
        let d = u - mean;
        let cc = if d > 0.0 {
            -0.5
        } else if d < 0.0 {
            0.5
        } else {
            0.0
        };
        let z = (d + cc) / var.sqrt();
        (z, erfc(z.abs() / std::f64::consts::SQRT_2).min(1.0))
    } else {
        (0.0, 1.0)
    };
    Ok(MannWhitney {
        u,
        effect: u / (n1 * n2),
        z,
        p,
    })
}

/// Result of a two-sided permutation test on the difference of means.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Permutation {
    /// `mean(x) − mean(y)`.
    pub diff: f64,
    /// `(1 + #{|Δ*| ≥ |Δ|}) / (R + 1)`.
    pub p: f64,
    /// `R`, the number of random relabellings.
    pub permutations: usize,
}

/// Two-sided permutation test of `mean(x) − mean(y)` with `permutations` seeded relabellings.
///
/// # Errors
/// [`Error::Empty`] if a sample is empty; [`Error::NonFinite`]; [`Error::InvalidArgument`] for 0
/// permutations.
pub fn permutation_test(
    x: &[f64],
    y: &[f64],
    permutations: usize,
    seed: u64,
) -> Result<Permutation> {
    if x.is_empty() || y.is_empty() {
        return Err(Error::empty("permutation-test sample"));
    }
    if x.iter().chain(y).any(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: "permutation-test sample".into(),
        });
    }
    if permutations == 0 {
        return Err(Error::invalid(
            "permutation test needs at least 1 permutation",
        ));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let diff = mean(x) - mean(y);
    let mut pooled: Vec<f64> = x.iter().chain(y).copied().collect();
    let total: f64 = pooled.iter().sum();
    let (n1, n2) = (x.len(), y.len());
    let mut rng = SplitMix64::new(seed);
    // Relative slack so that relabellings equal to the observed split count as "as extreme".
    let obs = diff.abs() * (1.0 - 1e-12);
    let mut hits = 0usize;
    for _ in 0..permutations {
        // A partial Fisher–Yates draws the first n1 positions as the relabelled x.
        let take = n1.min(n2);
        for i in 0..take {
            let j = i + rng.below(pooled.len() - i);
            pooled.swap(i, j);
        }
        let s: f64 = pooled[..take].iter().sum();
        let d = if take == n1 {
            s / n1 as f64 - (total - s) / n2 as f64
        } else {
            (total - s) / n1 as f64 - s / n2 as f64
        };
        if d.abs() >= obs {
            hits += 1;
        }
    }
    Ok(Permutation {
        diff,
        p: (1 + hits) as f64 / (permutations + 1) as f64,
        permutations,
    })
}

/// Complementary error function, |relative error| < 1.2e-7 (Chebyshev fit of
/// Numerical Recipes' `erfcc`), enough for p-values.
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// Summary of a sample: count, mean, standard deviation, extremes and quantiles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of values.
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (`n − 1`; 0 for one value).
    pub std: f64,
    /// Smallest value.
    pub min: f64,
    /// 2.5th percentile (linear interpolation).
    pub q025: f64,
    /// Median.
    pub median: f64,
    /// 97.5th percentile.
    pub q975: f64,
    /// Largest value.
    pub max: f64,
}

/// [`Summary`] of `v` (all zeros when `v` is empty).
pub fn summarize(v: &[f64]) -> Summary {
    if v.is_empty() {
        return Summary::default();
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    let mean = s.iter().sum::<f64>() / n as f64;
    let var = if n > 1 {
        s.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64
    } else {
        0.0
    };
    let q = |p: f64| {
        let pos = p * (n - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = pos.ceil() as usize;
        s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
    };
    Summary {
        n,
        mean,
        std: var.sqrt(),
        min: s[0],
        q025: q(0.025),
        median: q(0.5),
        q975: q(0.975),
        max: s[n - 1],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_matches_known_values() {
        for (x, want) in [
            (0.0, 1.0),
            (0.5, 0.479_500_122_186_953_5),
            (1.0, 0.157_299_207_050_285_13),
            (2.0, 0.004_677_734_981_047_266),
            (-1.0, 1.842_700_792_949_715),
        ] {
            assert!((erfc(x) - want).abs() < 2e-7 * want.max(1e-3), "{x}");
        }
    }

    #[test]
    fn mann_whitney_matches_scipy() {
        // Values from the definition, by hand.
        let x = [1.0, 2.0, 3.0, 4.0];
        let y = [3.0, 5.0, 6.0, 7.0, 8.0];
        let r = mann_whitney_u(&x, &y).unwrap();
        // U = #{x>y} + ½#{x=y} = 1 (4 > 3) + ½ (3 = 3).
        assert_eq!(r.u, 1.5);
        let n = 9.0;
        let var = 20.0 / 12.0 * ((n + 1.0) - (8.0 - 2.0) / (n * (n - 1.0)));
        let z = (1.5 - 10.0 + 0.5) / f64::sqrt(var);
        assert!((r.z - z).abs() < 1e-12);
        assert!((r.p - erfc(z.abs() / std::f64::consts::SQRT_2)).abs() < 1e-12);
        let same = mann_whitney_u(&[1.0, 1.0], &[1.0]).unwrap();
        assert_eq!((same.z, same.p, same.u), (0.0, 1.0, 1.0));
    }

    #[test]
    fn permutation_test_separates_shifted_samples_and_not_identical_ones() {
        let x: Vec<f64> = (0..20).map(|i| 1.0 + i as f64 * 0.01).collect();
        let y: Vec<f64> = (0..200).map(|i| (i % 17) as f64 * 0.01).collect();
        let r = permutation_test(&x, &y, 2000, 1).unwrap();
        assert!(r.p < 0.002, "{r:?}");
        let r = permutation_test(&y[..20], &y[20..40], 2000, 1).unwrap();
        assert!(r.p > 0.05, "{r:?}");
        assert!(permutation_test(&[], &y, 10, 1).is_err());
    }

    #[test]
    fn summary_quantiles() {
        let s = summarize(&[3.0, 1.0, 2.0]);
        assert_eq!(
            (s.n, s.mean, s.median, s.min, s.max),
            (3, 2.0, 2.0, 1.0, 3.0)
        );
        assert!((s.q025 - 1.05).abs() < 1e-12);
    }
}
