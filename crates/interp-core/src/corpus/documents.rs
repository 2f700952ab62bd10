//! Reading a corpus: plain text files (one document per line or per paragraph) and JSONL
//! files (one JSON object per line, the document in a string field), alone or every such
//! file below a directory, streamed one line at a time.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

fn corpus_err(reason: impl Into<String>) -> Error {
    Error::Corpus {
        reason: reason.into(),
    }
}

/// What one document is in a plain text file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextUnit {
    /// Every line with non-whitespace content is a document (the line terminator is dropped).
    #[default]
    Line,
    /// Runs of non-blank lines, separated by blank lines, are documents (lines joined by `\n`),
    /// for prose wrapped over several lines.
    Paragraph,
}

/// A text corpus: plain text files and JSONL files, read as a stream of documents.
///
/// A file ending in `.jsonl` or `.ndjson` holds one JSON object per non-empty line with the
/// document in a string field ([`Corpus::with_text_field`], default `"text"`; an empty string
/// is skipped). Any other file is plain text, split into documents by [`TextUnit`]. Files are
/// read line by line and must be UTF-8.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corpus {
    files: Vec<PathBuf>,
    text_unit: TextUnit,
    text_field: String,
}

impl Corpus {
    /// A corpus from a file, or from a directory: every `.txt`, `.text`, `.jsonl` and `.ndjson`
    /// file below it (recursively), in path order.
    ///
    /// # Errors
    /// [`Error::Io`] if `path` cannot be read, [`Error::Corpus`] if a directory holds no such
    /// file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        let files = if meta.is_dir() {
            let mut files = Vec::new();
            collect_corpus_files(path, &mut files)?;
            files.sort();
            if files.is_empty() {
                return Err(corpus_err(format!(
                    "{}: no .txt/.text/.jsonl/.ndjson files: the corpus is empty",
                    path.display()
                )));
            }
            files
        } else {
            vec![path.to_path_buf()]
        };
        Self::from_files(files)
    }

    /// A corpus of these files, read in this order.
    ///
    /// # Errors
    /// [`Error::Corpus`] for an empty list.
    pub fn from_files(files: Vec<PathBuf>) -> Result<Self> {
        if files.is_empty() {
            return Err(corpus_err("the corpus has no files"));
        }
        Ok(Corpus {
            files,
            text_unit: TextUnit::Line,
            text_field: "text".into(),
        })
    }

    /// Reads the document text of JSONL files from `field` (default `"text"`).
    pub fn with_text_field(mut self, field: impl Into<String>) -> Self {
        self.text_field = field.into();
        self
    }

    /// Splits plain text files into documents by `unit` (default [`TextUnit::Line`]).
    pub fn with_text_unit(mut self, unit: TextUnit) -> Self {
        self.text_unit = unit;
        self
    }

    /// The files, in reading order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The documents, streamed. An item is [`Error::Io`] for a file that cannot be read and
    /// [`Error::Corpus`] (naming file and line) for text that is not UTF-8 or a malformed JSONL
    /// line; the stream ends after an error.
    pub fn documents(&self) -> Documents {
        Documents {
            corpus: self.clone(),
            file: 0,
            reader: None,
            line_no: 0,
            buf: Vec::new(),
        }
    }
}

