//! `formats::npy::read_npz_bytes` on arbitrary bytes.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(arrays) = interp_sae::formats::npy::read_npz_bytes(data, Path::new("fuzz.npz")) {
        for a in arrays.values() {
            let n: usize = a.shape.iter().product();
            assert_eq!(a.numel(), n, "shape {:?} vs {} values", a.shape, a.numel());
        }
    }
});
