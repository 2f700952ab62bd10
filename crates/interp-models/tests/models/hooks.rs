//! Hook semantics, batching, the KV cache and generation with hooks, on the tiny fixture
//! GPT-2 whose plain forward is parity-checked in `parity_gpt2.rs`.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use interp_models::prelude::*;

fn model() -> HookedTransformer<Cpu> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2/tiny-gpt2");
    HookedTransformer::from_dir(&dir, &Default::default()).unwrap()
}

fn vals<const D: usize>(t: Tensor<Cpu, D>) -> Vec<f32> {
    t.into_data().into_vec().unwrap()
}

fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: length");
    let d = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(d <= tol, "{what}: max diff {d}");
}

const PROMPT: [u32; 6] = [265, 268, 271, 258, 271, 23];

#[test]
fn stop_at_layer_returns_the_residual_and_skips_later_blocks() {
    let m = model();
    let batch = Batch::single(&PROMPT);
    let (_, full) = m.run_with_cache(&batch, NameFilter::All).unwrap();
    let spec = HookSpec::new().cache(NameFilter::All).stop_at_layer(1);
    let (out, cache) = m.run(&batch, &spec).unwrap();
    assert_eq!(out.dims(), [1, 6, m.cfg().d_model]);
    let want = full.rank3(&HookPoint::resid_pre(1)).unwrap();
    assert_close(&vals(out), &vals(want), 0.0, "resid_pre(1)");
    assert!(cache.get(&HookPoint::resid_post(0)).is_some());
    assert!(cache.get(&HookPoint::resid_pre(1)).is_none());
    assert!(cache.points().all(|p| p.layer().is_none_or(|l| l < 1)));
}

#[test]
fn hooks_read_edit_and_replace_activations() {
    let m = model();
    let batch = Batch::single(&PROMPT);
    // Reading: a hook sees what the cache records.
    let seen = Rc::new(RefCell::new(None));
    let sink = seen.clone();
    let spec = HookSpec::new()
        .cache(NameFilter::patterns(["blocks.0.hook_resid_mid"]))
        .hook(HookPoint::resid_mid(0), move |act, point| {
            assert_eq!(point.to_string(), "blocks.0.hook_resid_mid");
            *sink.borrow_mut() = Some(act.clone());
            act
        });
    let (_, cache) = m.run(&batch, &spec).unwrap();
    let seen = seen.borrow_mut().take().unwrap().into_rank3().unwrap();
    assert_close(
        &vals(seen),
        &vals(cache.rank3(&HookPoint::resid_mid(0)).unwrap()),
        0.0,
        "seen",
    );

    // Zero-ablating attn_out makes resid_mid equal resid_pre (the cache sees the edit).
    let spec = HookSpec::new()
        .cache(NameFilter::patterns(["blocks.0.hook_resid_*"]))
        .intervene(HookPoint::attn_out(0), None, Intervention::Zero);
    let (_, cache) = m.run(&batch, &spec).unwrap();
    assert_close(
        &vals(cache.rank3(&HookPoint::resid_mid(0)).unwrap()),
        &vals(cache.rank3(&HookPoint::resid_pre(0)).unwrap()),
        0.0,
        "ablated",
    );

    // Replacing the residual stream of one prompt by another's gives the other's logits.
    let other = [23u32, 57, 57, 265, 268, 271];
    let (other_logits, other_cache) = m
        .run_with_cache(
            &Batch::single(&other),
            NameFilter::patterns(["blocks.1.hook_resid_pre"]),
        )
        .unwrap();
    let donor = other_cache.get(&HookPoint::resid_pre(1)).unwrap().clone();
    let spec =
        HookSpec::new().intervene(HookPoint::resid_pre(1), None, Intervention::Replace(donor));
    let patched = m.run_with_hooks(&batch, &spec).unwrap();
    assert_close(&vals(patched), &vals(other_logits), 1e-5, "patched logits");
}

