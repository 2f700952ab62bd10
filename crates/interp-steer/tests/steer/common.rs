//! Fixtures shared by the interp-steer tests.
#![allow(dead_code)]

use std::path::PathBuf;

use interp_models::{Cpu, HookedTransformer};

/// This crate's directory.
pub fn here() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The tiny random GPT-2 of interp-models' parity fixtures (2 layers, d_model 32).
pub fn tiny_model() -> HookedTransformer<Cpu> {
    let dir = here().join("../interp-models/tests/fixtures/gpt2/tiny-gpt2");
    HookedTransformer::from_dir(&dir, &Default::default()).unwrap()
}

/// The SAELens StandardSAE of interp-sae's fixtures on the tiny model's
/// `blocks.1.hook_resid_pre` (d_in 32, d_sae 64).
pub fn tiny_sae() -> interp_sae::Sae {
    interp_sae::load(&here().join("../interp-sae/tests/fixtures/model_hook")).unwrap()
}
