//! Property tests of [`Sae`] on random weights and inputs: the activation functions do what the
//! docs of [`Architecture`] say (checked against a naive f64 reference written from those
//! formulas), the sparse and dense paths agree, and folding preserves what it promises.
//!
//! The reference is computed in f64 while the crate works in f32 with a blocked GEMM, so values
//! are compared with a tolerance proportional to the magnitude of the terms summed, and a
//! decision that falls within that tolerance of its boundary (a pre-activation at 0, at a
//! JumpReLU threshold, at a gate, or tied at the TopK cut) may go either way. Rows with such a
//! near-tie at a discontinuity are left out of the comparisons of reconstructions.

use interp_sae::prelude::*;
use interp_sae::GatedWeights;
use ndarray::{Array1, Array2, ArrayView2};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestCaseError;

// ------------------------------------------------------------------------------------------------
// Random SAEs
// ------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Standard,
    JumpRelu,
    Gated,
    TopK,
    TopKRescale,
}

const ALL_KINDS: &[Kind] = &[
    Kind::Standard,
    Kind::JumpRelu,
    Kind::Gated,
    Kind::TopK,
    Kind::TopKRescale,
];
/// The architectures whose decoder norms can be folded.
const FOLDABLE: &[Kind] = &[
    Kind::Standard,
    Kind::JumpRelu,
    Kind::Gated,
    Kind::TopKRescale,
];
const TOPK: &[Kind] = &[Kind::TopK, Kind::TopKRescale];
const ALL_NORMS: &[Normalization] = &[
    Normalization::None,
    Normalization::ExpectedAverageOnlyIn,
    Normalization::ConstantNormRescale,
    Normalization::LayerNorm,
];
/// The normalisations that are the identity at inference.
const NO_NORM: &[Normalization] = &[Normalization::None, Normalization::ExpectedAverageOnlyIn];

#[derive(Clone, Debug)]
struct Case {
    kind: Kind,
    d_in: usize,
    d_sae: usize,
    n: usize,
    k: usize,
    apply_b_dec: bool,
    norm: Normalization,
    w_enc: Vec<f32>,
    w_dec: Vec<f32>,
    b_enc: Vec<f32>,
    b_dec: Vec<f32>,
    threshold: Vec<f32>,
    /// `b_gate`, `b_mag`, `r_mag` one after the other.
    gated: Vec<f32>,
    x: Vec<f32>,
}

impl Case {
    fn arch(&self) -> Architecture {
        match self.kind {
            Kind::Standard => Architecture::Standard,
            Kind::JumpRelu => Architecture::JumpRelu,
            Kind::Gated => Architecture::Gated,
            Kind::TopK | Kind::TopKRescale => Architecture::TopK {
                k: self.k,
                rescale_acts_by_decoder_norm: self.kind == Kind::TopKRescale,
            },
        }
    }

    fn sae(&self) -> Sae {
        let (d_in, d_sae) = (self.d_in, self.d_sae);
        let mut cfg = SaeConfig::new(self.arch(), d_in, d_sae);
        cfg.apply_b_dec_to_input = self.apply_b_dec;
        cfg.normalize_activations = self.norm;
        let g = |i: usize| Array1::from(self.gated[i * d_sae..(i + 1) * d_sae].to_vec());
        let w = SaeWeights {
            w_enc: Array2::from_shape_vec((d_in, d_sae), self.w_enc.clone()).unwrap(),
            w_dec: Array2::from_shape_vec((d_sae, d_in), self.w_dec.clone()).unwrap(),
            b_enc: Array1::from(self.b_enc.clone()),
            b_dec: Array1::from(self.b_dec.clone()),
            threshold: (self.kind == Kind::JumpRelu).then(|| Array1::from(self.threshold.clone())),
            gated: (self.kind == Kind::Gated).then(|| GatedWeights {
                b_gate: g(0),
                b_mag: g(1),
                r_mag: g(2),
            }),
        };
        Sae::new(cfg, w).expect("random SAEs are valid by construction")
    }

