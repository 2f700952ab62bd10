//! The CPU fast path (fused LayerNorm, MLP, attention and residual kernels, taken where no hook
//! looks inside a region) against the reference burn path (taken when every hook point is
//! cached), on random models of odd shapes: plain and padded batches, every activation, the
//! KV cache, and partly hooked blocks.

use interp_models::config::{
    Activation as ActFn, AttentionKind, Family, Llama3RopeScaling, Normalization, Positional,
    Rotary,
};
use interp_models::prelude::*;

fn cfg(act_fn: ActFn, inverse_layer_scale: bool) -> ModelConfig {
    ModelConfig {
        n_layers: 3,
        d_model: 30,
        n_heads: 5,
        d_head: 6,
        d_mlp: 77,
        d_vocab: 101,
        n_ctx: 64,
        act_fn,
        eps: 1e-5,
        scale_attn_by_inverse_layer_idx: inverse_layer_scale,
        bos_token_id: Some(0),
        eos_token_id: Some(0),
        ..ModelConfig::gpt2_small()
    }
}

/// Gemma-2's features on an odd shape: grouped KV, rotary, RMSNorm, gated GELU, post-norms,
/// soft caps, local layers with a window shorter than the sequences.
fn gemma_like() -> ModelConfig {
    ModelConfig {
        family: Family::Gemma2,
        n_key_value_heads: Some(1),
        d_head: 8,
        normalization: Normalization::RmsNorm,
        positional: Positional::Rotary(Rotary {
            dim: 8,
            base: 100.0,
            llama3_scaling: None,
        }),
        embed_scale: Some(30f64.sqrt()),
        gated_mlp: true,
        post_norms: true,
        attn_scale: Some(3.0),
        attn_scores_soft_cap: Some(4.0),
        output_logits_soft_cap: Some(6.0),
        sliding_window: Some(5),
        layer_types: vec![
            AttentionKind::Local,
            AttentionKind::Global,
            AttentionKind::Local,
        ],
        ..cfg(ActFn::GeluNew, false)
    }
}

/// Llama 3's features: grouped KV, rotary with llama3 scaling, SiLU-gated MLP.
fn llama_like() -> ModelConfig {
    ModelConfig {
        family: Family::Llama,
        n_heads: 6,
        n_key_value_heads: Some(2),
        d_head: 4,
        normalization: Normalization::RmsNorm,
        positional: Positional::Rotary(Rotary {
            dim: 4,
            base: 500.0,
            llama3_scaling: Some(Llama3RopeScaling {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_context: 16.0,
            }),
        }),
        gated_mlp: true,
        ..cfg(ActFn::Silu, false)
    }
}

/// Phi-2's features: parallel block, partial rotary, LayerNorm.
fn phi_like() -> ModelConfig {
    ModelConfig {
        family: Family::Phi,
        positional: Positional::Rotary(Rotary {
            dim: 4,
            base: 50.0,
            llama3_scaling: None,
        }),
        parallel_attn_mlp: true,
        ..cfg(ActFn::GeluNew, false)
    }
}

fn model_of(cfg: ModelConfig) -> HookedTransformer<Cpu> {
    // Random weights at std 0.02 make every block nearly the identity: scale them up so
    // attention patterns and activations are far from trivial.
    let m = HookedTransformer::<Cpu>::random(cfg, 7, &Default::default());
    let mut w = m.weights().clone();
    for b in &mut w.blocks {
        b.attn.w_qkv = b.attn.w_qkv.clone().map(|t| t * 40.0);
        b.mlp.w_in = b.mlp.w_in.clone().map(|t| t * 30.0);
        if let Some(g) = &mut b.mlp.w_gate {
            *g = g.clone().map(|t| t * 30.0);
        }
        b.ln1.b = b.ln1.b.clone().map(|t| t + 0.3);
    }
    HookedTransformer::new(m.cfg().clone(), w, &Default::default())
}

fn model(act_fn: ActFn, inverse_layer_scale: bool) -> HookedTransformer<Cpu> {
    model_of(cfg(act_fn, inverse_layer_scale))
}

/// Every architecture variant the fast paths must agree with the reference path on.
fn variants() -> Vec<(&'static str, HookedTransformer<Cpu>)> {
    vec![
        ("gpt2 gelu_new", model(ActFn::GeluNew, false)),
        ("gpt2 relu, inverse layer scale", model(ActFn::Relu, true)),
        ("gpt2 exact gelu", model(ActFn::Gelu, false)),
        ("gemma-like", model_of(gemma_like())),
        ("llama-like", model_of(llama_like())),
        ("phi-like", model_of(phi_like())),
    ]
}

fn vals<const D: usize>(t: Tensor<Cpu, D>) -> Vec<f32> {
    t.into_data().into_vec().unwrap()
}

fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: length");
    assert!(a.iter().chain(b).all(|v| !v.is_nan()), "{what}: NaN");
    // Masked scores are -inf on both paths.
    let d = a
        .iter()
        .zip(b)
        .map(|(x, y)| {
            if x == y {
                0.0
            } else {
                (x - y).abs() / y.abs().max(1.0)
            }
        })
        .fold(0.0, f32::max);
    assert!(
        d <= tol,
        "{what}: max relative diff {d} (max |ref| {})",
        b.iter().fold(0f32, |m, v| m.max(v.abs()))
    );
}