#[test]
fn positional_hooks_touch_only_their_positions() {
    let m = model();
    let batch = Batch::single(&PROMPT);
    // The clean run looks at the same hook points as the edited one, so both take the same
    // code path (the CPU fast path fuses regions without active hooks) and agree bit for bit.
    let (clean, clean_cache) = m
        .run_with_cache(
            &batch,
            NameFilter::patterns([
                "blocks.0.attn.hook_pattern",
                "blocks.0.hook_attn_out",
                "blocks.1.hook_resid_post",
            ]),
        )
        .unwrap();
    let spec = HookSpec::new()
        .cache(NameFilter::patterns([
            "blocks.0.attn.hook_pattern",
            "blocks.1.hook_resid_post",
        ]))
        .intervene(
            HookPoint::attn_out(0),
            Some(vec![3]),
            Intervention::Scale(0.0),
        )
        .hook_at(
            HookPoint::block(0, BlockHook::AttnPattern),
            [4],
            |act, _| {
                assert_eq!(act.dims(), [1, 4, 1, 6], "one query position");
                act
            },
        );
    let (edited, cache) = m.run(&batch, &spec).unwrap();
    let d_vocab = m.cfg().d_vocab;
    let (clean, edited) = (vals(clean), vals(edited));
    // Causality: positions before 3 are untouched, position 3 changes.
    assert_close(
        &edited[..3 * d_vocab],
        &clean[..3 * d_vocab],
        0.0,
        "positions < 3",
    );
    let row = |v: &[f32], p: usize| v[p * d_vocab..(p + 1) * d_vocab].to_vec();
    assert!(row(&edited, 3) != row(&clean, 3));
    assert!(cache
        .get(&HookPoint::block(0, BlockHook::AttnPattern))
        .is_some());
    let d = m.cfg().d_model;
    let resid = vals(cache.rank3(&HookPoint::resid_post(1)).unwrap());
    let clean_resid = vals(clean_cache.rank3(&HookPoint::resid_post(1)).unwrap());
    assert_close(
        &resid[..3 * d],
        &clean_resid[..3 * d],
        0.0,
        "resid before 3",
    );

    // Steering vector at one position.
    let v = Tensor::<Cpu, 1>::ones([d], &Default::default());
    let spec = HookSpec::new()
        .cache(NameFilter::patterns(["blocks.0.hook_resid_pre"]))
        .intervene(
            HookPoint::resid_pre(0),
            Some(vec![2]),
            Intervention::AddVector(v),
        );
    let (_, cache) = m.run(&batch, &spec).unwrap();
    let (_, base) = m
        .run_with_cache(&batch, NameFilter::patterns(["blocks.0.hook_resid_pre"]))
        .unwrap();
    let (a, b) = (
        vals(cache.rank3(&HookPoint::resid_pre(0)).unwrap()),
        vals(base.rank3(&HookPoint::resid_pre(0)).unwrap()),
    );
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        let want = if i / d == 2 { y + 1.0 } else { *y };
        assert!((x - want).abs() < 1e-6, "element {i}");
    }
}

#[test]
fn hook_errors_are_typed() {
    let m = model();
    let batch = Batch::single(&PROMPT);
    let wrong_shape = HookSpec::new().hook(HookPoint::resid_pre(0), |act, _| {
        Activation::Rank3(act.into_rank3().unwrap().narrow(1, 0, 2))
    });
    assert!(matches!(
        m.run(&batch, &wrong_shape),
        Err(Error::HookShape { .. })
    ));
    let far = HookSpec::new().intervene(HookPoint::resid_pre(0), Some(vec![6]), Intervention::Zero);
    assert!(matches!(
        m.run(&batch, &far),
        Err(Error::PositionOutOfRange { position: 6, .. })
    ));
    let layer = HookSpec::new().intervene(HookPoint::resid_pre(2), None, Intervention::Zero);
    assert!(matches!(
        m.run(&batch, &layer),
        Err(Error::HookLayerOutOfRange { .. })
    ));
    let stop = HookSpec::new().stop_at_layer(3);
    assert!(matches!(
        m.run(&batch, &stop),
        Err(Error::HookLayerOutOfRange { .. })
    ));
    let bad_vec = HookSpec::new().intervene(
        HookPoint::resid_pre(0),
        None,
        Intervention::AddVector(Tensor::zeros([3], &Default::default())),
    );
    assert!(matches!(
        m.run(&batch, &bad_vec),
        Err(Error::HookShape { .. })
    ));
}

