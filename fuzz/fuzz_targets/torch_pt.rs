//! `formats::torch::read_torch_bytes` on arbitrary bytes: a typed error or a value, never a
//! panic, an unbounded allocation or executed code.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = interp_sae::formats::torch::read_torch_bytes(data, Path::new("fuzz.pt")) {
        interp_sae_fuzz::exercise_torch(&v);
    }
});
