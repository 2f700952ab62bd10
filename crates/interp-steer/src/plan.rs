//! Steering plans: interventions at hook points as plain, serialisable values.
//!
//! A [`SteeringPlan`] lists [`Step`]s, each an [`Op`] at one TransformerLens hook point on
//! chosen [`Positions`]. Plans are cloned, merged, written to JSON and read back, and run
//! through the model's one hooked forward by [`SteeringPlan::hook_spec`]; SAE-based ops name
//! their SAE by a key into an [`SaeSet`](crate::SaeSet).
//!
//! ```json
//! {"saes": {"res7": "saes/blocks.7.hook_resid_pre"},
//!  "steps": [
//!   {"hook": "blocks.7.hook_resid_pre", "positions": "all",
//!    "op": "add", "direction": [0.1, -0.2, ...], "coefficient": 20.0, "label": "sae … 2392×1"},
//!   {"hook": "blocks.7.hook_resid_pre", "positions": {"at": [3]},
//!    "op": "clamp", "sae": "res7", "features": [[2045, 0.0]], "only_active": true}]}
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use interp_models::{HookPoint, Positions};
use serde::{Deserialize, Serialize};

use crate::direction::Direction;
use crate::error::{finite, Error, Result};

/// A list of interventions, applied in order (steps at one hook point run in list order).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SteeringPlan {
    /// Where the SAEs the steps name were loaded from (key → path or hub id), so a recorded
    /// plan can be replayed with [`crate::SaeSet::load_for`]. Optional for in-memory SAEs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub saes: BTreeMap<String, String>,
    /// The interventions.
    pub steps: Vec<Step>,
}

/// One intervention: an [`Op`] at a hook point on some positions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The TransformerLens hook name (`blocks.7.hook_resid_pre`).
    pub hook: String,
    /// Which positions it acts on (default: all).
    #[serde(default)]
    pub positions: Positions,
    /// What it does.
    #[serde(flatten)]
    pub op: Op,
    /// For a clamp or rescale: apply the SAE here even though it was trained on another hook
    /// (its `metadata.hook_name`). Off, such a step is [`crate::Error::SaeHookMismatch`]:
    /// SAEs of equal width fit many hooks, and one at the wrong hook fails silently.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_hook_mismatch: bool,
}

/// What an intervention does to the activation `x` at each selected position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// `x + coefficient · direction`.
    Add {
        /// The direction, one entry per activation dimension.
        direction: Vec<f32>,
        /// Its multiplier.
        coefficient: f32,
        /// Where the direction came from.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        label: String,
    },
    /// Sets SAE features to values, keeping the SAE's error term:
    /// `x + decode(z′) − decode(z)` with `z = encode(x)` and `z′` equal to `z` but for the
    /// clamped features.
    Clamp {
        /// The SAE's key in the [`crate::SaeSet`].
        sae: String,
        /// `(feature, value)` pairs.
        features: Vec<(usize, f32)>,
        /// Clamp a feature only where it is already active (`z > 0`).
        #[serde(default)]
        only_active: bool,
    },
    /// Rescales SAE features by `factor` = r: `x + (r − 1) · Σᵢ aᵢ · dᵢ` with `aᵢ` the SAE
    /// activation (seed 003's deactivation: r = 0 removes them, r < 0 reverses them).
    Rescale {
        /// The SAE's key in the [`crate::SaeSet`].
        sae: String,
        /// The features.
        features: Vec<usize>,
        /// The factor r.
        factor: f32,
        /// What `dᵢ` is.
        #[serde(default)]
        basis: RescaleBasis,
    },
    /// Projects a direction out: `x − (x · û) û`.
    Ablate {
        /// The direction (any norm).
        direction: Vec<f32>,
        /// Where it came from.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        label: String,
    },
}

/// The per-feature direction `dᵢ` of [`Op::Rescale`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RescaleBasis {
    /// `dᵢ = W_dec[i] / ‖W_dec[i]‖`, as seed 003 (Feature Flow §4.2) defines deactivation.
    #[default]
    UnitDecoder,
    /// `aᵢ · dᵢ` is the feature's own term of the reconstruction (`aᵢ · W_dec[i]`, in input
    /// space): r multiplies the feature's contribution. Equal to `UnitDecoder` when decoder
    /// rows have unit norm.
    Contribution,
}

