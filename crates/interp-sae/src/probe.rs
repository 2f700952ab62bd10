//! Which SAE features fire on a word: activations at a word in a prompt (summed over its
//! sub-tokens), averaged over several prompts, and their top features (seed 001 §1.1, §1.2.1).
//!
//! [`top_features`] and [`shared_top_features`] work on any activation vector; the functions
//! that run a model ([`word_feature_acts`], [`mean_word_feature_acts`], and their `_each`
//! forms that read several SAEs from one forward) need the `models` feature.
//!
//! [`plot_activations`] and [`plot_feature_bars`] draw them (PNG / SVG); [`describe_top`] and
//! [`top_json`] write them for reports, [`paired_bars`] lays two of them side by side.
//!
//! ```
//! use interp_sae::probe::{shared_top_features, top_features};
//!
//! let happy = [0.0f32, 3.0, 0.5, 2.0, 0.0];
//! let excited = [1.0f32, 2.5, 0.0, 0.0, 0.0];
//! assert_eq!(top_features(&happy, 2), vec![(1, 3.0), (3, 2.0)]);
//! assert_eq!(shared_top_features(&happy, &excited, 2), vec![1]);
//! ```

use std::path::Path;

use interp_core::plot::{bar_chart, line_chart, Series};

use crate::error::Result;

/// Where the features active on two inputs fire (seed 001 §1.2.2: the features of "happy"
/// against those of "heureux"): on both, on the first only, on the second only. Each list is
/// strongest first (for `both`, by the smaller of the two activations).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Overlap {
    /// `(feature, activation on a, activation on b)` of the features active on both.
    pub both: Vec<(usize, f32, f32)>,
    /// `(feature, activation on a)` of those active on `a` only.
    pub only_a: Vec<(usize, f32)>,
    /// `(feature, activation on b)` of those active on `b` only.
    pub only_b: Vec<(usize, f32)>,
}

impl Overlap {
    /// Mean over the shared features of the smaller of their two activations (0 if none).
    pub fn shared_mean(&self) -> f64 {
        mean_of(self.both.iter().map(|&(_, a, b)| a.min(b)))
    }

    /// Mean activation of the features active on `a` only (0 if none).
    pub fn only_a_mean(&self) -> f64 {
        mean_of(self.only_a.iter().map(|p| p.1))
    }

    /// Mean activation of the features active on `b` only (0 if none).
    pub fn only_b_mean(&self) -> f64 {
        mean_of(self.only_b.iter().map(|p| p.1))
    }
}

