//! Tests of the torch `.pt` and numpy `.npy`/`.npz` readers against fixtures written by Python
//! (`tests/fixtures/torch_pickle/generate.py`), hand-written malicious or malformed pickles, and
//! truncated or corrupted files.

use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use interp_sae::formats::npy::{read_npy_bytes, read_npy_file, read_npz_bytes, read_npz_file};
use interp_sae::formats::torch::{
    read_torch_bytes, read_torch_file, TorchDtype, TorchTensor, TorchValue,
};
use interp_sae::Error;
use serde_json::Value as Json;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_pickle")
}

fn expected() -> Json {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap()
}

// ------------------------------------------------------------------------------------------------
// Parity with what Python saved
// ------------------------------------------------------------------------------------------------

fn u64s(j: &Json) -> Vec<u64> {
    j.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

fn check_tensor(t: &TorchTensor, exp: &Json, ctx: &str) {
    let dtype = match t.dtype {
        TorchDtype::F32 => "F32",
        TorchDtype::F64 => "F64",
        TorchDtype::F16 => "F16",
        TorchDtype::BF16 => "BF16",
        TorchDtype::I64 => "I64",
        TorchDtype::I32 => "I32",
        TorchDtype::I16 => "I16",
        TorchDtype::I8 => "I8",
        TorchDtype::U8 => "U8",
        TorchDtype::Bool => "Bool",
    };
    assert_eq!(dtype, exp["dtype"], "{ctx}: dtype");
    let shape: Vec<usize> = u64s(&exp["shape"]).iter().map(|&d| d as usize).collect();
    assert_eq!(t.shape, shape, "{ctx}: shape");
    assert_eq!(t.numel(), shape.iter().product::<usize>(), "{ctx}: numel");
    let f32_bits: Vec<u64> = t.to_f32().iter().map(|x| u64::from(x.to_bits())).collect();
    assert_eq!(f32_bits, u64s(&exp["f32_bits"]), "{ctx}: f32 values");
    if let Some(bits) = exp.get("f64_bits") {
        let got: Vec<u64> = t.to_f64().iter().map(|x| x.to_bits()).collect();
        assert_eq!(got, u64s(bits), "{ctx}: f64 values");
    }
    match exp.get("ints") {
        Some(ints) => {
            let want: Vec<i64> = ints
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap())
                .collect();
            assert_eq!(t.to_i64(), Some(want), "{ctx}: integer values");
        }
        None => assert_eq!(t.to_i64(), None, "{ctx}: to_i64 of a float tensor"),
    }
}

fn check_value(v: &TorchValue, exp: &Json, ctx: &str) {
    let items = |j: &Json| j.as_array().unwrap().clone();
    match exp["t"].as_str().unwrap() {
        "none" => assert!(v.is_none(), "{ctx}: {v:?} is not None"),
        "bool" => assert_eq!(v.as_bool(), exp["v"].as_bool(), "{ctx}"),
        "int" => assert_eq!(v.as_int(), exp["v"].as_i64(), "{ctx}"),
        "float" => match v {
            TorchValue::Float(f) => assert_eq!(Some(f.to_bits()), exp["bits"].as_u64(), "{ctx}"),
            other => panic!("{ctx}: {other:?} is not a float"),
        },
        "str" => assert_eq!(v.as_str(), exp["v"].as_str(), "{ctx}"),
        "bytes" => {
            let want: Vec<u8> = u64s(&exp["v"]).iter().map(|&b| b as u8).collect();
            assert_eq!(v, &TorchValue::Bytes(want), "{ctx}");
        }
        "tensor" => check_tensor(
            v.as_tensor().unwrap_or_else(|| panic!("{ctx}: {v:?}")),
            exp,
            ctx,
        ),
        kind @ ("list" | "tuple") => {
            let got = match (kind, v) {
                ("list", TorchValue::List(x)) | ("tuple", TorchValue::Tuple(x)) => x,
                _ => panic!("{ctx}: {v:?} is not a {kind}"),
            };
            let want = items(&exp["v"]);
            assert_eq!(got.len(), want.len(), "{ctx}: length");
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                check_value(g, w, &format!("{ctx}[{i}]"));
            }
        }
        "dict" => {
            let got = v
                .as_dict()
                .unwrap_or_else(|| panic!("{ctx}: {v:?} is not a dict"));
            let want = items(&exp["v"]);
            assert_eq!(got.len(), want.len(), "{ctx}: dict length");
            for ((gk, gv), w) in got.iter().zip(&want) {
                let key = format!(
                    "{ctx}.{}",
                    gk.as_str().map_or(format!("{gk:?}"), str::to_string)
                );
                check_value(gk, &w[0], &key);
                check_value(gv, &w[1], &key);
            }
        }
        other => panic!("unknown expectation {other}"),
    }
}

