//! Parity with the reference libraries: every fixture under `tests/fixtures/` was written by
//! SAELens / sparsify / numpy / torch (see `fixtures/generate.py`) with inputs `x` and the
//! reference `feature_acts` and `sae_out`. Our loaders must reproduce them within 1e-5.

use std::path::{Path, PathBuf};

use interp_core::SafetensorsFile;
use interp_sae::prelude::*;
use ndarray::{Array2, ArrayView2};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn read2(file: &SafetensorsFile, key: &str) -> Array2<f32> {
    let t = file.read(key).unwrap();
    Array2::from_shape_vec((t.shape[0], t.shape[1]), t.data).unwrap()
}

#[track_caller]
fn assert_close(what: &str, got: ArrayView2<'_, f32>, want: ArrayView2<'_, f32>) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    for ((idx, g), w) in got.indexed_iter().zip(want.iter()) {
        assert!(
            (g - w).abs() <= 1e-5 + 1e-5 * w.abs(),
            "{what}{idx:?}: got {g}, reference {w}"
        );
    }
}

/// Loads the SAE at `sae_path` (format detected) and checks it against `expected.safetensors`
/// in `expected_dir`.
fn check(sae_path: &Path, expected_dir: &Path, format: Format) -> Sae {
    assert_eq!(Format::detect(sae_path).unwrap(), format, "{sae_path:?}");
    let sae = interp_sae::load(sae_path).unwrap_or_else(|e| panic!("{sae_path:?}: {e}"));
    let expected = SafetensorsFile::open(&expected_dir.join("expected.safetensors")).unwrap();
    let x = read2(&expected, "x");
    let acts = read2(&expected, "feature_acts");
    let out = read2(&expected, "sae_out");
    let name = sae_path.display().to_string();
    assert_close(
        &format!("{name} encode"),
        sae.encode(x.view()).unwrap().view(),
        acts.view(),
    );
    let codes = sae.encode_sparse(x.view()).unwrap();
    assert_close(
        &format!("{name} encode_sparse"),
        codes.to_dense().view(),
        acts.view(),
    );
    assert_close(
        &format!("{name} forward"),
        sae.forward(x.view()).unwrap().view(),
        out.view(),
    );
    if sae.config().normalize_activations == Normalization::None {
        // Dense decode of the reference activations (sparse path chosen automatically).
        assert_close(
            &format!("{name} decode"),
            sae.decode(acts.view()).unwrap().view(),
            out.view(),
        );
    }
    sae
}

fn check_dir(rel: &str, format: Format) -> Sae {
    let dir = fixture(rel);
    check(&dir, &dir, format)
}

#[test]
fn saelens_v6_architectures() {
    for (name, arch) in [
        ("standard", "standard"),
        ("topk", "topk"),
        ("topk_rescale", "topk"),
        ("jumprelu", "jumprelu"),
        ("gated", "gated"),
        ("batchtopk", "jumprelu"),
        ("matryoshka", "jumprelu"),
        ("standard_layer_norm", "standard"),
        ("standard_constant_norm", "standard"),
        ("standard_no_bdec", "standard"),
    ] {
        let sae = check_dir(&format!("saelens/{name}"), Format::SaeLens);
        assert_eq!(sae.config().architecture.saelens_name(), arch, "{name}");
        assert_eq!(
            sae.config().metadata.hook_name.as_deref(),
            Some("blocks.1.hook_resid_pre")
        );
    }
}

#[test]
fn saelens_pre_6_flat_configs() {
    let relu = check_dir("saelens/legacy_flat", Format::SaeLens);
    assert_eq!(relu.config().architecture, Architecture::Standard);
    assert!(relu.config().metadata.hook_name.is_some());
    let topk = check_dir("saelens/legacy_topk", Format::SaeLens);
    assert!(matches!(
        topk.config().architecture,
        Architecture::TopK { k: 4, .. }
    ));
}

#[test]
fn saelens_sparsity_file() {
    let s = interp_sae::formats::saelens::load_sparsity(&fixture("saelens/standard"))
        .unwrap()
        .expect("standard fixture ships sparsity.safetensors");
    assert_eq!(s.len(), 48);
    assert!(s.iter().all(|v| *v <= 0.0 && *v >= -10.0));
}

