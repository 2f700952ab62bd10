//! The toy world: an embedded default in which interpretability questions have known answers.
//!
//! - [`corpus`]: a deterministic, seeded generator of short English and French documents with
//!   a document-level mood, a topic and antonym adjectives, every label emitted with its span.
//! - [`tokenizer`]: a small byte-level BPE trained on that corpus.
//! - [`lm`]: a GPT-2-architecture model trained on the corpus with burn autodiff, saved in
//!   Hugging Face layout.
//! - [`saes`]: one TopK SAE per hook point, from a single activation-store pass.
//! - [`eval`]: the quality gates, scored against the corpus labels (mood persistence, the best
//!   single SAE feature per mood).
//! - [`emotion`]: seed 001's emotion-feature study (§1.1, §1.2.1) on the toy world or any
//!   model with SAEs at `hook_resid_pre`, section by section into a report.
//! - [`world`]: loading the shipped world (`assets/toy/`): model, tokenizer and SAEs.
//!
//! ```no_run
//! let world = interp_toy::ToyWorld::load()?;
//! let tokens = world.model().to_tokens("I'm so happy I got the job.", true)?;
//! let sae = world.sae("blocks.2.hook_resid_pre")?;
//! # Ok::<(), interp_toy::Error>(())
//! ```

pub mod antonyms;
pub mod build;
pub mod corpus;
pub mod emotion;
mod error;
pub mod eval;
pub mod lm;
pub mod saes;
pub mod tokenizer;
pub mod world;

pub use error::{Error, Result};
pub use world::ToyWorld;
