//! Steering directions: from SAE decoder rows, from contrastive prompt pairs (CAA), from a
//! plain vector or a file.

use std::path::Path;

use burn::tensor::backend::Backend;
use interp_models::{HookPoint, HookedTransformer};
use interp_sae::Sae;
use serde::{Deserialize, Serialize};

use crate::error::{finite, Error, Result};

/// A vector in a hook's activation space, with a label saying where it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Direction {
    /// The values, one per activation dimension.
    pub vector: Vec<f32>,
    /// Where it came from (`"sae blocks.7.hook_resid_pre 2392×20"`, `"caa …"`, a path).
    #[serde(default)]
    pub label: String,
}

/// How SAE decoder rows become a direction ([`Direction::from_features`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureDirectionOptions {
    /// Divide each decoder row by its norm first. Off (the default) adds the raw rows
    /// `W_dec[i]`, as the SAELens and TransformerLens tutorials do.
    pub unit_norm: bool,
    /// Multiply each row by the feature's JumpReLU threshold θᵢ ("folding", seed 003 after
    /// Mechanistic Permutability): a coefficient of 1 then adds the feature at the smallest
    /// activation at which it fires.
    pub fold_threshold: bool,
}

/// Which positions of each prompt a contrastive direction averages over.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSelection {
    /// The last token of each prompt (CAA's answer token).
    #[default]
    Last,
    /// Every token.
    All,
    /// These positions of every prompt.
    At(Vec<usize>),
}

impl Direction {
    /// A direction from its values.
    ///
    /// # Errors
    /// [`Error::Invalid`] for an empty vector, [`Error::NonFinite`] for a NaN or infinite entry.
    pub fn new(vector: Vec<f32>, label: impl Into<String>) -> Result<Self> {
        let d = Direction {
            vector,
            label: label.into(),
        };
        d.check()?;
        Ok(d)
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.vector.is_empty() {
            return Err(Error::invalid("direction", "it has no entries"));
        }
        for (i, &v) in self.vector.iter().enumerate() {
            finite(|| format!("direction `{}` entry {i}", self.label), v)?;
        }
        Ok(())
    }

    /// `Σᵢ cᵢ · W_dec[i]` over `features` `(i, cᵢ)`, with the rows unit-normalised and/or scaled
    /// by the JumpReLU threshold as `opts` says.
    ///
    /// # Errors
    /// [`Error::FeatureOutOfRange`] for `i ≥ d_sae`; [`Error::NonFinite`] for a NaN or infinite
    /// coefficient; [`Error::Invalid`] for no features, or `fold_threshold` on an SAE without
    /// thresholds.
    pub fn from_features(
        sae: &Sae,
        features: &[(usize, f32)],
        opts: FeatureDirectionOptions,
    ) -> Result<Self> {
        if features.is_empty() {
            return Err(Error::invalid("features", "no feature given"));
        }
        let hook = sae.config().metadata.hook_name.clone().unwrap_or_default();
        let w = sae.weights();
        let threshold = match (opts.fold_threshold, &w.threshold) {
            (false, _) => None,
            (true, Some(t)) => Some(t),
            (true, None) => {
                return Err(Error::invalid(
                    "fold_threshold",
                    "the SAE has no JumpReLU thresholds",
                ))
            }
        };
        let mut vector = vec![0.0f32; sae.d_in()];
        let mut parts = Vec::with_capacity(features.len());
        for &(feature, c) in features {
            finite(|| format!("coefficient of feature {feature}"), c)?;
            check_feature(sae, &hook, feature)?;
            let row = w.w_dec.row(feature);
            let mut scale = c;
            if opts.unit_norm {
                scale /= row.dot(&row).sqrt().max(1e-12);
            }
            if let Some(t) = threshold {
                scale *= t[feature];
            }
            for (v, r) in vector.iter_mut().zip(row) {
                *v += scale * r;
            }
            parts.push(format!("{feature}×{c}"));
        }
        let mut label = format!("sae {hook} {}", parts.join(" + "));
        if opts.unit_norm {
            label.push_str(" (unit rows)");
        }
        if opts.fold_threshold {
            label.push_str(" (θ-folded)");
        }
        Direction::new(vector, label)
    }

