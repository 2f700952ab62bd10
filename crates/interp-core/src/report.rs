//! A study's report in one directory: markdown text (`report.md`), JSON results
//! (`results.json`) and figures, each written atomically (the two files by [`Report::write`],
//! the figures by whatever draws them; `plot` writes atomically too).
//!
//! ```
//! use interp_core::report::Report;
//!
//! let dir = tempfile::tempdir()?;
//! let mut report = Report::new(dir.path())?;
//! report.line("# Study\n");
//! report.table(&["feature", "activation"], [vec!["12".into(), "3.400".into()]])?;
//! report.set("top", serde_json::json!([12]))?;
//! report.write()?;
//! let md = std::fs::read_to_string(dir.path().join("report.md"))?;
//! assert_eq!(md, "# Study\n\n| feature | activation |\n|---|---|\n| 12 | 3.400 |\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::{Path, PathBuf};

use ndarray::ArrayView2;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The markdown file [`Report::write`] writes.
pub const MARKDOWN_FILE: &str = "report.md";
/// The JSON file [`Report::write`] writes.
pub const RESULTS_FILE: &str = "results.json";

/// Markdown and JSON results collected section by section, and the directory their figures go
/// to.
#[derive(Clone, Debug)]
pub struct Report {
    dir: PathBuf,
    markdown: String,
    results: Map<String, Value>,
}

impl Report {
    /// An empty report for `dir`, created (with its parents) when missing.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be created.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(Report {
            dir,
            markdown: String::new(),
            results: Map::new(),
        })
    }

    /// The report's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The markdown so far.
    pub fn markdown(&self) -> &str {
        &self.markdown
    }

    /// The JSON results so far, keyed by section.
    pub fn results(&self) -> &Map<String, Value> {
        &self.results
    }

    /// Appends `text` and a newline to the markdown.
    pub fn line(&mut self, text: impl AsRef<str>) {
        self.markdown.push_str(text.as_ref());
        self.markdown.push('\n');
    }

    /// Appends a markdown table: the `header` row, a `|---|` rule and `rows` (an empty cell
    /// prints as `| |`).
    ///
    /// # Errors
    /// [`Error::TableRow`] when a row has another number of cells than the header (nothing is
    /// appended then).
    pub fn table<S: AsRef<str>>(
        &mut self,
        header: &[S],
        rows: impl IntoIterator<Item = Vec<String>>,
    ) -> Result<()> {
        let mut text = row_line(header.iter().map(AsRef::as_ref));
        text.push_str("\n|");
        text.push_str(&"---|".repeat(header.len()));
        for (i, row) in rows.into_iter().enumerate() {
            if row.len() != header.len() {
                return Err(Error::TableRow {
                    row: i,
                    expected: header.len(),
                    actual: row.len(),
                });
            }
            text.push('\n');
            text.push_str(&row_line(row.iter().map(String::as_str)));
        }
        self.line(text);
        Ok(())
    }

    /// Appends a square matrix as a markdown table with `labels` on both axes and its cells to
    /// three decimals (a cosine matrix).
    ///
    /// # Errors
    /// [`Error::TableRow`] when `m` is not `labels.len() × labels.len()`.
    pub fn matrix(&mut self, labels: &[String], m: ArrayView2<'_, f32>) -> Result<()> {
        if m.dim() != (labels.len(), labels.len()) {
            return Err(Error::TableRow {
                row: 0,
                expected: labels.len() + 1,
                actual: m.ncols() + 1,
            });
        }
        let header: Vec<&str> = std::iter::once("")
            .chain(labels.iter().map(String::as_str))
            .collect();
        let rows = labels.iter().zip(m.rows()).map(|(l, row)| {
            std::iter::once(l.clone())
                .chain(row.iter().map(|c| format!("{c:.3}")))
                .collect()
        });
        self.table(&header, rows)
    }

    /// Sets the results' `key` to `value` (replacing what was there).
    ///
    /// # Errors
    /// [`Error::Json`] when `value` does not serialise to JSON (a map with non-string keys).
    pub fn set(&mut self, key: &str, value: impl Serialize) -> Result<()> {
        let value = serde_json::to_value(value).map_err(|e| Error::Json {
            key: key.to_string(),
            reason: e.to_string(),
        })?;
        self.results.insert(key.to_string(), value);
        Ok(())
    }

    /// Draws a figure as `stem.png` and `stem.svg` in the report's directory (`draw` is called
    /// with each path; the format follows the extension) and returns the PNG's file name, for
    /// the markdown.
    ///
    /// # Errors
    /// [`Error::FigureName`] for a stem that is empty or not a plain file name (a path
    /// separator, `.` or `..`); what `draw` returns.
    pub fn figure<E: From<Error>>(
        &self,
        stem: &str,
        draw: impl Fn(&Path) -> std::result::Result<(), E>,
    ) -> std::result::Result<String, E> {
        let plain = Path::new(stem).file_name().and_then(|n| n.to_str()) == Some(stem);
        if stem.is_empty() || !plain || stem.contains(['/', '\\']) {
            return Err(Error::FigureName { name: stem.into() }.into());
        }
        for ext in ["png", "svg"] {
            draw(&self.dir.join(format!("{stem}.{ext}")))?;
        }
        Ok(format!("{stem}.png"))
    }

    /// Writes [`MARKDOWN_FILE`] and [`RESULTS_FILE`] (pretty-printed, keys sorted) into the
    /// directory, each atomically; returns their paths.
    ///
    /// # Errors
    /// [`Error::Io`] when a file cannot be written.
    pub fn write(&self) -> Result<[PathBuf; 2]> {
        let md = self.dir.join(MARKDOWN_FILE);
        crate::io::write_atomic(&md, self.markdown.as_bytes())?;
        let json = self.dir.join(RESULTS_FILE);
        let text = serde_json::to_string_pretty(&self.results).map_err(|e| Error::Json {
            key: String::new(),
            reason: e.to_string(),
        })?;
        crate::io::write_atomic(&json, text.as_bytes())?;
        Ok([md, json])
    }
}

