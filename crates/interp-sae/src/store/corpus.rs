//! The corpus the store reads: [`interp_core::corpus`]'s reader, with its errors in this
//! crate's [`Error`] ([`Error::Io`] for unreadable files, [`Error::Data`] for unusable text),
//! so store code and its callers match on one error type.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub use interp_core::corpus::TextUnit;

/// A core corpus error in this crate's terms.
fn from_core(e: interp_core::Error) -> Error {
    match e {
        interp_core::Error::Io { path, source } => Error::Io { path, source },
        interp_core::Error::Corpus { reason } => Error::Data { reason },
        other => Error::Tensors(other),
    }
}

/// A text corpus: plain text files and JSONL files, read as a stream of documents.
///
/// A file ending in `.jsonl` or `.ndjson` holds one JSON object per non-empty line with the
/// document in a string field ([`Corpus::with_text_field`], default `"text"`; an empty string
/// is skipped). Any other file is plain text, split into documents by [`TextUnit`]. Files are
/// read line by line and must be UTF-8.
///
/// This is [`interp_core::corpus::Corpus`] (convert with `From` either way) reporting
/// [`Error`]s of this crate.
#[derive(Clone, PartialEq, Eq)]
pub struct Corpus(interp_core::corpus::Corpus);

impl std::fmt::Debug for Corpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Corpus {
    /// A corpus from a file, or from a directory: every `.txt`, `.text`, `.jsonl` and `.ndjson`
    /// file below it (recursively), in path order.
    ///
    /// # Errors
    /// [`Error::Io`] if `path` cannot be read, [`Error::Data`] if a directory holds no such file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        interp_core::corpus::Corpus::open(path)
            .map(Corpus)
            .map_err(from_core)
    }

    /// A corpus of these files, read in this order.
    ///
    /// # Errors
    /// [`Error::Data`] for an empty list.
    pub fn from_files(files: Vec<PathBuf>) -> Result<Self> {
        interp_core::corpus::Corpus::from_files(files)
            .map(Corpus)
            .map_err(from_core)
    }

    /// Reads the document text of JSONL files from `field` (default `"text"`).
    pub fn with_text_field(self, field: impl Into<String>) -> Self {
        Corpus(self.0.with_text_field(field))
    }

    /// Splits plain text files into documents by `unit` (default [`TextUnit::Line`]).
    pub fn with_text_unit(self, unit: TextUnit) -> Self {
        Corpus(self.0.with_text_unit(unit))
    }

    /// The files, in reading order.
    pub fn files(&self) -> &[PathBuf] {
        self.0.files()
    }

    /// The documents, streamed.
    pub fn documents(&self) -> Documents {
        Documents(self.0.documents())
    }
}

impl From<interp_core::corpus::Corpus> for Corpus {
    fn from(corpus: interp_core::corpus::Corpus) -> Self {
        Corpus(corpus)
    }
}

impl From<Corpus> for interp_core::corpus::Corpus {
    fn from(corpus: Corpus) -> Self {
        corpus.0
    }
}

/// The documents of a [`Corpus`], one file and one line at a time.
pub struct Documents(interp_core::corpus::Documents);

impl std::fmt::Debug for Documents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Iterator for Documents {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Result<String>> {
        self.0.next().map(|doc| doc.map_err(from_core))
    }
}
