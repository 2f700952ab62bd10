//! The toy world: an embedded default in which interpretability questions have known answers.
//!
//! - [`corpus`]: a deterministic, seeded generator of short English and French documents with
//!   a document-level mood, a topic and antonym adjectives, every label emitted with its span.
//! - [`tokenizer`]: a small byte-level BPE trained on that corpus.
//! - [`lm`]: a GPT-2-architecture model trained on the corpus with burn autodiff, saved in
//!   Hugging Face layout.
//! - [`world`]: loading the shipped world (`assets/toy/`): model, tokenizer and SAEs.

pub mod corpus;
mod error;
pub mod eval;
pub mod lm;
pub mod saes;
pub mod tokenizer;
pub mod world;

pub use error::{Error, Result};
pub use world::ToyWorld;
