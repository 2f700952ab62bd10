//! Malformed checkpoints, configs and inputs give typed errors, never panics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use interp_models::io::SafetensorsFile;
use interp_models::prelude::*;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde_json::Value;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2/tiny-gpt2")
}

/// The fixture's tensors as (dtype, shape, bytes), to rewrite variants of it.
type Tensors = BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>;

fn fixture_tensors() -> Tensors {
    tensors_of(&fixture_dir().join("model.safetensors"))
}

fn tensors_of(path: &Path) -> Tensors {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| (n, (v.dtype(), v.shape().to_vec(), v.data().to_vec())))
        .collect()
}

fn fixture_config() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture_dir().join("config.json")).unwrap())
        .unwrap()
}

/// A model directory with the given config and tensors.
fn write_model(config: &Value, tensors: &Tensors) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, (dt, shape, data))| {
            (
                n.clone(),
                TensorView::new(*dt, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.path().join("model.safetensors")).unwrap();
    dir
}

fn load(dir: &Path) -> Result<HookedTransformer<Cpu>, Error> {
    HookedTransformer::from_dir(dir, &Default::default())
}

#[test]
fn missing_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        load(dir.path()),
        Err(Error::MissingFile {
            file: "config.json",
            ..
        })
    ));
    std::fs::copy(
        fixture_dir().join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(matches!(
        err,
        Error::MissingFile {
            file: "model.safetensors",
            ..
        }
    ));
    assert!(err.to_string().contains("model.safetensors"));
    // Without the `hub` feature a non-directory name is a clear error too.
    assert!(
        HookedTransformer::<Cpu>::from_pretrained("no/such-model", &Default::default()).is_err()
    );
}

#[test]
fn truncated_or_garbage_safetensors() {
    let bytes = std::fs::read(fixture_dir().join("model.safetensors")).unwrap();
    for broken in [
        bytes[..bytes.len() / 2].to_vec(),
        bytes[..5].to_vec(),
        b"not a checkpoint at all".to_vec(),
        vec![],
    ] {
        let dir = write_model(&fixture_config(), &Tensors::new());
        std::fs::write(dir.path().join("model.safetensors"), &broken).unwrap();
        assert!(
            matches!(load(dir.path()), Err(Error::Safetensors { .. })),
            "{} bytes",
            broken.len()
        );
    }
}

#[test]
fn missing_unused_and_misshapen_tensors() {
    let mut t = fixture_tensors();
    t.remove("transformer.h.1.mlp.c_fc.bias");
    let err = load(write_model(&fixture_config(), &t).path()).unwrap_err();
    assert!(
        matches!(&err, Error::MissingTensor { key } if key == "h.1.mlp.c_fc.bias"),
        "{err}"
    );

    let mut t = fixture_tensors();
    t.insert(
        "transformer.h.0.extra".into(),
        (Dtype::F32, vec![1], vec![0; 4]),
    );
    assert!(matches!(
        load(write_model(&fixture_config(), &t).path()),
        Err(Error::UnusedTensors { .. })
    ));

    let mut t = fixture_tensors();
    let e = t.get_mut("transformer.h.0.ln_1.weight").unwrap();
    e.1 = vec![e.1[0] / 2, 2];
    assert!(matches!(
        load(write_model(&fixture_config(), &t).path()),
        Err(Error::ShapeMismatch { .. })
    ));

    let mut t = fixture_tensors();
    let e = t.get_mut("transformer.wte.weight").unwrap();
    e.0 = Dtype::I32;
    assert!(matches!(
        load(write_model(&fixture_config(), &t).path()),
        Err(Error::Dtype { .. })
    ));
}

