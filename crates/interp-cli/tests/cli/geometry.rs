//! The `interp geometry extremes | pairs | match` contracts, on the interp-sae fixtures and on an
//! SAE with planted structure, against brute force.

use crate::common::*;

use std::path::Path;

use interp_sae::{Architecture, Sae, SaeConfig, SaeWeights};
use ndarray::{Array1, Array2};
use serde_json::Value;

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Unit rows of the decoder (`enc = false`) or of the encoder's columns.
fn unit_rows(sae: &Sae, enc: bool) -> Vec<Vec<f64>> {
    let w = sae.weights();
    let m: Array2<f32> = if enc {
        w.w_enc.t().to_owned()
    } else {
        w.w_dec.clone()
    };
    m.outer_iter()
        .map(|r| {
            let n = r.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
            r.iter().map(|&v| v as f64 / n).collect()
        })
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn str_path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn extremes_match_brute_force_on_decoder_and_encoder() {
    let tmp = tempfile::tempdir().unwrap();
    let sae_dir = sae_fixture("saelens/standard");
    let sae = interp_sae::load(&sae_dir).unwrap();
    for (matrix, enc) in [("dec", false), ("enc", true)] {
        let out = tmp.path().join(format!("{matrix}.json"));
        interp_ok(&[
            "geometry",
            "extremes",
            "--sae",
            str_path(&sae_dir),
            "--matrix",
            matrix,
            "--top",
            "7",
            "--out",
            str_path(&out),
        ]);
        let json = read_json(&out);
        let obj = json.as_object().unwrap();
        let mut keys: Vec<_> = obj.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["most_aligned", "most_opposed"]);
        let rows = unit_rows(&sae, enc);
        let mut all: Vec<f64> = Vec::new();
        for i in 0..rows.len() {
            for j in i + 1..rows.len() {
                all.push(dot(&rows[i], &rows[j]));
            }
        }
        all.sort_by(|a, b| b.total_cmp(a));
        for (key, want) in [
            ("most_aligned", all[..7].to_vec()),
            ("most_opposed", all.iter().rev().take(7).copied().collect()),
        ] {
            let list = json[key].as_array().unwrap();
            assert_eq!(list.len(), 7, "{matrix} {key}");
            for (rank, p) in list.iter().enumerate() {
                let entry = p.as_object().unwrap();
                assert_eq!(entry.len(), 3, "{p}");
                let (i, j) = (
                    p["i"].as_u64().unwrap() as usize,
                    p["j"].as_u64().unwrap() as usize,
                );
                let c = p["cos"].as_f64().unwrap();
                assert!(i < j, "{p}");
                assert!((c - dot(&rows[i], &rows[j])).abs() < 1e-5, "{p}");
                assert!((c - want[rank]).abs() < 1e-5, "{matrix} {key} rank {rank}");
            }
        }
    }
}

fn planted_sae(dir: &Path) {
    // 300 random-ish features in 24-d; feature 250 = −2·feature 11 (exact antipode),
    // feature 40 ≈ feature 199 (near-duplicate).
    let (d_in, d_sae) = (24, 300);
    let mut s = 99u64;
    let mut rnd = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let mut w_dec = Array2::from_shape_simple_fn((d_sae, d_in), &mut rnd);
    let r11 = w_dec.row(11).to_owned();
    w_dec.row_mut(250).assign(&(&r11 * -2.0));
    let r199 = w_dec.row(199).to_owned();
    let nudge = Array1::from_shape_simple_fn(d_in, &mut rnd) * 0.01;
    w_dec.row_mut(40).assign(&(&r199 + &nudge));
    let weights = SaeWeights {
        w_enc: w_dec.t().to_owned(),
        w_dec,
        b_enc: Array1::zeros(d_sae),
        b_dec: Array1::zeros(d_in),
        threshold: None,
        gated: None,
    };
    let sae = Sae::new(SaeConfig::new(Architecture::Standard, d_in, d_sae), weights).unwrap();
    interp_sae::formats::saelens::save(&sae, dir, None).unwrap();
}

