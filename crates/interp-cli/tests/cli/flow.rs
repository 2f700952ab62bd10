//! The `interp flow` contract on the toy world's SAEs: graph JSON keys and exports, tables
//! reused by `graph --tables`, corpus commands, and typed errors for bad input.

use crate::common::*;

use std::path::Path;

use serde_json::Value;

fn saes() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets/toy/saes")
        .display()
        .to_string()
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

#[test]
fn graph_and_tables_follow_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = saes();
    let out = interp(&[
        "flow",
        "tables",
        "--saes",
        &s,
        "--out",
        &path(d, "t.safetensors"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let args = [
        "flow",
        "graph",
        "--saes",
        &s,
        "--feature",
        "3/res/10",
        "--direction",
        "both",
        "--t-res",
        "0.5",
        "--t-module",
        "0.15",
        "--top-k",
        "1",
        "--out",
        &path(d, "g.json"),
        "--dot",
        &path(d, "g.dot"),
        "--svg",
        &path(d, "g.svg"),
        "--html",
        &path(d, "g.html"),
        "--circuit-json",
        &path(d, "c.json"),
    ];
    let out = interp(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let g: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("g.json")).unwrap()).unwrap();
    let node = &g["nodes"][0];
    for key in ["id", "layer", "module", "feature"] {
        assert!(node.get(key).is_some(), "{key}");
    }
    let edge = &g["edges"][0];
    for key in ["source", "target", "score"] {
        assert!(edge.get(key).is_some(), "{key}");
    }
    assert!(g["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["id"] == "3/res/10"));
    for f in ["g.dot", "g.svg", "g.html", "c.json"] {
        assert!(std::fs::metadata(d.join(f)).unwrap().len() > 100, "{f}");
    }
    // The same graph from the saved tables.
    let out = interp(&[
        "flow",
        "graph",
        "--saes",
        &s,
        "--tables",
        &path(d, "t.safetensors"),
        "--feature",
        "3/res/10",
        "--direction",
        "both",
        "--out",
        &path(d, "g2.json"),
    ]);
    assert!(out.status.success());
    assert_eq!(
        std::fs::read_to_string(d.join("g.json")).unwrap(),
        std::fs::read_to_string(d.join("g2.json")).unwrap()
    );
}

#[test]
fn corpus_commands_write_their_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let corpus = d.join("docs.txt");
    std::fs::write(
        &corpus,
        "I am so happy :) today.\n\nThe wedding was sad :( and long.\n",
    )
    .unwrap();
    let (s, c) = (saes(), corpus.display().to_string());
    let out = interp(&[
        "flow",
        "groups",
        "--saes",
        &s,
        "--corpus",
        &c,
        "--out",
        &path(d, "groups"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(d.join("groups/groups.json").exists());
    let out = interp(&[
        "flow",
        "deactivate",
        "--saes",
        &s,
        "--corpus",
        &c,
        "--r",
        "0",
        "--r",
        "-1",
        "--method",
        "top1",
        "--method",
        "random_of_top5",
        "--max-features",
        "2",
        "--out",
        &path(d, "deact"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 4);
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = saes();
    let o = path(d, "x.json");
    let cases: [(&[&str], &str); 5] = [
        (&["--feature", "3/res/5000"], "out of range"),
        (&["--feature", "9/res/1"], "no res SAE at layer 9"),
        (&["--feature", "3/res"], "not a node id"),
        (
            &["--feature", "3/res/1", "--t-module", "-2"],
            "must be a cosine in [-1, 1]",
        ),
        (&["--feature", "3/mlp/1"], "not a residual feature"),
    ];
    for (extra, message) in cases {
        let mut args = vec!["flow", "graph", "--saes", &s, "--out", &o];
        args.extend_from_slice(extra);
        let out = interp(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(message),
            "{extra:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let empty = d.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let out = interp(&[
        "flow",
        "groups",
        "--saes",
        &s,
        "--corpus",
        &empty.display().to_string(),
        "--out",
        &path(d, "g"),
    ]);
    assert!(!out.status.success());
}
