//! The `interp train` contract: SAELens output + metrics from an activation file, typed
//! failures, and checkpoints that survive the process being killed at any moment.

use crate::common::*;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use interp_sae::train::synthetic::superposition;
use interp_sae::train::{ActivationMatrix, Trainer, CHECKPOINT_FILE, METRICS_FILE};

fn write_acts(path: &Path, n: usize, d: usize) -> ndarray::Array2<f32> {
    let acts = superposition(d, 4 * d, 3.0, n, 11).activations;
    interp_core::write_safetensors(
        path,
        [(
            "blocks.0.hook_resid_pre",
            &[n, d][..],
            acts.as_slice().unwrap(),
        )],
    )
    .unwrap();
    acts
}

#[test]
fn train_from_an_activation_file_writes_a_saelens_sae_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let acts = dir.path().join("acts.safetensors");
    let x = write_acts(&acts, 4000, 16);
    let out = dir.path().join("sae");
    for arch in ["relu", "topk", "batchtopk", "jumprelu"] {
        let run = interp(&[
            "train",
            "--acts",
            acts.to_str().unwrap(),
            "--arch",
            arch,
            "--d-sae",
            "64",
            "--k",
            "3",
            "--steps",
            "40",
            "--batch",
            "128",
            "--seed",
            "3",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(
            run.status.success(),
            "{arch}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let sae = interp_sae::load(&out).unwrap();
        assert_eq!((sae.d_in(), sae.d_sae()), (16, 64));
        let recon = sae.forward(x.slice(ndarray::s![..10, ..])).unwrap();
        assert!(recon.iter().all(|v| v.is_finite()));
        let log = std::fs::read_to_string(out.join(METRICS_FILE)).unwrap();
        let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
        assert_eq!(last["step"], 40, "{arch}");
        assert!(last["fvu"].as_f64().unwrap() < 1.0, "{arch}: {last}");
    }
    let info = interp(&["sae", "info", "--sae", out.to_str().unwrap()]);
    assert!(info.status.success());
}

#[test]
fn bad_training_requests_fail_with_a_message_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let acts = dir.path().join("acts.safetensors");
    write_acts(&acts, 100, 8);
    let out = dir.path().join("sae");
    let cases: [(&[&str], &str); 3] = [
        (&["--arch", "topk", "--d-sae", "16", "--k", "17"], "k = 17"),
        (&["--arch", "relu", "--d-sae", "16", "--l1=-1"], "l1"),
        (
            &["--arch", "topk", "--d-sae", "16", "--tensor", "nope"],
            "nope",
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec![
            "train",
            "--acts",
            acts.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let run = interp(&args);
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success());
        assert!(err.contains(want), "{extra:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn resume_refuses_a_command_that_differs_from_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let acts = dir.path().join("acts.safetensors");
    write_acts(&acts, 1000, 8);
    let out = dir.path().join("sae");
    let args = |k: &'static str, resume: bool| {
        let mut a = vec![
            "train",
            "--acts",
            acts.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        a.extend_from_slice(&["--arch", "topk", "--d-sae", "32", "--k", k]);
        a.extend_from_slice(&["--steps", "20", "--batch", "64", "--quiet"]);
        if resume {
            a.push("--resume");
        }
        a
    };
    assert!(interp(&args("3", false)).status.success());
    let again = interp(&args("3", true));
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let changed = interp(&args("4", true));
    let err = String::from_utf8_lossy(&changed.stderr);
    assert!(!changed.status.success());
    assert!(err.contains("--arch/--k") && err.contains("k: 3"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn the_burn_engine_trains_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let acts = dir.path().join("acts.safetensors");
    write_acts(&acts, 1000, 8);
    let out = dir.path().join("sae");
    let run = interp(&[
        "train",
        "--acts",
        acts.to_str().unwrap(),
        "--arch",
        "jumprelu",
        "--d-sae",
        "32",
        "--steps",
        "20",
        "--batch",
        "64",
        "--engine",
        "burn",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let log = std::fs::read_to_string(out.join(METRICS_FILE)).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(last["step"], 20);
    assert!(last["fvu"].as_f64().unwrap().is_finite(), "{last}");
    assert_eq!(interp_sae::load(&out).unwrap().d_sae(), 32);
}

/// SIGKILL the trainer at arbitrary moments while it checkpoints every step: whatever is on disk
/// must always be a complete checkpoint that resumes.
#[test]
fn killing_training_mid_checkpoint_leaves_a_loadable_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let acts = dir.path().join("acts.safetensors");
    write_acts(&acts, 2000, 64);
    let out = dir.path().join("sae");
    let mut resumed_steps = Vec::new();
    for (round, wait_ms) in [700u64, 450, 900, 300, 1100].into_iter().enumerate() {
        let mut args = vec![
            "train",
            "--acts",
            acts.to_str().unwrap(),
            "--arch",
            "topk",
            "--d-sae",
            "8192",
            "--k",
            "8",
            "--steps",
            "100000",
            "--batch",
            "64",
            "--checkpoint-every",
            "1",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ];
        if round > 0 {
            args.push("--resume");
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_interp"))
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(wait_ms));
        // Wait until a first checkpoint exists before killing.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !out.join(CHECKPOINT_FILE).exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: the trainer should have been killed"
        );
        let mut source = ActivationMatrix::from_safetensors(&acts, None, 0).unwrap();
        let trainer = Trainer::resume(&out.join(CHECKPOINT_FILE), &mut source)
            .unwrap_or_else(|e| panic!("round {round}: checkpoint unreadable after kill: {e}"));
        resumed_steps.push(trainer.step_count());
    }
    assert!(
        resumed_steps.windows(2).all(|w| w[0] <= w[1]),
        "{resumed_steps:?}"
    );
    assert!(resumed_steps.last().unwrap() > &0);
}

fn tiny_model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../interp-models/tests/fixtures/gpt2/tiny-gpt2")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn train_from_a_model_over_a_corpus_logs_ce_loss_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.jsonl");
    let lines: String = (0..60)
        .map(|i| {
            format!("{{\"text\": \"Je suis heureux {i}. The cat sat on the mat number {i}.\"}}\n")
        })
        .collect();
    std::fs::write(&corpus, lines).unwrap();
    let out = dir.path().join("sae");
    let model = tiny_model();
    let base = [
        "train",
        "--model",
        &model,
        "--corpus",
        corpus.to_str().unwrap(),
        "--arch",
        "topk",
        "--d-sae",
        "32",
        "--k",
        "4",
        "--steps",
        "20",
        "--batch",
        "64",
        "--context-size",
        "16",
        "--eval-every",
        "10",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ];
    let mut args = base.to_vec();
    args.extend(["--hook", "blocks.1.hook_resid_pre"]);
    let run = interp(&args);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let sae = interp_sae::load(&out).unwrap();
    assert_eq!(
        sae.config().metadata.hook_name.as_deref(),
        Some("blocks.1.hook_resid_pre")
    );
    let log = std::fs::read_to_string(out.join(METRICS_FILE)).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    let eval = &last["eval"];
    assert!(
        eval["ce_loss_spliced"].as_f64().unwrap().is_finite(),
        "{last}"
    );
    assert!(eval["kl_spliced"].as_f64().unwrap() >= 0.0, "{last}");
    assert_eq!(eval["hook"], "blocks.1.hook_resid_pre");

    let mut bad_hook = base.to_vec();
    bad_hook.extend(["--hook", "blocks.9.hook_resid_pre"]);
    let run = interp(&bad_hook);
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("blocks.9") && !err.contains("panicked"),
        "{err}"
    );

    std::fs::write(&corpus, "").unwrap();
    let run = interp(&args);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success() && err.contains("empty") && !err.contains("panicked"),
        "{err}"
    );
}