#[test]
fn planted_structure_is_rank_one_and_pairs_report_it() {
    let tmp = tempfile::tempdir().unwrap();
    let sae = tmp.path().join("planted");
    planted_sae(&sae);
    let out = tmp.path().join("ex.json");
    let stdout = interp_ok(&[
        "geometry",
        "extremes",
        "--sae",
        str_path(&sae),
        "--out",
        str_path(&out),
    ]);
    assert!(stdout.contains("most opposed (11, 250)"), "{stdout}");
    let json = read_json(&out);
    assert_eq!(json["most_aligned"].as_array().unwrap().len(), 10);
    let (a, o) = (&json["most_aligned"][0], &json["most_opposed"][0]);
    assert_eq!((a["i"].as_u64(), a["j"].as_u64()), (Some(40), Some(199)));
    assert!(a["cos"].as_f64().unwrap() > 0.99);
    assert_eq!((o["i"].as_u64(), o["j"].as_u64()), (Some(11), Some(250)));
    assert!((o["cos"].as_f64().unwrap() + 1.0).abs() < 1e-5);

    let pairs = tmp.path().join("pairs.json");
    std::fs::write(
        &pairs,
        r#"{"pairs": [
            {"name": "planted", "a": {"name": "x", "features": [11, 12]}, "b": {"name": "-x", "features": [250]}},
            {"name": "dup", "a": {"name": "y", "features": [40]}, "b": {"name": "y'", "features": [199, 3]}}
        ]}"#,
    )
    .unwrap();
    let report = tmp.path().join("report.json");
    let md = tmp.path().join("report.md");
    interp_ok(&[
        "geometry",
        "pairs",
        "--sae",
        str_path(&sae),
        "--pairs",
        str_path(&pairs),
        "--random",
        "200",
        "--permutations",
        "500",
        "--out",
        str_path(&report),
        "--markdown",
        str_path(&md),
    ]);
    let r = read_json(&report);
    assert_eq!(r["config"]["random"], 200);
    let dec = &r["matrices"][0];
    assert_eq!(dec["matrix"], "dec");
    let p0 = &dec["pairs"][0]["stats"];
    assert_eq!(p0["n"], 2);
    assert_eq!(
        (p0["min"]["i"].as_u64(), p0["min"]["j"].as_u64()),
        (Some(11), Some(250))
    );
    assert!((p0["min"]["cos"].as_f64().unwrap() + 1.0).abs() < 1e-5);
    assert_eq!(dec["strongest_opposition"]["pair"], "planted");
    assert_eq!(dec["tests"].as_array().unwrap().len(), 3);
    for t in dec["tests"].as_array().unwrap() {
        let p = t["mann_whitney"]["p"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p));
        assert_eq!(t["random"]["n"], 200);
    }
    assert_eq!(r["matrices"][1]["matrix"], "enc");
    assert!(r["self_similarity"]["concept"]["mean"].as_f64().unwrap() > 0.99);
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(md.contains("| planted | x | -x | 2 |"), "{md}");
}