#[test]
fn padded_batches_match_single_sequences() {
    let m = model();
    let seqs = vec![
        PROMPT.to_vec(),
        vec![23, 57, 265],
        vec![271, 258, 271, 23, 57],
    ];
    let d_vocab = m.cfg().d_vocab;
    for side in [PaddingSide::Right, PaddingSide::Left] {
        let batch = Batch::padded(&seqs, side);
        let logits = m.forward(&batch).unwrap();
        let [n_batch, n_pos, _] = logits.dims();
        assert_eq!([n_batch, n_pos], [3, 6]);
        let all = vals(logits);
        for (row, seq) in seqs.iter().enumerate() {
            let single = vals(m.forward(&Batch::single(seq)).unwrap());
            let pad = n_pos - seq.len();
            let start = match side {
                PaddingSide::Right => 0,
                PaddingSide::Left => pad,
            };
            let off = (row * n_pos + start) * d_vocab;
            let got = &all[off..off + seq.len() * d_vocab];
            assert!(got.iter().all(|x| x.is_finite()));
            assert_close(got, &single, 1e-4, &format!("{side:?} row {row}"));
        }
    }
}

#[test]
fn kv_cache_matches_recompute() {
    let m = model();
    let full = vals(m.forward(&Batch::single(&PROMPT)).unwrap());
    let mut kv = KvCache::new(m.cfg().n_layers);
    let spec = HookSpec::new();
    let (first, _) = m
        .forward_cached(&Batch::single(&PROMPT[..4]), &spec, &mut kv)
        .unwrap();
    let (second, _) = m
        .forward_cached(&Batch::single(&PROMPT[4..]), &spec, &mut kv)
        .unwrap();
    assert_eq!(kv.len(), 6);
    // A failing step (a hook in layer 1 returning the wrong shape) leaves the cache unchanged.
    let bad = HookSpec::new().hook(HookPoint::resid_pre(1), |act, _| {
        Activation::Rank3(act.into_rank3().unwrap().narrow(2, 0, 1))
    });
    let before = kv.clone();
    assert!(m
        .forward_cached(&Batch::single(&[23]), &bad, &mut kv)
        .is_err());
    assert_eq!(kv.len(), before.len());
    let (again, _) = m
        .forward_cached(&Batch::single(&[23]), &spec, &mut kv)
        .unwrap();
    let reference = last_logits_recomputed(&m, &PROMPT, 23);
    assert_close(&vals(again), &reference, 1e-4, "step after a failed step");
    let d_vocab = m.cfg().d_vocab;
    assert_close(&vals(first), &full[..4 * d_vocab], 1e-4, "prefix");
    assert_close(&vals(second), &full[4 * d_vocab..], 1e-4, "suffix");
}