#[test]
fn gemma_scope_npz_stored_and_compressed() {
    for rel in ["gemma_scope", "gemma_scope_compressed"] {
        let dir = fixture(rel);
        check(&dir, &dir, Format::GemmaScope);
        // The file itself is accepted too.
        check(&dir.join("params.npz"), &dir, Format::GemmaScope);
    }
}

#[test]
fn openai_pt_relu_and_topk() {
    for (rel, normalize) in [
        ("openai_relu", Normalization::None),
        ("openai_topk", Normalization::LayerNorm),
    ] {
        let dir = fixture(rel);
        let sae = check(&dir.join("ae.pt"), &dir, Format::OpenAi);
        assert_eq!(sae.config().normalize_activations, normalize);
    }
}

#[test]
fn llama_scope_bf16_with_dataset_norm() {
    let sae = check_dir("llama_scope", Format::LlamaScope);
    assert_eq!(sae.config().architecture, Architecture::JumpRelu);
    assert!(!sae.config().apply_b_dec_to_input);
}

#[test]
fn sparsify_topk() {
    let dir = fixture("sparsify/layers.1");
    let sae = check(&dir, &dir, Format::Sparsify);
    assert_eq!(
        sae.config().metadata.hook_name.as_deref(),
        Some("blocks.1.hook_resid_post")
    );
}

/// Every format converts to SAELens and loads back with identical outputs. With
/// `INTERP_SAE_ROUNDTRIP_OUT=<dir>` the converted directories are kept there, each with an
/// `expected.safetensors` of our outputs, for `generate.py --check-roundtrip` (SAELens loads
/// them and must reproduce our numbers).
#[test]
fn saelens_writer_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let out_root = std::env::var_os("INTERP_SAE_ROUNDTRIP_OUT").map(PathBuf::from);
    for (rel, file) in [
        ("saelens/standard", ""),
        ("saelens/topk_rescale", ""),
        ("saelens/gated", ""),
        ("saelens/batchtopk", ""),
        ("saelens/standard_layer_norm", ""),
        ("saelens/legacy_topk", ""),
        ("gemma_scope", "params.npz"),
        ("openai_topk", "ae.pt"),
        ("llama_scope", ""),
        ("sparsify/layers.1", ""),
    ] {
        let src = fixture(rel).join(file);
        let sae = interp_sae::load(&src).unwrap();
        let dest = out_root
            .as_ref()
            .unwrap_or(&tmp.path().to_path_buf())
            .join(rel.replace('/', "_"));
        interp_sae::formats::saelens::save(&sae, &dest, None).unwrap();
        let back = interp_sae::formats::saelens::load(&dest).unwrap();
        assert_eq!(
            back.config().architecture,
            sae.config().architecture,
            "{rel}"
        );
        assert_eq!(
            back.config().normalize_activations,
            sae.config().normalize_activations
        );
        let x = read2(
            &SafetensorsFile::open(&fixture(rel).join("expected.safetensors")).unwrap(),
            "x",
        );
        let (a, b) = (
            sae.encode(x.view()).unwrap(),
            back.encode(x.view()).unwrap(),
        );
        // Close, not bit-equal: the loaded weights may lie in the other layout (a transposed
        // view against a contiguous copy), and the few-row GEMM kernels sum in an order that
        // depends on it.
        assert_close(
            &format!("{rel}: feature acts after round trip"),
            b.view(),
            a.view(),
        );
        let (ya, yb) = (
            sae.forward(x.view()).unwrap(),
            back.forward(x.view()).unwrap(),
        );
        assert_close(
            &format!("{rel}: reconstruction after round trip"),
            yb.view(),
            ya.view(),
        );
        if out_root.is_some() {
            interp_core::write_safetensors(
                &dest.join("expected.safetensors"),
                [
                    ("x", x.shape(), x.as_slice().unwrap()),
                    ("feature_acts", a.shape(), a.as_slice().unwrap()),
                    ("sae_out", ya.shape(), ya.as_slice().unwrap()),
                ],
            )
            .unwrap();
        }
    }
}
