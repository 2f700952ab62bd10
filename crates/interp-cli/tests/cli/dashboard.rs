//! `interp dashboard`: the site's files, its index contract, flow links, and bad input.

use interp_toy::corpus::{generate, write_jsonl, CorpusConfig};

use super::common::{interp, interp_ok, toy};

#[test]
fn dashboard_writes_a_site_with_flow_links() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let docs = generate(&CorpusConfig {
        seed: 5,
        n_docs: 60,
        ..CorpusConfig::default()
    });
    let corpus = d.join("docs.jsonl");
    write_jsonl(&docs, &corpus).unwrap();
    let out = d.join("site");
    let (sae, saes) = (toy("saes/blocks.2.hook_resid_post"), toy("saes"));
    let c = corpus.display().to_string();
    let o = out.display().to_string();
    let said = interp_ok(&[
        "dashboard",
        "--sae",
        &sae,
        "--corpus",
        &c,
        "--features",
        "top-5",
        "--tokens",
        "2048",
        "--context-size",
        "64",
        "--saes",
        &saes,
        "--out",
        &o,
    ]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    // 32 windows of 64 tokens, less the BOS at the start of each window and between documents.
    let counted = index["info"]["tokens"].as_u64().unwrap();
    assert!((1900..2048 - 32).contains(&counted), "{counted}");
    let head = format!("5 feature pages of blocks.2.hook_resid_post ({counted} tokens");
    assert!(said.starts_with(&head), "{said}");
    assert_eq!(index["info"]["hook"], "blocks.2.hook_resid_post");
    assert_eq!(index["info"]["windows"], 32);
    let rows = index["features"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    for r in rows {
        let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["density", "explanation", "id", "max", "mean", "top_tokens"]
        );
        let id = r["id"].as_u64().unwrap();
        let page = std::fs::read_to_string(out.join(format!("features/{id}.html"))).unwrap();
        let link = format!("../flow/2-res-{id}.html");
        assert!(page.contains(&link), "feature {id} does not link {link}");
        assert!(out.join(format!("flow/2-res-{id}.html")).exists());
    }
    assert!(out.join("index.html").exists());
}

#[test]
fn dashboard_bad_input_fails_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let empty = d.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let text = d.join("t.txt");
    std::fs::write(&text, "I am so happy :) today. ".repeat(40)).unwrap();
    let sae = toy("saes/blocks.2.hook_resid_post");
    let o = d.join("o").display().to_string();
    let (e, t) = (empty.display().to_string(), text.display().to_string());
    for (args, says) in [
        (vec!["--corpus", &e], "holds no tokens"),
        (
            vec!["--corpus", &t, "--features", "1020-1030"],
            "feature 1024 is out of range",
        ),
        (
            vec!["--corpus", &t, "--features", "top-x"],
            "is not a feature selection",
        ),
        (
            vec!["--corpus", &t, "--features", "1", "--saes", &e],
            "empty.txt",
        ),
    ] {
        let mut all = vec![
            "dashboard",
            "--sae",
            &sae,
            "--context-size",
            "16",
            "--out",
            &o,
        ];
        all.extend(args);
        let run = interp(&all);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{all:?}: {stderr}");
        assert!(
            stderr.contains(says) && !stderr.contains("panicked"),
            "{all:?}: {stderr}"
        );
    }
}