    fn x(&self) -> Array2<f32> {
        Array2::from_shape_vec((self.n, self.d_in), self.x.clone()).unwrap()
    }
}

/// Random SAEs of the given kinds and normalisations: d_in 1..24, d_sae 1..80, 0..6 tokens,
/// k up to d_sae + 2. A quarter of the cases have every value rounded to a multiple of 1/4, which
/// makes exact ties, zero pre-activations and pre-activations equal to thresholds common.
fn cases(kinds: &'static [Kind], norms: &'static [Normalization]) -> impl Strategy<Value = Case> {
    (
        1usize..24,
        1usize..80,
        0usize..6,
        prop::sample::select(kinds),
        prop::sample::select(norms),
        any::<bool>(),
        prop::bool::weighted(0.25),
    )
        .prop_flat_map(|(d_in, d_sae, n, kind, norm, apply_b_dec, quantized)| {
            let unit = || -1.0f32..1.0;
            (
                Just((d_in, d_sae, n, kind, norm, apply_b_dec, quantized)),
                1..=d_sae + 2,
                vec(unit(), d_in * d_sae),
                vec(unit(), d_sae * d_in),
                vec(unit(), d_sae),
                vec(unit(), d_in),
                vec(-0.5f32..1.5, d_sae),
                vec(unit(), 3 * d_sae),
                vec(-3.0f32..3.0, n * d_in),
            )
        })
        .prop_map(
            |(
                (d_in, d_sae, n, kind, norm, apply_b_dec, quantized),
                k,
                w_enc,
                w_dec,
                b_enc,
                b_dec,
                threshold,
                gated,
                x,
            )| {
                let q = |v: Vec<f32>| -> Vec<f32> {
                    if quantized {
                        v.into_iter().map(|x| (x * 4.0).round() / 4.0).collect()
                    } else {
                        v
                    }
                };
                Case {
                    kind,
                    d_in,
                    d_sae,
                    n,
                    k,
                    apply_b_dec,
                    norm,
                    w_enc: q(w_enc),
                    w_dec: q(w_dec),
                    b_enc: q(b_enc),
                    b_dec: q(b_dec),
                    threshold: q(threshold),
                    gated: q(gated),
                    x: q(x),
                }
            },
        )
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    }
}

// ------------------------------------------------------------------------------------------------
// The naive f64 reference
// ------------------------------------------------------------------------------------------------

/// What the reference says one activation must be.
#[derive(Clone, Copy, Debug)]
enum Want {
    /// Exactly 0.
    Zero,
    /// `value` within `tol`.
    Val(f64, f64),
    /// Too close to a decision boundary to call: 0, or `value` within `tol`.
    Either(f64, f64),
}

struct Reference {
    /// `[n][d_sae]`.
    acts: Vec<Vec<Want>>,
    /// Rows with a near-tie at a discontinuity (their reconstruction may legitimately differ).
    ambiguous: Vec<bool>,
    /// Per row: normalisation shift, scale, and a conditioning factor that widens tolerances.
    norms: Vec<(f64, f64, f64)>,
}

const RTOL: f64 = 1e-4;

fn dec_norms(sae: &Sae) -> Vec<f64> {
    sae.weights()
        .w_dec
        .rows()
        .into_iter()
        .map(|r| {
            r.iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>()
                .sqrt()
                .max(1e-8)
        })
        .collect()
}