#[test]
fn generation_runs_hooks_every_step_or_prompt_only() {
    let m = model();
    let calls = Rc::new(RefCell::new(Vec::new()));
    let log = calls.clone();
    let spec = HookSpec::new().hook(HookPoint::resid_pre(0), move |act, _| {
        log.borrow_mut().push(act.dims()[1]);
        act
    });
    let opts = GenerateOptions {
        stop_at_eos: false,
        ..GenerateOptions::greedy(4)
    };
    let plain = m.generate(&PROMPT, &opts, &HookSpec::new()).unwrap();
    let hooked = m.generate(&PROMPT, &opts, &spec).unwrap();
    assert_eq!(plain, hooked, "an identity hook changes nothing");
    assert_eq!(
        *calls.borrow(),
        [6, 1, 1, 1],
        "prompt, then one new position per step"
    );

    calls.borrow_mut().clear();
    let prompt_only = GenerateOptions {
        hook_mode: HookMode::PromptOnly,
        ..opts.clone()
    };
    m.generate(&PROMPT, &prompt_only, &spec).unwrap();
    assert_eq!(*calls.borrow(), [6]);

    // A steering edit during generation changes the continuation.
    // (Not a constant vector: LayerNorm's centring would remove it.)
    let d = m.cfg().d_model;
    let alternating: Vec<f32> = (0..d)
        .map(|i| if i % 2 == 0 { 50.0 } else { -50.0 })
        .collect();
    let big = Tensor::<Cpu, 1>::from_floats(alternating.as_slice(), &Default::default());
    let steer =
        HookSpec::new().intervene(HookPoint::resid_pre(1), None, Intervention::AddVector(big));
    assert_ne!(m.generate(&PROMPT, &opts, &steer).unwrap(), plain);

    // Sampling is reproducible per seed.
    let sampled = GenerateOptions {
        temperature: 1.0,
        top_k: Some(20),
        top_p: Some(0.9),
        seed: 5,
        ..opts
    };
    let a = m.generate(&PROMPT, &sampled, &HookSpec::new()).unwrap();
    let b = m.generate(&PROMPT, &sampled, &HookSpec::new()).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.len(), PROMPT.len() + 4);
    // Generation stops at the context length.
    let long = GenerateOptions {
        max_new_tokens: 1000,
        ..GenerateOptions::greedy(0)
    };
    let long = GenerateOptions {
        stop_at_eos: false,
        ..long
    };
    assert_eq!(
        m.generate(&PROMPT, &long, &HookSpec::new()).unwrap().len(),
        m.cfg().n_ctx
    );
}

/// Logits of the last position of `prompt + [next]`, recomputed from scratch.
fn last_logits_recomputed(m: &HookedTransformer<Cpu>, prompt: &[u32], next: u32) -> Vec<f32> {
    let mut all = prompt.to_vec();
    all.push(next);
    let logits = vals(m.forward(&Batch::single(&all)).unwrap());
    logits[(all.len() - 1) * m.cfg().d_vocab..].to_vec()
}

#[test]
fn merged_specs_cache_and_hook_in_one_forward() {
    let m = model();
    let batch = Batch::single(&PROMPT);
    let d = m.cfg().d_model;
    let v = Tensor::<Cpu, 1>::ones([d], &Default::default());
    let steer =
        HookSpec::new().intervene(HookPoint::resid_pre(1), None, Intervention::AddVector(v));
    let cache = HookSpec::new().cache(NameFilter::patterns(["blocks.1.hook_resid_pre"]));
    let both = steer.clone().merge(cache.clone());
    let (logits, cached) = m.run(&batch, &both).unwrap();
    let (_, plain) = m.run(&batch, &cache).unwrap();
    // The cache records the steered activation, and the logits are the steered ones.
    let got = vals(cached.rank3(&HookPoint::resid_pre(1)).unwrap());
    let want: Vec<f32> = vals(plain.rank3(&HookPoint::resid_pre(1)).unwrap())
        .iter()
        .map(|x| x + 1.0)
        .collect();
    assert_close(&got, &want, 1e-6, "merged cache");
    assert_close(
        &vals(logits),
        &vals(m.run_with_hooks(&batch, &steer).unwrap()),
        0.0,
        "logits",
    );
    assert_eq!(both.hooked_points().count(), 1);
    assert_eq!(
        NameFilter::None.union(NameFilter::patterns(["a"])),
        NameFilter::patterns(["a"])
    );
    assert_eq!(
        NameFilter::patterns(["a"]).union(NameFilter::All),
        NameFilter::All
    );
    let stops = HookSpec::<Cpu>::new()
        .stop_at_layer(2)
        .merge(HookSpec::new().stop_at_layer(1));
    assert_eq!(stops.stop_layer(), Some(1));
}

