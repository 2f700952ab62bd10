//! The `interp cache` contract, checked against the TransformerLens fixtures.

use std::path::{Path, PathBuf};
use std::process::Command;

use interp_models::io::SafetensorsFile;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../interp-models/tests/fixtures/gpt2")
}

fn interp(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_interp"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `interp` and asserts it succeeded.
fn interp_ok(args: &[&str]) {
    let run = interp(args);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

fn fixture_tokens(expected: &SafetensorsFile) -> String {
    let (_, tokens) = expected.read_i64("tokens").unwrap();
    tokens
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn cache_writes_every_hook_and_logits_matching_transformer_lens() {
    let dir = tempfile::tempdir().unwrap();
    for (processing, expected_file) in [
        ("none", "expected_raw.safetensors"),
        ("tl", "expected_tl.safetensors"),
    ] {
        let expected = SafetensorsFile::open(&fixtures().join(expected_file)).unwrap();
        let out = dir.path().join(format!("{processing}.safetensors"));
        let model = fixtures().join("tiny-gpt2");
        let tokens = fixture_tokens(&expected);
        interp_ok(&[
            "cache",
            "--model",
            model.to_str().unwrap(),
            "--tokens",
            &tokens,
            "--processing",
            processing,
            "--out",
            out.to_str().unwrap(),
        ]);
        let got = SafetensorsFile::open(&out).unwrap();
        let names = got.shapes().unwrap();
        // 2 + 17 per layer + 2 hook points, plus logits.
        assert_eq!(names.len(), 2 + 2 * 17 + 2 + 1);
        for (name, shape) in names {
            let want = expected.read(&name).unwrap();
            assert_eq!(shape, want.shape, "{name}");
            assert_eq!(shape[0], 1, "{name}: leading batch dim");
            let have = got.read(&name).unwrap();
            for (a, b) in have.data.iter().zip(&want.data) {
                assert!(
                    a == b || (a - b).abs() <= 1e-4,
                    "{processing} {name}: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn cache_filters_by_glob_and_reports_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    // The output directory does not exist yet: it is created.
    let out = dir.path().join("new/dir/resid.safetensors");
    let model = fixtures().join("tiny-gpt2");
    let model = model.to_str().unwrap();
    interp_ok(&[
        "cache",
        "--model",
        model,
        "--text",
        "Je suis heureux",
        "--prepend-bos",
        "--hooks",
        "blocks.*.hook_resid_pre",
        "--out",
        out.to_str().unwrap(),
    ]);
    let names: Vec<String> = SafetensorsFile::open(&out)
        .unwrap()
        .shapes()
        .unwrap()
        .into_keys()
        .collect();
    assert_eq!(
        names,
        [
            "blocks.0.hook_resid_pre",
            "blocks.1.hook_resid_pre",
            "logits"
        ]
    );

    for (args, message) in [
        (
            vec!["--tokens", "1,2", "--hooks", "blocks.0.hook_resid_typo"],
            "unknown hook point",
        ),
        (vec!["--tokens", "1,99999"], "out of range for vocabulary"),
        (vec!["--model-missing"], "unexpected argument"),
    ] {
        let mut all = vec!["cache", "--model", model, "--out", out.to_str().unwrap()];
        all.extend(args);
        let run = interp(&all);
        assert!(!run.status.success());
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains(message), "{stderr}");
    }
    let run = interp(&[
        "cache",
        "--model",
        "/nonexistent/model",
        "--tokens",
        "1",
        "--out",
        "x.safetensors",
    ]);
    assert!(!run.status.success());
}

/// `interp cache` on each non-GPT-2 family's directory (no tokenizer.json there): tokens work,
/// every hook and the logits match TransformerLens, and `--text` names the missing tokenizer.
#[test]
fn cache_works_on_every_family_directory() {
    let families =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../interp-models/tests/fixtures/families");
    let tmp = tempfile::tempdir().unwrap();
    for family in ["gemma2", "llama", "qwen2", "phi"] {
        let dir = families.join(family).join("model");
        assert!(!dir.join("tokenizer.json").exists());
        let expected =
            SafetensorsFile::open(&families.join(family).join("expected_raw.safetensors")).unwrap();
        let tokens = fixture_tokens(&expected);
        let out = tmp.path().join(format!("{family}.safetensors"));
        let model = dir.to_str().unwrap();
        interp_ok(&[
            "cache",
            "--model",
            model,
            "--tokens",
            &tokens,
            "--out",
            out.to_str().unwrap(),
        ]);
        let got = SafetensorsFile::open(&out).unwrap();
        for key in ["logits", "blocks.0.hook_resid_post", "blocks.1.attn.hook_k"] {
            let (a, b) = (got.read(key).unwrap(), expected.read(key).unwrap());
            assert_eq!(a.shape, b.shape, "{family} {key}");
            let d = a
                .data
                .iter()
                .zip(&b.data)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            assert!(d < 1e-4, "{family} {key}: {d}");
        }
        let run = interp(&[
            "cache",
            "--model",
            model,
            "--text",
            "hello",
            "--out",
            "/dev/null",
        ]);
        assert!(!run.status.success());
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(err.contains("tokenizer"), "{family}: {err}");
    }
}