fn collect_corpus_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_dir() {
            collect_corpus_files(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("txt" | "text" | "jsonl" | "ndjson")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

fn is_jsonl(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("jsonl" | "ndjson")
    )
}

/// The documents of a [`Corpus`], one file and one line at a time.
#[derive(Debug)]
pub struct Documents {
    corpus: Corpus,
    file: usize,
    reader: Option<BufReader<File>>,
    line_no: u64,
    buf: Vec<u8>,
}

impl Documents {
    /// The next line of the current file without its terminator; `None` at its end.
    fn read_line(&mut self) -> Result<Option<String>> {
        let path = &self.corpus.files[self.file];
        let reader = self.reader.as_mut().expect("a file is open");
        self.buf.clear();
        let n = reader
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
        }
        let line = String::from_utf8(std::mem::take(&mut self.buf)).map_err(|e| {
            corpus_err(format!(
                "{}:{}: not UTF-8 ({})",
                path.display(),
                self.line_no,
                e.utf8_error()
            ))
        })?;
        Ok(Some(line))
    }

    /// The next document of the current file; `None` at its end.
    fn next_in_file(&mut self) -> Result<Option<String>> {
        let path = self.corpus.files[self.file].clone();
        if is_jsonl(&path) {
            while let Some(line) = self.read_line()? {
                if line.trim().is_empty() {
                    continue;
                }
                let at = || format!("{}:{}", path.display(), self.line_no);
                let value: Value = serde_json::from_str(&line)
                    .map_err(|e| corpus_err(format!("{}: malformed JSONL line: {e}", at())))?;
                let field = &self.corpus.text_field;
                match value.get(field) {
                    Some(Value::String(text)) if text.is_empty() => continue,
                    Some(Value::String(text)) => return Ok(Some(text.clone())),
                    Some(other) if value.is_object() => {
                        return Err(corpus_err(format!(
                            "{}: field `{field}` is not a string: {other}",
                            at()
                        )))
                    }
                    _ if value.is_object() => {
                        return Err(corpus_err(format!("{}: no field `{field}`", at())))
                    }
                    _ => {
                        return Err(corpus_err(format!(
                            "{}: malformed JSONL line: not a JSON object",
                            at()
                        )))
                    }
                }
            }
            return Ok(None);
        }
        match self.corpus.text_unit {
            TextUnit::Line => {
                while let Some(line) = self.read_line()? {
                    if !line.trim().is_empty() {
                        return Ok(Some(line));
                    }
                }
                Ok(None)
            }
            TextUnit::Paragraph => {
                let mut doc: Option<String> = None;
                while let Some(line) = self.read_line()? {
                    if line.trim().is_empty() {
                        if doc.is_some() {
                            return Ok(doc);
                        }
                        continue;
                    }
                    match &mut doc {
                        Some(d) => {
                            d.push('\n');
                            d.push_str(&line);
                        }
                        None => doc = Some(line),
                    }
                }
                Ok(doc)
            }
        }
    }
}

impl Iterator for Documents {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Result<String>> {
        while self.file < self.corpus.files.len() {
            if self.reader.is_none() {
                let path = &self.corpus.files[self.file];
                match File::open(path) {
                    Ok(f) => self.reader = Some(BufReader::with_capacity(1 << 16, f)),
                    Err(e) => {
                        self.file = self.corpus.files.len();
                        return Some(Err(Error::io(path, e)));
                    }
                }
                self.line_no = 0;
            }
            match self.next_in_file() {
                Ok(Some(doc)) => return Some(Ok(doc)),
                Ok(None) => {
                    self.reader = None;
                    self.file += 1;
                }
                Err(e) => {
                    self.file = self.corpus.files.len();
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn lines_paragraphs_jsonl_and_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        write(
            d,
            "a/1.jsonl",
            "{\"body\": \"x y\"}\n\n{\"body\": \"\"}\n{\"body\": \"z\"}\n",
        );
        write(d, "a/b/2.txt", "one\ntwo\n\n  \nthree\r\n");
        write(d, "a/skip.md", "ignored");
        let corpus = Corpus::open(d.join("a")).unwrap().with_text_field("body");
        assert_eq!(corpus.files().len(), 2);
        let docs: Vec<String> = corpus.documents().collect::<Result<_>>().unwrap();
        assert_eq!(docs, ["x y", "z", "one", "two", "three"]);
        let paragraphs: Vec<String> = corpus
            .with_text_unit(TextUnit::Paragraph)
            .documents()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(paragraphs, ["x y", "z", "one\ntwo", "three"]);
    }

    #[test]
    fn bad_corpora_are_typed_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::create_dir(d.join("empty")).unwrap();
        assert!(matches!(
            Corpus::open(d.join("empty")),
            Err(Error::Corpus { .. })
        ));
        assert!(matches!(
            Corpus::from_files(vec![]),
            Err(Error::Corpus { .. })
        ));
        assert!(matches!(
            Corpus::open(d.join("missing.txt")),
            Err(Error::Io { .. })
        ));
        let bad = write(d, "bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": 3}\n");
        let mut docs = Corpus::open(bad).unwrap().documents();
        assert_eq!(docs.next().unwrap().unwrap(), "ok");
        let err = docs.next().unwrap().unwrap_err();
        assert!(
            matches!(&err, Error::Corpus { reason } if reason.contains("bad.jsonl:2")),
            "{err}"
        );
        assert!(docs.next().is_none(), "the stream ends after an error");
        let latin1 = d.join("latin1.txt");
        std::fs::write(&latin1, b"caf\xe9\n").unwrap();
        let err = Corpus::open(latin1).unwrap().documents().next().unwrap();
        assert!(matches!(err, Err(Error::Corpus { .. })));
    }
}
