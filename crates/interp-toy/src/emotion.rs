//! The emotion-feature study of seed 001 (§1.1, §1.2.1) on any model with SAEs at
//! `hook_resid_pre`: the toy world with [`EmotionPrompts::toy`], or GPT-2 small and SAELens'
//! `gpt2-small-res-jb` with [`EmotionPrompts::write_up`]. Each step computes one section of the
//! write-up and writes it into a [`Report`] (markdown, JSON results under its own key, PNG and
//! SVG figures); `examples/emotion_features.rs` runs them in order.

use burn::tensor::backend::Backend;
use interp_core::report::{matrix_json, Report};
use interp_geometry::plot::cosine_heatmap;
use interp_geometry::{
    cross_layer_best_matches, joint_similarity_matrix, top_vs_random, CrossLayerMatches,
    Directions, TopVsRandom,
};
use interp_models::{HookPoint, HookedTransformer};
use interp_sae::probe::{
    describe_top, feature_ids, mean_word_feature_acts, mean_word_feature_acts_each, paired_bars,
    plot_activations, plot_feature_bars, shared_top_features, top_features, top_json,
    word_feature_acts,
};
use interp_sae::source::SaeSource;
use interp_sae::Sae;
use ndarray::{aview1, stack, Axis};
use serde_json::json;

use crate::corpus::{EmotionPrompts, PromptSet};
use crate::error::{Error, Result};

/// How many random features §1.1.3 compares with the top happy features.
pub const N_RANDOM: usize = 6;

/// What to study: the layer of the SAE, how many top features, the seed of the random ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StudyOptions {
    /// The layer whose `hook_resid_pre` SAE is read; `None`: the middle layer.
    pub layer: Option<usize>,
    /// Top features per emotion.
    pub top_k: usize,
    /// Seed of the random comparison features (§1.1.3).
    pub seed: u64,
}

impl Default for StudyOptions {
    /// The middle layer, the top 3, seed 0 (the write-up's setting).
    fn default() -> Self {
        StudyOptions {
            layer: None,
            top_k: 3,
            seed: 0,
        }
    }
}

/// A model, its SAEs, the prompts, and the SAE at the chosen layer.
pub struct EmotionStudy<'a, B: Backend> {
    model: &'a HookedTransformer<B>,
    saes: &'a SaeSource,
    prompts: &'a EmotionPrompts,
    source: String,
    opts: StudyOptions,
    layer: usize,
    hook: String,
    sae: Sae,
    bos: bool,
}

/// §1.1.1: the mean activations at the emotion word of each English prompt set, and their top
/// features, in [`EmotionPrompts::english`] order.
#[derive(Clone, Debug, PartialEq)]
pub struct EmotionTops {
    /// The sets' names.
    pub names: Vec<String>,
    /// Mean activation per feature, `[d_sae]` per set.
    pub means: Vec<Vec<f32>>,
    /// The top features `(feature, mean activation)` per set.
    pub tops: Vec<Vec<(usize, f32)>>,
}

/// §1.2.1: French "heureux" against English "happy".
#[derive(Clone, Debug, PartialEq)]
pub struct FrenchVsEnglish {
    /// The French word(s) read.
    pub word: String,
    /// Top features of the French prompts.
    pub french_top: Vec<(usize, f32)>,
    /// Top features of the English happy prompts.
    pub english_top: Vec<(usize, f32)>,
    /// Features in both tops.
    pub overlap: Vec<usize>,
    /// Cosine of the two mean activation vectors.
    pub activation_cosine: f32,
}

