//! Feature dashboards for sparse autoencoders, as SAEDashboard and Neuronpedia show them, as
//! a static site that opens offline from the file system.
//!
//! One streamed pass over a corpus ([`gather_corpus`]) keeps, per feature, the top
//! activating tokens with context, random examples from activation bands, an exact histogram
//! and counts — bounded memory per feature ([`StatsShape::bytes_per_feature`]), never all
//! activations. [`Dashboard::build`] adds the logit lens ([`logit_lens`]) and the nearest
//! features by decoder cosine, and [`Dashboard::write`] writes `index.html` (sortable,
//! searchable) and one page per feature.
//!
//! ```no_run
//! use interp_dashboard::prelude::*;
//! use interp_models::prelude::*;
//!
//! let model = HookedTransformer::<Cpu>::from_dir("assets/toy/model".as_ref(), &Default::default())?;
//! let sae = interp_sae::load("assets/toy/saes/blocks.2.hook_resid_post".as_ref())?;
//! let corpus = interp_sae::store::Corpus::open("docs.jsonl")?;
//! let data = gather_corpus(&model, &sae, &corpus, &GatherOptions::default())?;
//! let site = Dashboard::build(&model, &sae, &data, &FeatureSelection::Top(100), &Default::default())?;
//! site.write("dashboard".as_ref())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod error;
pub mod explanations;
pub mod gather;
pub mod logit_lens;
pub mod select;
pub mod site;
pub mod stats;

pub use error::{Error, Result};
pub use explanations::Explanations;
pub use gather::{gather, gather_corpus, FeatureData, GatherOptions};
pub use logit_lens::{logit_lens, residual_directions, LogitLens};
pub use select::FeatureSelection;
pub use site::{Dashboard, DashboardOptions, FeatureView, ShownBand, ShownExample, SiteInfo};
pub use stats::{Band, Example, FeatureStats, Histogram, StatsShape};

/// The types most programs need.
pub mod prelude {
    pub use crate::{
        gather_corpus, Dashboard, DashboardOptions, Error, Explanations, FeatureData,
        FeatureSelection, GatherOptions,
    };
}