#[test]
fn torch_fixtures_match_python() {
    let exp = expected();
    let files = exp["torch"].as_object().unwrap();
    assert!(files.len() >= 6);
    for (name, want) in files {
        let v = read_torch_file(&fixtures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_value(&v, want, name);
        // The in-memory reader agrees with the file reader.
        assert_eq!(read_torch_bytes(&read(name), Path::new(name)).unwrap(), v);
    }
}

#[test]
fn torch_api_on_a_state_dict() {
    let sd = read_torch_file(&fixtures().join("state_dict.pt")).unwrap();
    let f32t = sd.get("f32").and_then(TorchValue::as_tensor).unwrap();
    assert_eq!(
        (f32t.dtype, f32t.shape.as_slice()),
        (TorchDtype::F32, &[2, 3][..])
    );
    assert_eq!(f32t.raw_bytes().len(), 24);
    // Views of one storage come out materialised in logical order.
    let base = sd.get("base").and_then(TorchValue::as_tensor).unwrap();
    let base_t = sd.get("base_t").and_then(TorchValue::as_tensor).unwrap();
    let (b, bt) = (base.to_f32(), base_t.to_f32());
    assert_eq!(base_t.shape, vec![5, 4]);
    for i in 0..4 {
        for j in 0..5 {
            assert_eq!(b[i * 5 + j].to_bits(), bt[j * 4 + i].to_bits());
        }
    }
    let slice = sd
        .get("base_slice")
        .and_then(TorchValue::as_tensor)
        .unwrap();
    assert_eq!(slice.shape, vec![3, 2]);
    assert_eq!(slice.to_f32()[0].to_bits(), b[6].to_bits());
    assert_eq!(sd.get("tied_a"), sd.get("tied_b"));
    let scalar = sd.get("scalar").and_then(TorchValue::as_tensor).unwrap();
    assert_eq!(
        (scalar.shape.len(), scalar.numel(), scalar.to_f32()),
        (0, 1, vec![3.25])
    );
    let nested = sd.get("nested").unwrap();
    assert_eq!(nested.get("name").and_then(TorchValue::as_str), Some("sae"));
    assert_eq!(nested.get("n").and_then(TorchValue::as_int), Some(3));
    assert_eq!(nested.get("f").and_then(TorchValue::as_float), Some(2.5));
    assert!(nested.get("none").unwrap().is_none());
    assert!(nested.get("missing").is_none());
    let names: Vec<String> = sd.named_tensors().into_iter().map(|(n, _)| n).collect();
    for n in ["f32", "linear.weight", "linear.bias", "param", "base_t"] {
        assert!(names.iter().any(|x| x == n), "{n} not in {names:?}");
    }
    // The OrderedDict state dict of nn.Linear keeps its items (its `_metadata` is dropped).
    let lin = read_torch_file(&fixtures().join("linear.pt")).unwrap();
    let keys: Vec<&str> = lin
        .as_dict()
        .unwrap()
        .iter()
        .filter_map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(keys, ["weight", "bias"]);
    // An OpenAI-style SAE checkpoint.
    let ae = read_torch_file(&fixtures().join("openai_like.pt")).unwrap();
    assert_eq!(
        ae.get("activation").and_then(TorchValue::as_str),
        Some("TopK")
    );
    let enc = ae
        .get("encoder.weight")
        .and_then(TorchValue::as_tensor)
        .unwrap();
    assert_eq!(enc.shape, vec![6, 4]);
    let stats = ae
        .get("stats_last_nonzero")
        .and_then(TorchValue::as_tensor)
        .unwrap();
    assert_eq!(stats.to_i64(), Some((0..6).collect()));
    // The tensor constructor.
    let t = TorchTensor::from_le_bytes(vec![2], TorchDtype::I16, vec![1, 0, 0xff, 0xff]).unwrap();
    assert_eq!(t.to_i64(), Some(vec![1, -1]));
    assert!(TorchTensor::from_le_bytes(vec![3], TorchDtype::I16, vec![0; 4]).is_none());
}

#[test]
fn torch_fixture_errors() {
    let marker = Path::new("/tmp/interp_sae_pwned_marker");
    let _ = std::fs::remove_file(marker);
    let exp = expected();
    for (name, want) in exp["torch_errors"].as_object().unwrap() {
        let err = read_torch_file(&fixtures().join(name)).unwrap_err();
        match (want["kind"].as_str().unwrap(), &err) {
            (
                "ForbiddenGlobal",
                Error::ForbiddenGlobal {
                    module,
                    name: n,
                    path,
                },
            ) => {
                assert_eq!(module, want["module"].as_str().unwrap(), "{name}");
                assert_eq!(n, want["name"].as_str().unwrap(), "{name}");
                assert!(path.ends_with(name));
            }
            ("Unsupported", Error::Unsupported { .. }) => {}
            (kind, _) => panic!("{name}: expected {kind}, got {err}"),
        }
        let again = read_torch_bytes(&read(name), Path::new(name)).unwrap_err();
        assert_eq!(std::mem::discriminant(&again), std::mem::discriminant(&err));
    }
    assert!(!marker.exists(), "the evil pickle ran");
    let legacy = read_torch_file(&fixtures().join("legacy.pt")).unwrap_err();
    assert!(legacy.to_string().contains("legacy"), "{legacy}");
}

#[test]
fn npy_and_npz_fixtures_match_python() {
    let exp = expected();
    let check = |a: &interp_sae::formats::npy::NpyArray, want: &Json, ctx: &str| {
        let shape: Vec<usize> = u64s(&want["shape"]).iter().map(|&d| d as usize).collect();
        assert_eq!(a.shape, shape, "{ctx}: shape");
        assert_eq!(a.numel(), shape.iter().product::<usize>(), "{ctx}");
        let bits: Vec<u64> = a.data.iter().map(|x| u64::from(x.to_bits())).collect();
        assert_eq!(bits, u64s(&want["f32_bits"]), "{ctx}: values");
    };
    for (name, members) in exp["npz"].as_object().unwrap() {
        let got = read_npz_file(&fixtures().join(name)).unwrap();
        let members = members.as_object().unwrap();
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            members.keys().collect::<Vec<_>>(),
            "{name}"
        );
        for (key, want) in members {
            check(&got[key], want, &format!("{name}/{key}"));
        }
        assert_eq!(read_npz_bytes(&read(name), Path::new(name)).unwrap(), got);
    }
    for (name, want) in exp["npy"].as_object().unwrap() {
        let got = read_npy_file(&fixtures().join(name)).unwrap();
        check(&got, want, name);
    }
    for (name, _) in exp["npy_errors"].as_object().unwrap() {
        let err = read_npy_file(&fixtures().join(name)).unwrap_err();
        assert!(matches!(err, Error::Npy { .. }), "{name}: {err}");
    }
    let err = read_npy_file(&fixtures().join("object.npy")).unwrap_err();
    assert!(err.to_string().contains("object"), "{err}");
    // A .pt is not an .npz of arrays, and missing files are I/O errors.
    assert!(matches!(
        read_npz_file(&fixtures().join("state_dict.pt")),
        Err(Error::Npy { .. })
    ));
    assert!(matches!(
        read_npz_file(&fixtures().join("nope.npz")),
        Err(Error::Io { .. })
    ));
    assert!(matches!(
        read_torch_file(&fixtures().join("nope.pt")),
        Err(Error::Io { .. })
    ));
}