impl<'a, B: Backend> EmotionStudy<'a, B> {
    /// The study of `model` with the SAE of `saes` at the chosen layer's `hook_resid_pre`;
    /// `source` names model and SAEs in the report. Prompts start with BOS as the SAE's
    /// metadata says.
    ///
    /// # Errors
    /// [`Error::LayerOutOfRange`] for a layer past the model's; [`Error::NoSae`] when `saes`
    /// has no SAE there; the loaders' errors.
    pub fn new(
        model: &'a HookedTransformer<B>,
        saes: &'a SaeSource,
        prompts: &'a EmotionPrompts,
        source: &str,
        opts: StudyOptions,
    ) -> Result<Self> {
        let n_layers = model.cfg().n_layers;
        let layer = opts.layer.unwrap_or(n_layers / 2);
        if layer >= n_layers {
            return Err(Error::LayerOutOfRange { layer, n_layers });
        }
        let hook = HookPoint::resid_pre(layer).to_string();
        let sae = saes.at(&hook)?.ok_or_else(|| Error::NoSae {
            hook: hook.clone(),
            available: saes.hooks().unwrap_or_default().join(", "),
        })?;
        let bos = sae.config().metadata.prepends_bos();
        Ok(EmotionStudy {
            model,
            saes,
            prompts,
            source: source.into(),
            opts,
            layer,
            hook,
            sae,
            bos,
        })
    }

    /// The hook of the SAE studied.
    pub fn hook(&self) -> &str {
        &self.hook
    }

    /// The report's title and setup (`setup` in the results).
    ///
    /// # Errors
    /// [`Error::Core`] from the report.
    pub fn setup(&self, out: &mut Report) -> Result<()> {
        let (cfg, hook, k) = (self.model.cfg(), &self.hook, self.opts.top_k);
        out.line("# Emotion features (seed 001 §1.1, §1.2.1)\n");
        out.line(format!(
            "Model: {} ({} layers, d_model {}). SAE: `{hook}`, {} features. Prompts start \
             with BOS: {}. Top-k: {k}.\n",
            self.source,
            cfg.n_layers,
            cfg.d_model,
            self.sae.d_sae(),
            self.bos
        ));
        out.set(
            "setup",
            json!({"source": self.source, "n_layers": cfg.n_layers, "layer": self.layer,
                   "hook": hook, "d_sae": self.sae.d_sae(), "prepend_bos": self.bos,
                   "top_k": k, "seed": self.opts.seed}),
        )?;
        Ok(())
    }

    fn mean_at_word(&self, set: &PromptSet) -> Result<Vec<f32>> {
        let mean = mean_word_feature_acts(self.model, &self.sae, &set.word_prompts(), self.bos)?;
        Ok(mean.to_vec())
    }

    /// §1.1.1: the top features of each emotion, from the mean activation at its word over its
    /// prompts (`top_features` in the results; figures `fig1_*`).
    ///
    /// # Errors
    /// Model, probe and plot errors.
    pub fn top_features(&self, out: &mut Report) -> Result<EmotionTops> {
        let (hook, k, sets) = (&self.hook, self.opts.top_k, &self.prompts.english);
        out.line(format!("## 1.1.1 Top features per emotion at `{hook}`\n"));
        out.line("Mean SAE activation at the emotion word over the five prompts.\n");
        let means = sets
            .iter()
            .map(|s| self.mean_at_word(s))
            .collect::<Result<Vec<_>>>()?;
        let tops: Vec<_> = means.iter().map(|m| top_features(m, k)).collect();
        let rows = sets.iter().zip(&tops);
        out.table(
            &["emotion", "word", "top features (mean activation)"],
            rows.clone()
                .map(|(e, t)| vec![e.name.clone(), e.words(), describe_top(t)]),
        )?;
        let mut figs = Vec::new();
        for (e, mean) in sets.iter().zip(&means) {
            let title = format!("Feature activations on \"{}\" at {hook}", e.name);
            let series = [(e.name.as_str(), mean.as_slice())];
            figs.push(out.figure(&format!("fig1_{}", e.name), |p| {
                plot_activations(p, &title, &series, k)
            })?);
        }
        let bars: Vec<(String, f32)> = rows
            .clone()
            .flat_map(|(e, t)| t.iter().map(move |&(i, a)| (format!("{} f{i}", e.name), a)))
            .collect();
        if !bars.is_empty() {
            let title = format!("Top {k} features per emotion at {hook}");
            figs.push(out.figure("fig1_top_features", |p| plot_feature_bars(p, &title, &bars))?);
        }
        out.line(format!("\nFigures: {}\n", figs.join(", ")));
        let json: serde_json::Map<_, _> = rows
            .map(|(e, t)| {
                let v = json!({"words": e.words(), "prompts": e.prompts, "top": top_json(t)});
                (e.name.clone(), v)
            })
            .collect();
        out.set("top_features", json)?;
        Ok(EmotionTops {
            names: sets.iter().map(|e| e.name.clone()).collect(),
            means,
            tops,
        })
    }

