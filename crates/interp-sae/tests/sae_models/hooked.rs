//! The `models` feature: SAEs on burn tensors, and attached to a model's hook point, checked
//! against SAELens `HookedSAETransformer` on the tiny GPT-2 fixture.
#![cfg(feature = "models")]

use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData};
use interp_core::SafetensorsFile;
use interp_models::prelude::*;
use interp_sae::hooked::{run_with_sae, sae_hook_point, DeviceSae};
use ndarray::Array2;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../interp-models/tests/fixtures/gpt2/tiny-gpt2")
}

#[track_caller]
fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol + tol * w.abs(),
            "{what}[{i}]: got {g}, reference {w}"
        );
    }
}

fn values<const D: usize>(t: Tensor<Cpu, D>) -> Vec<f32> {
    t.into_data().into_vec().unwrap()
}

#[test]
fn device_sae_matches_reference_for_every_architecture() {
    let device = Default::default();
    for rel in [
        "saelens/standard",
        "saelens/topk",
        "saelens/topk_rescale",
        "saelens/jumprelu",
        "saelens/gated",
        "saelens/standard_layer_norm",
        "saelens/standard_constant_norm",
        "openai_topk",
        "llama_scope",
    ] {
        let dir = fixture(rel);
        let path = if rel == "openai_topk" {
            dir.join("ae.pt")
        } else {
            dir.clone()
        };
        let sae = interp_sae::load(&path).unwrap();
        let expected = SafetensorsFile::open(&dir.join("expected.safetensors")).unwrap();
        let x = expected.read("x").unwrap();
        let xt = Tensor::<Cpu, 2>::from_data(TensorData::new(x.data, x.shape), &device);
        let module = DeviceSae::<Cpu>::new(&sae, &device);
        let (acts, out) = module.forward(xt).unwrap();
        assert_close(
            rel,
            &values(acts),
            &expected.read("feature_acts").unwrap().data,
            1e-5,
        );
        assert_close(
            rel,
            &values(out),
            &expected.read("sae_out").unwrap().data,
            1e-5,
        );
    }
}

#[test]
fn sae_at_hook_matches_hooked_sae_transformer() {
    let device = Default::default();
    let model = HookedTransformer::<Cpu>::from_dir(&model_dir(), &device).unwrap();
    let sae = interp_sae::load(&fixture("model_hook")).unwrap();
    let expected = SafetensorsFile::open(&fixture("model_hook/expected.safetensors")).unwrap();
    let (shape, tokens) = expected.read_i64("tokens").unwrap();
    let seqs: Vec<Vec<u32>> = tokens
        .chunks(shape[1])
        .map(|row| row.iter().map(|&t| t as u32).collect())
        .collect();
    let batch = Batch::padded(&seqs, PaddingSide::Right);
    let module = DeviceSae::new(&sae, &device);

    let observed = run_with_sae(&model, &batch, &module, false).unwrap();
    assert_eq!(observed.hook.to_string(), "blocks.1.hook_resid_pre");
    let acts = expected.read("feature_acts").unwrap().data;
    assert_close("feature_acts", &values(observed.feature_acts), &acts, 1e-4);
    assert_close(
        "sae_out",
        &values(observed.sae_out),
        &expected.read("sae_out").unwrap().data,
        1e-4,
    );
    assert_close(
        "logits",
        &values(observed.logits),
        &expected.read("logits_clean").unwrap().data,
        1e-4,
    );

    let spliced = run_with_sae(&model, &batch, &module, true).unwrap();
    assert_close(
        "logits_with_sae",
        &values(spliced.logits),
        &expected.read("logits_with_sae").unwrap().data,
        1e-4,
    );

    // The CPU kernels agree with the hooked run on the same activations.
    let sae_in = expected.read("sae_in").unwrap();
    let n = sae_in.data.len() / 32;
    let cpu = sae
        .encode(Array2::from_shape_vec((n, 32), sae_in.data).unwrap().view())
        .unwrap();
    assert_close("cpu encode", cpu.as_slice().unwrap(), &acts, 1e-4);
}

#[test]
fn sae_of_the_wrong_width_for_its_hook_is_a_typed_error() {
    let device = Default::default();
    let model = HookedTransformer::<Cpu>::from_dir(&model_dir(), &device).unwrap();
    // d_in 16 SAE whose config names a d_model-32 hook.
    let sae = interp_sae::load(&fixture("saelens/standard")).unwrap();
    let err = sae_hook_point(&model, sae.config()).unwrap_err();
    assert!(
        matches!(&err, interp_sae::Error::HookWidth { d_in: 16, width: 32, hook } if hook == "blocks.1.hook_resid_pre"),
        "{err}"
    );
    let module = DeviceSae::new(&sae, &device);
    let batch = Batch::single(&[0, 1, 2]);
    assert!(matches!(
        run_with_sae(&model, &batch, &module, false),
        Err(interp_sae::Error::HookWidth { .. })
    ));
    // A hook the model does not have is the model's typed error.
    let mut cfg = sae.config().clone();
    cfg.metadata.hook_name = Some("blocks.7.hook_resid_pre".into());
    assert!(matches!(
        sae_hook_point(&model, &cfg),
        Err(interp_sae::Error::Model(_))
    ));
}