#[test]
fn config_weights_mismatch() {
    let t = fixture_tensors();
    let mut cfg = fixture_config();
    cfg["n_embd"] = 64.into();
    assert!(matches!(
        load(write_model(&cfg, &t).path()),
        Err(Error::ShapeMismatch { .. })
    ));
    let mut cfg = fixture_config();
    cfg["n_layer"] = 3.into();
    assert!(matches!(
        load(write_model(&cfg, &t).path()),
        Err(Error::MissingTensor { .. })
    ));
    let mut cfg = fixture_config();
    cfg["n_layer"] = 1.into();
    assert!(matches!(
        load(write_model(&cfg, &t).path()),
        Err(Error::UnusedTensors { .. })
    ));
    let mut cfg = fixture_config();
    cfg["n_head"] = 5.into();
    assert!(matches!(
        load(write_model(&cfg, &t).path()),
        Err(Error::Config { .. })
    ));
    let mut cfg = fixture_config();
    cfg["activation_function"] = "gelu_10".into();
    assert!(matches!(
        load(write_model(&cfg, &t).path()),
        Err(Error::Unsupported { .. })
    ));
    let mut cfg = fixture_config();
    cfg["model_type"] = "mamba".into();
    match load(write_model(&cfg, &t).path()) {
        Err(e @ Error::UnsupportedModelType { .. }) => {
            let msg = e.to_string();
            for family in ["gpt2", "gemma2", "llama", "mistral", "qwen2", "phi"] {
                assert!(msg.contains(family), "{msg}");
            }
        }
        other => panic!("{other:?}"),
    }
    let mut cfg = fixture_config();
    cfg.as_object_mut().unwrap().remove("n_embd");
    assert!(matches!(
        load(write_model(&cfg, &t).path()),
        Err(Error::Config { .. })
    ));
    let dir = write_model(&fixture_config(), &t);
    std::fs::write(dir.path().join("config.json"), "{ not json").unwrap();
    assert!(matches!(load(dir.path()), Err(Error::Config { .. })));
}

#[test]
fn half_precision_checkpoints_load() {
    let t: Tensors = fixture_tensors()
        .into_iter()
        .map(|(n, (_, shape, data))| {
            let halves = data
                .chunks_exact(4)
                .flat_map(|b| {
                    half::bf16::from_f32(f32::from_le_bytes(b.try_into().unwrap())).to_le_bytes()
                })
                .collect();
            (n, (Dtype::BF16, shape, halves))
        })
        .collect();
    let bf16 = load(write_model(&fixture_config(), &t).path()).unwrap();
    let f32 = load(&fixture_dir()).unwrap();
    let tokens = [265u32, 268, 271];
    let a: Vec<f32> = bf16
        .forward(&Batch::single(&tokens))
        .unwrap()
        .into_data()
        .into_vec()
        .unwrap();
    let b: Vec<f32> = f32
        .forward(&Batch::single(&tokens))
        .unwrap()
        .into_data()
        .into_vec()
        .unwrap();
    let d = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(
        d < 0.5 && d > 0.0,
        "bf16 rounding moves logits a little: {d}"
    );
}

#[test]
fn bad_tokens_and_lengths() {
    let m = load(&fixture_dir()).unwrap();
    let d_vocab = m.cfg().d_vocab as u32;
    assert!(matches!(
        m.forward(&Batch::single(&[1, d_vocab, 2])),
        Err(Error::TokenOutOfRange { position: 1, .. })
    ));
    let too_long = vec![1u32; m.cfg().n_ctx + 1];
    assert!(matches!(
        m.forward(&Batch::single(&too_long)),
        Err(Error::SequenceTooLong { .. })
    ));
    assert!(matches!(
        m.forward(&Batch::single(&[])),
        Err(Error::EmptyInput { .. })
    ));
    assert!(matches!(
        m.forward(&Batch::padded(&[], PaddingSide::Right)),
        Err(Error::EmptyInput { .. })
    ));
    let mut kv = KvCache::new(m.cfg().n_layers);
    let n_ctx = m.cfg().n_ctx;
    m.forward_cached(&Batch::single(&vec![1; n_ctx]), &HookSpec::new(), &mut kv)
        .unwrap();
    assert!(matches!(
        m.forward_cached(&Batch::single(&[1]), &HookSpec::new(), &mut kv),
        Err(Error::SequenceTooLong { .. })
    ));
    assert!(matches!(
        m.generate(&[], &GenerateOptions::default(), &HookSpec::new()),
        Err(Error::EmptyInput { .. })
    ));
    // A file that is valid safetensors but has no `tokens` tensor.
    let f = SafetensorsFile::open(&fixture_dir().join("model.safetensors")).unwrap();
    assert!(matches!(
        f.read_i64("tokens"),
        Err(interp_core::Error::MissingTensor { .. })
    ));
}

