//! Deactivation (Feature Flow §4.2, §5.2, App. A.2): at the token where a target feature of
//! `R_L` is active, rescale its chosen predecessors by `r` at their hooks
//! (`h_t ← h_t + (r − 1)·a_t·V`, interp-steer's [`Op::Rescale`](interp_steer::Op) with unit
//! decoder rows, the SAE bias ignored), run the model again and re-read the target.
//!
//! Metrics per method and `r`: success rate (the target becomes inactive, over the trials in
//! which the method found an active predecessor), activation change `1 − z_new/z_old` (1 for
//! full deactivation) and relative loss change `(L_new − L_old)/L_old` of the text's mean
//! next-token loss.
//!
//! Predecessor choices ([`PredecessorMethod`]), in each of `R_{L−1}`, `M_L`, `A_L`:
//! - `top1`: the top-1 cosine match, if active at the token;
//! - `top5`: every active one of the top-5 matches;
//! - `random_of_top5`: one uniformly random one of the top-5, active or not (the paper's
//!   control, read literally: an inactive pick changes nothing, so this control also measures
//!   how often the top-1 is the only active candidate);
//! - `random_active_of_top5`: one uniformly random *active* one of the top-5 — a stricter
//!   control that keeps the number of rescaled features and their activity and so tests the
//!   cosine ranking alone;
//! - `permutation`: the permutation (linear assignment) match, if active.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::backend::Backend;
use interp_core::rng::SplitMix64;
use interp_models::{HookPoint, HookSpec, HookedTransformer, Positions};
use interp_steer::{RescaleBasis, SaeSet, SteeringPlan};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::groups::{layer_slots, sample_positions};
use crate::node::{Module, NodeId};
use crate::probe::codes_at;
use crate::stack::SaeStack;
use crate::tables::{MatchMethod, MatchTables, Source};

/// How a target's predecessors are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PredecessorMethod {
    /// The top-1 cosine match.
    Top1,
    /// All active ones of the top-5.
    Top5,
    /// One random one of the top-5.
    RandomOfTop5,
    /// One random active one of the top-5.
    RandomActiveOfTop5,
    /// The permutation match.
    Permutation,
}

impl PredecessorMethod {
    /// All four.
    pub const ALL: [PredecessorMethod; 5] = [
        PredecessorMethod::Top1,
        PredecessorMethod::Top5,
        PredecessorMethod::RandomOfTop5,
        PredecessorMethod::RandomActiveOfTop5,
        PredecessorMethod::Permutation,
    ];

    /// `top1`, `top5`, `random_of_top5`, `permutation`.
    pub fn name(self) -> &'static str {
        match self {
            PredecessorMethod::Top1 => "top1",
            PredecessorMethod::Top5 => "top5",
            PredecessorMethod::RandomOfTop5 => "random_of_top5",
            PredecessorMethod::RandomActiveOfTop5 => "random_active_of_top5",
            PredecessorMethod::Permutation => "permutation",
        }
    }
}

impl std::str::FromStr for PredecessorMethod {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        PredecessorMethod::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "method",
                    format!("unknown `{s}` (known: top1, top5, random_of_top5, random_active_of_top5, permutation)"),
                )
            })
    }
}

/// What to run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeactivationOptions {
    /// Layers of the targets (`None`: every layer the tables cover; the paper: 6, 12, 18).
    pub layers: Option<Vec<usize>>,
    /// Random tokens per text (the paper: 5).
    pub tokens_per_text: usize,
    /// Skip position 0 (BOS).
    pub skip_first: bool,
    /// Targets per (layer, token), the most active first (the paper: up to 25).
    pub max_features: usize,
    /// Rescaling factors r (0: deactivation).
    pub factors: Vec<f32>,
    /// Methods compared.
    pub methods: Vec<PredecessorMethod>,
    /// Seed of token sampling and of `random_of_top5`.
    pub seed: u64,
}

impl Default for DeactivationOptions {
    fn default() -> Self {
        DeactivationOptions {
            layers: None,
            tokens_per_text: 5,
            skip_first: true,
            max_features: 25,
            factors: vec![0.0],
            methods: vec![
                PredecessorMethod::Top1,
                PredecessorMethod::Top5,
                PredecessorMethod::RandomOfTop5,
            ],
            seed: 0,
        }
    }
}

