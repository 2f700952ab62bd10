//! The streamed pass against a brute-force one: every window run alone through the whole
//! model, every activation kept, the statistics computed directly from them.

use interp_dashboard::stats::exponent_above;
use interp_dashboard::{logit_lens, FeatureData};
use interp_models::{Batch, NameFilter};
use ndarray::Array2;

use super::common::{corpus, options, pass, world, HOOK};

/// Activations `[window][position][feature]` of every window, each run alone.
fn dense_codes(
    model: &interp_models::HookedTransformer<interp_models::Cpu>,
    sae: &interp_sae::Sae,
    data: &FeatureData,
) -> Vec<Array2<f32>> {
    (0..data.n_windows())
        .map(|w| {
            let (_, cache) = model
                .run_with_cache(&Batch::single(data.window(w)), NameFilter::patterns([HOOK]))
                .unwrap();
            let act = cache.get(&HOOK.parse().unwrap()).unwrap();
            let v = act.to_data().convert::<f32>().into_vec::<f32>().unwrap();
            let x = Array2::from_shape_vec((data.context_size, sae.d_in()), v).unwrap();
            sae.encode_sparse(x.view()).unwrap().to_dense()
        })
        .collect()
}

#[test]
fn tops_bands_and_histograms_equal_a_brute_force_pass() {
    let (model, sae) = world();
    let dir = tempfile::tempdir().unwrap();
    let data = pass(&model, &sae, &corpus(dir.path(), 120));
    let opts = options();
    let shape = opts.shape;
    assert_eq!(data.n_windows(), 48);
    assert_eq!(data.features.len(), sae.d_sae());
    let codes = dense_codes(&model, &sae, &data);
    let bos = model.cfg().bos_token_id.or(model.cfg().eos_token_id);
    let counted: usize = (0..data.n_windows())
        .map(|w| data.window(w).iter().filter(|&&t| Some(t) != bos).count())
        .sum();
    assert_eq!(data.counted, counted as u64);

    let mut live = 0;
    for stats in &data.features {
        let f = stats.feature;
        // Every (activation, window, position) where it fired, strongest first, earliest on ties.
        let mut all: Vec<(f32, u32, u32)> = Vec::new();
        for (w, z) in codes.iter().enumerate() {
            for p in 0..data.context_size {
                let a = z[[p, f]];
                if a > 0.0 && Some(data.window(w)[p]) != bos {
                    all.push((a, w as u32, p as u32));
                }
            }
        }
        all.sort_by(|x, y| y.0.total_cmp(&x.0).then((x.1, x.2).cmp(&(y.1, y.2))));
        assert_eq!(stats.fired, all.len() as u64, "feature {f}");
        if all.is_empty() {
            assert!(
                stats.top.is_empty()
                    && stats.bands.is_empty()
                    && stats.histogram.exponent.is_none()
            );
            continue;
        }
        live += 1;
        assert_eq!(stats.max, all[0].0, "feature {f}");
        let sum: f64 = all.iter().map(|x| f64::from(x.0)).sum();
        assert!(
            (stats.sum - sum).abs() <= 1e-6 * sum.max(1.0),
            "feature {f}"
        );

        let want: Vec<_> = all.iter().take(shape.top_k).map(|x| (x.1, x.2)).collect();
        let got: Vec<_> = stats.top.iter().map(|e| (e.window, e.position)).collect();
        assert_eq!(got, want, "top of feature {f}");
        for e in stats
            .top
            .iter()
            .chain(stats.bands.iter().flat_map(|b| &b.examples))
        {
            let z = &codes[e.window as usize];
            assert_eq!(e.activation, z[[e.position as usize, f]]);
            let lo = (e.position as usize).saturating_sub(opts.context);
            let hi = (e.position as usize + opts.context + 1).min(data.context_size);
            assert_eq!(e.context_start as usize, lo);
            let ctx: Vec<f32> = (lo..hi).map(|p| z[[p, f]]).collect();
            assert_eq!(e.context, ctx, "context of feature {f}");
        }

        let e = exponent_above(all[0].0);
        assert_eq!(stats.histogram.exponent, Some(e), "feature {f}");
        let bin = |a: f32, n: usize| (f64::from(a) * n as f64 / 2f64.powi(e)).floor() as usize;
        let mut hist = vec![0u64; shape.bins];
        let mut bands = vec![0u64; shape.bands];
        for x in &all {
            hist[bin(x.0, shape.bins)] += 1;
            bands[bin(x.0, shape.bands)] += 1;
        }
        assert_eq!(stats.histogram.counts, hist, "histogram of feature {f}");
        let width = 2f32.powi(e) / shape.bands as f32;
        let shown = (0..shape.bands)
            .filter(|&b| width * b as f32 <= all[0].0)
            .count();
        assert_eq!(stats.bands.len(), shown, "feature {f}");
        for (i, band) in stats.bands.iter().enumerate() {
            let b = shown - 1 - i;
            assert_eq!(band.seen, bands[b], "band {b} of feature {f}");
            assert_eq!(
                band.examples.len() as u64,
                bands[b].min(shape.per_band as u64)
            );
            for x in &band.examples {
                assert!(x.activation >= band.lower && x.activation < band.upper);
            }
        }
    }
    assert!(
        live > 100,
        "only {live} features fired: the corpus is too small to test much"
    );
}

