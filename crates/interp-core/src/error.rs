//! The one error type of `interp-core`.

use std::path::PathBuf;

/// What can go wrong reading or writing tensor files, or reading a text corpus.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Drawing a figure failed.
    #[cfg(feature = "plot")]
    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A safetensors file is truncated, corrupt, or not safetensors at all.
    #[error("{path}: not a readable safetensors file: {reason}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// A tensor is not in the file.
    #[error("{path}: no tensor `{key}`")]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        key: String,
    },
    /// A tensor has a dtype the reader does not convert.
    #[error("tensor `{key}` has unsupported dtype {dtype}")]
    Dtype {
        /// The tensor name.
        key: String,
        /// The dtype found.
        dtype: String,
    },
    /// Tensors to write have a shape that disagrees with their data length.
    #[error("tensor `{key}`: shape {shape:?} needs {expected} values, got {actual}")]
    DataLength {
        /// The tensor name.
        key: String,
        /// Its declared shape.
        shape: Vec<usize>,
        /// Product of the shape.
        expected: usize,
        /// Values supplied.
        actual: usize,
    },
    /// A text corpus is unusable: no files, not UTF-8, a malformed JSONL line
    /// ([`crate::corpus`]).
    #[error("{reason}")]
    Corpus {
        /// What is wrong, naming the file (and line) where there is one.
        reason: String,
    },
    /// A markdown table row has another number of cells than its header
    /// ([`crate::report::Report::table`]).
    #[error("table row {row} has {actual} cells, the header {expected}")]
    TableRow {
        /// The row (0-based, header not counted).
        row: usize,
        /// Cells in the header.
        expected: usize,
        /// Cells in the row.
        actual: usize,
    },
    /// A figure name is not a plain file name ([`crate::report::Report::figure`]).
    #[error("figure name `{name}` is not a plain file name")]
    FigureName {
        /// The name given.
        name: String,
    },
    /// A report's results do not serialise to JSON ([`crate::report::Report::set`]).
    #[error("results `{key}`: not serialisable to JSON: {reason}")]
    Json {
        /// The results key.
        key: String,
        /// What serde_json said.
        reason: String,
    },
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
