//! `formats::gemma_scope::load` of the input written as `params.npz`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = interp_sae_fuzz::put(interp_sae_fuzz::scratch_dir(), "params.npz", data);
    if let Ok(sae) = interp_sae::formats::gemma_scope::load(&path) {
        interp_sae_fuzz::exercise(&sae);
    }
});