fn family_model_dir(family: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/families")
        .join(family)
        .join("model")
}

fn family_config(family: &str) -> Value {
    let text = std::fs::read_to_string(family_model_dir(family).join("config.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every family reports bad checkpoints through the same checked reader.
#[test]
fn family_checkpoints_with_bad_tensors_or_configs() {
    let t = tensors_of(&family_model_dir("gemma2").join("model.safetensors"));
    let cfg = family_config("gemma2");
    load(write_model(&cfg, &t).path()).expect("the fixture itself loads");

    let mut missing = t.clone();
    missing.remove("model.layers.1.pre_feedforward_layernorm.weight");
    match load(write_model(&cfg, &missing).path()) {
        Err(Error::MissingTensor { key }) => {
            assert_eq!(key, "model.layers.1.pre_feedforward_layernorm.weight")
        }
        other => panic!("{other:?}"),
    }
    let mut extra = t.clone();
    let norm = t["model.norm.weight"].clone();
    extra.insert("model.layers.0.q_norm.weight".into(), norm);
    match load(write_model(&cfg, &extra).path()) {
        Err(Error::UnusedTensors { keys }) => assert_eq!(keys, ["model.layers.0.q_norm.weight"]),
        other => panic!("{other:?}"),
    }
    let mut wide = cfg.clone();
    wide["intermediate_size"] = (wide["intermediate_size"].as_u64().unwrap() + 1).into();
    assert!(matches!(
        load(write_model(&wide, &t).path()),
        Err(Error::ShapeMismatch { .. })
    ));
    let mut kv = cfg.clone();
    kv["num_key_value_heads"] = 3.into();
    match load(write_model(&kv, &t).path()) {
        Err(e @ Error::Config { .. }) => assert!(e.to_string().contains("num_key_value_heads")),
        other => panic!("{other:?}"),
    }
    // A tensor stored as integers: named, with its dtype.
    let mut ints = t.clone();
    let (_, shape, bytes) = ints["model.norm.weight"].clone();
    let n: usize = shape.iter().product();
    let _ = bytes;
    ints.insert(
        "model.norm.weight".into(),
        (Dtype::I32, shape, vec![0u8; 4 * n]),
    );
    match load(write_model(&cfg, &ints).path()) {
        Err(Error::Dtype { key, dtype }) => {
            assert_eq!(key, "model.norm.weight");
            assert!(dtype.contains("I32"), "{dtype}");
        }
        other => panic!("{other:?}"),
    }
    let mut rope = cfg.clone();
    rope["rope_scaling"] = serde_json::json!({"rope_type": "yarn", "factor": 4.0});
    rope.as_object_mut().unwrap().remove("rope_parameters");
    assert!(matches!(
        load(write_model(&rope, &t).path()),
        Err(Error::Unsupported {
            key: "rope_type",
            ..
        })
    ));
}

#[test]
fn shard_index_naming_a_missing_file() {
    let src = family_model_dir("llama");
    let dir = tempfile::tempdir().unwrap();
    let mut shards = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        std::fs::copy(&path, dir.path().join(&name)).unwrap();
        if name.starts_with("model-") {
            shards.push(name);
        }
    }
    assert!(shards.len() >= 2, "the llama fixture is sharded");
    load(dir.path()).expect("the sharded fixture loads");
    shards.sort();
    std::fs::remove_file(dir.path().join(&shards[1])).unwrap();
    match load(dir.path()) {
        Err(e @ Error::Config { .. }) => assert!(e.to_string().contains(&shards[1]), "{e}"),
        other => panic!("{other:?}"),
    }
    // An index that escapes the directory is refused, not followed.
    let index_path = dir.path().join("model.safetensors.index.json");
    let index = std::fs::read_to_string(&index_path).unwrap();
    std::fs::write(
        &index_path,
        index.replace(&shards[0], "../elsewhere.safetensors"),
    )
    .unwrap();
    assert!(matches!(load(dir.path()), Err(Error::Config { .. })));
    std::fs::write(&index_path, "{not json").unwrap();
    assert!(matches!(load(dir.path()), Err(Error::Config { .. })));
}
