//! Helpers shared by the fuzz targets: a scratch directory reused across runs, and a workout
//! for whatever SAE or value a loader accepted (so that code past the parser is fuzzed too).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use interp_sae::formats::torch::TorchValue;
use interp_sae::Sae;
use ndarray::Array2;

/// A temporary directory for this process, created once and removed at exit by the OS's tmp
/// cleaning (libFuzzer exits without running destructors).
pub fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("interp-sae-fuzz-")
            .tempdir()
            .expect("create a scratch directory")
            .keep()
    })
}

/// Writes `bytes` to `dir/name` (creating parent folders), replacing what was there.
pub fn put(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create a scratch folder");
    }
    std::fs::write(&path, bytes).expect("write a scratch file");
    path
}

/// Runs an SAE a loader accepted on a few inputs: every call must return, never panic, and the
/// outputs of finite inputs must be finite or a typed error.
pub fn exercise(sae: &Sae) {
    let d_in = sae.d_in();
    // Keep the work bounded for huge (but valid) SAEs.
    if d_in.saturating_mul(sae.d_sae()) > 1 << 22 {
        return;
    }
    let x = Array2::from_shape_fn((3, d_in), |(r, c)| match r {
        0 => 0.0,
        1 => 1.0,
        _ => ((c * 37) % 11) as f32 - 5.0,
    });
    let codes = sae
        .encode_sparse(x.view())
        .expect("finite input of the right width");
    let dense = sae
        .encode(x.view())
        .expect("finite input of the right width");
    assert_eq!(codes.to_dense(), dense, "sparse and dense encode disagree");
    let _ = sae.decode_sparse(&codes);
    let _ = sae.decode(dense.view());
    let _ = sae.forward(x.view());
    let _ = sae.feature_direction(sae.d_sae() - 1);
    let mut folded = sae.clone();
    let _ = folded.fold_decoder_norms();
    let _ = folded.encode(x.view());
}

/// Walks a value read from a torch pickle, converting every tensor.
pub fn exercise_torch(v: &TorchValue) {
    for (_, t) in v.named_tensors() {
        let n = t.numel();
        assert_eq!(t.to_f32().len(), n);
        assert_eq!(t.to_f64().len(), n);
        if let Some(ints) = t.to_i64() {
            assert_eq!(ints.len(), n);
        }
    }
}