#[test]
fn prompt_and_generated_positions_and_the_hook_context() {
    let m = model();
    let batch = Batch::single(&PROMPT);
    let point = HookPoint::resid_pre(1);
    let zero = |positions| HookSpec::new().intervene_on(point, positions, Intervention::Zero);
    // Outside generation every position is a prompt position and none is generated.
    let plain = vals(m.forward(&batch).unwrap());
    let all = vals(m.run_with_hooks(&batch, &zero(Positions::All)).unwrap());
    let prompt = vals(m.run_with_hooks(&batch, &zero(Positions::Prompt)).unwrap());
    let generated = vals(
        m.run_with_hooks(&batch, &zero(Positions::Generated))
            .unwrap(),
    );
    assert_close(&prompt, &all, 0.0, "prompt = all outside generation");
    assert_close(
        &generated,
        &plain,
        0.0,
        "generated = nothing outside generation",
    );

    // During generation: the context tells offsets, steps and the prompt length; generated-only
    // hooks see exactly the new tokens' positions.
    // (offset, positions, step, prompt length) of each call.
    type Calls = Rc<RefCell<Vec<(usize, usize, usize, Option<usize>)>>>;
    let seen: Calls = Rc::default();
    let log = seen.clone();
    let spec = HookSpec::new().hook_with(point, Positions::Generated, move |act, ctx| {
        log.borrow_mut()
            .push((ctx.offset, act.dims()[1], ctx.step, ctx.prompt_len));
        Ok(act)
    });
    let opts = GenerateOptions {
        stop_at_eos: false,
        ..GenerateOptions::greedy(3)
    };
    m.generate(&PROMPT, &opts, &spec).unwrap();
    assert_eq!(*seen.borrow(), [(6, 1, 1, Some(6)), (7, 1, 2, Some(6))]);
    seen.borrow_mut().clear();
    let recompute = GenerateOptions {
        use_kv_cache: false,
        ..opts.clone()
    };
    m.generate(&PROMPT, &recompute, &spec).unwrap();
    assert_eq!(*seen.borrow(), [(6, 1, 1, Some(6)), (6, 2, 2, Some(6))]);

    // HookMode::GeneratedOnly = every hook restricted to generated positions.
    let add = |positions| {
        let v = Tensor::<Cpu, 1>::ones([m.cfg().d_model], &Default::default()) * 3.0;
        HookSpec::new().intervene_on(point, positions, Intervention::AddVector(v))
    };
    let mode = GenerateOptions {
        hook_mode: HookMode::GeneratedOnly,
        ..opts.clone()
    };
    let a = m.generate(&PROMPT, &mode, &add(Positions::All)).unwrap();
    let b = m
        .generate(&PROMPT, &opts, &add(Positions::Generated))
        .unwrap();
    assert_eq!(a, b);
    let failing = HookSpec::new().hook_with(point, Positions::All, |_, ctx| {
        Err(interp_models::Error::HookFailed {
            hook: ctx.point.to_string(),
            message: "no".into(),
        })
    });
    assert!(matches!(
        m.run_with_hooks(&batch, &failing),
        Err(interp_models::Error::HookFailed { .. })
    ));
}

#[test]
fn batched_generation_is_per_sample_seeded() {
    let m = model();
    let opts = GenerateOptions {
        max_new_tokens: 6,
        temperature: 1.2,
        seed: 9,
        stop_at_eos: false,
        ..Default::default()
    };
    let batch = m
        .generate_batch(&PROMPT, 4, &opts, &HookSpec::new())
        .unwrap();
    assert_eq!(batch.len(), 4);
    for (i, g) in batch.iter().enumerate() {
        let one = GenerateOptions {
            seed: 9 + i as u64,
            ..opts.clone()
        };
        let single = m.generate(&PROMPT, &one, &HookSpec::new()).unwrap();
        assert_eq!(single[PROMPT.len()..], g.tokens[..], "sample {i}");
        assert_eq!(g.log_probs.len(), 6);
    }
    assert!(m
        .generate_batch(&PROMPT, 0, &opts, &HookSpec::new())
        .is_err());
}