    /// §1.1.2: the features among the top `k` of both `a` and `b` (the write-up: happy and
    /// excited); when there are none, those among the top 10 of both
    /// (`shared_happy_excited` in the results).
    ///
    /// # Errors
    /// [`Error::NoPromptSet`] for a name with no prompts; plot errors.
    pub fn shared_features(&self, tops: &EmotionTops, out: &mut Report) -> Result<Vec<usize>> {
        let (hook, k) = (&self.hook, self.opts.top_k);
        let happy = &tops.means[self.prompts.index("happy")?];
        let excited = &tops.means[self.prompts.index("excited")?];
        let shared = shared_top_features(happy, excited, k);
        out.line(format!(
            "## 1.1.2 Features shared by happy and excited (top {k})\n"
        ));
        let features: Vec<_> = shared
            .iter()
            .map(|&f| json!({"feature": f, "happy": happy[f], "excited": excited[f]}))
            .collect();
        let mut json = json!({"k": k, "features": features});
        if shared.is_empty() {
            let wider = shared_top_features(happy, excited, 10);
            out.line(format!(
                "No feature is among the top {k} of both. Among the top 10 of both: {}.\n",
                or_none(&wider)
            ));
            json["shared_in_top_10"] = json!(wider);
        } else {
            let rows = shared.iter().map(|&f| {
                let cell = |v: f32| format!("{v:.3}");
                vec![f.to_string(), cell(happy[f]), cell(excited[f])]
            });
            out.table(&["feature", "happy", "excited"], rows)?;
            let bars = paired_bars(&shared, ("happy", happy), ("excited", excited))?;
            let title = format!("Features in the top {k} of happy and excited at {hook}");
            let fig = out.figure("fig3_shared_happy_excited", |p| {
                plot_feature_bars(p, &title, &bars)
            })?;
            out.line(format!("\nFigure: {fig}\n"));
        }
        out.set("shared_happy_excited", json)?;
        Ok(shared)
    }