fn mean_of(v: impl Iterator<Item = f32>) -> f64 {
    let (n, sum) = v.fold((0usize, 0f64), |(n, s), x| (n + 1, s + f64::from(x)));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// Splits the features active (activation `> threshold`) on `a` or `b` by where they fire.
///
/// # Errors
/// [`crate::Error::Shape`] when `a` and `b` differ in length.
pub fn overlap(a: &[f32], b: &[f32], threshold: f32) -> Result<Overlap> {
    if a.len() != b.len() {
        return Err(crate::Error::Shape {
            key: "overlap: the second activation vector".into(),
            expected: vec![a.len()],
            actual: vec![b.len()],
        });
    }
    let mut o = Overlap {
        both: Vec::new(),
        only_a: Vec::new(),
        only_b: Vec::new(),
    };
    for (f, (&x, &y)) in a.iter().zip(b).enumerate() {
        match (x > threshold, y > threshold) {
            (true, true) => o.both.push((f, x, y)),
            (true, false) => o.only_a.push((f, x)),
            (false, true) => o.only_b.push((f, y)),
            (false, false) => {}
        }
    }
    o.both.sort_by(|p, q| q.1.min(q.2).total_cmp(&p.1.min(p.2)));
    o.only_a.sort_by(|p, q| q.1.total_cmp(&p.1));
    o.only_b.sort_by(|p, q| q.1.total_cmp(&p.1));
    Ok(o)
}

/// The `k` most active features of `acts` (one activation per feature) as `(feature,
/// activation)`, most active first; ties go to the lower index.
///
/// Only features that fire (activation `> 0`) count, so fewer than `k` come back when fewer
/// fire; NaN entries are skipped.
pub fn top_features(acts: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut active: Vec<(usize, f32)> = acts
        .iter()
        .copied()
        .enumerate()
        .filter(|&(_, a)| a > 0.0)
        .collect();
    let by_activation =
        |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if k < active.len() {
        if k == 0 {
            return Vec::new();
        }
        active.select_nth_unstable_by(k - 1, by_activation);
        active.truncate(k);
    }
    active.sort_by(by_activation);
    active
}

/// Features among the top `k` of both `a` and `b` (see [`top_features`]), in `a`'s order:
/// seed 001's features shared by "happy" and "excited".
pub fn shared_top_features(a: &[f32], b: &[f32], k: usize) -> Vec<usize> {
    let top_b: Vec<usize> = top_features(b, k).into_iter().map(|(i, _)| i).collect();
    top_features(a, k)
        .into_iter()
        .map(|(i, _)| i)
        .filter(|i| top_b.contains(i))
        .collect()
}

/// Top features as text for a report: `"28 (4.319), 712 (2.161)"` (activations to three
/// decimals), or `"none fire"` when there are none.
pub fn describe_top(top: &[(usize, f32)]) -> String {
    if top.is_empty() {
        return "none fire".into();
    }
    top.iter()
        .map(|(i, a)| format!("{i} ({a:.3})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The feature ids of top features (`[(28, 4.3), (712, 2.2)]` → `[28, 712]`).
pub fn feature_ids(top: &[(usize, f32)]) -> Vec<usize> {
    top.iter().map(|&(i, _)| i).collect()
}

/// Top features as JSON: `[{"feature": 28, "activation": 4.319}, …]`.
pub fn top_json(top: &[(usize, f32)]) -> serde_json::Value {
    top.iter()
        .map(|&(i, a)| serde_json::json!({"feature": i, "activation": a}))
        .collect()
}

/// Bars comparing two activation vectors on `features`, for [`plot_feature_bars`]: for each
/// feature `f`, `("f{f} {name_a}", a[f])` then `("f{f} {name_b}", b[f])`.
///
/// # Errors
/// [`crate::Error::FeatureOutOfRange`] for a feature past either vector.
pub fn paired_bars(
    features: &[usize],
    (name_a, a): (&str, &[f32]),
    (name_b, b): (&str, &[f32]),
) -> Result<Vec<(String, f32)>> {
    let mut bars = Vec::with_capacity(2 * features.len());
    for &f in features {
        if f >= a.len().min(b.len()) {
            return Err(crate::Error::FeatureOutOfRange {
                index: f,
                d_sae: a.len().min(b.len()),
            });
        }
        bars.push((format!("f{f} {name_a}"), a[f]));
        bars.push((format!("f{f} {name_b}"), b[f]));
    }
    Ok(bars)
}

/// Line chart of activation vectors over feature ids (seed 001 Figs. 1 and 5: one line per
/// emotion or per layer, named by `series`), each vector's top `k` features (see
/// [`top_features`]) marked with a point and listed in the legend as `name top k: f12 (3.40), …`.
/// The format follows the extension (`.png`, `.svg`).
///
/// # Errors
/// [`crate::Error::Plot`] (unsupported extension, nothing finite to draw, I/O).
pub fn plot_activations(
    path: &Path,
    title: &str,
    series: &[(&str, &[f32])],
    k: usize,
) -> Result<()> {
    let mut lines = Vec::with_capacity(2 * series.len());
    for (name, acts) in series {
        let points = acts
            .iter()
            .enumerate()
            .map(|(i, &a)| (i as f64, a as f64))
            .collect();
        lines.push(Series::new(*name, points));
    }
    for (name, acts) in series {
        let top = top_features(acts, k);
        if top.is_empty() {
            continue;
        }
        let legend = top
            .iter()
            .map(|(i, a)| format!("f{i} ({a:.2})"))
            .collect::<Vec<_>>()
            .join(", ");
        // Isolated points (NaN between them): drawn as markers, not joined.
        let marks = top
            .iter()
            .flat_map(|&(i, a)| [(i as f64, a as f64), (f64::NAN, f64::NAN)])
            .collect();
        lines.push(Series::new(format!("{name} top {k}: {legend}"), marks));
    }
    line_chart(path, title, "feature", "activation", &lines, false)?;
    Ok(())
}

/// Bar chart of labelled feature activations (e.g. `("happy f2392", 4.1)`), in the given
/// order, each bar annotated with its value when there are at most 24. The format follows the
/// extension (`.png`, `.svg`).
///
/// # Errors
/// [`crate::Error::Plot`] (unsupported extension, no bars, I/O).
pub fn plot_feature_bars(path: &Path, title: &str, bars: &[(String, f32)]) -> Result<()> {
    let bars: Vec<(String, f64)> = bars.iter().map(|(l, v)| (l.clone(), *v as f64)).collect();
    bar_chart(path, title, "activation", &bars)?;
    Ok(())
}

#[cfg(feature = "models")]
pub use with_models::{
    mean_word_feature_acts, mean_word_feature_acts_each, word_feature_acts, word_feature_acts_each,
    WordActs, WordPrompt,
};

#[cfg(feature = "models")]
mod with_models {
    use burn::tensor::backend::Backend;
    use interp_models::hooks::{HookSpec, NameFilter};
    use interp_models::{Batch, HookedTransformer};
    use ndarray::{Array1, Array2, Axis};

    use crate::error::{Error, Result};
    use crate::hooked::sae_hook_point;
    use crate::sae::Sae;

    /// An SAE's feature activations at one word of one prompt: [`word_feature_acts`].
    #[derive(Clone, Debug, PartialEq)]
    pub struct WordActs {
        /// The token positions of the word (its first occurrence), BOS counted when prepended.
        pub positions: Vec<usize>,
        /// Those tokens as strings (e.g. `[" he", "ure", "ux"]` for French "heureux" in GPT-2).
        pub tokens: Vec<String>,
        /// Feature activations summed over `positions`, `[d_sae]`.
        pub acts: Array1<f32>,
    }

    /// A prompt and the word in it whose features to read.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct WordPrompt<'a> {
        /// The prompt.
        pub text: &'a str,
        /// The word (as it is spelled in `text`; matching is case-sensitive).
        pub word: &'a str,
    }

    impl<'a> WordPrompt<'a> {
        /// `word` in `text`.
        pub fn new(text: &'a str, word: &'a str) -> Self {
            WordPrompt { text, word }
        }
    }

    /// `sae`'s feature activations at `word` in `text`: the model runs up to the SAE's hook
    /// (`metadata.hook_name`, caching only that hook and stopping after its block), the
    /// activation at each token of the word's first occurrence is encoded, and the
    /// activations are summed over those tokens — a word the tokenizer splits (seed 001
    /// §1.2.1, French "heureux" → " he", "ure", "ux") counts once, with all its pieces. A word
    /// of one token gives exactly that token's activations.
    ///
    /// # Errors
    /// [`Error::WordNotFound`] when `word` does not occur in `text`; see
    /// [`sae_hook_point`] for an SAE the model cannot host; model and tokenizer errors.
    pub fn word_feature_acts<B: Backend>(
        model: &HookedTransformer<B>,
        sae: &Sae,
        text: &str,
        word: &str,
        prepend_bos: bool,
    ) -> Result<WordActs> {
        let mut acts = read_word(model, &[sae], text, word, prepend_bos)?;
        Ok(acts.pop().expect("one SAE, one result"))
    }

    /// [`word_feature_acts`] of each of `saes` (in order) from one forward per BOS setting:
    /// each SAE reads the prompt with BOS when its metadata says so
    /// ([`SaeMetadata::prepends_bos`](crate::SaeMetadata::prepends_bos)), and the SAEs that
    /// agree share one forward that caches all their hooks.
    ///
    /// # Errors
    /// [`Error::NoSaes`] when `saes` is empty; as
    /// [`word_feature_acts`].
    pub fn word_feature_acts_each<B: Backend>(
        model: &HookedTransformer<B>,
        saes: &[&Sae],
        text: &str,
        word: &str,
    ) -> Result<Vec<WordActs>> {
        if saes.is_empty() {
            return Err(Error::NoSaes);
        }
        let mut out: Vec<Option<WordActs>> = vec![None; saes.len()];
        for bos in [true, false] {
            let idx: Vec<usize> = (0..saes.len())
                .filter(|&i| saes[i].config().metadata.prepends_bos() == bos)
                .collect();
            if idx.is_empty() {
                continue;
            }
            let group: Vec<&Sae> = idx.iter().map(|&i| saes[i]).collect();
            for (i, acts) in idx
                .into_iter()
                .zip(read_word(model, &group, text, word, bos)?)
            {
                out[i] = Some(acts);
            }
        }
        Ok(out
            .into_iter()
            .map(|a| a.expect("every SAE read"))
            .collect())
    }

    /// One forward of `text` caching the hooks of `saes` (stopping after the last one's
    /// block), each SAE's activations at `word` summed over its tokens.
    fn read_word<B: Backend>(
        model: &HookedTransformer<B>,
        saes: &[&Sae],
        text: &str,
        word: &str,
        prepend_bos: bool,
    ) -> Result<Vec<WordActs>> {
        let hooks = saes
            .iter()
            .map(|sae| sae_hook_point(model, sae.config()))
            .collect::<Result<Vec<_>>>()?;
        let positions = match model.word_positions(text, word, prepend_bos) {
            Ok(found) => found.into_iter().next().unwrap_or_default(),
            Err(interp_models::Error::WordNotFound { .. }) => {
                return Err(Error::WordNotFound {
                    word: word.into(),
                    text: text.into(),
                })
            }
            Err(e) => return Err(e.into()),
        };
        let ids = model.to_tokens(text, prepend_bos)?;
        let names: Vec<String> = hooks.iter().map(ToString::to_string).collect();
        let mut spec = HookSpec::<B>::new().cache(NameFilter::patterns(names));
        if let Some(stop) = model.cfg().stop_layer_for(&hooks) {
            spec = spec.stop_at_layer(stop);
        }
        let (_, cache) = model.run(&Batch::single(&ids), &spec)?;
        let token_ids: Vec<u32> = positions.iter().map(|&p| ids[p]).collect();
        let tokens = model.to_str_tokens(&token_ids)?;
        let mut out = Vec::with_capacity(saes.len());
        for (sae, hook) in saes.iter().zip(&hooks) {
            let act = cache.get(hook).expect("the filter caches the hook");
            let dims = act.dims();
            let values = act
                .to_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .map_err(|e| Error::Data {
                    reason: format!("reading `{hook}` back from the device: {e:?}"),
                })?;
            // `[1, pos, d]` or `[1, pos, heads, d_head]`: one row per position.
            let n_pos = dims[1];
            let width: usize = dims[2..].iter().product();
            let mut rows = Array2::<f32>::zeros((positions.len(), width));
            for (r, &p) in positions.iter().enumerate() {
                debug_assert!(p < n_pos);
                rows.row_mut(r)
                    .as_slice_mut()
                    .expect("contiguous rows")
                    .copy_from_slice(&values[p * width..(p + 1) * width]);
            }
            out.push(WordActs {
                positions: positions.clone(),
                tokens: tokens.clone(),
                acts: sae.encode(rows.view())?.sum_axis(Axis(0)),
            });
        }
        Ok(out)
    }

    /// The mean over `prompts` of [`word_feature_acts`] (seed 001: five prompts per emotion,
    /// each read at its emotion word), `[d_sae]`.
    ///
    /// # Errors
    /// [`Error::NoPrompts`] when `prompts` is empty; the errors of [`word_feature_acts`].
    pub fn mean_word_feature_acts<B: Backend>(
        model: &HookedTransformer<B>,
        sae: &Sae,
        prompts: &[WordPrompt<'_>],
        prepend_bos: bool,
    ) -> Result<Array1<f32>> {
        if prompts.is_empty() {
            return Err(Error::NoPrompts);
        }
        let mut sum = Array1::<f32>::zeros(sae.d_sae());
        for p in prompts {
            sum += &word_feature_acts(model, sae, p.text, p.word, prepend_bos)?.acts;
        }
        Ok(sum / prompts.len() as f32)
    }

    /// The mean over `prompts` of [`word_feature_acts_each`]: one `[d_sae]` vector per SAE of
    /// `saes`, in order, from one forward per prompt (per BOS setting).
    ///
    /// # Errors
    /// [`Error::NoPrompts`] when `prompts` is empty; as [`word_feature_acts_each`].
    pub fn mean_word_feature_acts_each<B: Backend>(
        model: &HookedTransformer<B>,
        saes: &[&Sae],
        prompts: &[WordPrompt<'_>],
    ) -> Result<Vec<Array1<f32>>> {
        if prompts.is_empty() {
            return Err(Error::NoPrompts);
        }
        let mut sums: Vec<Array1<f32>> = saes.iter().map(|s| Array1::zeros(s.d_sae())).collect();
        for p in prompts {
            let each = word_feature_acts_each(model, saes, p.text, p.word)?;
            for (sum, acts) in sums.iter_mut().zip(each) {
                *sum += &acts.acts;
            }
        }
        Ok(sums.into_iter().map(|s| s / prompts.len() as f32).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_splits_features_by_where_they_fire() {
        let happy = [0.0f32, 3.0, 0.05, 2.0, 0.0, 0.2];
        let heureux = [1.0f32, 0.1, 0.0, 0.0, 0.0, 0.3];
        let o = overlap(&happy, &heureux, 0.0).unwrap();
        assert_eq!(o.both, [(5, 0.2, 0.3), (1, 3.0, 0.1)]);
        assert_eq!(o.only_a, [(3, 2.0), (2, 0.05)]);
        assert_eq!(o.only_b, [(0, 1.0)]);
        assert!((o.shared_mean() - 0.15).abs() < 1e-6);
        assert!((o.only_a_mean() - 1.025).abs() < 1e-6);
        let o = overlap(&happy, &heureux, 0.15).unwrap();
        assert_eq!(o.both, [(5, 0.2, 0.3)]);
        assert_eq!(o.only_b, [(0, 1.0)]);
        assert!(overlap(&happy, &heureux[..3], 0.0).is_err());
    }

    #[test]
    fn top_features_rank_active_features_only() {
        let acts = [0.5f32, -2.0, f32::NAN, 3.0, 0.5, 0.0, 1.0];
        assert_eq!(top_features(&acts, 3), vec![(3, 3.0), (6, 1.0), (0, 0.5)]);
        // Ties go to the lower index; inactive features never appear.
        assert_eq!(
            top_features(&acts, 10),
            vec![(3, 3.0), (6, 1.0), (0, 0.5), (4, 0.5)]
        );
        assert!(top_features(&acts, 0).is_empty());
        assert!(top_features(&[0.0, -1.0], 2).is_empty());
    }

    #[test]
    fn shared_features_keep_the_first_vectors_order() {
        let happy = [0.0f32, 3.0, 0.0, 1.0, 2.0];
        let excited = [0.0f32, 1.0, 5.0, 0.0, 4.0];
        assert_eq!(shared_top_features(&happy, &excited, 3), vec![1, 4]);
        assert_eq!(shared_top_features(&excited, &happy, 3), vec![4, 1]);
        assert_eq!(
            shared_top_features(&happy, &excited, 1),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn top_features_are_described_and_serialised() {
        let top = [(28, 4.3194f32), (7, 0.5)];
        assert_eq!(describe_top(&top), "28 (4.319), 7 (0.500)");
        assert_eq!(describe_top(&[]), "none fire");
        assert_eq!(
            top_json(&top),
            serde_json::json!([{"feature": 28, "activation": 4.3194f32},
                               {"feature": 7, "activation": 0.5}])
        );
        assert_eq!(top_json(&[]), serde_json::json!([]));
        assert_eq!(feature_ids(&top), vec![28, 7]);
        let bars = paired_bars(
            &[2, 0],
            ("happy", &[1.0, 0.0, 3.0]),
            ("sad", &[4.0, 5.0, 6.0]),
        );
        let want: Vec<(String, f32)> = vec![
            ("f2 happy".into(), 3.0),
            ("f2 sad".into(), 6.0),
            ("f0 happy".into(), 1.0),
            ("f0 sad".into(), 4.0),
        ];
        assert_eq!(bars.unwrap(), want);
        let err = paired_bars(&[3], ("a", &[1.0; 4]), ("b", &[1.0; 3])).unwrap_err();
        assert!(matches!(
            err,
            crate::Error::FeatureOutOfRange { index: 3, d_sae: 3 }
        ));
    }

    #[test]
    fn plots_are_written_in_both_formats() {
        let dir = tempfile::tempdir().unwrap();
        let happy: Vec<f32> = (0..300).map(|i| ((i * 37) % 11) as f32 * 0.1).collect();
        let sad = vec![0.0f32; 300];
        for ext in ["png", "svg"] {
            let p = dir.path().join(format!("acts.{ext}"));
            plot_activations(&p, "acts", &[("happy", &happy), ("sad", &sad)], 3).unwrap();
            assert!(std::fs::metadata(&p).unwrap().len() > 0);
            let p = dir.path().join(format!("bars.{ext}"));
            plot_feature_bars(&p, "bars", &[("f1".into(), 1.0), ("f2".into(), -0.5)]).unwrap();
            assert!(std::fs::metadata(&p).unwrap().len() > 0);
        }
        let err = plot_feature_bars(&dir.path().join("x.jpg"), "bars", &[("f".into(), 1.0)]);
        assert!(matches!(err, Err(crate::Error::Plot(_))));
    }
}
