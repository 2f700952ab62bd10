//! `formats::saelens::parse_config` on arbitrary JSON; an accepted config must survive its
//! own SAELens JSON (`to_saelens_json`) unchanged in what determines the computation.
#![no_main]

use std::path::Path;

use interp_sae::formats::saelens::parse_config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let path = Path::new("cfg.json");
    let Ok(cfg) = parse_config(&json, path) else {
        return;
    };
    let again = parse_config(&cfg.to_saelens_json(), path).expect("re-parse our own JSON");
    assert_eq!(again.architecture, cfg.architecture);
    assert_eq!((again.d_in, again.d_sae), (cfg.d_in, cfg.d_sae));
    assert_eq!(again.apply_b_dec_to_input, cfg.apply_b_dec_to_input);
    assert_eq!(again.normalize_activations, cfg.normalize_activations);
    assert_eq!(again.reshape_hook_z, cfg.reshape_hook_z);
});
