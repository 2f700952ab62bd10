//! Predecessor groups (Feature Flow §5.1, App. A.1): over a corpus, for each active residual
//! feature at `R_L` and token, whether its top-1 (or top-5) predecessor in `R_{L−1}`, `M_L`
//! and `A_L` is active at the same token, giving one of eight groups; per-layer shares
//! (Fig. 5), score distributions per group (Fig. 3, 12), Mann–Whitney U tests between groups
//! (Fig. 4, 14) and group-to-group transitions across layers (Fig. 13).

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::backend::Backend;
use interp_core::rng::SplitMix64;
use interp_geometry::stats::mann_whitney_u;
use interp_models::{HookSpec, HookedTransformer};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::node::Module;
use crate::probe::codes_at;
use crate::stack::SaeStack;
use crate::tables::{MatchTables, Source};

/// A predecessor group: which of the three predecessors was active (bit 0: residual, bit 1:
/// MLP, bit 2: attention); 0 is "From nowhere".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Group(pub u8);

impl Group {
    /// The eight groups, "From nowhere" first.
    pub const ALL: [Group; 8] = [
        Group(0),
        Group(1),
        Group(2),
        Group(4),
        Group(3),
        Group(5),
        Group(6),
        Group(7),
    ];

    /// The paper's name: "From RES", "From MLP & ATT", "From nowhere", …
    pub fn name(self) -> String {
        if self.0 == 0 {
            return "From nowhere".into();
        }
        let parts: Vec<&str> = [(1, "RES"), (2, "MLP"), (4, "ATT")]
            .into_iter()
            .filter(|(bit, _)| self.0 & bit != 0)
            .map(|(_, n)| n)
            .collect();
        format!("From {}", parts.join(" & "))
    }

    fn bit(source: Source) -> u8 {
        match source {
            Source::Res => 1,
            Source::Mlp => 2,
            Source::Att => 4,
        }
    }

    /// Whether the `source` predecessor was active.
    pub fn has(self, source: Source) -> bool {
        self.0 & Self::bit(source) != 0
    }

    /// Index in [`Group::ALL`].
    pub fn index(self) -> usize {
        Group::ALL
            .iter()
            .position(|g| *g == self)
            .expect("8 groups")
    }
}

/// How to sample the corpus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupOptions {
    /// Random tokens per text (the paper: 5).
    pub tokens_per_text: usize,
    /// Skip position 0 (the BOS token).
    pub skip_first: bool,
    /// A predecessor counts as active if any of its top-`top_n` matches is (1 or 5).
    pub top_n: usize,
    /// Seed of the token sampling.
    pub seed: u64,
}

impl Default for GroupOptions {
    fn default() -> Self {
        GroupOptions {
            tokens_per_text: 5,
            skip_first: true,
            top_n: 1,
            seed: 0,
        }
    }
}

/// One active target feature at one token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupSample {
    /// The text's index.
    pub text: usize,
    /// The token position.
    pub position: usize,
    /// The layer of `R_L`.
    pub layer: usize,
    /// The feature of `R_L`.
    pub feature: usize,
    /// Its activation.
    pub activation: f32,
    /// Its group.
    pub group: Group,
    /// Top-1 scores `s(R), s(M), s(A)` (`None` where the stack has no such SAE).
    pub scores: [Option<f32>; 3],
}

/// The group counts of one layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerGroups {
    /// The layer.
    pub layer: usize,
    /// Counts in [`Group::ALL`] order.
    pub counts: [usize; 8],
    /// Shares in [`Group::ALL`] order.
    pub shares: [f64; 8],
    /// Mann–Whitney U tests between every pair of groups with at least two samples, on each
    /// score (`s(R)`, `s(M)`, `s(A)`): how many there were and the share with p < 0.001.
    pub tests: usize,
    /// Share of those tests with p < 0.001.
    pub share_p_below_0_001: f64,
}

/// Predecessor groups over a corpus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PredecessorGroups {
    /// The sampling options.
    pub options: GroupOptions,
    /// Texts read.
    pub texts: usize,
    /// Tokens sampled.
    pub tokens: usize,
    /// Every sample.
    pub samples: Vec<GroupSample>,
    /// Per layer.
    pub layers: Vec<LayerGroups>,
    /// `transitions[a][b]`: how often a feature in group `b` (index in [`Group::ALL`]) at
    /// layer `L` had an active residual predecessor in group `a` at layer `L−1`, summed over
    /// layers (Fig. 13).
    pub transitions: [[usize; 8]; 8],
}