/// How one coefficient is spread over layers (seed 003 §5.3).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// `s` at every layer.
    Constant,
    /// `s · e^{α·l}` (seed 003: α = −0.05).
    Exponential {
        /// The rate α.
        alpha: f32,
    },
    /// The line through `(l_start, s)` and `(l_end, s_end)`: `k·l + b` with
    /// `k = (s_end − s)/(l_end − l_start)`, `b = s − k·l_start` (seed 003: `s_end` = 1).
    Linear {
        /// The layer where the coefficient is `s`.
        l_start: usize,
        /// The layer where it is `s_end`.
        l_end: usize,
        /// The coefficient at `l_end`.
        s_end: f32,
    },
}

impl Schedule {
    /// The coefficient at `layer` for base coefficient `s`.
    pub fn coefficient(&self, s: f32, layer: usize) -> f32 {
        match *self {
            Schedule::Constant => s,
            Schedule::Exponential { alpha } => s * (alpha * layer as f32).exp(),
            Schedule::Linear {
                l_start,
                l_end,
                s_end,
            } => {
                if l_end == l_start {
                    return s;
                }
                let k = (s_end - s) / (l_end as f32 - l_start as f32);
                k * layer as f32 + (s - k * l_start as f32)
            }
        }
    }
}

impl SteeringPlan {
    /// An empty plan (steers nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a step.
    pub fn step(mut self, hook: HookPoint, positions: Positions, op: Op) -> Self {
        self.steps.push(Step {
            hook: hook.to_string(),
            positions,
            op,
            allow_hook_mismatch: false,
        });
        self
    }

    /// Lets the clamp and rescale steps at `hook` use an SAE trained on another hook
    /// ([`Step::allow_hook_mismatch`]).
    pub fn allow_hook_mismatch(mut self, hook: HookPoint) -> Self {
        let name = hook.to_string();
        for step in self.steps.iter_mut().filter(|s| s.hook == name) {
            step.allow_hook_mismatch = true;
        }
        self
    }

    /// `x + coefficient · direction` at `hook`.
    pub fn add(
        self,
        hook: HookPoint,
        direction: &Direction,
        coefficient: f32,
        positions: Positions,
    ) -> Self {
        let op = Op::Add {
            direction: direction.vector.clone(),
            coefficient,
            label: direction.label.clone(),
        };
        self.step(hook, positions, op)
    }

    /// Clamps `features` of the SAE `sae` (a key of the [`crate::SaeSet`]) at `hook`.
    pub fn clamp(
        self,
        hook: HookPoint,
        sae: &str,
        features: &[(usize, f32)],
        only_active: bool,
        positions: Positions,
    ) -> Self {
        let op = Op::Clamp {
            sae: sae.to_string(),
            features: features.to_vec(),
            only_active,
        };
        self.step(hook, positions, op)
    }

    /// Rescales `features` of the SAE `sae` by `factor` at `hook`.
    pub fn rescale(
        self,
        hook: HookPoint,
        sae: &str,
        features: &[usize],
        factor: f32,
        basis: RescaleBasis,
        positions: Positions,
    ) -> Self {
        let op = Op::Rescale {
            sae: sae.to_string(),
            features: features.to_vec(),
            factor,
            basis,
        };
        self.step(hook, positions, op)
    }

    /// Projects `direction` out at `hook`.
    pub fn ablate(self, hook: HookPoint, direction: &Direction, positions: Positions) -> Self {
        let op = Op::Ablate {
            direction: direction.vector.clone(),
            label: direction.label.clone(),
        };
        self.step(hook, positions, op)
    }

    /// Adds each layer's direction with the coefficient `schedule` gives its layer for base
    /// coefficient `s`: seed 003's multi-layer steering (`h ← h + s′·v` at every hook). Hooks
    /// outside a block (`hook_embed`) count as layer 0.
    pub fn add_across_layers(
        mut self,
        directions: &[(HookPoint, Direction)],
        s: f32,
        schedule: Schedule,
        positions: Positions,
    ) -> Self {
        for (hook, direction) in directions {
            let c = schedule.coefficient(s, hook.layer().unwrap_or(0));
            self = self.add(*hook, direction, c, positions.clone());
        }
        self
    }

    /// Records where the SAE `key` comes from, for replay.
    pub fn with_sae_source(mut self, key: &str, source: impl Into<String>) -> Self {
        self.saes.insert(key.to_string(), source.into());
        self
    }

