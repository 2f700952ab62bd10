//! # interp-steer
//!
//! Steering a hooked transformer with SAE features and vectors, as plain values run through
//! the model's one hooked forward pass.
//!
//! - [`Direction`]: from SAE decoder rows (raw, unit-normalised, or scaled by the JumpReLU
//!   threshold), from contrastive prompt pairs (CAA), from a vector or a file.
//! - [`SteeringPlan`]: interventions at TransformerLens hook points on chosen
//!   [`Positions`] — add a direction, clamp SAE features keeping the error term, rescale SAE
//!   features (seed 003's deactivation), project a direction out — across any number of hooks
//!   and layers, with seed 003's layer [`Schedule`]s. Plans serialise to JSON, clone, merge,
//!   and compile to an [`interp_models::HookSpec`] ([`SteeringPlan::hook_spec`]) that merges
//!   with other hooks or a cache filter.
//! - [`contrastive_features`]: the SAE features that separate two prompt sets at chosen
//!   positions ("top features at the last token").
//! - [`generate_samples`] and [`Experiment`] (settings and sweeps, scored): seeded, batched
//!   steered generation with the KV cache and the plan active at every step; text, ids and
//!   per-token log-probs.
//! - [`Scorer`]s that need no remote judge: [`LexiconRate`], [`DistinctN`],
//!   [`UnsteeredLogProb`], [`NeutralKl`]; [`SteeringReport`] writes JSON, markdown and a
//!   coefficient-vs-score plot.
//!
//! ```no_run
//! use interp_models::prelude::*;
//! use interp_steer::prelude::*;
//!
//! let device = Default::default();
//! let model = HookedTransformer::<Cpu>::from_dir("assets/toy/model".as_ref(), &device)?;
//! let sae = interp_sae::load("assets/toy/saes/blocks.2.hook_resid_pre".as_ref())?;
//! let happy = Direction::from_features(&sae, &[(28, 1.0)], Default::default())?;
//! let plan = SteeringPlan::new().add(HookPoint::resid_pre(2), &happy, 8.0, Positions::All);
//! let spec = plan.hook_spec(&model, &SaeSet::new())?;
//! let prompt = model.to_tokens("Tonight I am", false)?;
//! let opts = GenerateOptions { max_new_tokens: 20, temperature: 0.7, ..Default::default() };
//! for s in generate_samples(&model, &prompt, &spec, &opts, 4)? {
//!     println!("Tonight I am{}", s.text);
//! }
//! # Ok::<(), interp_steer::Error>(())
//! ```

mod apply;
pub mod direction;
pub mod error;
pub mod features;
pub mod generate;
pub mod lexicon;
pub mod plan;
pub mod report;
pub mod sae_set;
pub mod score;

pub use direction::{Direction, FeatureDirectionOptions, TokenSelection};
pub use error::{Error, Result};
pub use features::{contrastive_features, mean_feature_acts};
pub use generate::{generate_samples, Experiment, Sample, SettingResult};
pub use interp_models::Positions;
pub use plan::{Op, RescaleBasis, Schedule, SteeringPlan, Step};
pub use report::SteeringReport;
pub use sae_set::SaeSet;
pub use score::{
    kl_from_unsteered, words, DistinctN, LexiconRate, LexiconVote, NeutralKl, ScoreInput, Scorer,
    UnsteeredLogProb,
};

/// Everything needed for everyday use.
pub mod prelude {
    pub use crate::{
        contrastive_features, generate_samples, mean_feature_acts, Direction, DistinctN,
        Experiment, FeatureDirectionOptions, LexiconRate, LexiconVote, NeutralKl, Op, Positions,
        RescaleBasis, SaeSet, Sample, Schedule, Scorer, SettingResult, SteeringPlan,
        SteeringReport, TokenSelection, UnsteeredLogProb,
    };
}
