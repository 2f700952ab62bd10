//! `formats::llama_scope::load` of a directory with the fixture `hyperparams.json` and the
//! input as `checkpoints/final.safetensors`.
#![no_main]

use libfuzzer_sys::fuzz_target;

const CONFIG: &str =
    include_str!("../../crates/interp-sae/tests/fixtures/llama_scope/hyperparams.json");

fuzz_target!(|data: &[u8]| {
    let dir = interp_sae_fuzz::scratch_dir();
    interp_sae_fuzz::put(dir, "hyperparams.json", CONFIG.as_bytes());
    interp_sae_fuzz::put(dir, "checkpoints/final.safetensors", data);
    if let Ok(sae) = interp_sae::formats::llama_scope::load(dir) {
        interp_sae_fuzz::exercise(&sae);
    }
});
