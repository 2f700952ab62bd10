#![allow(missing_docs)]
//! Feature-flow matching tables and graphs on CPU, Gemma-2-2B-shaped (res and mlp SAEs
//! 16384 × 2304, att SAEs 16384 × 2048 on `attn.hook_z` mapped through a 2048 × 2304 `W_O`),
//! random weights.
//!
//! - `cargo bench --bench flow_tables`: criterion — a backward graph from saved 26-layer tables,
//!   loading those tables, and (`FLOW_BENCH_TABLES=1`) one layer's three top-1 tables.
//! - `FLOW_TABLES_FULL=26 cargo bench --bench flow_tables`: the whole stack once, layer by
//!   layer (per layer: R_L, M_L and A_L are made, R_{L−1} is the previous R_L; nothing else is
//!   kept, so memory is one layer's four SAEs), printing seconds per layer, the total (table
//!   computation only: the `W_O` mapping, normalisation and the tiled GEMMs; making random
//!   weights excluded) and the peak RSS (`VmHWM`). Its torch twin is
//!   `benches/flow_tables_anchor.py` (same shapes and steps).

use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use interp::flow::prelude::*;
use interp::sae::{Architecture, Sae, SaeConfig, SaeWeights};
use interp_core::rng::SplitMix64;
use ndarray::{Array1, Array2};

const F: usize = 16384;
const D: usize = 2304;
const D_Z: usize = 2048;
const LAYERS: usize = 26;

fn uniform(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = SplitMix64::new(seed);
    Array2::from_shape_simple_fn((rows, cols), || {
        (rng.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    })
}

/// A JumpReLU SAE at `hook` with random decoder rows and a zero encoder (matching reads only
/// decoders; the encoder is there because an SAE has one, and counts in the peak RSS).
fn sae(hook: String, d_in: usize, seed: u64) -> Sae {
    let mut cfg = SaeConfig::new(Architecture::JumpRelu, d_in, F);
    cfg.metadata.hook_name = Some(hook);
    let w = SaeWeights {
        w_enc: Array2::zeros((d_in, F)),
        w_dec: uniform(F, d_in, seed),
        b_enc: Array1::zeros(F),
        b_dec: Array1::zeros(d_in),
        threshold: Some(Array1::from_elem(F, 0.1)),
        gated: None,
    };
    Sae::new(cfg, w).expect("valid SAE")
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// One layer's stack (R_{L−1} given), with the attention SAE's decoder mapped through `W_O`
/// inside the timed part.
fn layer_stack(layer: usize, prev: Sae) -> (SaeStack, Array2<f32>) {
    let mut s = SaeStack::new();
    s.insert("prev", prev).unwrap();
    s.insert(
        "res",
        sae(
            format!("blocks.{layer}.hook_resid_post"),
            D,
            3 * layer as u64 + 1,
        ),
    )
    .unwrap();
    s.insert(
        "mlp",
        sae(
            format!("blocks.{layer}.hook_mlp_out"),
            D,
            3 * layer as u64 + 2,
        ),
    )
    .unwrap();
    s.insert(
        "att",
        sae(
            format!("blocks.{layer}.attn.hook_z"),
            D_Z,
            3 * layer as u64 + 3,
        ),
    )
    .unwrap();
    (s, uniform(D_Z, D, 1000 + layer as u64))
}

fn full_run(layers: usize) {
    let mut prev = sae("blocks.0.hook_resid_pre".into(), D, 0);
    let mut total = 0.0;
    for layer in 0..layers {
        let (mut stack, w_o) = layer_stack(layer, prev);
        let t = Instant::now();
        stack.map_attention_z_with(layer, w_o.view()).unwrap();
        let tables = MatchTables::compute(&stack, 1).unwrap();
        let secs = t.elapsed().as_secs_f64();
        total += secs;
        assert_eq!(tables.get(layer, Source::Att).unwrap().rows(), F);
        println!(
            "layer {layer:2}: {secs:6.2} s (3 tables)  peak RSS {:7.0} MiB",
            peak_rss_mib()
        );
        prev = stack.get(layer, Module::Res).unwrap().sae.clone();
    }
    println!(
        "ours: {layers} layers, {total:.1} s in all ({:.2} s/layer), peak RSS {:.0} MiB",
        total / layers as f64,
        peak_rss_mib()
    );
}

/// Tables shaped like a 26-layer 16k stack's, from small random SAEs' indices spread over 16k
/// (the graph walk only reads indices and scores).
fn synthetic_tables(dir: &std::path::Path) -> std::path::PathBuf {
    // Real tables of a small stack, then saved; the walk's cost is per visited row.
    let mut s = SaeStack::new();
    let small = |hook: String, seed| {
        let mut cfg = SaeConfig::new(Architecture::Standard, 64, F);
        cfg.metadata.hook_name = Some(hook);
        let w = SaeWeights {
            w_enc: Array2::zeros((64, F)),
            w_dec: uniform(F, 64, seed),
            b_enc: Array1::zeros(F),
            b_dec: Array1::zeros(64),
            threshold: None,
            gated: None,
        };
        Sae::new(cfg, w).unwrap()
    };
    s.insert("emb", small("blocks.0.hook_resid_pre".into(), 0))
        .unwrap();
    for l in 0..LAYERS {
        for (i, h) in ["hook_resid_post", "hook_mlp_out", "hook_attn_out"]
            .iter()
            .enumerate()
        {
            s.insert(
                format!("{l}{h}"),
                small(format!("blocks.{l}.{h}"), (3 * l + i) as u64 + 1),
            )
            .unwrap();
        }
    }
    let tables = MatchTables::compute(&s, 1).unwrap();
    let path = dir.join("tables.safetensors");
    tables.save(&path).unwrap();
    path
}

fn bench(c: &mut Criterion) {
    if let Ok(n) = std::env::var("FLOW_TABLES_FULL") {
        full_run(n.parse().expect("FLOW_TABLES_FULL = a number of layers"));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = synthetic_tables(dir.path());
    let tables = MatchTables::load(&path).unwrap();
    let mut group = c.benchmark_group("flow");
    group.sample_size(20);
    // Low thresholds so the walk goes all the way down (26 residual steps + modules).
    let opts = GraphOptions {
        thresholds: Thresholds {
            t_res: -1.0,
            t_module: -1.0,
            ..Default::default()
        },
        ..Default::default()
    };
    let g = FlowGraph::build(&tables, NodeId::res(LAYERS - 1, 123), &opts).unwrap();
    assert!(g.nodes.len() > 3 * LAYERS, "{} nodes", g.nodes.len());
    group.bench_function("backward_graph_26_layers_16k", |b| {
        b.iter(|| FlowGraph::build(&tables, NodeId::res(LAYERS - 1, 123), &opts).unwrap())
    });
    let fwd = GraphOptions {
        direction: FlowDirection::Forward,
        ..opts.clone()
    };
    group.bench_function("forward_graph_26_layers_16k", |b| {
        b.iter(|| FlowGraph::build(&tables, NodeId::res(0, 123), &fwd).unwrap())
    });
    group.bench_function("load_tables_26_layers_16k", |b| {
        b.iter(|| MatchTables::load(&path).unwrap())
    });
    if std::env::var("FLOW_BENCH_TABLES").is_ok() {
        group.sample_size(10);
        let (mut stack, w_o) = layer_stack(1, sae("blocks.0.hook_resid_post".into(), D, 0));
        stack.map_attention_z_with(1, w_o.view()).unwrap();
        group.bench_function("one_layer_three_top1_tables_16384x2304", |b| {
            b.iter(|| MatchTables::compute(&stack, 1).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
