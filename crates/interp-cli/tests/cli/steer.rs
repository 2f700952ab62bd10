//! The `interp steer` contract, checked against the TransformerLens steering fixtures of
//! interp-steer.

use crate::common::*;

use std::path::{Path, PathBuf};

use interp_core::SafetensorsFile;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tiny_model() -> String {
    root()
        .join("interp-models/tests/fixtures/gpt2/tiny-gpt2")
        .display()
        .to_string()
}

fn fixture() -> Value {
    let p = root().join("interp-steer/tests/fixtures/expected.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn tokens_arg(v: &Value) -> String {
    let ids: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.to_string())
        .collect();
    ids.join(",")
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn generated(out: &Value, i: usize) -> Vec<u64> {
    out["samples"][i]["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap())
        .collect()
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap())
        .collect()
}

#[test]
fn greedy_add_matches_transformer_lens_and_the_plan_replays() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = fixture();
    let sae = sae_fixture("model_hook");
    let (out, logits) = (
        tmp.path().join("out.json"),
        tmp.path().join("logits.safetensors"),
    );
    let model = tiny_model();
    let prompt = tokens_arg(&exp["prompt"]);
    let n = exp["max_new_tokens"].to_string();
    // add_two_negative: 3 × 6 and 10 × −5, raw decoder rows, all positions.
    let stdout = interp_ok(&[
        "steer",
        "--model",
        &model,
        "--sae",
        sae.to_str().unwrap(),
        "--feature",
        "3:6",
        "--feature",
        "10:-5",
        "--tokens",
        &prompt,
        "--max-new-tokens",
        &n,
        "--greedy",
        "--out",
        out.to_str().unwrap(),
        "--logits",
        logits.to_str().unwrap(),
    ]);
    assert!(stdout.contains("1 sample(s)"), "{stdout}");
    let got = json(&out);
    assert_eq!(
        generated(&got, 0),
        ids(&exp["generate"]["add_two_negative"])
    );
    let lp = got["samples"][0]["log_probs"].as_array().unwrap();
    assert_eq!(lp.len(), generated(&got, 0).len());
    assert!(got["samples"][0]["text"].is_string());
    assert_eq!(got["plan"]["steps"][0]["op"], "add");
    assert_eq!(got["plan"]["steps"][0]["hook"], "blocks.1.hook_resid_pre");
    let file = SafetensorsFile::open(&logits).unwrap();
    let ours = file.read("logits").unwrap();
    let want =
        SafetensorsFile::open(&root().join("interp-steer/tests/fixtures/expected.safetensors"))
            .unwrap()
            .read("add_two_negative.logits")
            .unwrap();
    assert_eq!(ours.shape, want.shape);
    let err = ours
        .data
        .iter()
        .zip(&want.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(
        err < 1e-4,
        "steered logits differ from TransformerLens by {err}"
    );

    // The recorded plan replays alone (its SAE source is recorded too).
    let replay = tmp.path().join("replay.json");
    interp_ok(&[
        "steer",
        "--model",
        &model,
        "--plan",
        out.to_str().unwrap(),
        "--tokens",
        &prompt,
        "--max-new-tokens",
        &n,
        "--greedy",
        "--out",
        replay.to_str().unwrap(),
    ]);
    assert_eq!(
        generated(&json(&replay), 0),
        ids(&exp["generate"]["add_two_negative"])
    );
}

#[test]
fn clamp_rescale_and_prompt_only_match_transformer_lens() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = fixture();
    let sae = sae_fixture("model_hook");
    let model = tiny_model();
    let prompt = tokens_arg(&exp["prompt"]);
    let n = exp["max_new_tokens"].to_string();
    let cases = &exp["cases"];
    let pair = |v: &Value| format!("{}:{}", v[0], v[1].as_f64().unwrap());
    let clamp: Vec<String> = cases["clamp_error_term"]["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(pair)
        .collect();
    let top = ids(&exp["top_features"]);
    let rescale: Vec<String> = top.iter().map(|f| format!("{f}:3")).collect();
    for (name, mode, features, positions) in [
        ("clamp_error_term", "clamp", clamp, "all"),
        ("rescale_contribution", "rescale", rescale, "all"),
        ("add_prompt_only", "add", vec!["3:6".to_string()], "prompt"),
        (
            "add_generated_only",
            "add",
            vec!["3:6".to_string()],
            "generated",
        ),
    ] {
        let out = tmp.path().join(format!("{name}.json"));
        let mut args = vec![
            "steer",
            "--model",
            &model,
            "--sae",
            sae.to_str().unwrap(),
            "--mode",
            mode,
            "--positions",
            positions,
            "--tokens",
            &prompt,
            "--max-new-tokens",
            &n,
            "--greedy",
            "--out",
            out.to_str().unwrap(),
        ];
        for f in &features {
            args.extend(["--feature", f.as_str()]);
        }
        interp_ok(&args);
        assert_eq!(
            generated(&json(&out), 0),
            ids(&exp["generate"][name]),
            "{name}"
        );
    }
}

#[test]
fn samples_are_seeded_and_batched() {
    let tmp = tempfile::tempdir().unwrap();
    let sae = sae_fixture("model_hook");
    let model = tiny_model();
    let run = |name: &str, samples: &str| {
        let out = tmp.path().join(name);
        interp_ok(&[
            "steer",
            "--model",
            &model,
            "--sae",
            sae.to_str().unwrap(),
            "--feature",
            "3:2",
            "--tokens",
            "0,5,17",
            "--max-new-tokens",
            "8",
            "--temperature",
            "0.8",
            "--top-k",
            "20",
            "--seed",
            "5",
            "--samples",
            samples,
            "--out",
            out.to_str().unwrap(),
        ]);
        json(&out)
    };
    let three = run("three.json", "3");
    let again = run("again.json", "3");
    assert_eq!(three["samples"].as_array().unwrap().len(), 3);
    let seeds: Vec<u64> = (0..3)
        .map(|i| three["samples"][i]["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds, [5, 6, 7]);
    assert_eq!(three, again, "the same seed gives the same samples");
    let one = run("one.json", "1");
    assert_eq!(generated(&one, 0), generated(&three, 0));
}

#[test]
fn bad_input_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let sae = sae_fixture("model_hook");
    let sae = sae.to_str().unwrap();
    let model = tiny_model();
    let out = tmp.path().join("out.json");
    let out = out.to_str().unwrap();
    let bad_plan = tmp.path().join("plan.json");
    std::fs::write(
        &bad_plan,
        r#"{"steps": [{"hook": "blocks.0.hook_resid_pre", "op": "boost"}]}"#,
    )
    .unwrap();
    for (args, needle) in [
        (vec!["--sae", sae, "--feature", "64:1"], "out of range"),
        (
            vec![
                "--sae",
                sae,
                "--feature",
                "3:1",
                "--mode",
                "clamp",
                "--feature",
                "999:2",
            ],
            "out of range",
        ),
        (vec!["--sae", sae, "--feature", "3:nan"], "finite"),
        (vec!["--sae", sae, "--feature", "3"], "F:C"),
        (
            vec![
                "--sae",
                sae,
                "--feature",
                "3:1",
                "--hook",
                "blocks.0.hook_resid",
            ],
            "blocks.{i}.hook_resid_pre",
        ),
        (
            vec![
                "--sae",
                sae,
                "--feature",
                "3:1",
                "--hook",
                "blocks.0.mlp.hook_post",
            ],
            "width 128",
        ),
        (vec!["--plan", bad_plan.to_str().unwrap()], "plan.json"),
    ] {
        let mut all = vec![
            "steer",
            "--model",
            &model,
            "--tokens",
            "0,5,17",
            "--max-new-tokens",
            "4",
            "--out",
            out,
        ];
        all.extend(args.iter().copied());
        let run = interp(&all);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