/// Encodes `x` with `sae` straight from the formulas in the docs of [`Architecture`] and
/// [`Normalization`], in f64.
fn reference(sae: &Sae, x: ArrayView2<'_, f32>) -> Reference {
    let cfg = sae.config();
    let w = sae.weights();
    let (d_in, d_sae) = (cfg.d_in, cfg.d_sae);
    let d = d_in as f64;
    let norms = dec_norms(sae);
    let mut out = Reference {
        acts: Vec::new(),
        ambiguous: Vec::new(),
        norms: Vec::new(),
    };
    for row in x.rows() {
        let xs: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
        let max_abs = xs.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let (shift, scale, cond) = match cfg.normalize_activations {
            Normalization::LayerNorm => {
                let mu = xs.iter().sum::<f64>() / d;
                let var = xs.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / (d - 1.0).max(1.0);
                let s = var.sqrt() + 1e-5;
                (mu, s, (2.0 * (max_abs + mu.abs()) / s).max(1.0))
            }
            Normalization::ConstantNormRescale => (
                0.0,
                xs.iter().map(|v| v * v).sum::<f64>().sqrt() / d.sqrt(),
                1.0,
            ),
            Normalization::None | Normalization::ExpectedAverageOnlyIn => (0.0, 1.0, 1.0),
        };
        out.norms.push((shift, scale, cond));
        if scale == 0.0 {
            // `x · √d / ‖x‖` of a zero row is undefined; the crate encodes it as no activation.
            out.acts.push(vec![Want::Zero; d_sae]);
            out.ambiguous.push(false);
            continue;
        }
        // x' = normalised input − b_dec, with |terms| to bound the rounding error.
        let (xp, xp_mag): (Vec<f64>, Vec<f64>) = xs
            .iter()
            .zip(&w.b_dec)
            .map(|(&v, &b)| {
                let n = (v - shift) / scale;
                let b = if cfg.apply_b_dec_to_input {
                    f64::from(b)
                } else {
                    0.0
                };
                (n - b, n.abs() + b.abs())
            })
            .unzip();
        let gated = cfg.architecture == Architecture::Gated;
        let (pre, margin): (Vec<f64>, Vec<f64>) = (0..d_sae)
            .map(|j| {
                let b = if gated { 0.0 } else { f64::from(w.b_enc[j]) };
                let mut p = b;
                let mut mag = b.abs();
                for i in 0..d_in {
                    let wij = f64::from(w.w_enc[[i, j]]);
                    p += xp[i] * wij;
                    mag += xp_mag[i] * wij.abs();
                }
                (p, RTOL * cond * (1.0 + mag))
            })
            .unzip();
        // A decision on `v` against `cut` with margin `m`: Some(true/false), or None if too close.
        let decide = |v: f64, cut: f64, m: f64| -> Option<bool> {
            if v > cut + m {
                Some(true)
            } else if v < cut - m {
                Some(false)
            } else {
                None
            }
        };
        let either_or = |keep: Option<bool>, v: f64, m: f64| match keep {
            Some(true) => Want::Val(v, m),
            Some(false) => Want::Zero,
            None => Want::Either(v, m),
        };
        let acts: Vec<Want> = match &cfg.architecture {
            // relu(pre)
            Architecture::Standard => (0..d_sae)
                .map(|j| either_or(decide(pre[j], 0.0, margin[j]), pre[j], margin[j]))
                .collect(),
            // pre · [pre > threshold] on top of relu
            Architecture::JumpRelu => {
                let t = w.threshold.as_ref().unwrap();
                (0..d_sae)
                    .map(|j| {
                        let cut = f64::from(t[j]).max(0.0);
                        either_or(decide(pre[j], cut, margin[j]), pre[j], margin[j])
                    })
                    .collect()
            }
            // [x'W_enc + b_gate > 0] · relu(x'(W_enc ∘ exp(r_mag)) + b_mag)
            Architecture::Gated => {
                let g = w.gated.as_ref().unwrap();
                (0..d_sae)
                    .map(|j| {
                        let bg = f64::from(g.b_gate[j]);
                        let bm = f64::from(g.b_mag[j]);
                        let e = f64::from(g.r_mag[j]).exp();
                        let gate = decide(pre[j] + bg, 0.0, margin[j] + RTOL * bg.abs());
                        let mv = pre[j] * e + bm;
                        let mm = margin[j] * e + RTOL * bm.abs();
                        let mag = decide(mv, 0.0, mm);
                        let keep = match (gate, mag) {
                            (Some(false), _) | (_, Some(false)) => Some(false),
                            (Some(true), Some(true)) => Some(true),
                            _ => None,
                        };
                        either_or(keep, mv, mm)
                    })
                    .collect()
            }
            // The k largest of pre (· ‖W_dec[i]‖ when rescaling), then relu.
            Architecture::TopK {
                k,
                rescale_acts_by_decoder_norm,
            } => {
                let f = |j: usize| {
                    if *rescale_acts_by_decoder_norm {
                        norms[j]
                    } else {
                        1.0
                    }
                };
                let s: Vec<f64> = (0..d_sae).map(|j| pre[j] * f(j)).collect();
                let m: Vec<f64> = (0..d_sae).map(|j| margin[j] * f(j)).collect();
                (0..d_sae)
                    .map(|j| {
                        let others = || (0..d_sae).filter(move |&i| i != j);
                        let maybe_above = others().filter(|&i| s[i] + m[i] > s[j] - m[j]).count();
                        let surely_above = others().filter(|&i| s[i] - m[i] > s[j] + m[j]).count();
                        let keep = if surely_above >= *k || s[j] < -m[j] {
                            Some(false)
                        } else if maybe_above < *k && s[j] > m[j] {
                            Some(true)
                        } else {
                            None
                        };
                        either_or(keep, s[j], m[j])
                    })
                    .collect()
            }
        };
        let ambiguous = acts
            .iter()
            .any(|a| matches!(a, Want::Either(v, m) if v.abs() > 2.0 * m));
        out.acts.push(acts);
        out.ambiguous.push(ambiguous);
    }
    out
}

