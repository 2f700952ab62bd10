//! The pretrained-SAE registry, and loading through the local Hugging Face cache with
//! `HF_HUB_OFFLINE=1` (the hub part runs with `--features hub`).

use interp_sae::registry::{lookup, releases, saes};
use interp_sae::{Error, Format};

#[test]
fn registry_maps_saelens_ids_to_hub_files() {
    for release in [
        "gpt2-small-res-jb",
        "gemma-scope-2b-pt-res-canonical",
        "gemma-scope-2b-pt-mlp-canonical",
        "gemma-scope-2b-pt-att-canonical",
        "gpt2-small-resid-post-v5-32k",
        "gpt2-small-resid-post-v5-128k",
        "llama_scope_lxr_8x",
    ] {
        assert!(releases().contains(&release), "{release}");
    }
    assert_eq!(saes("gpt2-small-res-jb").len(), 13);
    let jb = lookup("gpt2-small-res-jb", "blocks.8.hook_resid_pre").unwrap();
    assert_eq!(jb.repo_id, "jbloom/GPT2-Small-SAEs-Reformatted");
    assert_eq!(
        jb.files(),
        [
            "blocks.8.hook_resid_pre/cfg.json",
            "blocks.8.hook_resid_pre/sae_weights.safetensors"
        ]
    );
    let gemma = lookup(
        "gemma-scope-2b-pt-res-canonical",
        "layer_12/width_16k/canonical",
    )
    .unwrap();
    assert_eq!(gemma.format, Format::GemmaScope);
    assert_eq!(gemma.repo_id, "google/gemma-scope-2b-pt-res");
    assert!(gemma.path.starts_with("layer_12/width_16k/average_l0_"));
    assert_eq!(gemma.hook_name, "blocks.12.hook_resid_post");
    let att = lookup(
        "gemma-scope-2b-pt-att-canonical",
        "layer_3/width_16k/canonical",
    )
    .unwrap();
    assert_eq!(att.hook_name, "blocks.3.attn.hook_z");
    let llama = lookup("llama_scope_lxr_8x", "l1r_8x").unwrap();
    assert_eq!(
        llama.files()[1],
        "Llama3_1-8B-Base-L1R-8x/checkpoints/final.safetensors"
    );
    let oai = lookup("gpt2-small-resid-post-v5-128k", "blocks.6.hook_resid_post").unwrap();
    assert_eq!(oai.format, Format::SaeLens);

    let err = lookup("gpt2-small-res-jb", "blocks.99.hook_resid_pre").unwrap_err();
    assert!(
        matches!(&err, Error::UnknownPretrained { known, .. } if known.contains("blocks.0.hook_resid_pre"))
    );
    let err = lookup("no-such-release", "x").unwrap_err();
    assert!(
        matches!(&err, Error::UnknownPretrained { known, .. } if known.contains("gpt2-small-res-jb"))
    );
}

#[cfg(feature = "hub")]
#[test]
fn from_pretrained_reads_the_local_cache_offline() {
    use std::path::Path;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let home = tempfile::tempdir().unwrap();
    let put = |repo: &str, path: &str, src: &Path, files: &[&str]| {
        let root = home
            .path()
            .join(format!("hub/models--{}", repo.replace('/', "--")));
        let dir = root.join("snapshots/0123abcd").join(path);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(root.join("refs")).unwrap();
        std::fs::write(root.join("refs/main"), "0123abcd").unwrap();
        for f in files {
            std::fs::create_dir_all(dir.join(f).parent().unwrap()).unwrap();
            std::fs::copy(src.join(f), dir.join(f)).unwrap();
        }
    };
    put(
        "jbloom/GPT2-Small-SAEs-Reformatted",
        "blocks.1.hook_resid_pre",
        &fixtures.join("saelens/standard"),
        &["cfg.json", "sae_weights.safetensors"],
    );
    let gemma = lookup(
        "gemma-scope-2b-pt-att-canonical",
        "layer_3/width_16k/canonical",
    )
    .unwrap();
    put(
        gemma.repo_id,
        gemma.path,
        &fixtures.join("gemma_scope"),
        &["params.npz"],
    );
    // This test binary's other test does not read the environment.
    std::env::set_var("HF_HOME", home.path());
    std::env::set_var("HF_HUB_OFFLINE", "1");

    let sae = interp_sae::registry::from_pretrained("gpt2-small-res-jb", "blocks.1.hook_resid_pre")
        .unwrap();
    let local = interp_sae::load(&fixtures.join("saelens/standard")).unwrap();
    assert_eq!(sae.weights(), local.weights());
    let att = interp_sae::registry::from_pretrained(
        "gemma-scope-2b-pt-att-canonical",
        "layer_3/width_16k/canonical",
    )
    .unwrap();
    assert_eq!(
        att.config().metadata.hook_name.as_deref(),
        Some("blocks.3.attn.hook_z")
    );
    assert!(att.config().reshape_hook_z);

    match interp_sae::registry::from_pretrained("gpt2-small-res-jb", "blocks.2.hook_resid_pre") {
        Err(Error::Hub { repo, file, reason }) => {
            assert_eq!(repo, "jbloom/GPT2-Small-SAEs-Reformatted");
            assert_eq!(file, "blocks.2.hook_resid_pre/cfg.json");
            assert!(reason.contains("HF_HUB_OFFLINE"), "{reason}");
        }
        other => panic!("expected a hub error, got {:?}", other.map(|_| ())),
    }
}
