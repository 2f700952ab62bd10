//! `formats::openai::load` of the input written as `ae.pt`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = interp_sae_fuzz::put(interp_sae_fuzz::scratch_dir(), "ae.pt", data);
    if let Ok(sae) = interp_sae::formats::openai::load(&path) {
        interp_sae_fuzz::exercise(&sae);
    }
});
