//! The SAEs a plan's SAE-based steps name, keyed as the plan names them.

use std::collections::BTreeMap;
use std::path::Path;

use interp_sae::Sae;

use crate::error::{Error, Result};
use crate::plan::{Op, SteeringPlan};

/// SAEs by key, for [`Op::Clamp`] and [`Op::Rescale`] steps.
#[derive(Clone, Debug, Default)]
pub struct SaeSet {
    saes: BTreeMap<String, Sae>,
}

impl SaeSet {
    /// An empty set (enough for plans that only add or ablate directions).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `sae` under `key`.
    pub fn with(mut self, key: impl Into<String>, sae: Sae) -> Self {
        self.saes.insert(key.into(), sae);
        self
    }

    /// Adds `sae` under `key`.
    pub fn insert(&mut self, key: impl Into<String>, sae: Sae) {
        self.saes.insert(key.into(), sae);
    }

    /// The SAE under `key`.
    ///
    /// # Errors
    /// [`Error::UnknownSae`] if there is none.
    pub fn get(&self, key: &str) -> Result<&Sae> {
        self.saes.get(key).ok_or_else(|| Error::UnknownSae {
            sae: key.to_string(),
            known: if self.saes.is_empty() {
                "none".into()
            } else {
                self.saes.keys().cloned().collect::<Vec<_>>().join(", ")
            },
        })
    }

    /// Loads every SAE `plan` uses from the sources it records (`plan.saes`: any format
    /// `interp_sae::load` detects).
    ///
    /// # Errors
    /// [`Error::UnknownSae`] for a key the plan uses but gives no source for; the loader's
    /// errors.
    pub fn load_for(plan: &SteeringPlan) -> Result<Self> {
        let mut set = SaeSet::new();
        for step in &plan.steps {
            let key = match &step.op {
                Op::Clamp { sae, .. } | Op::Rescale { sae, .. } => sae,
                Op::Add { .. } | Op::Ablate { .. } => continue,
            };
            if set.saes.contains_key(key) {
                continue;
            }
            let source = plan.saes.get(key).ok_or_else(|| Error::UnknownSae {
                sae: key.clone(),
                known: format!(
                    "the plan's `saes` gives sources for: {}",
                    plan.saes.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            })?;
            set.insert(key.clone(), interp_sae::load(Path::new(source))?);
        }
        Ok(set)
    }
}
