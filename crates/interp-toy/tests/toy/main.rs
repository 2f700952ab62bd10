//! interp-toy's integration tests: the corpus generator, the emotion study's prompt sets,
//! language-model training, the shipped toy world and the emotion study on it.
//!
//! One test binary per crate (each links burn once): each module was a `tests/*.rs` file.

mod corpus;
mod emotion;
mod lm;
mod prompts;
mod toy_world;
