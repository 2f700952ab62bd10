#![allow(missing_docs)]
//! Feature-flow matching tables and graphs on CPU, on a Gemma-2-2B-shaped stack with random
//! weights (`common::FlowShape::GEMMA2_2B`: 26 layers; `R_L` and `M_L` SAEs 16384 × 2304,
//! `A_L` SAEs 16384 × 2048 on `attn.hook_z`, mapped through a 2048 × 2304 `W_O`).
//!
//! **Criterion** (`cargo bench --bench flow_tables`; choose with `FLOW_BENCH=tables,graph,load`,
//! substring match, all by default):
//! - `tables/one_layer_three_top1_<F>x2304`: one layer's call — `A_L`'s decoder mapped through
//!   `W_O`, then the top-1 tables of `R_L` against `R_{L−1}`, `M_L` and `A_L` (decoders
//!   normalised inside). About half a minute an iteration at 16384 on 2 cores, so 10 flat
//!   samples (~5 min); `FLOW_FEATURES=4096` for a quick look.
//! - `graph/backward_26_layers_16384`: `FlowGraph::build` of `25/res/123` with the default
//!   options from saved 26-layer tables, nothing else (goal < 50 ms); `graph/forward_…` the
//!   same forward from `0/res/123`.
//! - `load/tables_26_layers_16384`: `MatchTables::load` of those tables (78 tables of 16384
//!   rows, k = 1).
//!
//!   The tables are real ones — `MatchTables::compute` then `save` — of a 26-layer stack of
//!   16384-feature SAEs with 16-wide random decoders: in 16 dimensions the best of 16384
//!   random cosines is above the default thresholds, so the graphs go down all 26 layers, as a
//!   Gemma feature's often does. Graph and load cost depend on rows and depth, not on the
//!   decoder width. Making them takes ~30 s, so they are kept in cargo's
//!   `CARGO_TARGET_TMPDIR` (`target/tmp/`) and made again only when they do not load.
//!
//! **Full run** (`FLOW_TABLES_FULL=26 cargo bench --bench flow_tables`, no criterion): every
//! top-1 table of the stack, layer by layer, printing per layer the seconds of its call (as
//! above; making the random weights is not timed) and the peak RSS (`VmHWM`), then the total.
//! Its torch twin is `python benches/flow_tables_anchor.py` (same shapes, same weights, same
//! steps); `python benches/paired_anchors.py flow` interleaves one layer's call of each.
//!
//! **How memory stays bounded.** A whole stack is 78 SAEs, 23 GB with encoders, so the full run
//! never builds one: each layer is a `SaeStack` of only the four SAEs its tables read
//! (`common::FlowLayer`: `R_{L−1}`, `R_L`, `M_L`, `A_L` plus `W_O`), dropped before the next
//! layer is made; `R_{L−1}` is made again from its seed, so it is bit for bit the SAE that was
//! `R_L` of the layer before and the tables are those of the whole stack. Inside a layer,
//! `MatchTables::compute` holds the unit rows of `R_L` and of one predecessor and a 1024 × 4096
//! tile of cosines, never an `F × F` matrix. Resident: four decoders (4 × 151 MB), `A_L`
//! mapped (151 MB), two sets of unit rows (2 × 151 MB), the tile: about 1.1 GB. The encoders
//! are zeros that are never written (`FLOW_ENCODERS=zero`, default), so their pages are not
//! resident, as in the torch anchor, which makes no encoders; `FLOW_ENCODERS=random` gives
//! random ones (about 0.6 GB more per layer, what SAEs loaded whole would cost). The peak is
//! reached in the first layer and the same in every layer after it.
//!
//! Other knobs: `FLOW_FEATURES` (features per SAE, default 16384), `FLOW_TABLES_SAVE=DIR`
//! (full run: also save each layer's tables as `DIR/layer<L>.safetensors`, for
//! `flow_tables_anchor.py --check DIR`).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{FlowEncoders, FlowLayer, FlowShape};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use interp::flow::prelude::*;

fn features() -> usize {
    std::env::var("FLOW_FEATURES").map_or(FlowShape::GEMMA2_2B.d_sae, |v| {
        v.parse().expect("FLOW_FEATURES = a number of features")
    })
}

fn selected(name: &str) -> bool {
    match std::env::var("FLOW_BENCH") {
        Ok(f) => f.split(',').any(|c| !c.is_empty() && name.contains(c)),
        Err(_) => true,
    }
}

