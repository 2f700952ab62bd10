//! interp-toy's integration tests: the corpus generator, language-model training, and the
//! shipped toy world.
//!
//! One test binary per crate (each links burn once): each module was a `tests/*.rs` file.

mod corpus;
mod lm;
mod toy_world;
