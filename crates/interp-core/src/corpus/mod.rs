//! Text corpora for every analysis that runs a model over text (activation stores, steering,
//! flow, dashboards), without a tokenizer or tensor framework:
//!
//! - `documents.rs`: [`Corpus`] and its [`Documents`] stream: plain text files (one document
//!   per non-empty line, or per blank-line separated paragraph, [`TextUnit`]) and JSONL files
//!   (one JSON object per line, the text in a configurable field, default `"text"`), alone or
//!   every such file below a directory; read line by line, so a corpus is never held in
//!   memory.
//! - `windows.rs`: [`WindowPacker`], tokenized documents concatenated into context windows of
//!   a fixed length with SAELens' BOS rules ([`WindowRule`]).
//!
//! Errors are [`Error::Io`](crate::Error::Io) for files that cannot be read and
//! [`Error::Corpus`](crate::Error::Corpus) for unusable content.
//!
//! ```no_run
//! use interp_core::corpus::Corpus;
//!
//! let corpus = Corpus::open("corpus/")?.with_text_field("body");
//! for doc in corpus.documents().take(3) {
//!     println!("{}", doc?);
//! }
//! # Ok::<(), interp_core::Error>(())
//! ```

mod documents;
mod windows;

pub use documents::{Corpus, Documents, TextUnit};
pub use windows::{WindowPacker, WindowRule};