/// Random distinct positions of a text of `n` tokens.
pub(crate) fn sample_positions(
    n: usize,
    count: usize,
    skip_first: bool,
    rng: &mut SplitMix64,
) -> Vec<usize> {
    let mut pool: Vec<usize> = (usize::from(skip_first)..n).collect();
    rng.shuffle(&mut pool);
    pool.truncate(count);
    pool.sort_unstable();
    pool
}

/// The slots a layer's analysis reads: `R_L` and its predecessors that the tables cover.
pub(crate) fn layer_slots(tables: &MatchTables, layer: usize) -> Vec<(usize, Module)> {
    let mut slots = vec![(layer, Module::Res)];
    for s in Source::ALL {
        if tables.has(layer, s) {
            slots.push(s.slot(layer));
        }
    }
    slots
}

impl PredecessorGroups {
    /// Assigns groups over `texts` (token ids), for every layer the tables cover.
    ///
    /// # Errors
    /// [`Error::Invalid`] for `top_n` above the tables' `k`, or no tokens to sample; model and
    /// SAE errors.
    pub fn compute<B: Backend>(
        model: &HookedTransformer<B>,
        stack: &SaeStack,
        tables: &MatchTables,
        texts: &[Vec<u32>],
        options: &GroupOptions,
    ) -> Result<Self> {
        if options.top_n == 0 || options.top_n > tables.k {
            return Err(Error::invalid(
                "top_n",
                format!(
                    "must be in 1..={} (the tables' k), got {}",
                    tables.k, options.top_n
                ),
            ));
        }
        let layers = tables.layers();
        let mut slots: Vec<(usize, Module)> = layers
            .iter()
            .flat_map(|&l| layer_slots(tables, l))
            .collect();
        slots.sort();
        slots.dedup();
        let mut rng = SplitMix64::new(options.seed);
        let mut samples = Vec::new();
        let mut transitions = [[0usize; 8]; 8];
        let mut tokens = 0;
        for (ti, text) in texts.iter().enumerate() {
            let positions = sample_positions(
                text.len(),
                options.tokens_per_text,
                options.skip_first,
                &mut rng,
            );
            if positions.is_empty() {
                continue;
            }
            tokens += positions.len();
            let (codes, _) = codes_at(model, stack, text, &positions, &slots, HookSpec::new())?;
            for (r, &position) in positions.iter().enumerate() {
                // (layer, feature) → group at this token, for transitions.
                let mut groups_here: BTreeMap<(usize, usize), Group> = BTreeMap::new();
                for &layer in &layers {
                    let z = codes[&(layer, Module::Res)].row(r);
                    for (feature, &a) in z.iter().enumerate() {
                        if a <= 0.0 {
                            continue;
                        }
                        let mut group = 0u8;
                        let mut scores = [None; 3];
                        for (si, source) in Source::ALL.into_iter().enumerate() {
                            let Ok(table) = tables.get(layer, source) else {
                                continue;
                            };
                            let pz = codes[&source.slot(layer)].row(r);
                            scores[si] = table.top1(feature).map(|m| m.1);
                            if table
                                .row(feature)
                                .take(options.top_n)
                                .any(|(j, _)| pz[j] > 0.0)
                            {
                                group |= Group::bit(source);
                            }
                        }
                        let group = Group(group);
                        if group.has(Source::Res) && layer > 0 {
                            let pred = tables.get(layer, Source::Res)?.top1(feature);
                            if let Some(&g) =
                                pred.and_then(|(j, _)| groups_here.get(&(layer - 1, j)))
                            {
                                transitions[g.index()][group.index()] += 1;
                            }
                        }
                        groups_here.insert((layer, feature), group);
                        samples.push(GroupSample {
                            text: ti,
                            position,
                            layer,
                            feature,
                            activation: a,
                            group,
                            scores,
                        });
                    }
                }
            }
        }
        if tokens == 0 {
            return Err(Error::invalid(
                "corpus",
                "no token to sample (texts too short or empty)",
            ));
        }
        let layers = layers
            .iter()
            .map(|&l| layer_summary(l, &samples))
            .collect::<Result<_>>()?;
        Ok(PredecessorGroups {
            options: options.clone(),
            texts: texts.len(),
            tokens,
            samples,
            layers,
            transitions,
        })
    }

    /// Scores `s(source)` of the samples in `group` (all layers).
    pub fn scores(&self, group: Group, source: Source) -> Vec<f64> {
        let si = Source::ALL
            .iter()
            .position(|s| *s == source)
            .expect("3 sources");
        self.samples
            .iter()
            .filter(|s| s.group == group)
            .filter_map(|s| s.scores[si].map(f64::from))
            .collect()
    }

