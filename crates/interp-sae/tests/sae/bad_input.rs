//! Hostile and malformed inputs: every one must give the right typed [`Error`] variant (with
//! the field that lets a user act on it, named in the message too), never a panic.
//!
//! Fixtures: `tests/fixtures/hostile/` (see its `expected.json`) and variants of the valid
//! fixtures written to temporary directories with one thing broken.

use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use interp_sae::formats::{self, gemma_scope, llama_scope, npy, openai, saelens, sparsify, torch};
use interp_sae::prelude::*;
use ndarray::{array, Array1, Array2};
use serde_json::{json, Value};
use tempfile::TempDir;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Copies the fixture directory `rel` (recursively) into a fresh temporary directory.
fn copy_fixture(rel: &str) -> TempDir {
    fn copy(src: &Path, dst: &Path) {
        std::fs::create_dir_all(dst).unwrap();
        for entry in std::fs::read_dir(src).unwrap() {
            let entry = entry.unwrap();
            let to = dst.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &to);
            } else {
                std::fs::copy(entry.path(), &to).unwrap();
            }
        }
    }
    let tmp = TempDir::new().unwrap();
    copy(&fixture(rel), tmp.path());
    tmp
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn write_json(path: &Path, v: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(v).unwrap()).unwrap();
}

/// A copy of the SAELens fixture `rel` whose `cfg.json` was edited by `edit`.
fn saelens_with_cfg(rel: &str, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> TempDir {
    let tmp = copy_fixture(rel);
    let path = tmp.path().join(saelens::CONFIG_FILE);
    let mut cfg = read_json(&path);
    edit(cfg.as_object_mut().unwrap());
    write_json(&path, &cfg);
    tmp
}

/// A copy of the Llama Scope fixture whose `hyperparams.json` was edited by `edit`.
fn llama_scope_with(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> TempDir {
    let tmp = copy_fixture("llama_scope");
    let path = tmp.path().join(llama_scope::CONFIG_FILE);
    let mut cfg = read_json(&path);
    edit(cfg.as_object_mut().unwrap());
    write_json(&path, &cfg);
    tmp
}

/// The loader's error, with a readable panic if it unexpectedly succeeds.
#[track_caller]
fn load_err(path: &Path) -> Error {
    match interp_sae::load(path) {
        Ok(sae) => panic!(
            "{path:?} loaded (d_in {}, d_sae {}) but should fail",
            sae.d_in(),
            sae.d_sae()
        ),
        Err(e) => e,
    }
}

#[track_caller]
fn assert_mentions(err: &Error, needles: &[&str]) {
    let msg = err.to_string();
    for n in needles {
        assert!(msg.contains(n), "message {msg:?} does not mention {n:?}");
    }
}

fn standard() -> Sae {
    interp_sae::load(&fixture("saelens/standard")).unwrap()
}

// ------------------------------------------------------------------------------------------------
// Hostile fixtures
// ------------------------------------------------------------------------------------------------

const EVIL: [(&str, &str, &str); 3] = [
    ("evil.pt", "posix", "system"),
    ("evil_builtins.pt", "__builtin__", "eval"),
    ("evil_builtins_proto4.pt", "builtins", "eval"),
];

#[track_caller]
fn assert_forbidden(err: &Error, file: &str, want_module: &str, want_name: &str) {
    match err {
        Error::ForbiddenGlobal { path, module, name } => {
            assert!(path.ends_with(file), "{file}: path {path:?}");
            assert_eq!(module, want_module, "{file}");
            assert_eq!(name, want_name, "{file}");
        }
        other => panic!("{file}: expected ForbiddenGlobal, got {other:?}"),
    }
    assert_mentions(
        err,
        &[
            file,
            &format!("{want_module}.{want_name}"),
            "nothing was executed",
        ],
    );
}

#[test]
fn evil_pickles_are_forbidden_globals_through_every_entry_point() {
    for (file, module, name) in EVIL {
        let path = fixture("hostile").join(file);
        assert_eq!(Format::detect(&path).unwrap(), Format::OpenAi);
        assert_forbidden(&load_err(&path), file, module, name);
        assert_forbidden(&Format::OpenAi.load(&path).unwrap_err(), file, module, name);
        assert_forbidden(&openai::load(&path).unwrap_err(), file, module, name);
        let bytes = std::fs::read(&path).unwrap();
        let err = torch::read_torch_bytes(&bytes, Path::new(file)).unwrap_err();
        assert_forbidden(&err, file, module, name);
    }
}

#[test]
fn truncated_pt_is_a_pickle_error() {
    let path = fixture("hostile/truncated.pt");
    for err in [
        load_err(&path),
        openai::load(&path).unwrap_err(),
        torch::read_torch_bytes(&std::fs::read(&path).unwrap(), &path).unwrap_err(),
    ] {
        match &err {
            Error::Pickle { path: p, reason } => {
                assert_eq!(p, &path);
                assert!(reason.contains("zip"), "reason {reason:?}");
            }
            other => panic!("expected Pickle, got {other:?}"),
        }
        assert_mentions(&err, &["truncated.pt", "malformed torch file"]);
    }
}

#[test]
fn nan_threshold_is_non_finite() {
    let err = load_err(&fixture("hostile/nan_threshold"));
    match &err {
        Error::NonFinite { key, index } => {
            assert_eq!(key, "threshold");
            assert_eq!(*index, 3);
        }
        other => panic!("expected NonFinite, got {other:?}"),
    }
    assert_mentions(&err, &["`threshold`", "index 3"]);
}

#[test]
fn wrong_shape_names_w_dec() {
    let err = load_err(&fixture("hostile/wrong_shape"));
    match &err {
        Error::Shape {
            key,
            expected,
            actual,
        } => {
            assert_eq!(key, "W_dec");
            assert_eq!(expected, &[48, 16]);
            assert_eq!(actual, &[48, 17]);
        }
        other => panic!("expected Shape, got {other:?}"),
    }
    assert_mentions(&err, &["W_dec", "[48, 17]", "[48, 16]"]);
}

#[test]
fn truncated_npz_is_an_npy_error() {
    let dir = fixture("hostile/truncated_npz");
    let file = dir.join("params.npz");
    for (what, err) in [
        ("dir", load_err(&dir)),
        ("file", load_err(&file)),
        ("gemma_scope::load", gemma_scope::load(&file).unwrap_err()),
        (
            "read_npz_bytes",
            npy::read_npz_bytes(&std::fs::read(&file).unwrap(), &file).unwrap_err(),
        ),
    ] {
        match &err {
            Error::Npy { path, .. } => assert!(path.starts_with(&file), "{what}: {path:?}"),
            other => panic!("{what}: expected Npy, got {other:?}"),
        }
        assert_mentions(&err, &["params.npz", "malformed numpy file"]);
    }
}

// ------------------------------------------------------------------------------------------------
// Detection and format names
// ------------------------------------------------------------------------------------------------

#[test]
fn unknown_directories_and_files_are_unknown_format() {
    let tmp = TempDir::new().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    // A directory with only half of an SAELens pair is not an SAELens SAE.
    let half = tmp.path().join("half");
    std::fs::create_dir(&half).unwrap();
    std::fs::copy(
        fixture("saelens/standard/cfg.json"),
        half.join(saelens::CONFIG_FILE),
    )
    .unwrap();
    let txt = tmp.path().join("weights.txt");
    std::fs::write(&txt, b"not an SAE").unwrap();
    let absent = tmp.path().join("does-not-exist");
    for path in [&empty, &half, &txt, &absent] {
        let err = Format::detect(path).unwrap_err();
        match &err {
            Error::UnknownFormat { path: p, reason } => {
                assert_eq!(p, path);
                assert!(reason.contains("cfg.json"), "{reason}");
            }
            other => panic!("{path:?}: expected UnknownFormat, got {other:?}"),
        }
        assert_mentions(&err, &[&path.display().to_string(), "not a recognised SAE"]);
        assert!(matches!(load_err(path), Error::UnknownFormat { .. }));
    }
}

#[test]
fn unknown_format_names_are_unsupported() {
    for f in Format::ALL {
        assert_eq!(f.name().parse::<Format>().unwrap(), f);
    }
    for bad in ["safetensors", "SAELens", "", "gemma_scope"] {
        let err = bad.parse::<Format>().unwrap_err();
        match &err {
            Error::Unsupported { what } => {
                assert!(what.contains(&format!("`{bad}`")), "{what}");
                for f in Format::ALL {
                    assert!(what.contains(f.name()), "{what} does not list {}", f.name());
                }
            }
            other => panic!("{bad:?}: expected Unsupported, got {other:?}"),
        }
        assert_mentions(&err, &["unsupported", "format"]);
    }
}

// ------------------------------------------------------------------------------------------------
// SAELens directories
// ------------------------------------------------------------------------------------------------

/// Asserts `err` is `Error::Config` on `dir/cfg.json` whose reason mentions `needle`.
#[track_caller]
fn assert_config(err: &Error, cfg_path: &Path, needle: &str) {
    match err {
        Error::Config { path, reason } => {
            assert_eq!(path, cfg_path);
            assert!(
                reason.contains(needle),
                "reason {reason:?} lacks {needle:?}"
            );
        }
        other => panic!("expected Config mentioning {needle:?}, got {other:?}"),
    }
    assert_mentions(err, &["invalid SAE config", needle]);
}

#[test]
fn saelens_config_missing_or_invalid_keys() {
    type Edit = Box<dyn FnOnce(&mut serde_json::Map<String, Value>)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "d_in",
            Box::new(|c| {
                c.remove("d_in");
            }),
        ),
        (
            "d_sae",
            Box::new(|c| {
                c.insert("d_sae".into(), json!(-3));
            }),
        ),
        (
            "d_in",
            Box::new(|c| {
                c.insert("d_in".into(), json!("16"));
            }),
        ),
        (
            "normalize_activations",
            Box::new(|c| {
                c.insert("normalize_activations".into(), json!("batch_norm"));
            }),
        ),
        (
            "normalize_activations",
            Box::new(|c| {
                c.insert("normalize_activations".into(), json!(3));
            }),
        ),
        (
            "reshape_activations",
            Box::new(|c| {
                c.insert("reshape_activations".into(), json!("hook_q"));
            }),
        ),
    ];
    for (needle, edit) in cases {
        let tmp = saelens_with_cfg("saelens/standard", edit);
        let cfg_path = tmp.path().join(saelens::CONFIG_FILE);
        assert_config(&load_err(tmp.path()), &cfg_path, needle);
        // parse_config directly gives the same error.
        let err = saelens::parse_config(&read_json(&cfg_path), &cfg_path).unwrap_err();
        assert_config(&err, &cfg_path, needle);
    }
    // TopK without k.
    let tmp = saelens_with_cfg("saelens/topk", |c| {
        c.remove("k");
    });
    let cfg_path = tmp.path().join(saelens::CONFIG_FILE);
    assert_config(&load_err(tmp.path()), &cfg_path, "`k`");
}