    /// §1.1.3: on the first happy prompt, the cosines of the activation-weighted
    /// representations of the top happy features and [`N_RANDOM`] random others
    /// ([`top_vs_random`]; `happy_similarity` in the results, figure `fig4_*`).
    ///
    /// # Errors
    /// [`Error::NoPromptSet`] without happy prompts; model, probe, geometry and plot errors.
    pub fn happy_similarity(&self, tops: &EmotionTops, out: &mut Report) -> Result<TopVsRandom> {
        let (hook, seed, h) = (&self.hook, self.opts.seed, self.prompts.index("happy")?);
        let (text, word) = &self.prompts.english[h].prompts[0];
        let one = word_feature_acts(self.model, &self.sae, text, word, self.bos)?;
        let c = top_vs_random(
            &self.sae,
            one.acts.view(),
            &feature_ids(&tops.tops[h]),
            N_RANDOM,
            seed,
        )?;
        let (nt, n_random) = (c.n_top, c.features.len() - c.n_top);
        let labels: Vec<String> = c
            .features
            .iter()
            .enumerate()
            .map(|(r, f)| match r < nt {
                true => format!("f{f} (top)"),
                false => format!("f{f}"),
            })
            .collect();
        out.line("## 1.1.3 Similarity of the top happy features on one prompt\n");
        let drawn = match c.n_random_active == n_random {
            true => "all drawn among the features active on this token".to_string(),
            false => format!(
                "{} drawn among the features active on this token, the rest among all \
                 features: an inactive feature has the zero representation, cosine 0",
                c.n_random_active
            ),
        };
        out.line(format!(
            "Prompt: \"{text}\", read at \"{word}\" (tokens {:?}). Representations `a_i · \
             W_dec[i]` of the top {nt} happy features (from §1.1.1) and {n_random} random other \
             features (seed {seed}; {drawn}). For two active features this cosine is their \
             decoder cosine.\n",
            one.tokens
        ));
        out.line(format!(
            "Mean cosine among the top features: **{:.3}**; top vs random: {:.3}; among \
             random: {:.3}.\n",
            c.mean_within_top, c.mean_top_vs_random, c.mean_within_random
        ));
        let cos = c.activation_weighted.view();
        out.matrix(&labels, cos)?;
        let title = format!("Cosines of a_i W_dec[i] on \"{word}\" at {hook}");
        let fig = out.figure("fig4_happy_feature_similarity", |p| {
            cosine_heatmap(p, &title, &labels, &labels, cos)
        })?;
        out.line(format!("\nFigure: {fig}\n"));
        let acts: Vec<f32> = c.features.iter().map(|&f| one.acts[f]).collect();
        out.set(
            "happy_similarity",
            json!({"prompt": text, "word": word, "tokens": one.tokens,
                   "positions": one.positions, "features": c.features, "activations": acts,
                   "n_top": nt, "n_random_active": c.n_random_active,
                   "activation_weighted_cosines": matrix_json(cos),
                   "decoder_cosines": matrix_json(c.decoder.view()),
                   "mean_within_top": c.mean_within_top,
                   "mean_top_vs_random": c.mean_top_vs_random,
                   "mean_within_random": c.mean_within_random}),
        )?;
        Ok(c)
    }

