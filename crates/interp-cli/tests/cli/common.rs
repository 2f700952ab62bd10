//! Helpers shared by the CLI tests: run the `interp` binary, find interp-sae's fixtures.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A file or directory under interp-sae's test fixtures.
pub fn sae_fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../interp-sae/tests/fixtures")
        .join(rel)
}

/// A path under the toy world (`assets/toy`), as text.
pub fn toy(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets/toy")
        .join(rel)
        .display()
        .to_string()
}

/// Runs `interp` with `args`.
pub fn interp(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_interp"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `interp` with `args`, asserts success, returns stdout.
pub fn interp_ok(args: &[&str]) -> String {
    let run = interp(args);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8_lossy(&run.stdout).into_owned()
}