    /// Both plans' steps, `self`'s first.
    ///
    /// # Errors
    /// [`Error::Invalid`] if both record different sources for one SAE key.
    pub fn merge(mut self, other: SteeringPlan) -> Result<Self> {
        for (key, path) in other.saes {
            match self.saes.get(&key) {
                Some(p) if *p != path => {
                    return Err(Error::invalid(
                        "plan merge",
                        format!(
                            "the SAE key `{key}` is `{p}` in one plan and `{path}` in the other"
                        ),
                    ))
                }
                _ => {
                    self.saes.insert(key, path);
                }
            }
        }
        self.steps.extend(other.steps);
        Ok(self)
    }

    /// The same plan with every `Add` coefficient multiplied by `factor` (for sweeps).
    pub fn scaled(mut self, factor: f32) -> Self {
        for step in &mut self.steps {
            if let Op::Add { coefficient, .. } = &mut step.op {
                *coefficient *= factor;
            }
        }
        self
    }

    /// Whether the plan has no step.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Parses a plan from JSON and checks what can be checked without a model: finite numbers
    /// and non-empty lists.
    ///
    /// # Errors
    /// [`Error::Invalid`] for malformed JSON or a malformed plan.
    pub fn from_json(json: &str) -> Result<Self> {
        let plan: SteeringPlan =
            serde_json::from_str(json).map_err(|e| Error::invalid("plan", e.to_string()))?;
        plan.check_values()?;
        Ok(plan)
    }

