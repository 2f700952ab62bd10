//! `interp` as shell users meet it: every subcommand that prints ends quietly with status 141
//! when its stdout is closed early (`interp … | head`), completion scripts for bash, zsh and
//! fish, and an Examples section at the end of every subcommand's `--help`.

use crate::common::*;

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `interp` with stdout a pipe whose reading end is closed before the command starts,
/// so its first write to stdout fails, however fast the command is.
fn into_closed_pipe(args: &[String]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_interp"))
        .args(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn every_printing_subcommand_ends_quietly_on_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name).display().to_string();
    let sae = toy("saes/blocks.2.hook_resid_pre");
    let sae_b = toy("saes/blocks.3.hook_resid_pre");
    interp_ok(&[
        "cache",
        "--text",
        "Today I am so happy :) and the sun is out.",
        "--prepend-bos",
        "--hooks",
        "blocks.2.hook_resid_pre",
        "--out",
        &at("acts.safetensors"),
    ]);
    std::fs::write(
        at("pairs.json"),
        r#"{"pairs":[{"name":"p","a":{"name":"a","features":[0,1]},"b":{"name":"b","features":[2]}}]}"#,
    )
    .unwrap();
    std::fs::write(
        at("docs.txt"),
        "I am so happy :) today.\n\nThe wedding was sad :( and long.\n",
    )
    .unwrap();
    let rows = 256;
    let acts: Vec<f32> = (0..rows * 16)
        .map(|i| ((i * 37 % 101) as f32) / 50.0 - 1.0)
        .collect();
    interp_core::write_safetensors(
        Path::new(&at("train.safetensors")),
        [("acts", &[rows, 16][..], &acts[..])],
    )
    .unwrap();
    let (saes, docs) = (toy("saes"), at("docs.txt"));
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "cache",
            "--tokens",
            "0,1,2",
            "--hooks",
            "hook_embed",
            "--out",
            "OUT",
        ],
        vec!["sae", "info", "--sae", &sae],
        vec![
            "sae", "encode", "--sae", &sae, "--input", "ACTS", "--out", "OUT",
        ],
        vec!["geometry", "extremes", "--sae", &sae, "--out", "OUT"],
        vec![
            "geometry", "pairs", "--sae", &sae, "--pairs", "PAIRS", "--random", "20", "--out",
            "OUT",
        ],
        vec![
            "geometry", "match", "--sae-a", &sae, "--sae-b", &sae_b, "--out", "OUT",
        ],
        vec!["geometry", "neighbors", "--sae", &sae, "--out", "OUT"],
        vec!["geometry", "stats", "--sae", &sae],
        vec![
            "geometry",
            "heatmap",
            "--sae",
            &sae,
            "--features",
            "0,1,2",
            "--out",
            "OUT.json",
        ],
        vec![
            "flow", "groups", "--saes", &saes, "--corpus", &docs, "--out", "OUT",
        ],
        vec![
            "flow",
            "deactivate",
            "--saes",
            &saes,
            "--corpus",
            &docs,
            "--max-features",
            "1",
            "--out",
            "OUT",
        ],
        vec![
            "train", "--acts", "TRAIN", "--arch", "topk", "--d-sae", "32", "--k", "4", "--steps",
            "5", "--batch", "64", "--quiet", "--out", "OUT",
        ],
        vec![
            "dashboard",
            "--sae",
            &sae,
            "--corpus",
            &docs,
            "--context-size",
            "8",
            "--features",
            "0-3",
            "--out",
            "OUT",
        ],
        vec!["completions", "bash"],
    ];
    for (i, case) in cases.into_iter().enumerate() {
        let args: Vec<String> = case
            .iter()
            .map(|a| match *a {
                "ACTS" => at("acts.safetensors"),
                "PAIRS" => at("pairs.json"),
                "TRAIN" => at("train.safetensors"),
                "OUT" => at(&format!("out{i}")),
                "OUT.json" => at(&format!("out{i}.json")),
                a => a.to_string(),
            })
            .collect();
        let run = into_closed_pipe(&args);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("error"),
            "{args:?}: {stderr}"
        );
        assert_eq!(run.status.code(), Some(141), "{args:?}: {stderr}");
    }
}

#[test]
fn completions_cover_the_subcommands_in_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef interp"),
        ("fish", "complete -c interp"),
    ] {
        let script = interp_ok(&["completions", shell]);
        assert!(script.contains(marker), "{shell}: {script}");
        for sub in [
            "cache",
            "geometry",
            "steer",
            "flow",
            "train",
            "sae",
            "dashboard",
        ] {
            assert!(script.contains(sub), "{shell} lacks {sub}");
        }
    }
    let bad = interp(&["completions", "tcsh"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("possible values"));
}

#[test]
fn every_subcommand_help_ends_with_examples() {
    let leaves: &[&[&str]] = &[
        &["cache"],
        &["sae", "encode"],
        &["sae", "info"],
        &["geometry", "extremes"],
        &["geometry", "pairs"],
        &["geometry", "match"],
        &["geometry", "neighbors"],
        &["geometry", "stats"],
        &["geometry", "heatmap"],
        &["flow", "graph"],
        &["flow", "tables"],
        &["flow", "groups"],
        &["flow", "deactivate"],
        &["train"],
        &["steer"],
        &["dashboard"],
        &["completions"],
    ];
    for leaf in leaves {
        let mut args = leaf.to_vec();
        args.push("--help");
        let help = interp_ok(&args);
        let tail = help.rsplit_once("Example").map(|(_, t)| t);
        let command = format!("interp {}", leaf.join(" "));
        assert!(
            tail.is_some_and(|t| t.contains(&command)),
            "`{command} --help` ends without an example of itself:\n{help}"
        );
    }
}
