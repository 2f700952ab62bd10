//! `formats::sparsify::load` of a `layers.1/` directory with the fixture `cfg.json` and the
//! input as `sae.safetensors`.
#![no_main]

use libfuzzer_sys::fuzz_target;

const CONFIG: &str =
    include_str!("../../crates/interp-sae/tests/fixtures/sparsify/layers.1/cfg.json");

fuzz_target!(|data: &[u8]| {
    let dir = interp_sae_fuzz::scratch_dir().join("layers.1");
    interp_sae_fuzz::put(&dir, "cfg.json", CONFIG.as_bytes());
    interp_sae_fuzz::put(&dir, "sae.safetensors", data);
    if let Ok(sae) = interp_sae::formats::sparsify::load(&dir) {
        interp_sae_fuzz::exercise(&sae);
    }
});
