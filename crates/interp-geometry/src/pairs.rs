//! Concept-pair analysis (seed 004): pairs of concepts, each given by several feature indices
//! (e.g. "Happiness" = features 5444, 11485, … against "Sadness" = 6381, 9071), compared with
//! a seeded random baseline.
//!
//! For a concept pair `(A, B)` the statistics are taken over the member pairs `(i, j) ∈ A × B`
//! with `i ≠ j` (a feature listed on both sides is not compared with itself): the maximum, the
//! minimum (each with its pair) and the mean cosine.
//!
//! **Random baseline.** Sample `s` of `N` mirrors concept pair `s mod P`: it draws `|A|` and
//! `|B|` distinct features uniformly at random (all `|A| + |B|` distinct) and computes the same
//! three statistics. Matching the set sizes matters: the maximum over 5 × 4 member pairs is
//! naturally larger than one random cosine. With one feature per side this is the plain
//! "random pairs `i ≠ j`" baseline.
//!
//! **Tests.** For each statistic (mean, max, min), the `P` concept-pair values are compared
//! with the `N` random values by a Mann–Whitney U test and a permutation test on the difference
//! of means (see [`crate::stats`]).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::directions::{dot, Directions, Matrix};
use crate::error::{check_indices, Error, Result};
use crate::stats::{
    mann_whitney_u, permutation_test, summarize, MannWhitney, Permutation, SplitMix64, Summary,
};

/// A concept: a name and the features that represent it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "ConceptRepr")]
pub struct Concept {
    /// Display name (may be empty).
    pub name: String,
    /// Feature indices.
    pub features: Vec<usize>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ConceptRepr {
    Full {
        #[serde(default)]
        name: String,
        features: Vec<usize>,
    },
    Bare(Vec<usize>),
}

impl From<ConceptRepr> for Concept {
    fn from(r: ConceptRepr) -> Self {
        match r {
            ConceptRepr::Full { name, features } => Concept { name, features },
            ConceptRepr::Bare(features) => Concept {
                name: String::new(),
                features,
            },
        }
    }
}

/// Two concepts to compare (e.g. antonyms).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConceptPair {
    /// Display name, e.g. `"Happiness-Sadness"`.
    #[serde(default)]
    pub name: String,
    /// First concept.
    pub a: Concept,
    /// Second concept.
    pub b: Concept,
}

/// A list of concept pairs. JSON: `{"pairs": [{"name": "Size", "a": {"name": "Large",
/// "features": [5799, 4564]}, "b": {"name": "Small", "features": [8021]}}, ...]}`; a bare array
/// of pairs and bare index arrays for `a` / `b` are accepted too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "PairSetRepr")]
pub struct PairSet {
    /// The pairs.
    pub pairs: Vec<ConceptPair>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PairSetRepr {
    Wrapped { pairs: Vec<ConceptPair> },
    Bare(Vec<ConceptPair>),
}

impl From<PairSetRepr> for PairSet {
    fn from(r: PairSetRepr) -> Self {
        match r {
            PairSetRepr::Wrapped { pairs } | PairSetRepr::Bare(pairs) => PairSet { pairs },
        }
    }
}

impl PairSet {
    /// Reads a pair set from a JSON file.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Json`].
    pub fn from_json_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.into(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| Error::Json {
            path: path.into(),
            source,
        })
    }

    /// Checks that there is at least one pair, every concept has a feature, and every index is
    /// below `d_sae`.
    ///
    /// # Errors
    /// [`Error::Empty`], [`Error::IndexOutOfRange`].
    pub fn validate(&self, d_sae: usize) -> Result<()> {
        if self.pairs.is_empty() {
            return Err(Error::empty("the pair set has no pairs"));
        }
        for (n, p) in self.pairs.iter().enumerate() {
            for (side, c) in [("a", &p.a), ("b", &p.b)] {
                let what = format!("pair {n} ({}) side {side}", p.name);
                if c.features.is_empty() {
                    return Err(Error::empty(format!("{what} has no features")));
                }
                check_indices(&what, &c.features, d_sae)?;
            }
            if p.a.features.len() == 1 && p.a.features == p.b.features {
                return Err(Error::empty(format!(
                    "pair {n} ({}) compares feature {} with itself only",
                    p.name, p.a.features[0]
                )));
            }
        }
        Ok(())
    }
}