// ------------------------------------------------------------------------------------------------
// Hand-written pickles
// ------------------------------------------------------------------------------------------------

/// A torch-style zip around `pickle` with the given storages (`archive/data/<key>`).
fn torch_zip(pickle: &[u8], storages: &[(&str, &[u8])], byteorder: Option<&str>) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    w.start_file("archive/data.pkl", opts).unwrap();
    w.write_all(pickle).unwrap();
    if let Some(order) = byteorder {
        w.start_file("archive/byteorder", opts).unwrap();
        w.write_all(order.as_bytes()).unwrap();
    }
    for (key, data) in storages {
        w.start_file(format!("archive/data/{key}"), opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// `LONG1` with 8 bytes: any i64.
fn int(v: i64) -> Vec<u8> {
    let mut out = vec![0x8a, 8];
    out.extend(v.to_le_bytes());
    out
}

fn str_op(s: &str) -> Vec<u8> {
    let mut out = vec![b'X'];
    out.extend((s.len() as u32).to_le_bytes());
    out.extend(s.as_bytes());
    out
}

fn tuple(items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![b'('];
    for i in items {
        out.extend(i);
    }
    out.push(b't');
    out
}

/// A pickle of `_rebuild_tensor_v2(storage(cls, key, numel), offset, size, stride, False, {})`.
fn tensor_pickle(
    cls: &str,
    key: &str,
    numel: i64,
    offset: i64,
    size: &[i64],
    stride: &[i64],
) -> Vec<u8> {
    let mut p = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n".to_vec();
    let mut pid = str_op("storage");
    pid.extend(format!("ctorch\n{cls}\n").as_bytes());
    pid.extend(str_op(key));
    pid.extend(str_op("cpu"));
    pid.extend(int(numel));
    let mut storage = tuple(&[pid]);
    storage.push(b'Q');
    let ints = |xs: &[i64]| tuple(&xs.iter().map(|&x| int(x)).collect::<Vec<_>>());
    p.extend(tuple(&[
        storage,
        int(offset),
        ints(size),
        ints(stride),
        vec![0x89],
        b"ccollections\nOrderedDict\n)R".to_vec(),
    ]));
    p.extend(b"R.");
    p
}

fn load(pickle: &[u8], storages: &[(&str, &[u8])]) -> Result<TorchValue, Error> {
    read_torch_bytes(
        &torch_zip(pickle, storages, Some("little")),
        Path::new("hand.pt"),
    )
}

fn pickle_reason(r: Result<TorchValue, Error>) -> String {
    match r {
        Err(Error::Pickle { reason, .. }) => reason,
        other => panic!("expected Error::Pickle, got {other:?}"),
    }
}

#[test]
fn hand_written_tensors() {
    let storage: Vec<u8> = (0..6u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let st: &[(&str, &[u8])] = &[("0", &storage)];
    let t = load(
        &tensor_pickle("FloatStorage", "0", 6, 1, &[2, 2], &[1, 3]),
        st,
    )
    .unwrap();
    assert_eq!(t.as_tensor().unwrap().to_f32(), vec![1.0, 4.0, 2.0, 5.0]);
    // Zero strides broadcast; an empty tensor may sit anywhere inside its storage.
    let t = load(
        &tensor_pickle("FloatStorage", "0", 6, 2, &[3, 2], &[0, 1]),
        st,
    )
    .unwrap();
    assert_eq!(
        t.as_tensor().unwrap().to_f32(),
        vec![2.0, 3.0, 2.0, 3.0, 2.0, 3.0]
    );
    let t = load(
        &tensor_pickle("FloatStorage", "0", 6, 6, &[0, 4], &[4, 1]),
        st,
    )
    .unwrap();
    assert_eq!(t.as_tensor().unwrap().numel(), 0);
    for (size, stride) in [([3, 0], [7, 9]), ([0, 3], [1, 5])] {
        let t = load(
            &tensor_pickle("FloatStorage", "0", 6, 0, &size, &stride),
            st,
        )
        .unwrap();
        assert_eq!(
            t.as_tensor().unwrap().shape,
            size.map(|d| d as usize).to_vec()
        );
    }
    // The same bytes as another dtype.
    let t = load(&tensor_pickle("HalfStorage", "0", 12, 0, &[12], &[1]), st).unwrap();
    assert_eq!(t.as_tensor().unwrap().dtype, TorchDtype::F16);

    let cases: &[(&str, Vec<u8>)] = &[
        (
            "exceeds",
            tensor_pickle("FloatStorage", "0", 6, 1, &[2, 2], &[1, 4]),
        ),
        (
            "exceeds",
            tensor_pickle("FloatStorage", "0", 6, 6, &[1], &[1]),
        ),
        (
            "exceeds",
            tensor_pickle("FloatStorage", "0", 6, 7, &[0], &[1]),
        ),
        (
            "overflows",
            tensor_pickle(
                "FloatStorage",
                "0",
                6,
                0,
                &[1 << 40, 1 << 40, 1 << 40],
                &[0, 0, 0],
            ),
        ),
        (
            "exceeds",
            tensor_pickle("FloatStorage", "0", 6, 0, &[2, 2], &[i64::MAX / 2, 1]),
        ),
        (
            "byte limit",
            tensor_pickle("FloatStorage", "0", 6, 0, &[1 << 30, 1 << 20], &[0, 0]),
        ),
        (
            "negative",
            tensor_pickle("FloatStorage", "0", 6, 0, &[-1], &[1]),
        ),
        (
            "negative",
            tensor_pickle("FloatStorage", "0", 6, -1, &[1], &[1]),
        ),
        (
            "negative",
            tensor_pickle("FloatStorage", "0", 6, 0, &[2], &[-1]),
        ),
        (
            "differ in length",
            tensor_pickle("FloatStorage", "0", 6, 0, &[2, 3], &[1]),
        ),
        (
            "missing",
            tensor_pickle("FloatStorage", "7", 6, 0, &[2], &[1]),
        ),
        (
            "pickle says",
            tensor_pickle("FloatStorage", "0", 5, 0, &[2], &[1]),
        ),
        (
            "pickle says",
            tensor_pickle("DoubleStorage", "0", 6, 0, &[2], &[1]),
        ),
        (
            "bad size",
            tensor_pickle("FloatStorage", "0", -6, 0, &[2], &[1]),
        ),
        (
            "bad size",
            tensor_pickle("FloatStorage", "0", i64::MAX, 0, &[2], &[1]),
        ),
        (
            "not a storage type",
            tensor_pickle("float32", "0", 6, 0, &[2], &[1]),
        ),
    ];
    for (want, pickle) in cases {
        let reason = pickle_reason(load(pickle, st));
        assert!(reason.contains(want), "expected {want:?} in {reason:?}");
    }
    let err = load(
        &tensor_pickle("ComplexFloatStorage", "0", 3, 0, &[3], &[1]),
        st,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    let err = load(&tensor_pickle("Evil", "0", 3, 0, &[3], &[1]), st).unwrap_err();
    assert!(
        matches!(err, Error::ForbiddenGlobal { ref name, .. } if name == "Evil"),
        "{err}"
    );
}

#[test]
fn hand_written_pickles() {
    // Forbidden globals are refused at the opcode, before anything could call them, however
    // the rest of the pickle looks.
    for p in [
        &b"\x80\x02cos\nsystem\n"[..],
        b"\x80\x02cbuiltins\neval\n(X\x01\x00\x00\x001tR.",
        b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x06system\x93",
        b"\x80\x02ctorch\nload\n",
        b"\x80\x02ctorch._utils\n_rebuild_tensor\n",
        b"\x80\x02c__builtin__\ngetattr\n",
        b"\x80\x02iposix\nsystem\n",
    ] {
        let err = load(p, &[]).unwrap_err();
        assert!(matches!(err, Error::ForbiddenGlobal { .. }), "{err}");
    }
    let reasons = [
        (&b"\xff"[..], "0xff"),
        (b"\x80\x02R.", "underflow"),
        (b"\x80\x02h\x05.", "memo"),
        (b"\x80\x02j\xff\xff\xff\xff.", "memo"),
        (b"\x80\x02X\xff\xff\xff\xff", "truncated"),
        (b"\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\xff", "truncated"),
        (b"\x80\x02\x8b\xff\xff\xff\x7f", "truncated"),
        (b"\x80\x02\x8b\xff\xff\xff\xff", "negative"),
        (b"\x80\x02", "truncated"),
        (b"\x80\x02t.", "MARK"),
        (b"\x80\x02(Na.", "underflow"),
        (b"\x80\x02NK\x01a.", "not a list"),
        (b"\x80\x02}]K\x01s.", "unhashable"),
        (b"\x80\x02}K\x01s.", "underflow"),
        (b"\x80\x06N.", "protocol"),
        (b"\x80\x02]2a.", "nested"),
        (b"\x80\x02N\x85Q.", "storage"),
        (b"\x80\x02ccollections\nOrderedDict\nK\x01R.", "tuple"),
        (b"\x80\x02ctorch\nFloatStorage\n)R.", "cannot be called"),
        (b"\x80\x02K\x01)R.", "REDUCE"),
        (b"\x80\x02K\x01Nb.", "BUILD"),
        (b"\x80\x02ctorch\nSize\n)\x81.", "NEWOBJ"),
        (b"\x80\x02X\x02\x00\x00\x00\xff\xfe.", "UTF-8"),
        (b"\x80\x02P1\n.", "0x50"),
    ];
    for (p, want) in reasons {
        let reason = pickle_reason(load(p, &[]));
        assert!(
            reason.contains(want),
            "{p:?}: expected {want:?} in {reason:?}"
        );
    }
    // Accepted forms: NEWOBJ OrderedDict, DICT, duplicate keys overwrite in place, POP_MARK,
    // memo by MEMOIZE/LONG_BINPUT/PUT/GET, protocol-2 bytes via _codecs.encode.
    let v = load(
        b"\x80\x04ccollections\nOrderedDict\n)\x81(X\x01\x00\x00\x00aK\x01X\x01\x00\x00\x00bK\x02X\x01\x00\x00\x00aK\x03u.",
        &[],
    )
    .unwrap();
    assert_eq!(
        v,
        TorchValue::Dict(vec![
            (TorchValue::Str("a".into()), TorchValue::Int(3)),
            (TorchValue::Str("b".into()), TorchValue::Int(2)),
        ])
    );
    let v = load(
        b"\x80\x02(K\x01K\x02d\x94r\x05\x00\x00\x00p7\n0(N1g7\nh\x00j\x05\x00\x00\x00\x87.",
        &[],
    )
    .unwrap();
    let one = TorchValue::Dict(vec![(TorchValue::Int(1), TorchValue::Int(2))]);
    assert_eq!(v, TorchValue::Tuple(vec![one.clone(), one.clone(), one]));
    let v = load(
        b"\x80\x02c_codecs\nencode\nX\x02\x00\x00\x00\xc3\xbfX\x06\x00\x00\x00latin1\x86R.",
        &[],
    )
    .unwrap();
    assert_eq!(v, TorchValue::Bytes(vec![0xff]));
    let v = load(b"\x80\x02ctorch\nbfloat16\n.", &[]).unwrap();
    assert_eq!(v.as_str(), Some("torch.bfloat16"));
    // Pathological sharing and nesting fail cleanly.
    let mut p = b"\x80\x02]".to_vec();
    for _ in 0..64 {
        p.extend(b"q\x00(h\x00h\x00l");
    }
    p.push(b'.');
    assert!(pickle_reason(load(&p, &[])).contains("too many"));
    let mut p = b"\x80\x02)".to_vec();
    p.extend(std::iter::repeat_n(0x85u8, 500_000));
    p.push(b'.');
    assert!(pickle_reason(load(&p, &[])).contains("nested"));
}

#[test]
fn archive_level_errors() {
    let p = b"\x80\x02N.";
    assert_eq!(load(p, &[]).unwrap(), TorchValue::None);
    assert_eq!(
        read_torch_bytes(&torch_zip(p, &[], None), Path::new("x")).unwrap(),
        TorchValue::None
    );
    let big = read_torch_bytes(&torch_zip(p, &[], Some("big")), Path::new("x")).unwrap_err();
    assert!(matches!(big, Error::Unsupported { .. }), "{big}");
    let odd = read_torch_bytes(&torch_zip(p, &[], Some("middle")), Path::new("x")).unwrap_err();
    assert!(matches!(odd, Error::Pickle { .. }), "{odd}");
    // No data.pkl.
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    w.start_file(
        "archive/other.pkl",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    let no_pkl = w.finish().unwrap().into_inner();
    assert!(pickle_reason(read_torch_bytes(&no_pkl, Path::new("x"))).contains("data.pkl"));
    // Not a zip at all; a legacy pickle stream.
    assert!(matches!(
        read_torch_bytes(b"hello", Path::new("x")),
        Err(Error::Pickle { .. })
    ));
    assert!(matches!(
        read_torch_bytes(b"", Path::new("x")),
        Err(Error::Pickle { .. })
    ));
    assert!(matches!(
        read_torch_bytes(b"\x80\x02\x8a\x0al", Path::new("x")),
        Err(Error::Unsupported { .. })
    ));
    assert!(matches!(
        read_npz_bytes(b"PK\x03\x04", Path::new("x")),
        Err(Error::Npy { .. })
    ));
}

// ------------------------------------------------------------------------------------------------
// Truncation and corruption never panic
// ------------------------------------------------------------------------------------------------

/// xorshift64*: a small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Clone, Copy)]
enum Reader {
    Torch,
    Npz,
    Npy,
}

fn try_read(reader: Reader, bytes: &[u8]) -> bool {
    let p = Path::new("fuzz");
    match reader {
        Reader::Torch => read_torch_bytes(bytes, p).is_ok(),
        Reader::Npz => read_npz_bytes(bytes, p).is_ok(),
        Reader::Npy => read_npy_bytes(bytes, p).is_ok(),
    }
}

const VALID: &[(&str, Reader)] = &[
    ("state_dict.pt", Reader::Torch),
    ("state_dict_p4.pt", Reader::Torch),
    ("openai_like.pt", Reader::Torch),
    ("arrays.npz", Reader::Npz),
    ("arrays_compressed.npz", Reader::Npz),
    ("v2.npy", Reader::Npy),
    ("big_endian.npy", Reader::Npy),
];

#[test]
fn truncated_files_are_errors() {
    for &(name, reader) in VALID {
        let bytes = read(name);
        assert!(try_read(reader, &bytes), "{name} should load");
        for cut in (0..bytes.len()).step_by(97) {
            assert!(
                !try_read(reader, &bytes[..cut]),
                "{name} cut at {cut} loaded"
            );
        }
        assert!(
            !try_read(reader, &bytes[..bytes.len() - 1]),
            "{name} minus one byte loaded"
        );
    }
}

#[test]
fn corrupted_files_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for case in 0..400 {
        let (name, reader) = VALID[case % VALID.len()];
        let mut bytes = read(name);
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(bytes.len());
            bytes[i] ^= 1 << rng.below(8);
        }
        try_read(reader, &bytes);
    }
}

/// The members of a zip archive, in order.
fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut a = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    (0..a.len())
        .map(|i| {
            let mut f = a.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            (f.name().to_string(), data)
        })
        .collect()
}

/// Corrupts the pickle itself (and re-zips it with valid checksums, so that the pickle machine
/// rather than the zip layer sees the damage): byte flips, byte runs overwritten, splices.
#[test]
fn corrupted_pickles_never_panic() {
    let mut rng = Rng(42);
    let mut loaded = 0;
    for name in ["state_dict.pt", "state_dict_p4.pt", "linear.pt"] {
        let members = unzip(&read(name));
        let pkl = members
            .iter()
            .find(|(n, _)| n.ends_with("/data.pkl"))
            .unwrap()
            .1
            .clone();
        for _ in 0..150 {
            let mut p = pkl.clone();
            match rng.below(3) {
                0 => {
                    for _ in 0..1 + rng.below(3) {
                        let i = rng.below(p.len());
                        p[i] ^= 1 << rng.below(8);
                    }
                }
                1 => {
                    let i = rng.below(p.len());
                    p[i] = rng.next() as u8;
                }
                _ => {
                    let (a, b) = (rng.below(p.len()), rng.below(p.len()));
                    let (a, b) = (a.min(b), a.max(b));
                    let chunk = p[a..b].to_vec();
                    let at = rng.below(p.len());
                    p.splice(at..at, chunk);
                }
            }
            let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored);
            for (n, data) in &members {
                w.start_file(n.as_str(), opts).unwrap();
                w.write_all(if n.ends_with("/data.pkl") { &p } else { data })
                    .unwrap();
            }
            let bytes = w.finish().unwrap().into_inner();
            loaded += usize::from(try_read(Reader::Torch, &bytes));
        }
    }
    // Some mutations (e.g. in a string) still load; most do not.
    assert!(loaded < 450);
}

#[test]
fn corrupted_npy_headers_never_panic() {
    let mut rng = Rng(7);
    let base = read("fortran.npy");
    let header_end = 10 + usize::from(u16::from_le_bytes([base[8], base[9]]));
    for _ in 0..300 {
        let mut b = base.clone();
        let i = 6 + rng.below(header_end - 6);
        b[i] = match rng.below(3) {
            0 => rng.next() as u8,
            1 => b"(),:'\"{}0123456789TFNL"[rng.below(22)],
            _ => b[i] ^ (1 << rng.below(8)),
        };
        try_read(Reader::Npy, &b);
    }
}

/// Many memo references to one large value cannot amplify it without bound.
#[test]
fn memo_amplification_is_bounded() {
    // A 64 KiB string referenced 20 000 times in one list.
    let mut p = b"\x80\x02]X\x00\x00\x01\x00".to_vec();
    p.extend(std::iter::repeat_n(b'x', 1 << 16));
    p.extend(b"q\x00a(");
    for _ in 0..20_000 {
        p.extend(b"h\x00");
    }
    p.extend(b"e.");
    assert!(pickle_reason(load(&p, &[])).contains("too many"));
    // OrderedDict(pairs) rebuilt 20 000 times from one memoized list of 4 000 pairs.
    let mut p = b"\x80\x02ccollections\nOrderedDict\nq\x01](".to_vec();
    for i in 0..4000u16 {
        p.push(b'M');
        p.extend(i.to_le_bytes());
        p.extend(b"N\x86");
    }
    p.extend(b"e\x85q\x00(");
    for _ in 0..20_000 {
        p.extend(b"h\x01h\x00R");
    }
    p.extend(b"l.");
    assert!(pickle_reason(load(&p, &[])).contains("too many"));
    // The same long string used as a dict key over and over (hashing cost).
    let mut p = b"\x80\x02}X\x00\x00\x01\x00".to_vec();
    p.extend(std::iter::repeat_n(b'k', 1 << 16));
    p.extend(b"q\x000(");
    for i in 0..20_000u16 {
        p.extend(b"h\x00M");
        p.extend(i.to_le_bytes());
    }
    p.extend(b"u.");
    let r = pickle_reason(load(&p, &[]));
    assert!(r.contains("too many"), "{r}");
}
