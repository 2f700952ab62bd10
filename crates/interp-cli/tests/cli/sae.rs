//! The `interp sae encode`, `interp sae info` and `interp cache --sae` contracts, checked
//! against the SAELens / reference fixtures of interp-sae.

use crate::common::*;

use std::path::Path;

use interp_core::SafetensorsFile;

#[track_caller]
fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 1e-5 + 1e-5 * w.abs(), "{what}: {g} vs {w}");
    }
}

#[test]
fn encode_every_format_matches_the_reference_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    for (rel, sae, format) in [
        ("saelens/topk", "", None),
        ("gemma_scope", "params.npz", None),
        ("openai_topk", "ae.pt", None),
        ("llama_scope", "", Some("llama-scope")),
        ("sparsify/layers.1", "", None),
    ] {
        let dir = sae_fixture(rel);
        let expected_path = dir.join("expected.safetensors");
        let out = tmp
            .path()
            .join(format!("{}.safetensors", rel.replace('/', "_")));
        let sae_path = dir.join(sae);
        let mut args = vec![
            "sae",
            "encode",
            "--sae",
            sae_path.to_str().unwrap(),
            "--input",
            expected_path.to_str().unwrap(),
            "--tensor",
            "x",
            "--out",
            out.to_str().unwrap(),
        ];
        if let Some(f) = format {
            args.extend(["--format", f]);
        }
        let stdout = interp_ok(&args);
        assert!(stdout.contains("mean L0"), "{stdout}");
        let (got, want) = (
            SafetensorsFile::open(&out).unwrap(),
            SafetensorsFile::open(&expected_path).unwrap(),
        );
        for key in ["feature_acts", "sae_out"] {
            let (g, w) = (got.read(key).unwrap(), want.read(key).unwrap());
            assert_eq!(g.shape, w.shape, "{rel} {key}");
            assert_close(&format!("{rel} {key}"), &g.data, &w.data);
        }
    }
}

#[test]
fn info_prints_the_saelens_config_and_format() {
    let out = interp_ok(&[
        "sae",
        "info",
        "--sae",
        sae_fixture("openai_topk/ae.pt").to_str().unwrap(),
    ]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["format"], "openai");
    assert_eq!(json["architecture"], "topk");
    assert_eq!(json["k"], 4);
    assert_eq!(json["normalize_activations"], "layer_norm");
    assert_eq!(json["d_in"], 16);
}

#[test]
fn cache_with_sae_saves_feature_acts_at_its_hook_and_encode_picks_the_hook_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cache.safetensors");
    let model = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../interp-models/tests/fixtures/gpt2/tiny-gpt2");
    let sae = sae_fixture("model_hook");
    interp_ok(&[
        "cache",
        "--model",
        model.to_str().unwrap(),
        "--tokens",
        "0,5,17,42,99,7",
        "--hooks",
        "blocks.1.hook_resid_pre",
        "--sae",
        sae.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let cache = SafetensorsFile::open(&out).unwrap();
    let acts = cache
        .read("blocks.1.hook_resid_pre.hook_sae_acts_post")
        .unwrap();
    assert_eq!(acts.shape, [1, 6, 64]);
    let expected = SafetensorsFile::open(&sae.join("expected.safetensors")).unwrap();
    // The fixture's first row is the same prompt.
    let want = expected.read("feature_acts").unwrap();
    for (g, w) in acts.data.iter().zip(&want.data[..6 * 64]) {
        assert!((g - w).abs() <= 1e-4, "{g} vs {w}");
    }
    // `sae encode` on that cache finds the SAE's hook tensor by name.
    let encoded = tmp.path().join("encoded.safetensors");
    interp_ok(&[
        "sae",
        "encode",
        "--sae",
        sae.to_str().unwrap(),
        "--input",
        out.to_str().unwrap(),
        "--out",
        encoded.to_str().unwrap(),
    ]);
    let again = SafetensorsFile::open(&encoded)
        .unwrap()
        .read("feature_acts")
        .unwrap();
    assert_eq!(again.shape, [6, 64]);
    assert_close("encode of cached hook", &again.data, &acts.data);
}

#[test]
fn encoding_another_hook_than_the_saes_own_needs_a_flag() {
    // The toy world's resid_pre SAE and attention output at its layer have the same width.
    let tmp = tempfile::tempdir().unwrap();
    let toy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/toy");
    let sae = toy.join("saes/blocks.2.hook_resid_pre");
    let acts = tmp.path().join("acts.safetensors");
    interp_ok(&[
        "cache",
        "--tokens",
        "0,5,17,42",
        "--hooks",
        "blocks.2.hook_attn_out",
        "blocks.2.hook_resid_pre",
        "--out",
        acts.to_str().unwrap(),
    ]);
    let encode = |tensor: &str, allow: bool| {
        let out = tmp.path().join("codes.safetensors");
        let mut args = vec![
            "sae",
            "encode",
            "--sae",
            sae.to_str().unwrap(),
            "--input",
            acts.to_str().unwrap(),
            "--tensor",
            tensor,
            "--out",
            out.to_str().unwrap(),
        ];
        if allow {
            args.push("--allow-hook-mismatch");
        }
        interp(&args)
    };
    let refused = encode("blocks.2.hook_attn_out", false);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("`blocks.2.hook_attn_out`")
            && stderr.contains("trained on `blocks.2.hook_resid_pre`")
            && stderr.contains("--allow-hook-mismatch"),
        "{stderr}"
    );
    let allowed = encode("blocks.2.hook_attn_out", true);
    assert!(allowed.status.success());
    assert!(String::from_utf8_lossy(&allowed.stderr).contains(
        "warning: encoding `blocks.2.hook_attn_out` activations with an SAE trained on \
         `blocks.2.hook_resid_pre`"
    ));
    let own = encode("blocks.2.hook_resid_pre", false);
    assert!(own.status.success());
    assert!(
        own.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&own.stderr)
    );
}

#[test]
fn sae_commands_report_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o.safetensors");
    let input = sae_fixture("saelens/standard/expected.safetensors");
    let model = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../interp-models/tests/fixtures/gpt2/tiny-gpt2");
    for (args, message) in [
        (
            vec!["sae", "info", "--sae", "/nonexistent"],
            "not a recognised SAE",
        ),
        (
            vec![
                "sae",
                "info",
                "--sae",
                sae_fixture("hostile/evil.pt").to_str().unwrap(),
            ],
            "forbidden global",
        ),
        (
            vec![
                "sae",
                "info",
                "--sae",
                sae_fixture("saelens/standard").to_str().unwrap(),
                "--format",
                "nope",
            ],
            "format `nope`",
        ),
        (
            vec![
                "sae",
                "encode",
                "--sae",
                sae_fixture("saelens/standard").to_str().unwrap(),
                "--input",
                input.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            "several tensors",
        ),
        (
            vec![
                "sae",
                "encode",
                "--sae",
                sae_fixture("model_hook").to_str().unwrap(),
                "--input",
                input.to_str().unwrap(),
                "--tensor",
                "x",
                "--out",
                out.to_str().unwrap(),
            ],
            "does not match the SAE's d_in 32",
        ),
        (
            vec![
                "cache",
                "--model",
                model.to_str().unwrap(),
                "--tokens",
                "1,2",
                "--sae",
                sae_fixture("saelens/standard").to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            "SAE d_in 16 does not match the width 32 of hook `blocks.1.hook_resid_pre`",
        ),
    ] {
        let run = interp(&args);
        assert!(!run.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}