/// A cosine and the member pair attaining it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Extreme {
    /// The cosine.
    pub cos: f32,
    /// Feature from the first concept.
    pub i: usize,
    /// Feature from the second concept.
    pub j: usize,
}

/// Statistics of the member cosines of one concept pair.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairStats {
    /// Number of member pairs `(i, j)`, `i ≠ j`.
    pub n: usize,
    /// Largest member cosine.
    pub max: Extreme,
    /// Smallest member cosine.
    pub min: Extreme,
    /// Mean member cosine.
    pub mean: f64,
}

/// Max / min / mean cosine over `a × b` (pairs with `i == j` skipped).
///
/// # Errors
/// [`Error::IndexOutOfRange`]; [`Error::Empty`] if no pair `i ≠ j` remains.
pub fn pair_stats(dirs: &Directions, a: &[usize], b: &[usize]) -> Result<PairStats> {
    check_indices("concept a", a, dirs.len())?;
    check_indices("concept b", b, dirs.len())?;
    let u = dirs.unit();
    let mut max = Extreme {
        cos: f32::NEG_INFINITY,
        i: 0,
        j: 0,
    };
    let mut min = Extreme {
        cos: f32::INFINITY,
        i: 0,
        j: 0,
    };
    let (mut sum, mut n) = (0f64, 0usize);
    for &i in a {
        for &j in b {
            if i == j {
                continue;
            }
            let c = dot(u.row(i), u.row(j));
            if c > max.cos {
                max = Extreme { cos: c, i, j };
            }
            if c < min.cos {
                min = Extreme { cos: c, i, j };
            }
            sum += c as f64;
            n += 1;
        }
    }
    if n == 0 {
        return Err(Error::empty("no member pair with i ≠ j"));
    }
    Ok(PairStats {
        n,
        max,
        min,
        mean: sum / n as f64,
    })
}

/// Settings of [`analyze_pairs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairConfig {
    /// Random baseline samples `N` (default 1000).
    pub random: usize,
    /// Seed of the baseline and the permutations (default 0).
    pub seed: u64,
    /// Permutations of the permutation test (default 10 000).
    pub permutations: usize,
}

impl Default for PairConfig {
    fn default() -> Self {
        PairConfig {
            random: 1000,
            seed: 0,
            permutations: 10_000,
        }
    }
}

/// One concept pair's result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PairResult {
    /// The pair's name.
    pub name: String,
    /// First concept's name.
    pub a: String,
    /// Second concept's name.
    pub b: String,
    /// Its statistics.
    pub stats: PairStats,
}

/// The three statistics of a pair or sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Statistic {
    /// Mean member cosine.
    Mean,
    /// Largest member cosine.
    Max,
    /// Smallest member cosine.
    Min,
}

impl Statistic {
    fn of(self, s: &PairStats) -> f64 {
        match self {
            Statistic::Mean => s.mean,
            Statistic::Max => s.max.cos as f64,
            Statistic::Min => s.min.cos as f64,
        }
    }
}

/// Concept pairs against random pairs for one statistic.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct StatisticTest {
    /// Which statistic.
    pub statistic: Statistic,
    /// Summary over the concept pairs.
    pub concept: Summary,
    /// Summary over the random samples.
    pub random: Summary,
    /// Mann–Whitney U of concept vs random.
    pub mann_whitney: MannWhitney,
    /// Permutation test of concept vs random (difference of means).
    pub permutation: Permutation,
}

/// A pair-level extreme with the name of its concept pair (or `"random"`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NamedExtreme {
    /// Concept pair name, or `random #s` for a baseline sample.
    pub pair: String,
    /// The cosine and member features.
    #[serde(flatten)]
    pub extreme: Extreme,
}