/// One intervention on one target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// The text's index.
    pub text: usize,
    /// The token position.
    pub position: usize,
    /// The target.
    pub target: NodeId,
    /// The method.
    pub method: PredecessorMethod,
    /// The factor r.
    pub factor: f32,
    /// The predecessors rescaled.
    pub predecessors: Vec<NodeId>,
    /// Target activation before.
    pub z_old: f32,
    /// Target activation after.
    pub z_new: f32,
    /// Mean next-token loss of the text before.
    pub loss_old: f64,
    /// After.
    pub loss_new: f64,
}

/// The means over the trials of one method and factor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodSummary {
    /// The method.
    pub method: PredecessorMethod,
    /// The factor r.
    pub factor: f32,
    /// Trials: targets with an active top-1 predecessor. A method that picks no active
    /// predecessor for one (a random pick that is inactive) counts it as a failure with no
    /// change, not as a skipped trial, so every method has the same denominator.
    pub trials: usize,
    /// Share of trials in which the target became inactive.
    pub success_rate: f64,
    /// Mean `1 − z_new/z_old`.
    pub mean_activation_change: f64,
    /// Mean `(L_new − L_old)/L_old`.
    pub mean_relative_loss_change: f64,
}

/// The deactivation experiment's results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Deactivation {
    /// What was run.
    pub options: DeactivationOptions,
    /// Every trial.
    pub trials: Vec<Trial>,
    /// Per method and factor.
    pub summary: Vec<MethodSummary>,
}

fn slot_key(slot: (usize, Module)) -> String {
    format!("{}/{}", slot.0, slot.1)
}