    /// Contrastive activation addition (CAA): the mean activation at `hook` over the
    /// `positive` prompts minus the mean over the `negative` ones, each prompt contributing the
    /// positions `select` picks (averaged per prompt first, so long prompts do not weigh more).
    ///
    /// # Errors
    /// [`Error::Invalid`] for an empty prompt set, a hook without a per-position vector, or a
    /// selected position past a prompt's end; model errors.
    pub fn contrastive<B: Backend>(
        model: &HookedTransformer<B>,
        hook: HookPoint,
        positive: &[Vec<u32>],
        negative: &[Vec<u32>],
        select: &TokenSelection,
    ) -> Result<Self> {
        let pos = mean_activation(model, hook, positive, select)?;
        let neg = mean_activation(model, hook, negative, select)?;
        let vector = pos.iter().zip(&neg).map(|(p, n)| p - n).collect();
        Direction::new(
            vector,
            format!(
                "caa {hook} ({} vs {} prompts)",
                positive.len(),
                negative.len()
            ),
        )
    }

    /// Reads a direction from `path`: a `.json` file holding an array of numbers or a
    /// `{"vector": [...], "label": "..."}` object, or a `.safetensors` file holding one tensor
    /// (or one named `direction`) with a single non-unit dimension.
    ///
    /// # Errors
    /// [`Error::File`] for a malformed file, [`Error::Io`] if it cannot be read.
    pub fn load(path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::File {
            path: path.to_path_buf(),
            reason,
        };
        let label = path.display().to_string();
        if path.extension().is_some_and(|e| e == "safetensors") {
            let file = interp_core::SafetensorsFile::open(path)?;
            let shapes = file.shapes()?;
            let name = if shapes.contains_key("direction") {
                "direction".to_string()
            } else if shapes.len() == 1 {
                shapes.keys().next().expect("one tensor").clone()
            } else {
                return Err(bad(format!(
                    "expected one tensor or one named `direction`, found {:?}",
                    shapes.keys().collect::<Vec<_>>()
                )));
            };
            let t = file.read(&name)?;
            if t.shape.iter().filter(|&&d| d != 1).count() > 1 {
                return Err(bad(format!("tensor `{name}` has shape {:?}", t.shape)));
            }
            return Direction::new(t.data, label);
        }
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OnDisk {
            Plain(Vec<f32>),
            Labelled {
                vector: Vec<f32>,
                label: Option<String>,
            },
        }
        let parsed: OnDisk = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let d = match parsed {
            OnDisk::Plain(vector) => Direction { vector, label },
            OnDisk::Labelled { vector, label: l } => Direction {
                vector,
                label: l.unwrap_or(label),
            },
        };
        d.check().map_err(|e| bad(e.to_string()))?;
        Ok(d)
    }

    /// Writes the direction as JSON (`{"vector": [...], "label": "..."}`), atomically.
    ///
    /// # Errors
    /// [`Error::Core`] if the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec(self).expect("a direction serialises");
        Ok(interp_core::write_atomic(path, &json)?)
    }

    /// The number of entries.
    pub fn dim(&self) -> usize {
        self.vector.len()
    }

    /// The Euclidean norm.
    pub fn norm(&self) -> f32 {
        self.vector.iter().map(|v| v * v).sum::<f32>().sqrt()
    }
}

pub(crate) fn check_feature(sae: &Sae, key: &str, feature: usize) -> Result<()> {
    if feature >= sae.d_sae() {
        return Err(Error::FeatureOutOfRange {
            sae: key.to_string(),
            feature,
            d_sae: sae.d_sae(),
        });
    }
    Ok(())
}

/// Mean over prompts of the per-prompt mean activation at the selected positions.
fn mean_activation<B: Backend>(
    model: &HookedTransformer<B>,
    hook: HookPoint,
    prompts: &[Vec<u32>],
    select: &TokenSelection,
) -> Result<Vec<f32>> {
    let mean = crate::features::mean_over_prompts(model, hook, prompts, select, |rows| {
        Ok(rows.mean_axis(ndarray::Axis(0)).expect("at least one row"))
    })?;
    Ok(mean.to_vec())
}