/// Everything [`analyze_pairs`] finds for one matrix (decoder or encoder).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MatrixAnalysis {
    /// Which weight matrix.
    pub matrix: Matrix,
    /// Per concept pair.
    pub pairs: Vec<PairResult>,
    /// Mean over concept pairs of their mean cosine (seed 004's "Average (Antonym Pairs)").
    pub concept_mean: f64,
    /// Largest member cosine over all concept pairs.
    pub strongest_alignment: NamedExtreme,
    /// Smallest member cosine over all concept pairs.
    pub strongest_opposition: NamedExtreme,
    /// Mean over random samples of their mean cosine.
    pub random_mean: f64,
    /// Largest cosine in any random sample.
    pub random_strongest_alignment: NamedExtreme,
    /// Smallest cosine in any random sample.
    pub random_strongest_opposition: NamedExtreme,
    /// Tests for mean, max and min.
    pub tests: Vec<StatisticTest>,
    /// The random samples' statistics (for plots; not serialised).
    #[serde(skip)]
    pub random_samples: Vec<PairStats>,
}

fn draw_distinct(rng: &mut SplitMix64, n: u64, count: usize, out: &mut Vec<usize>) {
    out.clear();
    while out.len() < count {
        let v = rng.below(n as usize);
        if !out.contains(&v) {
            out.push(v);
        }
    }
}

/// Size-matched random baseline: `samples` draws, draw `s` with the concept sizes of
/// `sizes[s % sizes.len()]` (see the [module docs](self)).
///
/// # Errors
/// [`Error::Empty`] if `sizes` is empty or a size is 0; [`Error::InvalidArgument`] if a draw
/// needs more distinct features than `dirs` has.
pub fn random_baseline(
    dirs: &Directions,
    sizes: &[(usize, usize)],
    samples: usize,
    seed: u64,
) -> Result<Vec<PairStats>> {
    if sizes.is_empty() {
        return Err(Error::empty("no concept sizes for the random baseline"));
    }
    if let Some(&(a, b)) = sizes
        .iter()
        .find(|&&(a, b)| a == 0 || b == 0 || a + b > dirs.len())
    {
        if a == 0 || b == 0 {
            return Err(Error::empty("a concept of size 0"));
        }
        return Err(Error::invalid(format!(
            "a random pair of concepts of sizes {a} and {b} needs {} distinct features; there are {}",
            a + b,
            dirs.len()
        )));
    }
    let mut rng = SplitMix64::new(seed);
    let mut drawn = Vec::new();
    (0..samples)
        .map(|s| {
            let (na, nb) = sizes[s % sizes.len()];
            draw_distinct(&mut rng, dirs.len() as u64, na + nb, &mut drawn);
            pair_stats(dirs, &drawn[..na], &drawn[na..])
        })
        .collect()
}