    /// The plan as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a plan serialises")
    }

    /// Reads a plan file: a plan, or a recorded run holding one under `"plan"` (the
    /// `--out` file of `interp steer`), so a run can be replayed.
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be read, [`Error::File`] if it is not a valid plan.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |e: Error| Error::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(Error::invalid("plan", e.to_string())))?;
        match value.get("plan") {
            Some(plan) if value.get("steps").is_none() => {
                Self::from_json(&plan.to_string()).map_err(bad)
            }
            _ => Self::from_json(&text).map_err(bad),
        }
    }

    /// Writes the plan as JSON, atomically.
    ///
    /// # Errors
    /// [`Error::Core`] if the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        Ok(interp_core::write_atomic(path, self.to_json().as_bytes())?)
    }

    /// Checks the numbers and lists of every step (no model needed).
    ///
    /// # Errors
    /// [`Error::NonFinite`] for a NaN or infinite number; [`Error::Invalid`] for an empty
    /// feature list, an empty or zero direction to ablate.
    pub fn check_values(&self) -> Result<()> {
        for (n, step) in self.steps.iter().enumerate() {
            let at = |what: &str| format!("step {n} (`{}`) {what}", step.hook);
            match &step.op {
                Op::Add {
                    direction,
                    coefficient,
                    ..
                } => {
                    finite(|| at("coefficient"), *coefficient)?;
                    check_vector(direction, &at("direction"))?;
                }
                Op::Clamp { features, .. } => {
                    if features.is_empty() {
                        return Err(Error::invalid(at("features"), "no feature to clamp"));
                    }
                    for (f, v) in features {
                        finite(|| at(&format!("value of feature {f}")), *v)?;
                    }
                }
                Op::Rescale {
                    features, factor, ..
                } => {
                    finite(|| at("factor"), *factor)?;
                    if features.is_empty() {
                        return Err(Error::invalid(at("features"), "no feature to rescale"));
                    }
                }
                Op::Ablate { direction, .. } => {
                    check_vector(direction, &at("direction"))?;
                    if direction.iter().all(|&v| v == 0.0) {
                        return Err(Error::invalid(
                            at("direction"),
                            "a zero vector has no direction",
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

fn check_vector(v: &[f32], what: &str) -> Result<()> {
    if v.is_empty() {
        return Err(Error::invalid(what, "it has no entries"));
    }
    for (i, &x) in v.iter().enumerate() {
        finite(|| format!("{what} entry {i}"), x)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn schedules_follow_seed_003s_formulas() {
        assert_eq!(Schedule::Constant.coefficient(3.0, 7), 3.0);
        let e = Schedule::Exponential { alpha: -0.05 };
        assert!((e.coefficient(8.0, 10) - 8.0 * (-0.5f32).exp()).abs() < 1e-6);
        let l = Schedule::Linear {
            l_start: 2,
            l_end: 12,
            s_end: 1.0,
        };
        assert!((l.coefficient(6.0, 2) - 6.0).abs() < 1e-6);
        assert!((l.coefficient(6.0, 12) - 1.0).abs() < 1e-6);
        assert!((l.coefficient(6.0, 7) - 3.5).abs() < 1e-6);
        let flat = Schedule::Linear {
            l_start: 4,
            l_end: 4,
            s_end: 1.0,
        };
        assert_eq!(flat.coefficient(6.0, 9), 6.0);
    }

    #[test]
    fn add_across_layers_gives_each_layer_its_coefficient() {
        let d = Direction::new(vec![1.0, 0.0], "d").unwrap();
        let dirs: Vec<(HookPoint, Direction)> = (0..3)
            .map(|l| (HookPoint::resid_post(l), d.clone()))
            .collect();
        let plan = SteeringPlan::new().add_across_layers(
            &dirs,
            2.0,
            Schedule::Exponential { alpha: -1.0 },
            Positions::All,
        );
        let cs: Vec<f32> = plan
            .steps
            .iter()
            .map(|s| match s.op {
                Op::Add { coefficient, .. } => coefficient,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(cs.len(), 3);
        for (l, c) in cs.iter().enumerate() {
            assert!((c - 2.0 * (-(l as f32)).exp()).abs() < 1e-6);
        }
        assert_eq!(plan.steps[2].hook, "blocks.2.hook_resid_post");
    }

    #[test]
    fn merging_keeps_order_and_refuses_conflicting_sae_sources() {
        let d = Direction::new(vec![1.0], "d").unwrap();
        let a = SteeringPlan::new()
            .add(HookPoint::resid_pre(0), &d, 1.0, Positions::All)
            .with_sae_source("s", "a/path");
        let b = SteeringPlan::new()
            .clamp(
                HookPoint::resid_pre(1),
                "s",
                &[(0, 1.0)],
                false,
                Positions::Prompt,
            )
            .with_sae_source("s", "a/path");
        let merged = a.clone().merge(b.clone()).unwrap();
        assert_eq!(merged.steps.len(), 2);
        assert_eq!(merged.steps[1].positions, Positions::Prompt);
        let other = b.with_sae_source("s", "another/path");
        assert!(matches!(a.merge(other), Err(Error::Invalid { .. })));
        let scaled = merged.scaled(3.0);
        assert!(matches!(scaled.steps[0].op, Op::Add { coefficient, .. } if coefficient == 3.0));
    }

    fn positions() -> impl Strategy<Value = Positions> {
        prop_oneof![
            Just(Positions::All),
            Just(Positions::Prompt),
            Just(Positions::Generated),
            proptest::collection::vec(0usize..100, 0..4).prop_map(Positions::At),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        let v = proptest::collection::vec(-10.0f32..10.0, 1..5);
        prop_oneof![
            (v.clone(), -50.0f32..50.0, "[a-z ]{0,8}").prop_map(
                |(direction, coefficient, label)| {
                    Op::Add {
                        direction,
                        coefficient,
                        label,
                    }
                }
            ),
            (
                proptest::collection::vec((0usize..100, -5.0f32..5.0), 1..4),
                any::<bool>()
            )
                .prop_map(|(features, only_active)| Op::Clamp {
                    sae: "s".into(),
                    features,
                    only_active,
                }),
            (
                proptest::collection::vec(0usize..100, 1..4),
                -3.0f32..3.0,
                any::<bool>()
            )
                .prop_map(|(features, factor, unit)| Op::Rescale {
                    sae: "s".into(),
                    features,
                    factor,
                    basis: if unit {
                        RescaleBasis::UnitDecoder
                    } else {
                        RescaleBasis::Contribution
                    },
                }),
            v.prop_map(|direction| Op::Ablate {
                direction: direction.into_iter().map(|x| x + 20.0).collect(),
                label: String::new(),
            }),
        ]
    }

    proptest! {
        #[test]
        fn plans_round_trip_through_json(
            steps in proptest::collection::vec((0usize..12, positions(), op()), 0..5)
        ) {
            let mut plan = SteeringPlan::new();
            for (layer, p, op) in steps {
                plan = plan.step(HookPoint::resid_pre(layer), p, op);
            }
            let back = SteeringPlan::from_json(&plan.to_json()).unwrap();
            prop_assert_eq!(back, plan);
        }
    }
}