fn seqs() -> Vec<Vec<u32>> {
    vec![
        (0..23).map(|i| (i * 37 % 101) as u32).collect(),
        (0..9).map(|i| (i * 11 % 101) as u32).collect(),
        vec![5],
        (0..17).map(|i| (i * 53 % 101) as u32).collect(),
    ]
}

#[test]
fn fused_forward_matches_reference_path() {
    for (act, m) in variants() {
        for batch in [
            Batch::single(&seqs()[0]),
            Batch::padded(&seqs(), PaddingSide::Right),
            Batch::padded(&seqs(), PaddingSide::Left),
        ] {
            let fast = m.forward(&batch).unwrap();
            // Caching every hook point forces the reference path everywhere.
            let (reference, all) = m.run_with_cache(&batch, NameFilter::All).unwrap();
            assert_close(
                &vals(fast),
                &vals(reference),
                1e-4,
                &format!("{act} logits"),
            );
            // Residual hooks only: the blocks' insides stay fused.
            let (_, resid) = m
                .run_with_cache(
                    &batch,
                    NameFilter::patterns(["blocks.*.hook_resid_*", "ln_final.hook_*"]),
                )
                .unwrap();
            let per_block = if m.cfg().parallel_attn_mlp { 2 } else { 3 };
            assert_eq!(resid.len(), 3 * per_block + 2);
            for (point, act_fast) in resid.iter() {
                let act_ref = all.get(point).unwrap();
                assert_close(
                    &act_fast.to_data().into_vec().unwrap(),
                    &act_ref.to_data().into_vec().unwrap(),
                    1e-4,
                    &point.to_string(),
                );
            }
        }
    }
}

#[test]
fn partly_hooked_blocks_match_reference_path() {
    for (name, m) in variants() {
        partly_hooked(name, &m);
    }
}

fn partly_hooked(name: &str, m: &HookedTransformer<Cpu>) {
    let batch = Batch::padded(&seqs(), PaddingSide::Left);
    let (_, all) = m.run_with_cache(&batch, NameFilter::All).unwrap();
    // Each hook alone: the rest of its block stays on the fast path where it can.
    let fired = m.cfg().hook_points();
    for hook in BlockHook::ALL {
        let point = HookPoint::block(1, hook);
        if !fired.contains(&point) {
            continue;
        }
        let (_, one) = m
            .run_with_cache(
                &batch,
                NameFilter::patterns([point.to_string(), "blocks.2.hook_resid_post".into()]),
            )
            .unwrap();
        for p in [point, HookPoint::resid_post(2)] {
            assert_close(
                &one.get(&p).unwrap().to_data().into_vec().unwrap(),
                &all.get(&p).unwrap().to_data().into_vec().unwrap(),
                3e-4, // scores of the scaled-up random weights reach the hundreds
                &format!("{name}: {p} with only {point} cached"),
            );
        }
    }
    // Editing z on the fast attention path is the same edit as on the reference path.
    let ablate = |cache_all: bool| {
        let mut spec = HookSpec::new().intervene(
            HookPoint::block(0, BlockHook::AttnZ),
            Some(vec![2]),
            Intervention::Zero,
        );
        if cache_all {
            spec = spec.cache(NameFilter::All);
        }
        vals(m.run(&batch, &spec).unwrap().0)
    };
    assert_close(&ablate(false), &ablate(true), 1e-4, "z ablated");
}

#[test]
fn fused_kv_cache_matches_reference_path() {
    for (name, m) in variants() {
        kv_cache(name, &m);
    }
}

fn kv_cache(name: &str, m: &HookedTransformer<Cpu>) {
    let seqs = seqs();
    let prompt = Batch::padded(&seqs, PaddingSide::Left);
    let step: Vec<Vec<u32>> = (0..seqs.len() as u32).map(|i| vec![i * 3 + 1]).collect();
    let step = Batch::padded(&step, PaddingSide::Left);
    let run = |spec: &HookSpec<Cpu>| {
        let mut kv = KvCache::new(m.cfg().n_layers);
        let (a, _) = m.forward_cached(&prompt, spec, &mut kv).unwrap();
        let (b, _) = m.forward_cached(&step, spec, &mut kv).unwrap();
        (vals(a), vals(b))
    };
    let (fast_a, fast_b) = run(&HookSpec::new());
    let (ref_a, ref_b) = run(&HookSpec::new().cache(NameFilter::All));
    assert_close(&fast_a, &ref_a, 1e-4, &format!("{name}: prompt"));
    assert_close(&fast_b, &ref_b, 1e-4, &format!("{name}: step"));
    // Incremental decoding equals the full forward over prompt and step together.
    let joined: Vec<Vec<u32>> = seqs
        .iter()
        .enumerate()
        .map(|(i, s)| [s.clone(), vec![i as u32 * 3 + 1]].concat())
        .collect();
    let full = m
        .forward(&Batch::padded(&joined, PaddingSide::Left))
        .unwrap();
    let n = full.dims()[1];
    let last = vals(full.narrow(1, n - 1, 1));
    assert_close(
        &fast_b,
        &last,
        1e-4,
        &format!("{name}: step vs full forward"),
    );
}