    /// §1.1.4: the top happy features of the SAE at every layer's `hook_resid_pre` that
    /// `saes` has (all read from one forward per prompt), the decoder cosines among them, and
    /// each one's best match in another layer ([`cross_layer_best_matches`]; `layers` in the
    /// results, figures `fig5_*`, `fig6_*`); `None` when no feature fires in any layer.
    ///
    /// # Errors
    /// [`Error::NoPromptSet`] without happy prompts; loader, model, probe, geometry and plot
    /// errors.
    pub fn across_layers(&self, out: &mut Report) -> Result<Option<CrossLayerMatches>> {
        let k = self.opts.top_k;
        let mut layers: Vec<(usize, Sae)> = Vec::new();
        for l in 0..self.model.cfg().n_layers {
            if let Some(sae) = self.saes.at(&HookPoint::resid_pre(l).to_string())? {
                layers.push((l, sae));
            }
        }
        let refs: Vec<&Sae> = layers.iter().map(|(_, s)| s).collect();
        let happy = &self.prompts.english[self.prompts.index("happy")?];
        let means: Vec<Vec<f32>> =
            mean_word_feature_acts_each(self.model, &refs, &happy.word_prompts())?
                .into_iter()
                .map(|m| m.to_vec())
                .collect();
        let tops: Vec<_> = means.iter().map(|m| top_features(m, k)).collect();
        out.line("## 1.1.4 Happy features in every layer\n");
        let per_layer = layers.iter().map(|(l, _)| *l).zip(&tops);
        out.table(
            &["layer", "top features (mean activation)"],
            per_layer
                .clone()
                .map(|(l, t)| vec![l.to_string(), describe_top(t)]),
        )?;
        let picked = layers
            .iter()
            .zip(&tops)
            .map(|((_, s), t)| Directions::decoder(s).select(&feature_ids(t)))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let (labels, layer_of): (Vec<String>, Vec<usize>) = per_layer
            .clone()
            .flat_map(|(l, t)| t.iter().map(move |&(i, _)| (format!("L{l} f{i}"), l)))
            .unzip();
        let bars: Vec<(String, f32)> = tops
            .iter()
            .flatten()
            .zip(&labels)
            .map(|(&(_, a), label)| (label.clone(), a))
            .collect();
        let names: Vec<String> = layers.iter().map(|(l, _)| format!("L{l}")).collect();
        let series: Vec<(&str, &[f32])> = names
            .iter()
            .zip(&means)
            .map(|(n, m)| (n.as_str(), m.as_slice()))
            .collect();
        let title = "Feature activations on \"happy\" at every layer's resid_pre";
        let mut figs = vec![out.figure("fig5_happy_by_layer", |p| {
            plot_activations(p, title, &series, k)
        })?];
        if !bars.is_empty() {
            let title = format!("Top {k} happy features per layer");
            figs.push(out.figure("fig5_happy_top_by_layer", |p| {
                plot_feature_bars(p, &title, &bars)
            })?);
        }
        let layers_json: Vec<_> = per_layer
            .map(|(l, t)| json!({"layer": l, "top": top_json(t)}))
            .collect();
        let mut json = json!({"layers": layers_json, "labels": labels});
        let mut matches = None;
        if !labels.is_empty() {
            let m = joint_similarity_matrix(&picked)?;
            let title = "Decoder cosines of the top happy features across layers";
            figs.push(out.figure("fig6_cross_layer_similarity", |p| {
                cosine_heatmap(p, title, &labels, &labels, m.view())
            })?);
            let found = cross_layer_best_matches(m.view(), &layer_of)?;
            out.line("\nBest match of each feature in any other layer (decoder cosine):\n");
            out.table(
                &["feature", "best match (cosine)"],
                found.best.iter().map(|b| {
                    let cell = format!("{} ({:.3})", labels[b.matched], b.cosine);
                    vec![labels[b.feature].clone(), cell]
                }),
            )?;
            out.line("\nMean best-match cosine by layer distance (nearby layers more alike?):\n");
            out.table(
                &["distance", "mean best cosine", "pairs"],
                found.by_distance.iter().map(|d| {
                    let mean = format!("{:.3}", d.mean_best_cosine);
                    vec![d.distance.to_string(), mean, d.n.to_string()]
                }),
            )?;
            json["decoder_cosines"] = matrix_json(m.view());
            json["best_matches"] = found
                .best
                .iter()
                .map(|b| {
                    json!({"feature": labels[b.feature], "match": labels[b.matched],
                           "cosine": b.cosine})
                })
                .collect();
            json["by_distance"] = json!(found.by_distance);
            matches = Some(found);
        }
        out.line(format!("\nFigures: {}\n", figs.join(", ")));
        out.set("layers", json)?;
        Ok(matches)
    }

