//! Documents as JSONL: one [`Document`] per line.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use super::Document;
use crate::{Error, Result};

/// Writes `docs` as JSONL (one [`Document`] per line, top-level `"text"`), atomically.
///
/// # Errors
/// [`Error::Io`] if the file cannot be written.
pub fn write_jsonl(docs: &[Document], path: &Path) -> Result<()> {
    let io = |e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    };
    interp_core::write_atomic_with(
        path,
        "",
        |tmp| {
            let file = std::fs::File::create(tmp).map_err(io)?;
            let mut w = BufWriter::new(file);
            for doc in docs {
                serde_json::to_writer(&mut w, doc)?;
                w.write_all(b"\n").map_err(io)?;
            }
            w.flush().map_err(io)
        },
        io,
    )
}

/// Reads documents written by [`write_jsonl`] (blank lines are skipped).
///
/// # Errors
/// [`Error::Io`] if the file cannot be read, [`Error::Json`] if a line is not a document.
pub fn read_jsonl(path: &Path) -> Result<Vec<Document>> {
    let io = |e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut docs = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(io)?;
        if !line.trim().is_empty() {
            docs.push(serde_json::from_str(&line)?);
        }
    }
    Ok(docs)
}
