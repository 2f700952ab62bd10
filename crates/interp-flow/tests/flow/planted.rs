//! A synthetic SAE stack with planted chains and module matches: the tables equal a
//! brute-force computation, the graphs are exactly the planted ones, and the thresholds prune
//! where they should.

use std::collections::BTreeSet;

use interp_flow::prelude::*;
use interp_flow::{Edge, Error, MatchMethod};
use interp_sae::{Architecture, Sae, SaeConfig, SaeWeights};
use ndarray::{Array1, Array2};
use proptest::prelude::*;

const D: usize = 128;
const F: usize = 8;
const LAYERS: usize = 4;

/// An SAE at `hook` whose decoder rows are `rows` (encoder = decoder transpose).
fn sae(hook: &str, rows: Array2<f32>) -> Sae {
    let (f, d) = rows.dim();
    let mut cfg = SaeConfig::new(Architecture::Standard, d, f);
    cfg.metadata.hook_name = Some(hook.to_string());
    let w = SaeWeights {
        w_enc: rows.t().to_owned(),
        w_dec: rows,
        b_enc: Array1::zeros(f),
        b_dec: Array1::zeros(d),
        threshold: None,
        gated: None,
    };
    Sae::new(cfg, w).unwrap()
}

/// Every SAE's rows are distinct basis vectors (all cosines 0), scaled by uneven norms;
/// then planted rows of `R_L` are mixes of their predecessors with known coefficients.
struct Planted {
    rows: std::collections::BTreeMap<(usize, Module), Array2<f32>>,
}