    /// §1.2.1: the probability of each token of the last French prompt (Fig 7), and the
    /// top features of the French happy word (activations summed over its sub-tokens) against
    /// those of "happy" (`french_vs_english` in the results, figures `fig7_*`, `fig8_*`).
    ///
    /// # Errors
    /// [`Error::NoPromptSet`] without happy prompts; model, probe, geometry and plot errors.
    pub fn french_vs_english(
        &self,
        tops: &EmotionTops,
        out: &mut Report,
    ) -> Result<FrenchVsEnglish> {
        let (model, hook, k, bos) = (self.model, &self.hook, self.opts.top_k, self.bos);
        let h = self.prompts.index("happy")?;
        let (fr, happy, en_top) = (&self.prompts.french_happy, &tops.means[h], &tops.tops[h]);
        let fr_mean = self.mean_at_word(fr)?;
        let fr_top = top_features(&fr_mean, k);
        let overlap = shared_top_features(&fr_mean, happy, k);
        let (fr_text, fr_word) = fr.prompts.last().expect("prompt sets are not empty");
        let split = word_feature_acts(model, &self.sae, fr_text, fr_word, bos)?;

        // Fig 7: how probable the model finds each token of the French prompt.
        let ids = model.to_tokens(fr_text, bos)?;
        let probs: Vec<f32> = model
            .token_log_probs(&ids)?
            .iter()
            .map(|lp| lp.exp())
            .collect();
        let next_tokens = model.to_str_tokens(&ids[1..])?;
        let prob_bars: Vec<(String, f64)> = next_tokens
            .iter()
            .zip(&probs)
            .map(|(t, &p)| (format!("{t:?}"), f64::from(p)))
            .collect();
        let title = format!("p(token | prefix) on \"{fr_text}\"");
        let fig7 = out.figure("fig7_french_token_probabilities", |p| {
            interp_core::plot::bar_chart(p, &title, "probability", &prob_bars)
                .map_err(interp_sae::Error::from)
        })?;
        let pair = stack(Axis(0), &[aview1(&fr_mean), aview1(happy)]).expect("same widths");
        let act_cos = Directions::from_rows(pair.view())?.cosine(0, 1)?;
        let words = fr.words();
        out.line(format!(
            "## 1.2.1 French \"{words}\" and English \"happy\" at `{hook}`\n"
        ));
        out.line(format!(
            "\"{fr_text}\": \"{fr_word}\" is {} token(s) {:?}; activations are summed over them.\n",
            split.tokens.len(),
            split.tokens
        ));
        let word_probs: Vec<String> = split
            .positions
            .iter()
            .filter_map(|&i| probs.get(i.checked_sub(1)?))
            .zip(&split.tokens)
            .map(|(p, t)| format!("{t:?} {p:.3}"))
            .collect();
        out.line(format!(
            "Fig 7 ({fig7}): probability of each token given the ones before it; the tokens of \
             \"{fr_word}\": {}.\n",
            word_probs.join(", ")
        ));
        out.table(
            &["word", "top features (mean activation)"],
            [
                vec![words.clone(), describe_top(&fr_top)],
                vec!["happy".into(), describe_top(en_top)],
            ],
        )?;
        out.line(format!(
            "\nOverlap of the top {k}: {}. Cosine between the two mean activation vectors: \
             {act_cos:.3}.\n",
            or_none(&overlap)
        ));
        let mut union: Vec<usize> = feature_ids(&fr_top)
            .into_iter()
            .chain(feature_ids(en_top))
            .collect();
        union.sort_unstable();
        union.dedup();
        let bars = paired_bars(&union, (&words, &fr_mean), ("happy", happy))?;
        if !bars.is_empty() {
            let title = format!("Features of \"{words}\" and \"happy\" at {hook}");
            let fig = out.figure("fig8_french_vs_english", |p| {
                plot_feature_bars(p, &title, &bars)
            })?;
            out.line(format!("Figure: {fig}\n"));
        }
        let token_probs: Vec<_> = next_tokens.iter().zip(&probs).collect();
        out.set(
            "french_vs_english",
            json!({"french_word": words, "prompts": fr.prompts, "example_tokens": split.tokens,
                   "example_token_probabilities": token_probs,
                   "french_top": top_json(&fr_top), "english_top": top_json(en_top),
                   "overlap": overlap, "activation_cosine": act_cos}),
        )?;
        Ok(FrenchVsEnglish {
            word: words,
            french_top: fr_top,
            english_top: en_top.clone(),
            overlap,
            activation_cosine: act_cos,
        })
    }
}

/// `[1, 2]`, or `none` for no features.
fn or_none(ids: &[usize]) -> String {
    match ids.is_empty() {
        true => "none".into(),
        false => format!("{ids:?}"),
    }
}
