//! Rendering shared by every chart: the output format from the path's extension, the
//! embedded font, the white canvas, caught plotters panics and the atomic write.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::register_font;

use super::PlotError;

/// DejaVu Sans 2.37 (Bitstream Vera license, see `assets/DejaVuSans-LICENSE.txt`).
const FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
/// The family every chart uses; the embedded font is registered under this name.
pub(super) const FONT: &str = "sans-serif";

/// The output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Format {
    Png,
    Svg,
}

impl Format {
    pub(super) fn of(path: &Path) -> Result<Self, PlotError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("png") => Ok(Format::Png),
            Some("svg") => Ok(Format::Svg),
            _ => Err(PlotError::UnsupportedExtension {
                path: path.to_path_buf(),
            }),
        }
    }
}

/// A chart ready to draw on any plotters backend.
pub(super) trait Figure {
    /// The image size in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws the chart on `root`, already filled white.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

/// Maps a plotters error to its text.
pub(super) fn de<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

pub(super) fn empty(what: &str) -> PlotError {
    PlotError::EmptyData { what: what.into() }
}

/// Registers the embedded font under [`FONT`], once per process.
pub(super) fn ensure_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok());
    if ok {
        Ok(())
    } else {
        Err(PlotError::Font)
    }
}

/// Draws `fig` on a white canvas into `path` atomically. plotters panics are caught and reported as
/// [`PlotError::Draw`].
pub(super) fn render<F: Figure>(path: &Path, format: Format, fig: &F) -> Result<(), PlotError> {
    ensure_font()?;
    let draw_err = |reason: String| PlotError::Draw {
        path: path.to_path_buf(),
        reason,
    };
    let size = fig.size();
    match format {
        Format::Svg => {
            let mut svg = String::new();
            let drawn = catch_unwind(AssertUnwindSafe(|| {
                let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
                root.fill(&WHITE).map_err(de)?;
                fig.draw(&root)?;
                root.present().map_err(de)
            }));
            flatten(drawn).map_err(draw_err)?;
            crate::io::write_atomic(path, svg.as_bytes()).map_err(|e| match e {
                crate::Error::Io { path, source } => PlotError::Io { path, source },
                other => draw_err(other.to_string()),
            })
        }
        Format::Png => crate::io::write_atomic_with(
            path,
            // The temporary keeps the .png extension: the encoder picks the format from it.
            ".png",
            |tmp| {
                let drawn = catch_unwind(AssertUnwindSafe(|| {
                    let root = BitMapBackend::new(tmp, size).into_drawing_area();
                    root.fill(&WHITE).map_err(de)?;
                    fig.draw(&root)?;
                    root.present().map_err(de)
                }));
                flatten(drawn).map_err(draw_err)
            },
            |source| PlotError::Io {
                path: path.to_path_buf(),
                source,
            },
        ),
    }
}

/// A caught panic becomes an error message.
fn flatten(drawn: std::thread::Result<Result<(), String>>) -> Result<(), String> {
    drawn.unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        Err(format!("plotters panicked: {msg}"))
    })
}
