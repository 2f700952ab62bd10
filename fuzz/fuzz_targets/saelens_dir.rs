//! `formats::saelens::load` of a directory whose `cfg.json` is one of the fixture configs (the
//! first input byte picks which) and whose `sae_weights.safetensors` is the rest of the input.
//! Seed the corpus with `fuzz/seed_corpora.sh`.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Fixture configs, in the order the first byte selects them (modulo the count).
const CONFIGS: [&str; 5] = [
    include_str!("../../crates/interp-sae/tests/fixtures/saelens/standard/cfg.json"),
    include_str!("../../crates/interp-sae/tests/fixtures/saelens/jumprelu/cfg.json"),
    include_str!("../../crates/interp-sae/tests/fixtures/saelens/gated/cfg.json"),
    include_str!("../../crates/interp-sae/tests/fixtures/saelens/topk_rescale/cfg.json"),
    include_str!("../../crates/interp-sae/tests/fixtures/saelens/standard_layer_norm/cfg.json"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&which, weights)) = data.split_first() else {
        return;
    };
    let dir = interp_sae_fuzz::scratch_dir();
    let cfg = CONFIGS[usize::from(which) % CONFIGS.len()];
    interp_sae_fuzz::put(dir, "cfg.json", cfg.as_bytes());
    interp_sae_fuzz::put(dir, "sae_weights.safetensors", weights);
    if let Ok(sae) = interp_sae::formats::saelens::load(dir) {
        interp_sae_fuzz::exercise(&sae);
    }
});
