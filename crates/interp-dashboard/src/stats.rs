//! What one streamed pass keeps per feature, in memory bounded by the number of features
//! (never by the number of tokens): counts, the top-`k` activating tokens, an exact histogram
//! of the non-zero activations and random examples from activation bands.
//!
//! The histogram and the bands cover `[0, 2^e)`, `2^e` the smallest power of two above every
//! activation seen. When a larger activation arrives, the range doubles (once or more) and
//! neighbouring bins merge, so the counts stay exact: bin `b` of `n` holds the activations
//! `a` with `⌊a · n / 2^e⌋ = b`, the same as a histogram computed after the pass with that
//! range. With `n` bins, at least `n / 2` of them lie below the largest activation.
//!
//! Band examples are uniform samples (reservoirs) of the activations in each band; merging two
//! bands draws from both reservoirs in proportion to what each saw, so the merged reservoir is
//! again a uniform sample of the merged band.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use interp_core::rng::SplitMix64;
use serde::{Deserialize, Serialize};

/// One activating token and the feature's activations around it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// The feature's activation at the token.
    pub activation: f32,
    /// Which window of the pass (see [`crate::TokenWindows`]).
    pub window: u32,
    /// The token's position in its window.
    pub position: u32,
    /// The first position of `context`.
    pub context_start: u32,
    /// The feature's activation at positions `context_start..` (0 where it does not fire).
    pub context: Vec<f32>,
}

/// Sizes of what is kept per feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsShape {
    /// Top activating tokens kept.
    pub top_k: usize,
    /// Histogram bins over `[0, 2^e)` (even, at least 2).
    pub bins: usize,
    /// Activation bands over `[0, 2^e)` (a power of two, so bands merge with the range).
    pub bands: usize,
    /// Random examples kept per band.
    pub per_band: usize,
}

impl Default for StatsShape {
    /// SAEDashboard's sizes: 20 top tokens, 10 bands of 5 examples (here 8 bands, a power of
    /// two), and 64 histogram bins of which 32–64 lie below the maximum.
    fn default() -> Self {
        StatsShape {
            top_k: 20,
            bins: 64,
            bands: 8,
            per_band: 5,
        }
    }
}

impl StatsShape {
    /// Bytes kept per feature at most, for examples of `context` tokens: the memory bound of
    /// the pass is this times the number of features tracked.
    pub fn bytes_per_feature(&self, context: usize) -> usize {
        let example = std::mem::size_of::<Example>() + 4 * context;
        (self.top_k + self.bands * self.per_band) * example
            + 8 * (self.bins + self.bands)
            + std::mem::size_of::<Tracker>()
    }
}

/// The exponent `e` of the smallest power of two above `value` (`value < 2^e`), for a finite
/// `value > 0`.
pub fn exponent_above(value: f32) -> i32 {
    let bits = f64::from(value).to_bits();
    ((bits >> 52) & 0x7ff) as i32 - 1023 + 1
}

/// The bin of `value` among `bins` equal bins over `[0, 2^exponent)` (exact: the product is
/// taken in `f64`).
pub fn bin_of(value: f32, exponent: i32, bins: usize) -> usize {
    let x = f64::from(value) * bins as f64 * 2f64.powi(-exponent);
    (x.floor() as usize).min(bins - 1)
}

/// An exact histogram of the non-zero activations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// `e` of the range `[0, 2^e)`; `None` when nothing fired.
    pub exponent: Option<i32>,
    /// Counts per bin.
    pub counts: Vec<u64>,
}

impl Histogram {
    /// The upper end of the range (`2^e`; 0 when nothing fired).
    pub fn upper(&self) -> f32 {
        self.exponent.map_or(0.0, |e| 2f32.powi(e))
    }

    /// Bin width.
    pub fn bin_width(&self) -> f32 {
        self.upper() / self.counts.len().max(1) as f32
    }

    /// The bins up to the last non-empty one.
    pub fn used(&self) -> &[u64] {
        let end = self
            .counts
            .iter()
            .rposition(|&c| c > 0)
            .map_or(0, |i| i + 1);
        &self.counts[..end]
    }
}

/// The examples of one activation band.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Band {
    /// Lower end of the band's activations.
    pub lower: f32,
    /// Upper end (exclusive).
    pub upper: f32,
    /// Activations seen in the band.
    pub seen: u64,
    /// A uniform sample of them, strongest first.
    pub examples: Vec<Example>,
}

/// What the pass found about one feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureStats {
    /// The feature id.
    pub feature: usize,
    /// Tokens where it fired (activation > 0).
    pub fired: u64,
    /// Sum of its activations.
    pub sum: f64,
    /// Its largest activation (0 when it never fired).
    pub max: f32,
    /// Top activating tokens, strongest first (ties: earliest first).
    pub top: Vec<Example>,
    /// Histogram of the non-zero activations.
    pub histogram: Histogram,
    /// Bands of `[0, 2^e)`, strongest first; bands above the maximum are left out.
    pub bands: Vec<Band>,
}