/// `(target layer, target feature, [(source, source feature, coefficient)], fresh coefficient)`:
/// the planted row is `Σ c · unit(source row) + fresh · e_new`.
type Plant = (usize, usize, &'static [(Source, usize, f32)], f32);

const PLANTS: &[Plant] = &[
    // 1/res/7 ← 0/res/3 (weak, cut), 1/mlp/6.
    (1, 7, &[(Source::Res, 3, 0.3), (Source::Mlp, 6, 0.6)], 0.5),
    // 2/res/1 ← 1/res/7 (strong), 2/att/0.
    (2, 1, &[(Source::Res, 7, 0.8), (Source::Att, 0, 0.5)], 0.2),
    // 3/res/5 ← 2/res/1, 3/mlp/4, 3/att/2 (below t_module).
    (
        3,
        5,
        &[
            (Source::Res, 1, 0.9),
            (Source::Mlp, 4, 0.4),
            (Source::Att, 2, 0.1),
        ],
        0.1,
    ),
    // 3/res/6 ← 2/res/1 too: the chain branches forward.
    (3, 6, &[(Source::Res, 1, 0.7)], 0.6),
    // 0/res/2 ← 0/emb/4.
    (0, 2, &[(Source::Res, 4, 0.95)], 0.1),
];

fn norm_of(c: &[(Source, usize, f32)], fresh: f32) -> f32 {
    (c.iter().map(|x| x.2 * x.2).sum::<f32>() + fresh * fresh).sqrt()
}

impl Planted {
    fn new() -> Self {
        let mut next = 0;
        let mut basis_rows = |scale0: f32| {
            let mut a = Array2::<f32>::zeros((F, D));
            for i in 0..F {
                a[[i, next]] = scale0 * (1.0 + i as f32 * 0.37);
                next += 1;
            }
            a
        };
        let mut rows = std::collections::BTreeMap::new();
        rows.insert((0, Module::Emb), basis_rows(2.0));
        for l in 0..LAYERS {
            for m in [Module::Att, Module::Mlp, Module::Res] {
                rows.insert((l, m), basis_rows(0.5 + l as f32));
            }
        }
        let mut p = Planted { rows };
        // Plant in layer order so that a chain reads already-planted rows.
        let mut plants = PLANTS.to_vec();
        plants.sort_by_key(|x| x.0);
        for (layer, feature, parts, fresh) in plants {
            let mut v = Array1::<f32>::zeros(D);
            for &(source, j, c) in parts {
                let src = p.rows[&source.slot(layer)].row(j).to_owned();
                let n = src.dot(&src).sqrt();
                v.scaled_add(c / n, &src);
            }
            // The target's own basis vector plays the fresh component.
            let own = p.rows[&(layer, Module::Res)].row(feature).to_owned();
            let n = own.dot(&own).sqrt();
            v.scaled_add(fresh / n, &own);
            // Uneven norm: cosines must not depend on it.
            let v = v * (3.0 + feature as f32);
            p.rows
                .get_mut(&(layer, Module::Res))
                .unwrap()
                .row_mut(feature)
                .assign(&v);
        }
        p
    }

    fn stack(&self) -> SaeStack {
        let mut s = SaeStack::new();
        for (&(l, m), rows) in &self.rows {
            let hook = match m {
                Module::Emb => "blocks.0.hook_resid_pre".to_string(),
                Module::Att => format!("blocks.{l}.hook_attn_out"),
                Module::Mlp => format!("blocks.{l}.hook_mlp_out"),
                Module::Res => format!("blocks.{l}.hook_resid_post"),
            };
            s.insert(format!("{l}/{m}"), sae(&hook, rows.clone()))
                .unwrap();
        }
        s
    }
}

fn cosine(a: ndarray::ArrayView1<'_, f32>, b: ndarray::ArrayView1<'_, f32>) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

fn edge(g: &FlowGraph, source: &str, target: &str) -> Option<f32> {
    let (s, t): (NodeId, NodeId) = (source.parse().unwrap(), target.parse().unwrap());
    g.edges
        .iter()
        .find(|e| e.source == s && e.target == t)
        .map(|e| e.score)
}

fn ids(g: &FlowGraph) -> BTreeSet<String> {
    g.nodes.iter().map(|n| n.id.to_string()).collect()
}

#[test]
fn planted_scores_equal_their_coefficients_and_brute_force() {
    let p = Planted::new();
    let tables = MatchTables::compute(&p.stack(), 3).unwrap();
    for &(layer, feature, parts, fresh) in PLANTS {
        let n = norm_of(parts, fresh);
        for &(source, j, c) in parts {
            let (idx, score) = tables.get(layer, source).unwrap().top1(feature).unwrap();
            assert_eq!(idx, j, "{layer}/res/{feature} ← {source:?}");
            assert!((score - c / n).abs() < 1e-5, "{score} vs {}", c / n);
        }
    }
    // Every entry of every table equals the f64 brute-force cosine of the rows it names,
    // and the top-1 is the brute-force maximum.
    for ((layer, source), t) in tables.iter() {
        let target = &p.rows[&(layer, Module::Res)];
        let pred = &p.rows[&source.slot(layer)];
        for i in 0..F {
            let best = (0..F)
                .map(|j| cosine(target.row(i), pred.row(j)))
                .fold(f64::NEG_INFINITY, f64::max);
            let row: Vec<(usize, f32)> = t.row(i).collect();
            assert!((row[0].1 as f64 - best).abs() < 1e-5);
            for (j, s) in row {
                assert!((s as f64 - cosine(target.row(i), pred.row(j))).abs() < 1e-5);
            }
        }
    }
}

#[test]
fn backward_graph_is_exactly_the_planted_chain_with_pruning() {
    let p = Planted::new();
    let tables = MatchTables::compute(&p.stack(), 1).unwrap();
    let g = FlowGraph::build(
        &tables,
        "3/res/5".parse().unwrap(),
        &GraphOptions::default(),
    )
    .unwrap();
    let expected: BTreeSet<String> = [
        "3/res/5", "2/res/1", "3/mlp/4", "2/att/0", "1/res/7", "1/mlp/6",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    // 3/att/2 (0.1 < t_module) and 0/res/3 (s(R) = 0.3 < t_res) are pruned: the residual
    // chain stops at layer 1.
    assert_eq!(ids(&g), expected);
    assert_eq!(g.edges.len(), 5);
    let n = norm_of(PLANTS[2].2, PLANTS[2].3);
    assert!((edge(&g, "2/res/1", "3/res/5").unwrap() - 0.9 / n).abs() < 1e-5);
    assert!(edge(&g, "3/att/2", "3/res/5").is_none());

    // Lowering the thresholds (layer 1's t_res override, t_module) brings the pruned back.
    let mut opts = GraphOptions::default();
    opts.thresholds.t_module = 0.05;
    opts.thresholds.per_layer.insert(
        1,
        interp_flow::LayerThresholds {
            t_res: Some(0.25),
            t_module: None,
        },
    );
    let g = FlowGraph::build(&tables, "3/res/5".parse().unwrap(), &opts).unwrap();
    assert!(ids(&g).contains("3/att/2"));
    assert!(ids(&g).contains("0/res/3"));
}

#[test]
fn forward_graph_follows_backward_edges_the_other_way_and_branches() {
    let p = Planted::new();
    let tables = MatchTables::compute(&p.stack(), 1).unwrap();
    let opts = GraphOptions {
        direction: FlowDirection::Forward,
        ..GraphOptions::default()
    };
    let g = FlowGraph::build(&tables, "1/res/7".parse().unwrap(), &opts).unwrap();
    // The start's own module predecessors are part of the graph (every residual node gets its
    // module predecessors), its residual predecessor is not (that is backward).
    let expected: BTreeSet<String> = [
        "1/mlp/6", "1/res/7", "2/res/1", "2/att/0", "3/res/5", "3/res/6", "3/mlp/4",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(ids(&g), expected);
    // Forward edges are backward edges: same scores as the backward graph of 3/res/5.
    let back = FlowGraph::build(
        &tables,
        "3/res/5".parse().unwrap(),
        &GraphOptions::default(),
    )
    .unwrap();
    for e in &g.edges {
        if e.target.to_string() != "3/res/6" {
            assert_eq!(
                Some(e.score),
                edge(&back, &e.source.to_string(), &e.target.to_string())
            );
        }
    }
    // Both = union.
    let both = FlowGraph::build(
        &tables,
        "2/res/1".parse().unwrap(),
        &GraphOptions {
            direction: FlowDirection::Both,
            ..GraphOptions::default()
        },
    )
    .unwrap();
    for id in ["1/res/7", "1/mlp/6", "3/res/5", "3/res/6", "2/att/0"] {
        assert!(ids(&both).contains(id), "{id}");
    }
}

#[test]
fn layer_zero_reaches_the_embedding_sae_and_json_round_trips() {
    let p = Planted::new();
    let tables = MatchTables::compute(&p.stack(), 1).unwrap();
    let g = FlowGraph::build(
        &tables,
        "0/res/2".parse().unwrap(),
        &GraphOptions::default(),
    )
    .unwrap();
    assert!(edge(&g, "0/emb/4", "0/res/2").is_some());
    let json = g.to_json();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["nodes"][0]["id"], "0/emb/4");
    assert_eq!(v["nodes"][0]["module"], "emb");
    assert_eq!(v["nodes"][0]["layer"], 0);
    assert_eq!(v["nodes"][0]["feature"], 4);
    assert_eq!(v["edges"][0]["source"], "0/emb/4");
    assert_eq!(v["edges"][0]["target"], "0/res/2");
    assert!(v["edges"][0]["score"].as_f64().unwrap() > 0.9);
    assert_eq!(FlowGraph::from_json(&json).unwrap(), g);
    let _: &Edge = &g.edges[0];
}

#[test]
fn tables_round_trip_through_safetensors_and_permutation_is_one_to_one() {
    let p = Planted::new();
    let stack = p.stack();
    let tables = MatchTables::compute(&stack, 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tables.safetensors");
    tables.save(&path).unwrap();
    assert_eq!(MatchTables::load(&path).unwrap(), tables);

    let perm = MatchTables::compute_with(&stack, 4, MatchMethod::Permutation, &|_, _| {}).unwrap();
    for ((layer, source), t) in perm.iter() {
        let used: Vec<usize> = (0..F).filter_map(|i| t.top1(i).map(|m| m.0)).collect();
        let distinct: BTreeSet<usize> = used.iter().copied().collect();
        assert_eq!(
            used.len(),
            distinct.len(),
            "{layer} {source:?} not one-to-one"
        );
    }
    // The planted matches are kept by the assignment too.
    assert_eq!(perm.get(3, Source::Res).unwrap().top1(5).unwrap().0, 1);
    perm.save(&path).unwrap();
    assert_eq!(MatchTables::load(&path).unwrap(), perm);
}

#[test]
fn bad_input_is_a_typed_error() {
    let p = Planted::new();
    let stack = p.stack();
    let tables = MatchTables::compute(&stack, 1).unwrap();
    let opts = GraphOptions::default();
    // Feature out of range; a layer with no SAE; a module start; a malformed id.
    assert!(matches!(
        FlowGraph::build(&tables, NodeId::res(2, F), &opts),
        Err(Error::FeatureOutOfRange { .. })
    ));
    assert!(matches!(
        FlowGraph::build(&tables, NodeId::res(9, 0), &opts),
        Err(Error::NoSae { .. })
    ));
    assert!(matches!(
        FlowGraph::build(&tables, "2/mlp/1".parse().unwrap(), &opts),
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        "2/res".parse::<NodeId>(),
        Err(Error::BadNodeId { .. })
    ));
    assert!(matches!(
        stack.check_node("1/att/99".parse().unwrap()),
        Err(Error::FeatureOutOfRange { .. })
    ));
    // Thresholds outside [-1, 1].
    for bad in [1.5f32, -1.01, f32::NAN] {
        let mut o = GraphOptions::default();
        o.thresholds.t_res = bad;
        assert!(matches!(
            FlowGraph::build(&tables, NodeId::res(3, 5), &o),
            Err(Error::BadThreshold { .. })
        ));
    }
    let mut o = GraphOptions::default();
    o.thresholds.per_layer.insert(
        2,
        interp_flow::LayerThresholds {
            t_res: None,
            t_module: Some(2.0),
        },
    );
    assert!(matches!(
        FlowGraph::build(&tables, NodeId::res(3, 5), &o),
        Err(Error::BadThreshold { .. })
    ));
    // top_k above the tables' k.
    let o = GraphOptions {
        top_k: 2,
        ..GraphOptions::default()
    };
    assert!(matches!(
        FlowGraph::build(&tables, NodeId::res(3, 5), &o),
        Err(Error::Invalid { .. })
    ));

    // Two SAEs on one hook.
    let mut s = p.stack();
    let dup = sae("blocks.2.hook_mlp_out", Array2::zeros((F, D)));
    assert!(matches!(
        s.insert("again", dup),
        Err(Error::DuplicateHook { .. })
    ));
    // A d_in mismatch within a layer.
    let mut s = SaeStack::new();
    s.insert("r", sae("blocks.1.hook_resid_post", Array2::ones((F, D))))
        .unwrap();
    s.insert("m", sae("blocks.1.hook_mlp_out", Array2::ones((F, D / 2))))
        .unwrap();
    assert!(matches!(s.validate(), Err(Error::WidthMismatch { .. })));
    assert!(matches!(
        MatchTables::compute(&s, 1),
        Err(Error::WidthMismatch { .. })
    ));
    // An SAE on a hook flow does not use, or on no hook.
    let mut s = SaeStack::new();
    assert!(matches!(
        s.insert("q", sae("blocks.1.attn.hook_q", Array2::ones((F, D)))),
        Err(Error::UnusableSae { .. })
    ));
    // An unmapped attn.hook_z SAE.
    s.insert("r", sae("blocks.1.hook_resid_post", Array2::ones((F, D))))
        .unwrap();
    s.insert("z", sae("blocks.1.attn.hook_z", Array2::ones((F, 64))))
        .unwrap();
    assert!(matches!(
        MatchTables::compute(&s, 1),
        Err(Error::UnusableSae { .. })
    ));
    // W_O of the wrong height.
    assert!(matches!(
        s.map_attention_z_with(1, Array2::<f32>::ones((32, D)).view()),
        Err(Error::WidthMismatch { .. })
    ));
    // Malformed tables file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.safetensors");
    std::fs::write(&path, b"not safetensors").unwrap();
    assert!(matches!(
        MatchTables::load(&path),
        Err(Error::Malformed { .. })
    ));
}

#[test]
fn attention_z_decoders_are_matched_after_mapping_through_w_o() {
    // A z-space SAE whose row 3, mapped through W_O, is the residual feature 1/res/0.
    let d_z = 16;
    let mut w_o = Array2::<f32>::zeros((d_z, D));
    for i in 0..d_z {
        w_o[[i, i * 2]] = 1.0 + i as f32;
    }
    let mut z_rows = Array2::<f32>::zeros((F, d_z));
    for i in 0..F {
        z_rows[[i, i]] = 1.0;
    }
    let mut res = Array2::<f32>::zeros((F, D));
    for i in 0..F {
        res[[i, 100 + i]] = 1.0;
    }
    // 1/res/0 = 0.6 · unit(z row 3 · W_O) + 0.8 · own.
    res[[0, 6]] = 0.6;
    res[[0, 100]] = 0.8;
    let mut s = SaeStack::new();
    s.insert("r", sae("blocks.1.hook_resid_post", res)).unwrap();
    s.insert("z", sae("blocks.1.attn.hook_z", z_rows)).unwrap();
    s.map_attention_z_with(1, w_o.view()).unwrap();
    let t = MatchTables::compute(&s, 1).unwrap();
    let (j, score) = t.get(1, Source::Att).unwrap().top1(0).unwrap();
    assert_eq!(j, 3);
    assert!((score - 0.6).abs() < 1e-6);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Tiled top-k tables (tiles smaller than the matrices, uneven edges) equal brute force.
    #[test]
    fn tiled_tables_equal_brute_force(
        f_res in 1usize..40, f_pred in 1usize..40, d in 1usize..12, k in 1usize..5,
        rows in 1usize..9, cols in 1usize..9, seed in 0u64..1000,
    ) {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut rnd = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        let a = Array2::from_shape_fn((f_res, d), |_| rnd());
        let b = Array2::from_shape_fn((f_pred, d), |_| rnd());
        let mut s = SaeStack::new();
        s.insert("r", sae("blocks.1.hook_resid_post", a.clone())).unwrap();
        s.insert("m", sae("blocks.1.hook_mlp_out", b.clone())).unwrap();
        let t = MatchTables::compute_tiled(
            &s, k, MatchMethod::TopK, interp_geometry::TileShape { rows, cols }, &|_, _| {},
        ).unwrap();
        let table = t.get(1, Source::Mlp).unwrap();
        prop_assert_eq!(table.k, k.min(f_pred));
        for i in 0..f_res {
            let mut brute: Vec<f64> = (0..f_pred).map(|j| cosine(a.row(i), b.row(j))).collect();
            brute.sort_by(|x, y| y.partial_cmp(x).unwrap());
            let got: Vec<(usize, f32)> = table.row(i).collect();
            for (r, &(j, s)) in got.iter().enumerate() {
                prop_assert!((s as f64 - brute[r]).abs() < 1e-5);
                prop_assert!((s as f64 - cosine(a.row(i), b.row(j))).abs() < 1e-5);
            }
        }
    }
}