#[test]
fn match_finds_identity_against_itself_and_rejects_other_widths() {
    let tmp = tempfile::tempdir().unwrap();
    let a = sae_fixture("saelens/standard");
    let out = tmp.path().join("match.json");
    interp_ok(&[
        "geometry",
        "match",
        "--sae-a",
        str_path(&a),
        "--sae-b",
        str_path(&a),
        "--top-k",
        "3",
        "--assignment",
        "dense",
        "--out",
        str_path(&out),
    ]);
    let json = read_json(&out);
    assert_eq!(json["k"], 3);
    let matches = json["matches"].as_array().unwrap();
    assert_eq!(matches.len(), 48);
    for (i, m) in matches.iter().enumerate() {
        assert_eq!(m["i"], i);
        assert_eq!(m["j"][0], i);
        assert!((m["cos"][0].as_f64().unwrap() - 1.0).abs() < 1e-5);
        let c: Vec<f64> = m["cos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_f64().unwrap())
            .collect();
        assert!(c.windows(2).all(|w| w[0] >= w[1]));
        assert_eq!(json["assignment"]["j"][i], i);
    }
    assert_eq!(json["assignment"]["matched"], 48);

    // Against a different SAE of the same width, the sparse assignment is one-to-one.
    let b = sae_fixture("saelens/jumprelu");
    interp_ok(&[
        "geometry",
        "match",
        "--sae-a",
        str_path(&a),
        "--sae-b",
        str_path(&b),
        "--top-k",
        "48",
        "--assignment",
        "sparse",
        "--fallback",
        "-2",
        "--out",
        str_path(&out),
    ]);
    let json = read_json(&out);
    let mut js: Vec<u64> = json["assignment"]["j"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j.as_u64().unwrap())
        .collect();
    js.sort_unstable();
    js.dedup();
    assert_eq!(js.len(), 48);

    let run = interp(&[
        "geometry",
        "match",
        "--sae-a",
        str_path(&a),
        "--sae-b",
        str_path(&sae_fixture("model_hook")),
        "--out",
        str_path(&out),
    ]);
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("width 16") && err.contains("width 32"),
        "{err}"
    );
}

#[test]
fn bad_pair_files_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let sae = sae_fixture("saelens/standard");
    let out = tmp.path().join("r.json");
    for (body, needle) in [
        (r#"{"pairs": []}"#, "no pairs"),
        (
            r#"[{"name": "x", "a": [1], "b": [48]}]"#,
            "index 48 out of range",
        ),
        (r#"[{"name": "x", "a": [], "b": [2]}]"#, "has no features"),
        (r#"{"pairs": 3}"#, "invalid JSON"),
    ] {
        let pairs = tmp.path().join("p.json");
        std::fs::write(&pairs, body).unwrap();
        let run = interp(&[
            "geometry",
            "pairs",
            "--sae",
            str_path(&sae),
            "--pairs",
            str_path(&pairs),
            "--out",
            str_path(&out),
        ]);
        assert!(!run.status.success(), "{body}");
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(err.contains(needle), "{body}: {err}");
    }
}

#[test]
fn stats_neighbors_and_heatmap_run() {
    let tmp = tempfile::tempdir().unwrap();
    let sae = sae_fixture("saelens/standard");
    let stats = tmp.path().join("stats.json");
    interp_ok(&[
        "geometry",
        "stats",
        "--sae",
        str_path(&sae),
        "--out",
        str_path(&stats),
    ]);
    let s = read_json(&stats);
    let g = s["gram"]["decoder"]["mean_abs_off_diagonal"]
        .as_f64()
        .unwrap();
    assert!(g > 0.0 && g < 1.0);
    assert_eq!(s["antipodality"]["partners"].as_array().unwrap().len(), 48);
    let nb = tmp.path().join("nb.json");
    interp_ok(&[
        "geometry",
        "neighbors",
        "--sae",
        str_path(&sae),
        "-k",
        "4",
        "--out",
        str_path(&nb),
    ]);
    assert_eq!(
        read_json(&nb)["matches"][0]["j"].as_array().unwrap().len(),
        4
    );
    let hm = tmp.path().join("hm.json");
    interp_ok(&[
        "geometry",
        "heatmap",
        "--sae",
        str_path(&sae),
        "--features",
        "0,5,7",
        "--out",
        str_path(&hm),
    ]);
    let m = read_json(&hm);
    assert!((m["cos"][1][1].as_f64().unwrap() - 1.0).abs() < 1e-5);
    let png = tmp.path().join("hm.png");
    interp_ok(&[
        "geometry",
        "heatmap",
        "--sae",
        str_path(&sae),
        "--features",
        "0,5,7",
        "--out",
        str_path(&png),
    ]);
    assert!(std::fs::metadata(&png).unwrap().len() > 100);
}