/// Checks `got` against the reference, each activation multiplied by `factor(j)`.
fn check_acts(
    what: &str,
    got: ArrayView2<'_, f32>,
    want: &Reference,
    factor: impl Fn(usize) -> f64,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.nrows(), want.acts.len(), "{}: rows", what);
    for (r, wants) in want.acts.iter().enumerate() {
        for (j, want) in wants.iter().enumerate() {
            let g = f64::from(got[[r, j]]);
            let f = factor(j);
            let close = |v: f64, m: f64| (g - v * f).abs() <= m * f.abs().max(1.0);
            let ok = match *want {
                Want::Zero => g == 0.0,
                Want::Val(v, m) => close(v, m),
                Want::Either(v, m) => g == 0.0 || close(v, m),
            };
            prop_assert!(
                ok,
                "{}: row {} feature {}: got {}, reference {:?} × {}",
                what,
                r,
                j,
                g,
                want,
                f
            );
        }
    }
    Ok(())
}

/// `acts @ W_dec + b_dec` (activations divided by decoder norms when TopK rescales), mapped
/// back through the row normalisation when `undo` is set; with a tolerance per value.
fn reference_decode(
    sae: &Sae,
    acts: ArrayView2<'_, f32>,
    norms: &[(f64, f64, f64)],
    undo: bool,
) -> (Array2<f64>, Array2<f64>) {
    let w = sae.weights();
    let (d_in, d_sae) = (sae.d_in(), sae.d_sae());
    let dn = dec_norms(sae);
    let rescale = matches!(
        sae.config().architecture,
        Architecture::TopK {
            rescale_acts_by_decoder_norm: true,
            ..
        }
    );
    let mut value = Array2::zeros((acts.nrows(), d_in));
    let mut tol = Array2::zeros((acts.nrows(), d_in));
    for r in 0..acts.nrows() {
        let (shift, scale, cond) = if undo { norms[r] } else { (0.0, 1.0, 1.0) };
        for c in 0..d_in {
            let b = f64::from(w.b_dec[c]);
            let (mut v, mut mag) = (b, b.abs());
            for j in 0..d_sae {
                let a = f64::from(acts[[r, j]]) / if rescale { dn[j] } else { 1.0 };
                let t = a * f64::from(w.w_dec[[j, c]]);
                v += t;
                mag += t.abs();
            }
            value[[r, c]] = v * scale + shift;
            tol[[r, c]] = RTOL * cond * ((1.0 + mag) * scale + shift.abs() + 1.0);
        }
    }
    (value, tol)
}