impl Deactivation {
    /// Runs the experiment over `texts` (token ids). `permutation` holds the permutation
    /// tables, needed only for [`PredecessorMethod::Permutation`].
    ///
    /// # Errors
    /// [`Error::Invalid`] for no methods or factors, `top5` methods on tables with `k < 5`,
    /// a permutation method without permutation tables, a layer the tables lack; model, SAE
    /// and plan errors.
    pub fn run<B: Backend>(
        model: &HookedTransformer<B>,
        stack: &SaeStack,
        tables: &MatchTables,
        permutation: Option<&MatchTables>,
        texts: &[Vec<u32>],
        options: &DeactivationOptions,
    ) -> Result<Self> {
        check_options(tables, permutation, options)?;
        let layers = options.layers.clone().unwrap_or_else(|| tables.layers());
        for &l in &layers {
            if !tables.has(l, Source::Res)
                && !tables.has(l, Source::Mlp)
                && !tables.has(l, Source::Att)
            {
                return Err(Error::invalid(
                    "layers",
                    format!(
                        "layer {l} has no tables (they cover: {})",
                        tables.describe()
                    ),
                ));
            }
        }
        let mut saes = SaeSet::new();
        for (slot, e) in stack.slots() {
            saes.insert(slot_key(slot), e.sae.clone());
        }
        let mut slots: Vec<(usize, Module)> = layers
            .iter()
            .flat_map(|&l| layer_slots(tables, l))
            .collect();
        slots.sort();
        slots.dedup();
        let mut rng = SplitMix64::new(options.seed);
        let mut trials = Vec::new();
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
            let (codes, loss_old) =
                codes_at(model, stack, text, &positions, &slots, HookSpec::new())?;
            for (r, &position) in positions.iter().enumerate() {
                for &layer in &layers {
                    let z = codes[&(layer, Module::Res)].row(r);
                    let active =
                        |source: Source, j: usize| codes[&source.slot(layer)][[r, j]] > 0.0;
                    let mut targets: Vec<(usize, f32)> = z
                        .iter()
                        .enumerate()
                        .filter(|(_, &a)| a > 0.0)
                        .map(|(f, &a)| (f, a))
                        .filter(|&(f, _)| {
                            // Skip "From nowhere" (no active top-1 predecessor).
                            Source::ALL.into_iter().any(|s| {
                                tables
                                    .get(layer, s)
                                    .ok()
                                    .and_then(|t| t.top1(f))
                                    .is_some_and(|(j, _)| active(s, j))
                            })
                        })
                        .collect();
                    targets.sort_by(|a, b| b.1.total_cmp(&a.1));
                    targets.truncate(options.max_features);
                    for (feature, z_old) in targets {
                        for &method in &options.methods {
                            let preds = choose(
                                tables,
                                permutation,
                                layer,
                                feature,
                                method,
                                &active,
                                &mut rng,
                            )?;
                            for &factor in &options.factors {
                                if preds.is_empty() {
                                    trials.push(Trial {
                                        text: ti,
                                        position,
                                        target: NodeId::res(layer, feature),
                                        method,
                                        factor,
                                        predecessors: Vec::new(),
                                        z_old,
                                        z_new: z_old,
                                        loss_old,
                                        loss_new: loss_old,
                                    });
                                    continue;
                                }
                                let plan = rescale_plan(stack, &preds, factor, position)?;
                                let spec = plan.hook_spec(model, &saes)?;
                                let (after, loss_new) = codes_at(
                                    model,
                                    stack,
                                    text,
                                    &[position],
                                    &[(layer, Module::Res)],
                                    spec,
                                )?;
                                trials.push(Trial {
                                    text: ti,
                                    position,
                                    target: NodeId::res(layer, feature),
                                    method,
                                    factor,
                                    predecessors: preds.clone(),
                                    z_old,
                                    z_new: after[&(layer, Module::Res)][[0, feature]],
                                    loss_old,
                                    loss_new,
                                });
                            }
                        }
                    }
                }
            }
        }
        let summary = summarize(&trials, options);
        Ok(Deactivation {
            options: options.clone(),
            trials,
            summary,
        })
    }

    /// The summary of `method` at `factor`, if it ran.
    pub fn summary_of(&self, method: PredecessorMethod, factor: f32) -> Option<&MethodSummary> {
        self.summary
            .iter()
            .find(|s| s.method == method && s.factor == factor)
    }

    /// Writes `deactivation.json` (options and summary), `trials.json`, and with more than
    /// one factor the sweeps `deactivation_success.png` and `deactivation_activation_change.png`
    /// (Fig. 6–8) into `dir`.
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Malformed`] when writing fails.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let summary = serde_json::json!({"options": self.options, "summary": self.summary});
        crate::graph::write_text(
            &dir.join("deactivation.json"),
            &serde_json::to_string_pretty(&summary).expect("json"),
        )?;
        crate::graph::write_text(
            &dir.join("trials.json"),
            &serde_json::to_string(&self.trials).expect("json"),
        )?;
        if self.options.factors.len() < 2 {
            return Ok(());
        }
        let plot = |e: interp_core::plot::PlotError| Error::Malformed {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        };
        type Pick = fn(&MethodSummary) -> f64;
        let charts: [(&str, &str, Pick); 2] = [
            ("deactivation_success.png", "success rate", |s| {
                s.success_rate
            }),
            (
                "deactivation_activation_change.png",
                "mean activation change",
                |s| s.mean_activation_change,
            ),
        ];
        for (file, label, pick) in charts {
            let series: Vec<interp_core::plot::Series> = self
                .options
                .methods
                .iter()
                .map(|&m| {
                    let pts = self
                        .summary
                        .iter()
                        .filter(|s| s.method == m && s.trials > 0)
                        .map(|s| (s.factor as f64, pick(s)))
                        .collect();
                    interp_core::plot::Series::new(m.name(), pts)
                })
                .collect();
            interp_core::plot::line_chart(
                &dir.join(file),
                &format!("Rescaling predecessors: {label}"),
                "rescaling factor r",
                label,
                &series,
                false,
            )
            .map_err(plot)?;
        }
        Ok(())
    }
}

fn check_options(
    tables: &MatchTables,
    permutation: Option<&MatchTables>,
    options: &DeactivationOptions,
) -> Result<()> {
    if options.methods.is_empty() || options.factors.is_empty() {
        return Err(Error::invalid(
            "deactivation",
            "give at least one method and one factor",
        ));
    }
    if let Some(r) = options.factors.iter().find(|r| !r.is_finite()) {
        return Err(Error::invalid("factor", format!("must be finite, got {r}")));
    }
    let needs5 = options
        .methods
        .iter()
        .any(|m| !matches!(m, PredecessorMethod::Top1 | PredecessorMethod::Permutation));
    if needs5 && tables.k < 5 {
        return Err(Error::invalid(
            "method",
            format!(
                "top5 and random_of_top5 need tables with k ≥ 5, these have k = {}",
                tables.k
            ),
        ));
    }
    if options.methods.contains(&PredecessorMethod::Permutation)
        && permutation.is_none_or(|p| p.method != MatchMethod::Permutation)
    {
        return Err(Error::invalid(
            "method",
            "permutation needs permutation tables (MatchMethod::Permutation)",
        ));
    }
    if tables.method != MatchMethod::TopK {
        return Err(Error::invalid(
            "tables",
            "the main tables must be top-k tables",
        ));
    }
    Ok(())
}

/// The predecessors `method` picks for `layer/res/feature`.
fn choose(
    tables: &MatchTables,
    permutation: Option<&MatchTables>,
    layer: usize,
    feature: usize,
    method: PredecessorMethod,
    active: &dyn Fn(Source, usize) -> bool,
    rng: &mut SplitMix64,
) -> Result<Vec<NodeId>> {
    let mut out = Vec::new();
    for source in Source::ALL {
        let table = match method {
            PredecessorMethod::Permutation => permutation.expect("checked").get(layer, source),
            _ => tables.get(layer, source),
        };
        let Ok(table) = table else { continue };
        let take = match method {
            PredecessorMethod::Top1 | PredecessorMethod::Permutation => 1,
            _ => 5,
        };
        let candidates: Vec<usize> = table.row(feature).take(take).map(|(j, _)| j).collect();
        let live: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&j| active(source, j))
            .collect();
        let picked: Vec<usize> = match method {
            PredecessorMethod::RandomOfTop5 if candidates.is_empty() => Vec::new(),
            PredecessorMethod::RandomOfTop5 => {
                let j = candidates[rng.below(candidates.len())];
                if active(source, j) {
                    vec![j]
                } else {
                    Vec::new()
                }
            }
            PredecessorMethod::RandomActiveOfTop5 if !live.is_empty() => {
                vec![live[rng.below(live.len())]]
            }
            _ => live,
        };
        out.extend(picked.into_iter().map(|j| source.node(layer, j)));
    }
    Ok(out)
}

/// A plan rescaling `preds` by `factor` at `position`.
fn rescale_plan(
    stack: &SaeStack,
    preds: &[NodeId],
    factor: f32,
    position: usize,
) -> Result<SteeringPlan> {
    let mut by_slot: BTreeMap<(usize, Module), Vec<usize>> = BTreeMap::new();
    for p in preds {
        by_slot
            .entry((p.layer, p.module))
            .or_default()
            .push(p.feature);
    }
    let mut plan = SteeringPlan::new();
    for (slot, features) in by_slot {
        let hook: HookPoint = stack.get(slot.0, slot.1)?.hook;
        plan = plan.rescale(
            hook,
            &slot_key(slot),
            &features,
            factor,
            RescaleBasis::UnitDecoder,
            Positions::At(vec![position]),
        );
    }
    Ok(plan)
}

fn summarize(trials: &[Trial], options: &DeactivationOptions) -> Vec<MethodSummary> {
    let mut out = Vec::new();
    for &method in &options.methods {
        for &factor in &options.factors {
            let ts: Vec<&Trial> = trials
                .iter()
                .filter(|t| t.method == method && t.factor == factor)
                .collect();
            let n = ts.len().max(1) as f64;
            out.push(MethodSummary {
                method,
                factor,
                trials: ts.len(),
                success_rate: ts.iter().filter(|t| t.z_new <= 0.0).count() as f64 / n,
                mean_activation_change: ts
                    .iter()
                    .map(|t| 1.0 - t.z_new as f64 / t.z_old as f64)
                    .sum::<f64>()
                    / n,
                mean_relative_loss_change: ts
                    .iter()
                    .map(|t| (t.loss_new - t.loss_old) / t.loss_old.max(1e-12))
                    .sum::<f64>()
                    / n,
            });
        }
    }
    out
}