/// The concept-pair analysis of one set of directions (see the [module docs](self)).
///
/// # Errors
/// [`Error::Empty`] for an empty pair set or concept, [`Error::IndexOutOfRange`],
/// [`Error::InvalidArgument`] for `cfg.random` or `cfg.permutations` of 0.
pub fn analyze_pairs(
    dirs: &Directions,
    matrix: Matrix,
    set: &PairSet,
    cfg: &PairConfig,
) -> Result<MatrixAnalysis> {
    set.validate(dirs.len())?;
    if cfg.random == 0 {
        return Err(Error::invalid(
            "the random baseline needs at least 1 sample",
        ));
    }
    let pairs = set
        .pairs
        .iter()
        .map(|p| {
            Ok(PairResult {
                name: p.name.clone(),
                a: p.a.name.clone(),
                b: p.b.name.clone(),
                stats: pair_stats(dirs, &p.a.features, &p.b.features)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let sizes: Vec<_> = set
        .pairs
        .iter()
        .map(|p| (p.a.features.len(), p.b.features.len()))
        .collect();
    let random = random_baseline(dirs, &sizes, cfg.random, cfg.seed)?;
    let named = |name: String, e: Extreme| NamedExtreme {
        pair: name,
        extreme: e,
    };
    let extreme_of = |items: &mut dyn Iterator<Item = (String, Extreme)>, max: bool| {
        items
            .reduce(|x, y| {
                let better = if max {
                    y.1.cos > x.1.cos
                } else {
                    y.1.cos < x.1.cos
                };
                if better {
                    y
                } else {
                    x
                }
            })
            .map(|(n, e)| named(n, e))
            .expect("non-empty")
    };
    let strongest_alignment = extreme_of(
        &mut pairs.iter().map(|p| (p.name.clone(), p.stats.max)),
        true,
    );
    let strongest_opposition = extreme_of(
        &mut pairs.iter().map(|p| (p.name.clone(), p.stats.min)),
        false,
    );
    let random_strongest_alignment = extreme_of(
        &mut random
            .iter()
            .enumerate()
            .map(|(s, r)| (format!("random #{s}"), r.max)),
        true,
    );
    let random_strongest_opposition = extreme_of(
        &mut random
            .iter()
            .enumerate()
            .map(|(s, r)| (format!("random #{s}"), r.min)),
        false,
    );
    let tests = [Statistic::Mean, Statistic::Max, Statistic::Min]
        .into_iter()
        .enumerate()
        .map(|(t, statistic)| {
            let x: Vec<f64> = pairs.iter().map(|p| statistic.of(&p.stats)).collect();
            let y: Vec<f64> = random.iter().map(|r| statistic.of(r)).collect();
            Ok(StatisticTest {
                statistic,
                concept: summarize(&x),
                random: summarize(&y),
                mann_whitney: mann_whitney_u(&x, &y)?,
                permutation: permutation_test(
                    &x,
                    &y,
                    cfg.permutations,
                    cfg.seed.wrapping_add(1 + t as u64),
                )?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mean = |v: &mut dyn Iterator<Item = f64>, n: usize| v.sum::<f64>() / n as f64;
    Ok(MatrixAnalysis {
        matrix,
        concept_mean: mean(&mut pairs.iter().map(|p| p.stats.mean), pairs.len()),
        random_mean: mean(&mut random.iter().map(|r| r.mean), random.len()),
        pairs,
        strongest_alignment,
        strongest_opposition,
        random_strongest_alignment,
        random_strongest_opposition,
        tests,
        random_samples: random,
    })
}

/// Encoder–decoder self-similarity of the concept features against random features.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SelfSimilarityReport {
    /// Over the distinct features named in the pair set.
    pub concept: SelfSimilarityGroup,
    /// Over `N` features drawn uniformly (with replacement).
    pub random: SelfSimilarityGroup,
}

/// Self-similarity summary of a group of features.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SelfSimilarityGroup {
    /// Mean of `cos(W_enc[:, i], W_dec[i])`.
    pub mean: f64,
    /// Highest value and its feature.
    pub highest: (usize, f32),
    /// Lowest value and its feature.
    pub lowest: (usize, f32),
    /// Number of features.
    pub n: usize,
}

fn self_group(sims: &[f32], features: &[usize]) -> SelfSimilarityGroup {
    let mut hi = (features[0], sims[features[0]]);
    let mut lo = hi;
    let mut sum = 0f64;
    for &f in features {
        let v = sims[f];
        sum += v as f64;
        if v > hi.1 {
            hi = (f, v);
        }
        if v < lo.1 {
            lo = (f, v);
        }
    }
    SelfSimilarityGroup {
        mean: sum / features.len() as f64,
        highest: hi,
        lowest: lo,
        n: features.len(),
    }
}

/// The full seed-004 analysis of an SAE: decoder and encoder concept pairs against the random
/// baseline, and encoder–decoder self-similarity of the concept features against random ones.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PairReport {
    /// Number of SAE features.
    pub d_sae: usize,
    /// The settings used.
    pub config: PairConfig,
    /// Decoder, then encoder.
    pub matrices: Vec<MatrixAnalysis>,
    /// Self-similarity control.
    pub self_similarity: SelfSimilarityReport,
}

/// Runs [`analyze_pairs`] on the decoder and encoder of `sae` and the self-similarity control.
///
/// # Errors
/// As [`analyze_pairs`].
pub fn analyze_sae_pairs(
    sae: &interp_sae::Sae,
    set: &PairSet,
    cfg: &PairConfig,
) -> Result<PairReport> {
    set.validate(sae.d_sae())?;
    let dec = Directions::decoder(sae);
    let enc = Directions::encoder(sae);
    let matrices = vec![
        analyze_pairs(&dec, Matrix::Dec, set, cfg)?,
        analyze_pairs(&enc, Matrix::Enc, set, cfg)?,
    ];
    let sims = crate::directions::paired_cosines(&enc, &dec)?;
    let mut members: Vec<usize> = set
        .pairs
        .iter()
        .flat_map(|p| p.a.features.iter().chain(&p.b.features).copied())
        .collect();
    members.sort_unstable();
    members.dedup();
    let mut rng = SplitMix64::new(cfg.seed ^ 0x5E1F);
    let random: Vec<usize> = (0..cfg.random).map(|_| rng.below(sims.len())).collect();
    Ok(PairReport {
        d_sae: sae.d_sae(),
        config: *cfg,
        matrices,
        self_similarity: SelfSimilarityReport {
            concept: self_group(&sims, &members),
            random: self_group(&sims, &random),
        },
    })
}

fn f(v: f64) -> String {
    format!("{v:.5}")
}

impl MatrixAnalysis {
    /// Markdown tables: per pair, the seed-004 summary, and the tests.
    pub fn to_markdown(&self) -> String {
        let mut s = format!("### {} cosine similarity\n\n", self.matrix.long_name());
        s += "| concept pair | a | b | member pairs | max (i, j) | min (i, j) | mean |\n";
        s += "|---|---|---|---|---|---|---|\n";
        for p in &self.pairs {
            let st = &p.stats;
            s += &format!(
                "| {} | {} | {} | {} | {} ({}, {}) | {} ({}, {}) | {} |\n",
                p.name,
                p.a,
                p.b,
                st.n,
                f(st.max.cos as f64),
                st.max.i,
                st.max.j,
                f(st.min.cos as f64),
                st.min.i,
                st.min.j,
                f(st.mean)
            );
        }
        s += "\n| relationship | cosine | feature pair | concept pair |\n|---|---|---|---|\n";
        let row = |label: &str, e: &NamedExtreme| {
            format!(
                "| {label} | {} | [{}, {}] | {} |\n",
                f(e.extreme.cos as f64),
                e.extreme.i,
                e.extreme.j,
                e.pair
            )
        };
        s += &format!(
            "| average (concept pairs) | {} | | |\n",
            f(self.concept_mean)
        );
        s += &row("strongest alignment", &self.strongest_alignment);
        s += &row("strongest opposition", &self.strongest_opposition);
        s += &format!(
            "| average (random, N = {}) | {} | | |\n",
            self.random_samples.len(),
            f(self.random_mean)
        );
        s += &row(
            "random strongest alignment",
            &self.random_strongest_alignment,
        );
        s += &row(
            "random strongest opposition",
            &self.random_strongest_opposition,
        );
        s += "\n| statistic | concept mean | random mean | random 95% range | Mann–Whitney U | z | p (MWU) | p (permutation) |\n";
        s += "|---|---|---|---|---|---|---|---|\n";
        for t in &self.tests {
            s += &format!(
                "| {:?} | {} | {} | [{}, {}] | {:.1} | {:.3} | {:.4} | {:.4} |\n",
                t.statistic,
                f(t.concept.mean),
                f(t.random.mean),
                f(t.random.q025),
                f(t.random.q975),
                t.mann_whitney.u,
                t.mann_whitney.z,
                t.mann_whitney.p,
                t.permutation.p
            );
        }
        s
    }
}

impl PairReport {
    /// The whole report as markdown.
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "## Concept pairs vs random pairs (d_sae = {}, N = {}, seed = {}, {} permutations)\n\n",
            self.d_sae, self.config.random, self.config.seed, self.config.permutations
        );
        for m in &self.matrices {
            s += &m.to_markdown();
            s += "\n";
        }
        let g = |label: &str, x: &SelfSimilarityGroup| {
            format!(
                "| {label} (n = {}) | {} | {} ({}) | {} ({}) |\n",
                x.n,
                f(x.mean),
                f(x.highest.1 as f64),
                x.highest.0,
                f(x.lowest.1 as f64),
                x.lowest.0
            )
        };
        s += "### encoder–decoder self-similarity\n\n| features | mean | highest (feature) | lowest (feature) |\n|---|---|---|---|\n";
        s += &g("concept features", &self.self_similarity.concept);
        s += &g("random features", &self.self_similarity.random);
        s
    }
}