impl FeatureStats {
    /// Mean activation where it fired.
    pub fn mean_when_fired(&self) -> f64 {
        if self.fired == 0 {
            0.0
        } else {
            self.sum / self.fired as f64
        }
    }
}

/// An example ordered by strength: higher activation first, then earlier token.
#[derive(Clone, Debug)]
struct Ranked(Example);

impl Ranked {
    fn key(&self) -> (f32, Reverse<(u32, u32)>) {
        (self.0.activation, Reverse((self.0.window, self.0.position)))
    }
}

fn stronger(a: (f32, Reverse<(u32, u32)>), b: (f32, Reverse<(u32, u32)>)) -> Ordering {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        stronger(self.key(), other.key())
    }
}

/// The running state of one feature.
#[derive(Clone, Debug)]
pub(crate) struct Tracker {
    feature: usize,
    fired: u64,
    sum: f64,
    max: f32,
    exponent: Option<i32>,
    hist: Vec<u64>,
    band_seen: Vec<u64>,
    band_samples: Vec<Vec<Example>>,
    /// A min-heap: the weakest kept example on top.
    top: BinaryHeap<Reverse<Ranked>>,
    rng: SplitMix64,
}

impl Tracker {
    pub(crate) fn new(feature: usize, shape: &StatsShape, seed: u64) -> Self {
        Tracker {
            feature,
            fired: 0,
            sum: 0.0,
            max: 0.0,
            exponent: None,
            hist: vec![0; shape.bins],
            band_seen: vec![0; shape.bands],
            band_samples: vec![Vec::new(); shape.bands],
            top: BinaryHeap::with_capacity(shape.top_k + 1),
            rng: SplitMix64::stream(seed, feature as u64),
        }
    }

    /// Records activation `a > 0` at (`window`, `position`); `context` gives the example's
    /// context, asked for only when the example is kept.
    pub(crate) fn observe(
        &mut self,
        a: f32,
        window: u32,
        position: u32,
        shape: &StatsShape,
        context: impl Fn() -> (u32, Vec<f32>),
    ) {
        debug_assert!(a > 0.0 && a.is_finite());
        self.fired += 1;
        self.sum += f64::from(a);
        self.max = self.max.max(a);
        let e = exponent_above(a);
        match self.exponent {
            None => self.exponent = Some(e),
            Some(cur) if e > cur => self.grow(e, shape),
            Some(_) => {}
        }
        let e = self.exponent.expect("set above");
        self.hist[bin_of(a, e, shape.bins)] += 1;

        let make = |context: &dyn Fn() -> (u32, Vec<f32>)| {
            let (context_start, context) = context();
            Example {
                activation: a,
                window,
                position,
                context_start,
                context,
            }
        };
        let band = bin_of(a, e, shape.bands);
        self.band_seen[band] += 1;
        let seen = self.band_seen[band];
        let samples = &mut self.band_samples[band];
        if samples.len() < shape.per_band {
            samples.push(make(&context));
        } else if shape.per_band > 0 {
            let j = self.rng.below(seen as usize);
            if j < shape.per_band {
                samples[j] = make(&context);
            }
        }

        if shape.top_k == 0 {
            return;
        }
        let key = (a, Reverse((window, position)));
        let keep = self.top.len() < shape.top_k
            || self
                .top
                .peek()
                .is_some_and(|w| stronger(key, w.0.key()) == Ordering::Greater);
        if keep {
            self.top.push(Reverse(Ranked(make(&context))));
            if self.top.len() > shape.top_k {
                self.top.pop();
            }
        }
    }

    /// Doubles the range until it reaches `2^e`, merging bins and bands.
    fn grow(&mut self, e: i32, shape: &StatsShape) {
        let cur = self.exponent.expect("grow after the first value");
        let shift = (e - cur) as u32;
        self.exponent = Some(e);
        let merged = |i: usize| i.checked_shr(shift).unwrap_or(0);
        let mut hist = vec![0; shape.bins];
        for (i, &c) in self.hist.iter().enumerate() {
            hist[merged(i)] += c;
        }
        self.hist = hist;
        let mut seen = vec![0u64; shape.bands];
        let mut samples: Vec<Vec<Example>> = vec![Vec::new(); shape.bands];
        let old_seen = std::mem::take(&mut self.band_seen);
        let old_samples = std::mem::take(&mut self.band_samples);
        for (i, (n, s)) in old_seen.into_iter().zip(old_samples).enumerate() {
            let t = merged(i);
            samples[t] = merge_reservoirs(
                (seen[t], std::mem::take(&mut samples[t])),
                (n, s),
                shape.per_band,
                &mut self.rng,
            );
            seen[t] += n;
        }
        self.band_seen = seen;
        self.band_samples = samples;
    }

