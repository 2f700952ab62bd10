//! `source::SaeSource`: SAEs keyed by hook in a directory or a SAELens release, and the
//! metadata's BOS default.

use interp_sae::formats::saelens;
use interp_sae::source::SaeSource;
use interp_sae::{Architecture, Error, Sae, SaeConfig, SaeMetadata, SaeWeights};
use ndarray::{Array1, Array2};

/// A 4 → 3 ReLU SAE reading `hook`, its encoder filled with `fill`.
fn sae(hook: &str, fill: f32) -> Sae {
    let cfg = SaeConfig::new(Architecture::Standard, 4, 3);
    let weights = SaeWeights {
        w_enc: Array2::from_elem((4, 3), fill),
        w_dec: Array2::from_elem((3, 4), 0.5),
        b_enc: Array1::zeros(3),
        b_dec: Array1::zeros(4),
        threshold: None,
        gated: None,
    };
    let mut sae = Sae::new(cfg, weights).unwrap();
    sae.set_hook_name(hook);
    sae
}

#[test]
fn a_directory_finds_each_sae_by_its_hook() {
    let dir = tempfile::tempdir().unwrap();
    for (hook, fill) in [
        ("blocks.1.hook_resid_pre", 1.0),
        ("blocks.0.hook_resid_pre", 2.0),
    ] {
        saelens::save(&sae(hook, fill), &dir.path().join(hook), None).unwrap();
    }
    std::fs::write(dir.path().join("notes.txt"), "not an SAE").unwrap();
    let source = SaeSource::dir(dir.path());
    assert_eq!(
        source.hooks().unwrap(),
        vec!["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"]
    );
    let got = source.at("blocks.0.hook_resid_pre").unwrap().unwrap();
    assert_eq!(
        got.config().metadata.hook_name.as_deref(),
        Some("blocks.0.hook_resid_pre")
    );
    assert!(got.weights().w_enc.iter().all(|&w| w == 2.0));
    assert!(source.at("blocks.2.hook_resid_pre").unwrap().is_none());
    assert!(source.to_string().starts_with("directory "));
    for bad in ["", "..", "../blocks.0.hook_resid_pre", "a/b"] {
        assert!(
            matches!(source.at(bad), Err(Error::HookName { .. })),
            "{bad:?}"
        );
    }
    let missing = SaeSource::dir(dir.path().join("missing"));
    assert!(matches!(missing.hooks(), Err(Error::Io { .. })));
    assert!(matches!(
        missing.at("blocks.0.hook_resid_pre"),
        Err(Error::Io { .. })
    ));
}

#[test]
fn a_release_lists_the_hooks_of_its_registry_entries() {
    let source = SaeSource::release("gpt2-small-res-jb").unwrap();
    let hooks = source.hooks().unwrap();
    // gpt2-small-res-jb: one SAE at `blocks.L.hook_resid_pre` for L = 0..11, and resid_post 11.
    for l in 0..12 {
        assert!(
            hooks.contains(&format!("blocks.{l}.hook_resid_pre")),
            "{hooks:?}"
        );
    }
    assert_eq!(source.to_string(), "SAELens release gpt2-small-res-jb");
    assert!(source.at("blocks.0.hook_mlp_in").unwrap().is_none());
    #[cfg(not(feature = "hub"))]
    assert!(matches!(
        source.at("blocks.7.hook_resid_pre"),
        Err(Error::Unsupported { .. })
    ));
    match SaeSource::release("no-such-release") {
        Err(Error::UnknownRelease { release, known }) => {
            assert_eq!(release, "no-such-release");
            assert!(known.contains("gpt2-small-res-jb"), "{known}");
        }
        other => panic!("expected UnknownRelease, got {other:?}"),
    }
}

#[test]
fn prompts_start_with_bos_unless_the_metadata_says_otherwise() {
    let mut m = SaeMetadata::default();
    assert!(m.prepends_bos(), "SAELens' default");
    m.prepend_bos = Some(false);
    assert!(!m.prepends_bos());
    m.prepend_bos = Some(true);
    assert!(m.prepends_bos());
}
