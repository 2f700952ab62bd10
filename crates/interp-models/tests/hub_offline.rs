//! Hub ids resolve through the local Hugging Face cache when `HF_HUB_OFFLINE=1`, and a model
//! missing from the cache is a clear error. (Runs with `--features hub`.)
#![cfg(feature = "hub")]

use std::path::Path;

use interp_models::prelude::*;

#[test]
fn offline_mode_reads_the_local_cache_only() {
    let home = tempfile::tempdir().unwrap();
    let repo = home.path().join("hub/models--tiny--gpt2");
    let snapshot = repo.join("snapshots/0123abcd");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2/tiny-gpt2");
    for file in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(fixture.join(file), snapshot.join(file)).unwrap();
    }
    // This test binary holds only this test, so changing the environment is safe.
    std::env::set_var("HF_HOME", home.path());
    std::env::set_var("HF_HUB_OFFLINE", "1");

    let device = Default::default();
    let model = HookedTransformer::<Cpu>::from_pretrained("tiny/gpt2", &device).unwrap();
    let local = HookedTransformer::<Cpu>::from_dir(&fixture, &device).unwrap();
    let tokens = model.to_tokens("Je suis heureux", false).unwrap();
    let a: Vec<f32> = model
        .forward(&Batch::single(&tokens))
        .unwrap()
        .into_data()
        .into_vec()
        .unwrap();
    let b: Vec<f32> = local
        .forward(&Batch::single(&tokens))
        .unwrap()
        .into_data()
        .into_vec()
        .unwrap();
    assert_eq!(a, b);

    match HookedTransformer::<Cpu>::from_pretrained("openai-community/gpt2", &device) {
        Err(Error::Hub(msg)) => assert!(msg.contains("HF_HUB_OFFLINE"), "{msg}"),
        other => panic!("expected a hub error, got {:?}", other.map(|_| ())),
    }
}