fn check_close(
    what: &str,
    got: ArrayView2<'_, f32>,
    want: &(Array2<f64>, Array2<f64>),
    skip_row: impl Fn(usize) -> bool,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.shape(), want.0.shape(), "{}: shape", what);
    for ((r, c), &g) in got.indexed_iter() {
        if skip_row(r) {
            continue;
        }
        let (v, t) = (want.0[[r, c]], want.1[[r, c]]);
        prop_assert!(
            (f64::from(g) - v).abs() <= t,
            "{}: [{}, {}]: got {}, reference {} (tolerance {})",
            what,
            r,
            c,
            g,
            v,
            t
        );
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Properties
// ------------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// (a) TopK keeps exactly min(k, #positive) latents per token: the largest positive
    /// (rescaled) pre-activations, with their values.
    #[test]
    fn topk_keeps_the_k_largest_positive_pre_activations(case in cases(TOPK, ALL_NORMS)) {
        let sae = case.sae();
        let x = case.x();
        let pre = sae.pre_activations(x.view()).unwrap();
        let acts = sae.encode(x.view()).unwrap();
        let norms = sae.decoder_norms();
        for r in 0..case.n {
            if pre.row(r).iter().any(|v| v.is_nan()) {
                // Only `constant_norm_rescale` of an all-zero token (0/0) gives NaN
                // pre-activations; nothing may fire then.
                prop_assert_eq!(case.norm, Normalization::ConstantNormRescale);
                prop_assert!(x.row(r).iter().all(|v| *v == 0.0));
                prop_assert!(acts.row(r).iter().all(|v| *v == 0.0));
                continue;
            }
            // What the kernel ranks: pre · ‖W_dec[i]‖ (f32, as the kernel computes it) or pre.
            let s: Vec<f32> = (0..case.d_sae)
                .map(|j| if case.kind == Kind::TopKRescale { pre[[r, j]] * norms[j] } else { pre[[r, j]] })
                .collect();
            let positive = s.iter().filter(|v| **v > 0.0).count();
            let kept: Vec<usize> = (0..case.d_sae).filter(|&j| acts[[r, j]] != 0.0).collect();
            prop_assert_eq!(kept.len(), case.k.min(positive), "row {}: L0 (k = {})", r, case.k);
            let min_kept = kept.iter().map(|&j| s[j]).fold(f32::INFINITY, f32::min);
            for j in 0..case.d_sae {
                if acts[[r, j]] != 0.0 {
                    prop_assert_eq!(acts[[r, j]], s[j], "row {} feature {}: value", r, j);
                    prop_assert!(s[j] > 0.0);
                } else {
                    prop_assert!(
                        s[j] <= 0.0 || s[j] <= min_kept,
                        "row {}: feature {} ({}) dropped while {} was kept", r, j, s[j], min_kept
                    );
                }
            }
        }
    }

    /// (b) Every architecture's nonlinearity applied to the crate's own pre-activations gives
    /// exactly `encode` (JumpReLU: 0 where pre ≤ threshold or pre ≤ 0, pre elsewhere).
    #[test]
    fn activations_follow_from_pre_activations(case in cases(ALL_KINDS, ALL_NORMS)) {
        let sae = case.sae();
        let x = case.x();
        let pre = sae.pre_activations(x.view()).unwrap();
        let acts = sae.encode(x.view()).unwrap();
        let w = sae.weights();
        for r in 0..case.n {
            for j in 0..case.d_sae {
                let p = pre[[r, j]];
                let want = match case.kind {
                    Kind::Standard => if p > 0.0 { p } else { 0.0 },
                    Kind::JumpRelu => {
                        let t = w.threshold.as_ref().unwrap()[j];
                        if p > t && p > 0.0 { p } else { 0.0 }
                    }
                    Kind::Gated => {
                        let g = w.gated.as_ref().unwrap();
                        let mag = p * g.r_mag[j].exp() + g.b_mag[j];
                        if p + g.b_gate[j] > 0.0 && mag > 0.0 { mag } else { 0.0 }
                    }
                    // Covered by `topk_keeps_the_k_largest_positive_pre_activations`.
                    Kind::TopK | Kind::TopKRescale => continue,
                };
                prop_assert_eq!(acts[[r, j]], want, "row {} feature {}: pre {}", r, j, p);
            }
        }
    }

    /// A naive f64 encode straight from the formulas in the docs agrees with `encode`.
    #[test]
    fn encode_matches_the_naive_reference(case in cases(ALL_KINDS, ALL_NORMS)) {
        let sae = case.sae();
        let x = case.x();
        let want = reference(&sae, x.view());
        check_acts("encode", sae.encode(x.view()).unwrap().view(), &want, |_| 1.0)?;
    }

    /// (c) Sparse decode (`forward`, `decode_sparse(encode_sparse(x))`) and dense decode agree
    /// with `acts @ W_dec + b_dec` (normalisation undone) computed from the weights.
    #[test]
    fn decode_matches_the_naive_reference(case in cases(ALL_KINDS, ALL_NORMS)) {
        let sae = case.sae();
        let x = case.x();
        let rf = reference(&sae, x.view());
        let acts = sae.encode(x.view()).unwrap();
        let want = reference_decode(&sae, acts.view(), &rf.norms, true);
        let codes = sae.encode_sparse(x.view()).unwrap();
        check_close("decode_sparse", sae.decode_sparse(&codes).unwrap().view(), &want, |_| false)?;
        let out = sae.forward(x.view()).unwrap();
        check_close("forward", out.view(), &want, |_| false)?;
        prop_assert_eq!(sae.error_term(x.view()).unwrap(), &x - &out);
        // Dense decode does not undo the normalisation.
        let want = reference_decode(&sae, acts.view(), &rf.norms, false);
        check_close("decode", sae.decode(acts.view()).unwrap().view(), &want, |_| false)?;
        // A dense activation matrix goes through the GEMM path.
        let dense = sae
            .pre_activations(x.view())
            .unwrap()
            .mapv(|v| if v.is_finite() { v.abs() + 0.5 } else { 0.5 });
        let want = reference_decode(&sae, dense.view(), &rf.norms, false);
        check_close("decode (dense)", sae.decode(dense.view()).unwrap().view(), &want, |_| false)?;
    }

    /// (d) Dense and sparse encode agree exactly; the sparse codes carry one normalisation
    /// record per token exactly when the SAE normalises per token.
    #[test]
    fn dense_and_sparse_encode_agree(case in cases(ALL_KINDS, ALL_NORMS)) {
        let sae = case.sae();
        let x = case.x();
        let dense = sae.encode(x.view()).unwrap();
        let codes = sae.encode_sparse(x.view()).unwrap();
        prop_assert_eq!(codes.to_dense(), dense.clone());
        prop_assert_eq!(codes.n_rows(), case.n);
        prop_assert_eq!(codes.d_sae(), case.d_sae);
        let l0: Vec<usize> = dense.rows().into_iter()
            .map(|r| r.iter().filter(|v| **v != 0.0).count())
            .collect();
        prop_assert_eq!(codes.l0(), l0);
        for r in 0..case.n {
            let (idx, val) = codes.row(r);
            prop_assert!(idx.windows(2).all(|w| w[0] < w[1]), "row {}: indices sorted", r);
            prop_assert!(val.iter().all(|v| *v != 0.0 && v.is_finite()));
        }
        let per_token = matches!(case.norm, Normalization::LayerNorm | Normalization::ConstantNormRescale);
        match codes.row_norms() {
            Some(norms) => {
                prop_assert!(per_token);
                prop_assert_eq!(norms.len(), case.n);
            }
            // No tokens, no records.
            None => prop_assert!(!per_token || case.n == 0),
        }
        // Rebuilding the codes from their rows gives the same activations.
        let rows: Vec<_> = (0..case.n).map(|r| codes.row(r)).collect();
        let rebuilt = SparseCodes::from_rows(case.d_sae, rows).unwrap();
        prop_assert_eq!(rebuilt.to_dense(), dense.clone());
        prop_assert_eq!(SparseCodes::from_dense(dense.view()).unwrap().to_dense(), dense);
    }

    /// (e) Folding decoder norms makes every decoder row unit-norm and keeps `forward`; latent
    /// activations scale by the old norm ‖W_dec[i]‖ (they are unchanged for TopK with
    /// `rescale_acts_by_decoder_norm`, which already reported `pre · ‖W_dec[i]‖`).
    #[test]
    fn folding_decoder_norms_preserves_outputs(case in cases(FOLDABLE, ALL_NORMS)) {
        let before = case.sae();
        let x = case.x();
        let rf = reference(&before, x.view());
        let old_norms = dec_norms(&before);
        let mut after = before.clone();
        after.fold_decoder_norms().unwrap();
        if let Architecture::TopK { rescale_acts_by_decoder_norm, .. } = after.config().architecture {
            prop_assert!(!rescale_acts_by_decoder_norm, "folded TopK no longer rescales");
        }
        for (j, n) in after.decoder_norms().iter().enumerate() {
            if old_norms[j] > 1e-6 {
                prop_assert!((n - 1.0).abs() < 1e-5, "feature {}: norm {} after folding", j, n);
            }
        }
        let factor = |j: usize| if case.kind == Kind::TopKRescale { 1.0 } else { old_norms[j] };
        check_acts("encode before", before.encode(x.view()).unwrap().view(), &rf, |_| 1.0)?;
        check_acts("encode after", after.encode(x.view()).unwrap().view(), &rf, factor)?;
        let acts = before.encode(x.view()).unwrap();
        let want = reference_decode(&before, acts.view(), &rf.norms, true);
        let skip = |r: usize| rf.ambiguous[r];
        check_close("forward after", after.forward(x.view()).unwrap().view(), &want, skip)?;
    }

    /// (e) Folding an activation scale `s`: the folded SAE on `x` is the original on `s·x`,
    /// with reconstructions divided by `s` (TopK rescaled by decoder norms also reports
    /// activations divided by `s`, as its decoder norms shrink by `s`).
    #[test]
    fn folding_an_activation_scale_is_a_change_of_units(
        case in cases(ALL_KINDS, NO_NORM),
        log_s in -3.0f32..3.0,
    ) {
        let s = log_s.exp();
        let before = case.sae();
        let mut after = before.clone();
        after.fold_activation_scale(s).unwrap();
        prop_assert_eq!(after.config().normalize_activations, Normalization::None);
        let x = case.x();
        let sx = x.mapv(|v| v * s);
        let rf = reference(&before, sx.view());
        let s64 = f64::from(s);
        // TopK rescaled by decoder norms reports pre · ‖W_dec[i]‖, and ‖W_dec[i]‖ shrank by s
        // (except for a zero decoder row, whose norm stays clamped at 1e-8).
        let (n_before, n_after) = (dec_norms(&before), dec_norms(&after));
        let factor = |j: usize| {
            if case.kind == Kind::TopKRescale {
                n_after[j] / n_before[j]
            } else {
                1.0
            }
        };
        check_acts("encode(x) after", after.encode(x.view()).unwrap().view(), &rf, factor)?;
        let acts = before.encode(sx.view()).unwrap();
        let (v, t) = reference_decode(&before, acts.view(), &rf.norms, true);
        let want = (v / s64, t / s64);
        let skip = |r: usize| rf.ambiguous[r];
        check_close("forward(x) after", after.forward(x.view()).unwrap().view(), &want, skip)?;
    }

    /// Zero and constant rows (ill-defined for the per-token normalisations) never produce
    /// NaN or infinity.
    #[test]
    fn zero_and_constant_rows_stay_finite(case in cases(ALL_KINDS, ALL_NORMS), c in -2.0f32..2.0) {
        let sae = case.sae();
        for fill in [0.0, c] {
            let x = Array2::from_elem((2, case.d_in), fill);
            let acts = sae.encode(x.view()).unwrap();
            prop_assert!(acts.iter().all(|v| v.is_finite()), "encode of {} rows: {:?}", fill, acts);
            let out = sae.forward(x.view()).unwrap();
            prop_assert!(out.iter().all(|v| v.is_finite()), "forward of {} rows: {:?}", fill, out);
        }
        if case.norm == Normalization::ConstantNormRescale {
            // x · √d / ‖x‖ is undefined at 0: no latent fires and the reconstruction is 0.
            let x = Array2::zeros((1, case.d_in));
            prop_assert!(sae.encode(x.view()).unwrap().iter().all(|v| *v == 0.0));
            prop_assert!(sae.forward(x.view()).unwrap().iter().all(|v| *v == 0.0));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Saving as SAELens and loading back gives the same SAE: same configuration, and the same
    /// activations and reconstructions (to float rounding).
    #[test]
    fn saelens_save_load_round_trip(case in cases(ALL_KINDS, ALL_NORMS)) {
        let sae = case.sae();
        let dir = tempfile::TempDir::new().unwrap();
        interp_sae::formats::saelens::save(&sae, dir.path(), None).unwrap();
        let back = interp_sae::load(dir.path()).unwrap();
        let (a, b) = (sae.config(), back.config());
        prop_assert_eq!(&a.architecture, &b.architecture);
        prop_assert_eq!((a.d_in, a.d_sae), (b.d_in, b.d_sae));
        prop_assert_eq!(a.apply_b_dec_to_input, b.apply_b_dec_to_input);
        prop_assert_eq!(a.normalize_activations, b.normalize_activations);
        let x = case.x();
        // Close, not bit-equal: the loaded weights may lie in the other layout (a transposed
        // view against a contiguous copy), and the few-row GEMM kernels sum in an order that
        // depends on it.
        let pairs = [
            ("encode", sae.encode(x.view()).unwrap(), back.encode(x.view()).unwrap()),
            ("forward", sae.forward(x.view()).unwrap(), back.forward(x.view()).unwrap()),
        ];
        for (what, a, b) in pairs {
            prop_assert_eq!(a.shape(), b.shape());
            for (g, w) in b.iter().zip(a.iter()) {
                prop_assert!((g - w).abs() <= 1e-5 + 1e-5 * w.abs(), "{}: {} vs {}", what, g, w);
            }
        }
    }
}

/// Inputs spanning several encode blocks (1024 rows each for these sizes) are encoded and
/// decoded row by row as the reference says, in order.
#[test]
fn encoding_many_tokens_spans_blocks_correctly() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for kind in ALL_KINDS {
        for &norm in ALL_NORMS {
            let case = cases(std::slice::from_ref(kind), ALL_NORMS)
                .new_tree(&mut runner)
                .unwrap()
                .current();
            let mut case = Case { norm, ..case };
            case.n = 2100;
            case.x = (0..case.n * case.d_in)
                .map(|i| ((i * 7919) % 613) as f32 / 100.0 - 3.0)
                .collect();
            let what = format!("{kind:?} {norm:?} d_in {} d_sae {}", case.d_in, case.d_sae);
            let sae = case.sae();
            let x = case.x();
            let rf = reference(&sae, x.view());
            let dense = sae.encode(x.view()).unwrap();
            check_acts(&what, dense.view(), &rf, |_| 1.0).unwrap();
            let codes = sae.encode_sparse(x.view()).unwrap();
            assert_eq!(codes.to_dense(), dense, "{what}");
            assert_eq!(codes.n_rows(), case.n);
            let want = reference_decode(&sae, dense.view(), &rf.norms, true);
            let out = sae.forward(x.view()).unwrap();
            check_close(&what, out.view(), &want, |_| false).unwrap();
        }
    }
}