#[test]
fn a_pass_in_other_batches_over_some_features_finds_the_same() {
    let (model, sae) = world();
    let dir = tempfile::tempdir().unwrap();
    let corpus = corpus(dir.path(), 120);
    let all = pass(&model, &sae, &corpus);
    let some = [3usize, 28, 500, 1023];
    let mut opts = options();
    opts.windows_per_forward = 2;
    opts.features = Some(vec![1023, 28, 3, 500, 28]);
    let part = interp_dashboard::gather_corpus(&model, &sae, &corpus, &opts).unwrap();
    assert_eq!(part.features.len(), some.len());
    for (f, s) in some.iter().zip(&part.features) {
        let full = all.get(*f).unwrap();
        assert_eq!(s.feature, *f);
        assert_eq!(
            (s.fired, s.histogram.counts.clone()),
            (full.fired, full.histogram.counts.clone())
        );
        let pos = |v: &[interp_dashboard::Example]| {
            v.iter().map(|e| (e.window, e.position)).collect::<Vec<_>>()
        };
        assert_eq!(pos(&s.top), pos(&full.top), "feature {f}");
    }
}

#[test]
fn the_logit_lens_equals_a_direct_computation() {
    let (model, sae) = world();
    let features = [0usize, 28, 700];
    let lens = logit_lens(&model, &sae, &features, 5).unwrap().unwrap();
    let w = model.weights();
    let ln = w
        .ln_final
        .w
        .val()
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .unwrap();
    let w_u = w.w_u.val();
    let [d, v] = w_u.dims();
    let w_u = w_u.into_data().convert::<f32>().into_vec::<f32>().unwrap();
    for (l, &f) in lens.iter().zip(&features) {
        let dec = sae.feature_direction(f).unwrap();
        let logits: Vec<f64> = (0..v)
            .map(|t| {
                (0..d)
                    .map(|j| f64::from(dec[j]) * f64::from(ln[j]) * f64::from(w_u[j * v + t]))
                    .sum()
            })
            .collect();
        let mut order: Vec<usize> = (0..v).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        assert_eq!(l.feature, f);
        for (k, &(t, x)) in l.promoted.iter().enumerate() {
            assert_eq!(t as usize, order[k], "promoted #{k} of {f}");
            assert!((f64::from(x) - logits[t as usize]).abs() < 1e-4);
        }
        for (k, &(t, x)) in l.suppressed.iter().enumerate() {
            assert_eq!(t as usize, order[v - 1 - k], "suppressed #{k} of {f}");
            assert!((f64::from(x) - logits[t as usize]).abs() < 1e-4);
        }
    }
}