#[test]
fn saelens_config_that_is_not_json_or_not_an_object() {
    for (text, needle) in [
        ("{\"d_in\": 16,", "EOF"),
        ("[16, 48]", "not a JSON object"),
        ("", "EOF"),
    ] {
        let tmp = copy_fixture("saelens/standard");
        let cfg_path = tmp.path().join(saelens::CONFIG_FILE);
        std::fs::write(&cfg_path, text).unwrap();
        assert_config(&load_err(tmp.path()), &cfg_path, needle);
    }
}

#[test]
fn saelens_unknown_architecture_is_unsupported() {
    let tmp = saelens_with_cfg("saelens/standard", |c| {
        c.insert("architecture".into(), json!("transcoder"));
    });
    let err = load_err(tmp.path());
    match &err {
        Error::Unsupported { what } => assert!(what.contains("`transcoder`"), "{what}"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
    assert_mentions(&err, &["unsupported", "SAELens architecture `transcoder`"]);
}

#[test]
fn saelens_config_disagreeing_with_the_weights_is_a_shape_error() {
    let tmp = saelens_with_cfg("saelens/standard", |c| {
        c.insert("d_sae".into(), json!(49));
    });
    match load_err(tmp.path()) {
        Error::Shape {
            key,
            expected,
            actual,
        } => {
            assert_eq!(key, "W_enc");
            assert_eq!(expected, vec![16, 49]);
            assert_eq!(actual, vec![16, 48]);
        }
        other => panic!("expected Shape, got {other:?}"),
    }
    // Zero sizes are refused by the SAE, not by an index panic.
    let tmp = saelens_with_cfg("saelens/standard", |c| {
        c.insert("d_in".into(), json!(0));
    });
    match load_err(tmp.path()) {
        Error::Shape {
            key,
            expected,
            actual,
        } => {
            assert_eq!(key, "W_enc");
            assert_eq!((expected, actual), (vec![0, 48], vec![16, 48]));
        }
        other => panic!("d_in 0: expected Shape, got {other:?}"),
    }
}

#[test]
fn saelens_missing_weights_file() {
    let tmp = copy_fixture("saelens/standard");
    let weights = tmp.path().join(saelens::WEIGHTS_FILE);
    std::fs::remove_file(&weights).unwrap();
    // Detection needs both files.
    assert!(matches!(load_err(tmp.path()), Error::UnknownFormat { .. }));
    // The SAELens loader called directly reports the missing file.
    let err = saelens::load(tmp.path()).unwrap_err();
    match &err {
        Error::Tensors(interp_core::Error::Io { path, source }) => {
            assert_eq!(path, &weights);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Tensors(Io), got {other:?}"),
    }
    assert_mentions(&err, &[saelens::WEIGHTS_FILE]);
    // And a missing cfg.json.
    let tmp = copy_fixture("saelens/standard");
    let cfg = tmp.path().join(saelens::CONFIG_FILE);
    std::fs::remove_file(&cfg).unwrap();
    match saelens::load(tmp.path()).unwrap_err() {
        Error::Io { path, source } => {
            assert_eq!(path, cfg);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Io, got {other:?}"),
    }
}

#[test]
fn saelens_corrupt_weights_file() {
    let tmp = copy_fixture("saelens/standard");
    let weights = tmp.path().join(saelens::WEIGHTS_FILE);
    let bytes = std::fs::read(&weights).unwrap();
    for cut in [0, 7, 8, 100, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&weights, &bytes[..cut]).unwrap();
        let err = load_err(tmp.path());
        match &err {
            Error::Tensors(interp_core::Error::Safetensors { path, .. }) => {
                assert_eq!(path, &weights, "cut {cut}")
            }
            other => panic!("cut {cut}: expected Tensors(Safetensors), got {other:?}"),
        }
        assert_mentions(&err, &[saelens::WEIGHTS_FILE]);
    }
}

#[test]
fn saelens_missing_tensor() {
    // A gated config over standard weights lacks b_gate.
    let tmp = saelens_with_cfg("saelens/standard", |c| {
        c.insert("architecture".into(), json!("gated"));
    });
    let err = load_err(tmp.path());
    match &err {
        Error::MissingTensor { path, key } => {
            assert_eq!(path, &tmp.path().join(saelens::WEIGHTS_FILE));
            assert_eq!(key, "b_gate");
        }
        other => panic!("expected MissingTensor, got {other:?}"),
    }
    assert_mentions(&err, &["missing tensor `b_gate`"]);
    // A JumpReLU config over weights without threshold.
    let tmp = saelens_with_cfg("saelens/standard", |c| {
        c.insert("architecture".into(), json!("jumprelu"));
    });
    match load_err(tmp.path()) {
        Error::MissingTensor { key, .. } => assert_eq!(key, "threshold"),
        other => panic!("expected MissingTensor, got {other:?}"),
    }
}

// ------------------------------------------------------------------------------------------------
// Llama Scope, sparsify, Gemma Scope
// ------------------------------------------------------------------------------------------------

#[test]
fn llama_scope_non_positive_or_invalid_norm_is_a_config_error() {
    for bad in [json!(0.0), json!(-7.5), json!("7.5"), json!(true)] {
        let tmp = llama_scope_with(|c| {
            c.insert(
                "dataset_average_activation_norm".into(),
                json!({"in": bad.clone(), "out": 7.5}),
            );
        });
        let cfg_path = tmp.path().join(llama_scope::CONFIG_FILE);
        assert_config(
            &load_err(tmp.path()),
            &cfg_path,
            "dataset_average_activation_norm.in",
        );
    }
    // A null norm means "no dataset normalisation" and loads.
    let tmp = llama_scope_with(|c| {
        c.insert(
            "dataset_average_activation_norm".into(),
            json!({"in": null, "out": null}),
        );
    });
    interp_sae::load(tmp.path()).unwrap();
}

#[test]
fn llama_scope_missing_keys_and_weights() {
    for key in ["d_model", "d_sae", "jump_relu_threshold"] {
        let tmp = llama_scope_with(|c| {
            c.remove(key);
        });
        let cfg_path = tmp.path().join(llama_scope::CONFIG_FILE);
        assert_config(&load_err(tmp.path()), &cfg_path, &format!("`{key}`"));
    }
    let tmp = copy_fixture("llama_scope");
    let weights = tmp.path().join(llama_scope::WEIGHTS_FILE);
    std::fs::remove_file(&weights).unwrap();
    match load_err(tmp.path()) {
        Error::Tensors(interp_core::Error::Io { path, .. }) => assert_eq!(path, weights),
        other => panic!("expected Tensors(Io), got {other:?}"),
    }
    // d_model disagreeing with the checkpoint.
    let tmp = llama_scope_with(|c| {
        c.insert("d_model".into(), json!(17));
    });
    match load_err(tmp.path()) {
        Error::Shape { key, .. } => assert_eq!(key, "encoder.weight"),
        other => panic!("expected Shape, got {other:?}"),
    }
}

#[test]
fn sparsify_unsupported_options_and_missing_k() {
    let edit = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let tmp = copy_fixture("sparsify/layers.1");
        let path = tmp.path().join(sparsify::CONFIG_FILE);
        let mut cfg = read_json(&path);
        f(cfg.as_object_mut().unwrap());
        write_json(&path, &cfg);
        tmp
    };
    let tmp = edit(&|c| {
        c.insert("activation".into(), json!("groupmax"));
    });
    let err = sparsify::load(tmp.path()).unwrap_err();
    match &err {
        Error::Unsupported { what } => assert!(what.contains("`groupmax`"), "{what}"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
    let tmp = edit(&|c| {
        c.insert("transcode".into(), json!(true));
    });
    match sparsify::load(tmp.path()).unwrap_err() {
        Error::Unsupported { what } => assert!(what.contains("transcode"), "{what}"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
    let tmp = edit(&|c| {
        c.remove("k");
    });
    let cfg_path = tmp.path().join(sparsify::CONFIG_FILE);
    assert_config(&sparsify::load(tmp.path()).unwrap_err(), &cfg_path, "`k`");
    let tmp = edit(&|c| {
        c.insert("d_in".into(), json!(15));
    });
    match sparsify::load(tmp.path()).unwrap_err() {
        Error::Shape { key, expected, .. } => {
            assert_eq!(key, "encoder.weight");
            assert_eq!(expected, vec![48, 15]);
        }
        other => panic!("expected Shape, got {other:?}"),
    }
}

/// Rewrites the `.npz` at `path` keeping only the members `keep` accepts.
fn filter_npz(path: &Path, keep: impl Fn(&str) -> bool) {
    let bytes = std::fs::read(path).unwrap();
    let mut archive = zip::ZipArchive::new(Cursor::new(&bytes[..])).unwrap();
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let name = entry.name().to_string();
        if !keep(&name) {
            continue;
        }
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        w.start_file(name, opts).unwrap();
        w.write_all(&data).unwrap();
    }
    std::fs::write(path, w.finish().unwrap().into_inner()).unwrap();
}

#[test]
fn gemma_scope_missing_threshold() {
    let tmp = copy_fixture("gemma_scope");
    let params = tmp.path().join(gemma_scope::PARAMS_FILE);
    filter_npz(&params, |name| name != "threshold.npy");
    let err = load_err(tmp.path());
    match &err {
        Error::MissingTensor { path, key } => {
            assert_eq!(path, &params);
            assert_eq!(key, "threshold");
        }
        other => panic!("expected MissingTensor, got {other:?}"),
    }
    assert_mentions(&err, &["params.npz", "`threshold`"]);
}

// ------------------------------------------------------------------------------------------------
// Running an SAE on bad inputs
// ------------------------------------------------------------------------------------------------

#[test]
fn input_of_the_wrong_width() {
    let sae = standard();
    for width in [0, 15, 17] {
        let x = Array2::<f32>::ones((3, width));
        let errs = [
            sae.encode(x.view()).unwrap_err(),
            sae.encode_sparse(x.view()).unwrap_err(),
            sae.forward(x.view()).unwrap_err(),
            sae.error_term(x.view()).unwrap_err(),
            sae.pre_activations(x.view()).unwrap_err(),
        ];
        for err in errs {
            match &err {
                Error::InputWidth { expected, actual } => {
                    assert_eq!(*expected, 16);
                    assert_eq!(*actual, width);
                }
                other => panic!("width {width}: expected InputWidth, got {other:?}"),
            }
            assert_mentions(&err, &[&format!("input width {width}"), "d_in 16"]);
        }
    }
}

#[test]
fn non_finite_input() {
    let sae = standard();
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut x = Array2::<f32>::zeros((4, 16));
        x[[2, 5]] = bad;
        let flat = 2 * 16 + 5;
        for err in [
            sae.encode(x.view()).unwrap_err(),
            sae.encode_sparse(x.view()).unwrap_err(),
            sae.forward(x.view()).unwrap_err(),
            sae.pre_activations(x.view()).unwrap_err(),
        ] {
            match &err {
                Error::NonFinite { key, index } => {
                    assert_eq!(key, "input");
                    assert_eq!(*index, flat);
                }
                other => panic!("{bad}: expected NonFinite, got {other:?}"),
            }
            assert_mentions(&err, &["`input`", &format!("index {flat}")]);
        }
    }
}

#[test]
fn feature_index_out_of_range() {
    let sae = standard();
    let d_sae = sae.d_sae();
    assert!(sae.feature_direction(d_sae - 1).is_ok());
    for i in [d_sae, d_sae + 1, usize::MAX] {
        for err in [
            sae.feature_direction(i).unwrap_err(),
            sae.encoder_direction(i).unwrap_err(),
        ] {
            match &err {
                Error::FeatureOutOfRange { index, d_sae: d } => {
                    assert_eq!(*index, i);
                    assert_eq!(*d, d_sae);
                }
                other => panic!("expected FeatureOutOfRange, got {other:?}"),
            }
            assert_mentions(
                &err,
                &[&format!("feature {i}"), &format!("d_sae = {d_sae}")],
            );
        }
    }
    let codes = sae.encode_sparse(Array2::ones((2, 16)).view()).unwrap();
    assert!(matches!(
        codes.feature_column(d_sae).unwrap_err(),
        Error::FeatureOutOfRange { index, .. } if index == d_sae
    ));
}

#[test]
fn decode_with_the_wrong_number_of_columns() {
    let sae = standard();
    for cols in [0, 47, 49] {
        let acts = Array2::<f32>::ones((3, cols));
        let err = sae.decode(acts.view()).unwrap_err();
        match &err {
            Error::Shape {
                key,
                expected,
                actual,
            } => {
                assert_eq!(key, "feature_acts");
                assert_eq!(expected, &[3, 48]);
                assert_eq!(actual, &[3, cols]);
            }
            other => panic!("expected Shape, got {other:?}"),
        }
        assert_mentions(&err, &["feature_acts", &format!("[3, {cols}]")]);
    }
    // Non-finite activations, on both the dense and the sparse decode path.
    let mut dense = Array2::<f32>::ones((2, 48));
    dense[[1, 3]] = f32::NAN;
    let mut sparse = Array2::<f32>::zeros((2, 48));
    sparse[[1, 3]] = f32::INFINITY;
    for acts in [dense, sparse] {
        match sae.decode(acts.view()).unwrap_err() {
            Error::NonFinite { key, index } => {
                assert_eq!(key, "feature_acts");
                assert_eq!(index, 48 + 3);
            }
            other => panic!("expected NonFinite, got {other:?}"),
        }
    }
}

#[test]
fn sparse_codes_from_bad_rows() {
    let err = SparseCodes::from_rows(8, [(&[1u32, 8][..], &[1.0f32, 2.0][..])]).unwrap_err();
    match &err {
        Error::FeatureOutOfRange { index, d_sae } => {
            assert_eq!((*index, *d_sae), (8, 8));
        }
        other => panic!("expected FeatureOutOfRange, got {other:?}"),
    }
    assert_mentions(&err, &["feature 8", "d_sae = 8"]);
    let err = SparseCodes::from_rows(8, [(&[u32::MAX][..], &[1.0f32][..])]).unwrap_err();
    assert!(matches!(err, Error::FeatureOutOfRange { index, .. } if index == u32::MAX as usize));
    match SparseCodes::from_rows(8, [(&[1u32, 2][..], &[1.0f32][..])]).unwrap_err() {
        Error::Shape {
            key,
            expected,
            actual,
        } => {
            assert_eq!(key, "values");
            assert_eq!((expected, actual), (vec![2], vec![1]));
        }
        other => panic!("expected Shape, got {other:?}"),
    }
    let rows: [(&[u32], &[f32]); 2] = [(&[0, 1], &[1.0, 2.0]), (&[3], &[f32::NAN])];
    match SparseCodes::from_rows(8, rows).unwrap_err() {
        Error::NonFinite { key, index } => {
            assert_eq!(key, "values");
            assert_eq!(index, 2);
        }
        other => panic!("expected NonFinite, got {other:?}"),
    }
    match SparseCodes::from_dense(array![[0.0, f32::NEG_INFINITY]].view()).unwrap_err() {
        Error::NonFinite { key, index } => assert_eq!((key.as_str(), index), ("feature_acts", 1)),
        other => panic!("expected NonFinite, got {other:?}"),
    }
}

#[test]
fn duplicate_features_in_a_row_are_rejected_and_rows_are_sorted() {
    let err =
        SparseCodes::from_rows(4, [(&[2u32, 0, 2][..], &[1.0f32, 2.0, 5.0][..])]).unwrap_err();
    assert!(
        matches!(err, Error::DuplicateFeature { row: 0, index: 2 }),
        "{err}"
    );
    assert_mentions(&err, &["feature 2 twice"]);
    let codes = SparseCodes::from_rows(4, [(&[3u32, 1][..], &[1.0f32, 2.0][..])]).unwrap();
    assert_eq!(codes.row(0), (&[1u32, 3][..], &[2.0f32, 1.0][..]));
}

#[test]
fn folding_a_constant_scale_into_a_per_token_normalisation_is_refused() {
    for rel in [
        "saelens/standard_layer_norm",
        "saelens/standard_constant_norm",
    ] {
        let mut sae = interp_sae::load(&fixture(rel)).unwrap();
        let before = sae.weights().clone();
        let err = sae.fold_activation_scale(2.0).unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{rel}: {err}");
        assert_eq!(sae.weights(), &before);
    }
}

#[test]
fn decode_sparse_with_codes_of_another_sae() {
    let sae = standard();
    for other_d_sae in [1, 47, 49, 4096] {
        let codes = SparseCodes::from_rows(other_d_sae, [(&[0u32][..], &[1.0f32][..])]).unwrap();
        let err = sae.decode_sparse(&codes).unwrap_err();
        match &err {
            Error::Shape {
                key,
                expected,
                actual,
            } => {
                assert_eq!(key, "codes");
                assert_eq!((expected[1], actual[1]), (48, other_d_sae));
            }
            other => panic!("d_sae {other_d_sae}: expected Shape, got {other:?}"),
        }
        assert_mentions(&err, &["codes", "48"]);
    }
    // Codes encoded by a bigger SAE.
    let topk = interp_sae::load(&fixture("saelens/topk")).unwrap();
    let x = Array2::<f32>::ones((2, topk.d_in()));
    let codes = topk.encode_sparse(x.view()).unwrap();
    let tiny = tiny_sae(Architecture::Standard, topk.d_in(), 3);
    assert!(tiny.decode_sparse(&codes).is_err());
}

fn tiny_sae(arch: Architecture, d_in: usize, d_sae: usize) -> Sae {
    let w = SaeWeights {
        w_enc: Array2::from_shape_fn((d_in, d_sae), |(i, j)| ((i + 2 * j) % 5) as f32 - 2.0),
        w_dec: Array2::from_shape_fn((d_sae, d_in), |(i, j)| ((3 * i + j) % 7) as f32 - 3.0),
        b_enc: Array1::zeros(d_sae),
        b_dec: Array1::zeros(d_in),
        threshold: None,
        gated: None,
    };
    Sae::new(SaeConfig::new(arch, d_in, d_sae), w).unwrap()
}

#[test]
fn fold_decoder_norms_of_topk_without_rescale_is_unsupported() {
    let mut sae = interp_sae::load(&fixture("saelens/topk")).unwrap();
    let before = sae.weights().clone();
    let err = sae.fold_decoder_norms().unwrap_err();
    match &err {
        Error::Unsupported { what } => assert!(what.contains("TopK"), "{what}"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
    assert_mentions(&err, &["unsupported", "decoder norms", "TopK"]);
    // A refused fold changes nothing.
    assert_eq!(sae.weights(), &before);
    assert!(matches!(
        sae.config().architecture,
        Architecture::TopK {
            rescale_acts_by_decoder_norm: false,
            ..
        }
    ));
    let mut built = tiny_sae(
        Architecture::TopK {
            k: 2,
            rescale_acts_by_decoder_norm: false,
        },
        4,
        6,
    );
    assert!(matches!(
        built.fold_decoder_norms(),
        Err(Error::Unsupported { .. })
    ));
}

#[test]
fn fold_activation_scale_refuses_non_positive_or_non_finite_scales() {
    let mut sae = standard();
    let before = sae.weights().clone();
    for s in [0.0, -0.0, -1.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let err = sae.fold_activation_scale(s).unwrap_err();
        match &err {
            Error::NonFinite { key, .. } => assert_eq!(key, "activation scale"),
            other => panic!("scale {s}: expected NonFinite, got {other:?}"),
        }
        assert_mentions(&err, &["activation scale"]);
        assert_eq!(sae.weights(), &before, "scale {s} changed the weights");
    }
}

// ------------------------------------------------------------------------------------------------
// Building an SAE from inconsistent parts
// ------------------------------------------------------------------------------------------------

#[test]
fn sae_new_rejects_inconsistent_weights() {
    let good = tiny_sae(Architecture::Standard, 4, 6).weights().clone();
    let new = |arch: Architecture, d_in: usize, d_sae: usize, w: SaeWeights| {
        Sae::new(SaeConfig::new(arch, d_in, d_sae), w).unwrap_err()
    };
    assert!(matches!(
        new(Architecture::Standard, 0, 6, good.clone()),
        Error::Config { .. }
    ));
    assert!(matches!(
        new(Architecture::Standard, 4, 0, good.clone()),
        Error::Config { .. }
    ));
    let topk0 = Architecture::TopK {
        k: 0,
        rescale_acts_by_decoder_norm: false,
    };
    match new(topk0, 4, 6, good.clone()) {
        Error::Config { reason, .. } => assert!(reason.contains('k'), "{reason}"),
        other => panic!("expected Config, got {other:?}"),
    }
    match new(Architecture::Standard, 5, 6, good.clone()) {
        Error::Shape { key, .. } => assert_eq!(key, "W_enc"),
        other => panic!("expected Shape, got {other:?}"),
    }
    match new(Architecture::JumpRelu, 4, 6, good.clone()) {
        Error::MissingTensor { key, .. } => assert_eq!(key, "threshold"),
        other => panic!("expected MissingTensor, got {other:?}"),
    }
    match new(Architecture::Gated, 4, 6, good.clone()) {
        Error::MissingTensor { key, .. } => assert_eq!(key, "b_gate"),
        other => panic!("expected MissingTensor, got {other:?}"),
    }
    let mut w = good.clone();
    w.threshold = Some(Array1::zeros(5));
    match new(Architecture::JumpRelu, 4, 6, w) {
        Error::Shape { key, .. } => assert_eq!(key, "threshold"),
        other => panic!("expected Shape, got {other:?}"),
    }
    let mut w = good.clone();
    w.w_dec[[2, 1]] = f32::NAN;
    match new(Architecture::Standard, 4, 6, w) {
        Error::NonFinite { key, index } => assert_eq!((key.as_str(), index), ("W_dec", 9)),
        other => panic!("expected NonFinite, got {other:?}"),
    }
    let mut w = good;
    w.gated = Some(interp_sae::GatedWeights {
        b_gate: Array1::zeros(6),
        b_mag: Array1::zeros(6),
        r_mag: Array1::from_elem(6, f32::INFINITY),
    });
    match new(Architecture::Gated, 4, 6, w) {
        Error::NonFinite { key, index } => assert_eq!((key.as_str(), index), ("r_mag", 0)),
        other => panic!("expected NonFinite, got {other:?}"),
    }
}

/// `formats::load` is the same function as `interp_sae::load`.
#[test]
fn formats_load_matches_the_crate_root() {
    let path = fixture("hostile/evil.pt");
    let a = formats::load(&path).unwrap_err();
    let b = interp_sae::load(&path).unwrap_err();
    assert_eq!(a.to_string(), b.to_string());
}