/// One markdown table row: `| a | b |`, an empty cell as `| |`.
fn row_line<'a>(cells: impl Iterator<Item = &'a str>) -> String {
    let mut line = String::from("|");
    for c in cells {
        if !c.is_empty() {
            line.push(' ');
            line.push_str(c);
        }
        line.push_str(" |");
    }
    line
}

/// A matrix as JSON rows (`[[m00, m01, …], …]`).
pub fn matrix_json(m: ArrayView2<'_, f32>) -> Value {
    m.rows().into_iter().map(|r| r.to_vec()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn tables_matrices_and_results_are_written_as_given() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Report::new(dir.path().join("sub")).unwrap();
        r.line("# T\n");
        r.table(&["a", "b"], [vec!["1".into(), "x y".into()]])
            .unwrap();
        let m = array![[1.0f32, 0.25], [-0.125, 1.0]];
        r.matrix(&["f1".into(), "f2".into()], m.view()).unwrap();
        r.set("m", matrix_json(m.view())).unwrap();
        r.set("b", vec![1, 2]).unwrap();
        let [md, json] = r.write().unwrap();
        assert_eq!(
            std::fs::read_to_string(md).unwrap(),
            "# T\n\n| a | b |\n|---|---|\n| 1 | x y |\n\
             | | f1 | f2 |\n|---|---|---|\n| f1 | 1.000 | 0.250 |\n| f2 | -0.125 | 1.000 |\n"
        );
        let back: Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
        assert_eq!(
            back,
            serde_json::json!({"b": [1, 2], "m": [[1.0, 0.25], [-0.125, 1.0]]})
        );
        // No temp files are left behind.
        let names: Vec<_> = std::fs::read_dir(r.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn bad_rows_matrices_and_figure_names_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Report::new(dir.path()).unwrap();
        let err = r.table(&["a", "b"], [vec!["1".into()]]).unwrap_err();
        assert!(matches!(
            err,
            Error::TableRow {
                row: 0,
                expected: 2,
                actual: 1
            }
        ));
        assert!(r.markdown().is_empty(), "nothing appended on error");
        let m = array![[1.0f32, 0.0]];
        assert!(matches!(
            r.matrix(&["f".into()], m.view()),
            Err(Error::TableRow { .. })
        ));
        for bad in ["", "..", "a/b", "../x"] {
            let got = r.figure(bad, |_| Ok::<(), Error>(()));
            assert!(matches!(got, Err(Error::FigureName { .. })), "{bad}");
        }
    }

    #[test]
    fn figures_are_drawn_in_both_formats() {
        let dir = tempfile::tempdir().unwrap();
        let r = Report::new(dir.path()).unwrap();
        let seen = std::cell::RefCell::new(Vec::new());
        let name = r
            .figure("fig1", |p| {
                seen.borrow_mut().push(p.to_path_buf());
                Ok::<(), Error>(())
            })
            .unwrap();
        assert_eq!(name, "fig1.png");
        assert_eq!(
            seen.into_inner(),
            vec![dir.path().join("fig1.png"), dir.path().join("fig1.svg")]
        );
    }
}