/// Every top-1 table of a `layers`-layer stack, one layer at a time (see the module docs).
fn full_run(layers: usize) {
    let shape = FlowShape::gemma2_2b(layers, features());
    let encoders = FlowEncoders::from_env();
    let save = std::env::var_os("FLOW_TABLES_SAVE").map(PathBuf::from);
    if let Some(dir) = &save {
        std::fs::create_dir_all(dir).expect("FLOW_TABLES_SAVE: a directory");
    }
    println!(
        "# ours: {layers} layers, SAEs {f} x {d} (att {f} x {z} through W_O {z} x {d}), top-1, \
         encoders {encoders:?}, {} threads",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        f = shape.d_sae,
        d = shape.d_model,
        z = shape.d_z,
    );
    let (mut total, mut made, mut times) = (0.0, 0.0, Vec::new());
    for layer in 0..layers {
        let t = Instant::now();
        let mut l = FlowLayer::new(shape, layer, encoders);
        made += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let tables = l.tables(1);
        let secs = t.elapsed().as_secs_f64();
        total += secs;
        times.push(secs);
        for s in Source::ALL {
            let table = tables.get(layer, s).expect("three tables");
            assert_eq!(table.rows(), shape.d_sae);
            assert!(table.scores.iter().all(|c| c.abs() <= 1.0 + 1e-4));
        }
        if let Some(dir) = &save {
            tables
                .save(&dir.join(format!("layer{layer}.safetensors")))
                .expect("tables saved");
        }
        println!(
            "layer {layer:2}: {secs:6.2} s (3 tables)  peak RSS {:6.0} MiB",
            common::peak_rss_mib()
        );
        drop(l); // before the next layer is made
    }
    times.sort_by(f64::total_cmp);
    println!(
        "ours: {layers} layers, {total:.1} s in all ({:.2} s/layer, median {:.2}, min {:.2}, \
         max {:.2}), peak RSS {:.0} MiB; making the weights (not timed) {made:.1} s",
        total / layers as f64,
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        common::peak_rss_mib()
    );
}

/// Real top-1 tables of a 26-layer stack of 16384-feature SAEs with `d_in`-wide random
/// decoders, saved in `dir` (kept there: made again only when they do not load).
fn graph_tables(dir: &Path, d_in: usize) -> PathBuf {
    let path = dir.join(format!("flow_graph_tables_26x16384_d{d_in}.safetensors"));
    if MatchTables::load(&path).is_ok() {
        return path;
    }
    let layers = FlowShape::GEMMA2_2B.layers;
    let f = FlowShape::GEMMA2_2B.d_sae;
    let sae = |hook: String, seed| common::flow_sae(&hook, d_in, f, seed, FlowEncoders::Zero);
    let mut stack = SaeStack::new();
    stack
        .insert("emb", sae("blocks.0.hook_resid_pre".into(), 7))
        .unwrap();
    for l in 0..layers {
        for (i, hook) in ["hook_resid_post", "hook_mlp_out", "hook_attn_out"]
            .into_iter()
            .enumerate()
        {
            let hook = format!("blocks.{l}.{hook}");
            let seed = 100 + 3 * l as u64 + i as u64;
            stack.insert(hook.clone(), sae(hook, seed)).unwrap();
        }
    }
    let tables = MatchTables::compute(&stack, 1).unwrap();
    tables.save(&path).unwrap();
    path
}

fn bench(c: &mut Criterion) {
    if let Ok(n) = std::env::var("FLOW_TABLES_FULL") {
        full_run(n.parse().expect("FLOW_TABLES_FULL = a number of layers"));
        return;
    }
    if selected("tables") {
        let f = features();
        let mut layer = FlowLayer::new(FlowShape::gemma2_2b(2, f), 1, FlowEncoders::Zero);
        let mut group = c.benchmark_group("tables");
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(1))
            .measurement_time(Duration::from_secs(1));
        group.bench_function(format!("one_layer_three_top1_{f}x2304"), |b| {
            b.iter(|| layer.tables(1))
        });
        group.finish();
    }
    if !(selected("graph") || selected("load")) {
        return;
    }
    let t = Instant::now();
    let path = graph_tables(Path::new(env!("CARGO_TARGET_TMPDIR")), 16);
    let made = t.elapsed();
    let t = Instant::now();
    let tables = MatchTables::load(&path).unwrap();
    let loaded = t.elapsed();
    let opts = GraphOptions::default();
    let start = NodeId::res(25, 123);
    let t = Instant::now();
    let g = FlowGraph::build(&tables, start, &opts).unwrap();
    let built = t.elapsed();
    let depth = g.nodes.iter().filter(|n| n.module == Module::Res).count();
    eprintln!(
        "flow graph tables: 78 tables of 16384 rows ({}, {:.1} MB; made or found in {:.1} s), \
         loaded once in {:.1} ms; backward graph of {start}: {} nodes ({depth} residual), {} \
         edges, first build {:.3} ms",
        path.display(),
        std::fs::metadata(&path).map_or(0.0, |m| m.len() as f64 / 1e6),
        made.as_secs_f64(),
        loaded.as_secs_f64() * 1e3,
        g.nodes.len(),
        g.edges.len(),
        built.as_secs_f64() * 1e3,
    );
    assert!(depth >= 20, "the walk should go down most layers: {depth}");
    if selected("graph") {
        let mut group = c.benchmark_group("graph");
        group.bench_function("backward_26_layers_16384", |b| {
            b.iter(|| FlowGraph::build(&tables, start, &opts).unwrap())
        });
        let fwd = GraphOptions {
            direction: FlowDirection::Forward,
            ..opts.clone()
        };
        group.bench_function("forward_26_layers_16384", |b| {
            b.iter(|| FlowGraph::build(&tables, NodeId::res(0, 123), &fwd).unwrap())
        });
        group.finish();
    }
    if selected("load") {
        let mut group = c.benchmark_group("load");
        group
            .sample_size(20)
            .measurement_time(Duration::from_secs(10));
        group.bench_function("tables_26_layers_16384", |b| {
            b.iter(|| MatchTables::load(&path).unwrap())
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