    pub(crate) fn finish(self, shape: &StatsShape) -> FeatureStats {
        let mut top: Vec<Example> = self.top.into_iter().map(|r| r.0 .0).collect();
        top.sort_by(|a, b| stronger(Ranked(b.clone()).key(), Ranked(a.clone()).key()));
        let upper = self.exponent.map_or(0.0, |e| 2f32.powi(e));
        let width = upper / shape.bands.max(1) as f32;
        let mut bands: Vec<Band> = self
            .band_seen
            .iter()
            .zip(self.band_samples)
            .enumerate()
            .filter(|&(i, _)| width * i as f32 <= self.max && self.exponent.is_some())
            .map(|(i, (&seen, mut examples))| {
                examples.sort_by(|a, b| b.activation.total_cmp(&a.activation));
                Band {
                    lower: width * i as f32,
                    upper: width * (i + 1) as f32,
                    seen,
                    examples,
                }
            })
            .collect();
        bands.reverse();
        FeatureStats {
            feature: self.feature,
            fired: self.fired,
            sum: self.sum,
            max: self.max,
            top,
            histogram: Histogram {
                exponent: self.exponent,
                counts: self.hist,
            },
            bands,
        }
    }
}

/// A uniform sample of at most `k` from the union of two disjoint sets, given a uniform sample
/// of each (`(seen, sample)`): how many come from each set follows the hypergeometric law.
fn merge_reservoirs(
    a: (u64, Vec<Example>),
    b: (u64, Vec<Example>),
    k: usize,
    rng: &mut SplitMix64,
) -> Vec<Example> {
    let (na, mut sa) = a;
    let (nb, mut sb) = b;
    if nb == 0 {
        return sa;
    }
    if na == 0 {
        return sb;
    }
    let take = k.min((na + nb) as usize);
    let (mut ra, mut rb) = (na, nb);
    let mut from_a = 0;
    for _ in 0..take {
        if (rng.uniform() * (ra + rb) as f64) < ra as f64 {
            from_a += 1;
            ra -= 1;
        } else {
            rb -= 1;
        }
    }
    rng.shuffle(&mut sa);
    rng.shuffle(&mut sb);
    sa.truncate(from_a);
    sb.truncate(take - from_a);
    sa.extend(sb);
    sa
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(values: &[f32], shape: &StatsShape) -> FeatureStats {
        let mut t = Tracker::new(0, shape, 7);
        for (i, &v) in values.iter().enumerate() {
            t.observe(v, 0, i as u32, shape, || (i as u32, vec![v]));
        }
        t.finish(shape)
    }

    #[test]
    fn the_exponent_is_that_of_the_next_power_of_two_above() {
        assert_eq!(exponent_above(1.0), 1);
        assert_eq!(exponent_above(0.99), 0);
        assert_eq!(exponent_above(3.0), 2);
        assert_eq!(exponent_above(4.0), 3);
        assert_eq!(exponent_above(1e-40), -132);
    }

    #[test]
    fn a_histogram_that_grew_equals_one_made_with_its_final_range() {
        let shape = StatsShape {
            bins: 8,
            bands: 4,
            ..StatsShape::default()
        };
        let values = [0.3, 0.26, 1.7, 0.9, 5.5, 0.01, 3.99, 4.0, 2.0];
        let s = feed(&values, &shape);
        let e = exponent_above(5.5);
        assert_eq!(s.histogram.exponent, Some(e));
        let mut direct = vec![0u64; 8];
        for &v in &values {
            direct[(f64::from(v) * 8.0 / 8.0).floor() as usize] += 1;
        }
        assert_eq!(s.histogram.counts, direct);
        assert_eq!(s.fired, values.len() as u64);
        assert_eq!(s.max, 5.5);
        // Bands of width 2: [6, 8) lies above the maximum and is left out.
        let seen: Vec<u64> = s.bands.iter().map(|b| b.seen).collect();
        assert_eq!(seen, [2, 2, 5]);
        for b in &s.bands {
            assert!(b.examples.len() as u64 == b.seen.min(5));
            for x in &b.examples {
                assert!(x.activation >= b.lower && x.activation < b.upper, "{b:?}");
            }
        }
    }

    #[test]
    fn the_top_examples_are_the_strongest_earliest_first_on_ties() {
        let shape = StatsShape {
            top_k: 3,
            ..StatsShape::default()
        };
        let s = feed(&[1.0, 3.0, 2.0, 3.0, 0.5, 2.0], &shape);
        let got: Vec<(f32, u32)> = s.top.iter().map(|x| (x.activation, x.position)).collect();
        assert_eq!(got, [(3.0, 1), (3.0, 3), (2.0, 2)]);
    }

    #[test]
    fn merged_reservoirs_sample_both_sides_in_proportion() {
        let ex = |v: f32| Example {
            activation: v,
            window: 0,
            position: 0,
            context_start: 0,
            context: vec![],
        };
        let mut rng = SplitMix64::new(3);
        let mut from_a = 0;
        for _ in 0..2000 {
            let a = (90, (0..5).map(|_| ex(1.0)).collect());
            let b = (10, (0..5).map(|_| ex(2.0)).collect());
            let m = merge_reservoirs(a, b, 5, &mut rng);
            assert_eq!(m.len(), 5);
            from_a += m.iter().filter(|x| x.activation == 1.0).count();
        }
        let share = from_a as f64 / 10_000.0;
        assert!((share - 0.9).abs() < 0.02, "{share}");
    }
}