    /// Group shares over all layers, in [`Group::ALL`] order.
    pub fn overall_shares(&self) -> [f64; 8] {
        let mut counts = [0usize; 8];
        for s in &self.samples {
            counts[s.group.index()] += 1;
        }
        shares(&counts)
    }

    /// A JSON summary (everything but the samples).
    pub fn summary_json(&self) -> serde_json::Value {
        serde_json::json!({
            "options": self.options,
            "texts": self.texts,
            "tokens": self.tokens,
            "samples": self.samples.len(),
            "groups": Group::ALL.iter().map(|g| g.name()).collect::<Vec<_>>(),
            "overall_shares": self.overall_shares(),
            "layers": self.layers,
            "transitions": self.transitions,
        })
    }

    /// Writes `groups.json` (summary), `group_samples.json`, and the figures
    /// `group_shares.png` (Fig. 5), `group_scores_{res,mlp,att}.png` (Fig. 3/12) and
    /// `group_transitions.png` (Fig. 13) into `dir`.
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Malformed`] when writing fails.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let text = |v: &serde_json::Value| serde_json::to_string_pretty(v).expect("json");
        crate::graph::write_text(&dir.join("groups.json"), &text(&self.summary_json()))?;
        crate::graph::write_text(
            &dir.join("group_samples.json"),
            &serde_json::to_string(&self.samples).expect("json"),
        )?;
        let plot = |e: interp_core::plot::PlotError| Error::Malformed {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        };
        let names: Vec<String> = Group::ALL.iter().map(|g| g.name()).collect();
        let layer_names: Vec<String> = self
            .layers
            .iter()
            .map(|l| format!("L{}", l.layer))
            .collect();
        let mut values = Vec::new();
        for gi in 0..8 {
            for l in &self.layers {
                values.push(l.shares[gi] as f32);
            }
        }
        interp_core::plot::heatmap(
            &dir.join("group_shares.png"),
            "Predecessor group shares by layer",
            &names,
            &layer_names,
            &values,
            8,
            self.layers.len(),
            Some((0.0, 1.0)),
        )
        .map_err(plot)?;
        for source in Source::ALL {
            let groups: Vec<(String, Vec<f64>)> = Group::ALL
                .iter()
                .map(|&g| (g.name(), self.scores(g, source)))
                .filter(|(_, v)| !v.is_empty())
                .collect();
            if groups.is_empty() {
                continue;
            }
            interp_core::plot::histogram(
                &dir.join(format!("group_scores_{}.png", source.name())),
                &format!("s({}) by predecessor group", source.name().to_uppercase()),
                "top-1 decoder cosine",
                &groups,
                30,
            )
            .map_err(plot)?;
        }
        let total: usize = self.transitions.iter().flatten().sum();
        let trans: Vec<f32> = self
            .transitions
            .iter()
            .flatten()
            .map(|&c| c as f32 / total.max(1) as f32)
            .collect();
        interp_core::plot::heatmap(
            &dir.join("group_transitions.png"),
            "Group of the residual predecessor (rows) → group (columns)",
            &names,
            &names,
            &trans,
            8,
            8,
            None,
        )
        .map_err(plot)?;
        Ok(())
    }
}

fn shares(counts: &[usize; 8]) -> [f64; 8] {
    let total: usize = counts.iter().sum();
    counts.map(|c| c as f64 / total.max(1) as f64)
}

fn layer_summary(layer: usize, samples: &[GroupSample]) -> Result<LayerGroups> {
    let here: Vec<&GroupSample> = samples.iter().filter(|s| s.layer == layer).collect();
    let mut counts = [0usize; 8];
    for s in &here {
        counts[s.group.index()] += 1;
    }
    let mut tests = 0;
    let mut significant = 0;
    for si in 0..3 {
        let by_group: Vec<Vec<f64>> = Group::ALL
            .iter()
            .map(|&g| {
                here.iter()
                    .filter(|s| s.group == g)
                    .filter_map(|s| s.scores[si].map(f64::from))
                    .collect()
            })
            .collect();
        for a in 0..8 {
            for b in a + 1..8 {
                if by_group[a].len() < 2 || by_group[b].len() < 2 {
                    continue;
                }
                let t = mann_whitney_u(&by_group[a], &by_group[b])?;
                tests += 1;
                significant += usize::from(t.p < 1e-3);
            }
        }
    }
    Ok(LayerGroups {
        layer,
        counts,
        shares: shares(&counts),
        tests,
        share_p_below_0_001: significant as f64 / tests.max(1) as f64,
    })
}
