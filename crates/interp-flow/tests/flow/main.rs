//! interp-flow's integration tests: planted structure, the toy world, and the HTML viewer in a
//! real headless browser.
//!
//! One test binary per crate (each links burn once): each module was a `tests/*.rs` file.

mod html_viewer_browser;
mod planted;
mod toy_world;
