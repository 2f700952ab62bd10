//! Seed 001 §1.1 and §1.2.1, reproduced: emotion features of residual-stream SAEs.
//!
//! 1. **Top features per emotion** (§1.1.1): five prompts per emotion; the SAE at
//!    `blocks.L.hook_resid_pre` is read at the emotion word of each and averaged; the three most
//!    active features of each emotion.
//! 2. **Happy ∩ excited** (§1.1.2): the features among the top three of both.
//! 3. **Happy features are alike** (§1.1.3): on one happy prompt, the cosines of the
//!    activation-weighted representations `a_i · W_dec[i]` of the three top happy features and
//!    six random other features (seeded).
//! 4. **Across layers** (§1.1.4): the top happy features of the SAE at every layer's
//!    `hook_resid_pre`, and the cosines of their decoder directions across layers.
//! 5. **French and English** (§1.2.1): the probability the model gives each token of a French
//!    prompt (Fig 7: how surely it spells "heureux" once it has started), then the features of
//!    "heureux" (activations summed over its sub-tokens) against those of "happy", and their
//!    overlap.
//!
//! Writes PNG and SVG figures, `report.md` and `results.json` to `--out` (default
//! `out/emotion_features`).
//!
//! ```text
//! # the toy world (assets/toy, or $INTERP_TOY_DIR, or --toy-dir DIR); seconds:
//! cargo run --release --example emotion_features [-- --layer L] [--out DIR] [--toy-dir DIR]
//! # GPT-2 small with SAELens' gpt2-small-res-jb, as in the write-up (downloads ~2 GB):
//! cargo run --release --features hub --example emotion_features -- \
//!     --model gpt2 --sae-release gpt2-small-res-jb --layer 7
//! ```
//!
//! Other flags: `--top-k K` (default 3), `--seed S` (random comparison features, default 0).

use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::backend::Backend;
use interp::geometry::plot::cosine_heatmap;
use interp::geometry::{joint_similarity_matrix, similarity_matrix, Directions};
use interp::models::{Cpu, HookedTransformer, ProcessingOptions};
use interp::sae::probe::{
    mean_word_feature_acts, plot_activations, plot_feature_bars, shared_top_features, top_features,
    word_feature_acts, WordPrompt,
};
use interp::sae::train::SplitMix64;
use interp::sae::Sae;
use interp::toy::corpus::{base_word, emotion_prompts, Lang, Mood};
use interp::toy::ToyWorld;
use ndarray::{Array1, Array2};
use serde_json::{json, Value};

type Res<T> = Result<T, Box<dyn Error>>;

/// The write-up's happy prompts, verbatim (the third says "glad", read at that word).
const PROMPT_HAPPY: [(&str, &str); 5] = [
    ("I'll be on a vacation tomorrow and I'm so happy.", "happy"),
    ("My mom brings home a new puppy and I'm so happy.", "happy"),
    ("I'm so glad I got the job I wanted.", "glad"),
    ("I feel so happy when I'm with my friends.", "happy"),
    ("I'm so happy I got the promotion I wanted.", "happy"),
];
/// Sad prompts in the same frames (the write-up does not list them).
const PROMPT_SAD: [(&str, &str); 5] = [
    ("My dog died yesterday and I'm so sad.", "sad"),
    ("My best friend moves away tomorrow and I'm so sad.", "sad"),
    ("I'm so sad I didn't get the job I wanted.", "sad"),
    ("I feel so sad when I'm alone at night.", "sad"),
    ("I'm so sad I lost the game I wanted to win.", "sad"),
];
/// Excited prompts in the same frames.
const PROMPT_EXCITED: [(&str, &str); 5] = [
    (
        "I'll see my favourite band tonight and I'm so excited.",
        "excited",
    ),
    (
        "My dad bought tickets for the final and I'm so excited.",
        "excited",
    ),
    ("I'm so excited I got the job I wanted.", "excited"),
    ("I feel so excited when I'm about to travel.", "excited"),
    ("I'm so excited I got the promotion I wanted.", "excited"),
];
/// French happy prompts; the last is the write-up's Fig. 7 sentence.
const PROMPT_HAPPY_FR: [(&str, &str); 5] = [
    (
        "Je serai en vacances demain et je suis si heureux.",
        "heureux",
    ),
    (
        "Ma mère ramène un nouveau chiot et je suis si heureux.",
        "heureux",
    ),
    (
        "Je suis si heureux d'avoir eu le travail que je voulais.",
        "heureux",
    ),
    (
        "Je me sens si heureux quand je suis avec mes amis.",
        "heureux",
    ),
    (
        "J'ai obtenu la promotion que je voulais et je suis heureux.",
        "heureux",
    ),
];

/// How many random features §1.1.3 compares with the top happy features.
const N_RANDOM: usize = 6;

/// Five prompts stating one emotion, each with the word to read.
struct Emotion {
    /// `"happy"`, `"sad"`, …
    name: String,
    /// `(prompt, word)`.
    prompts: Vec<(String, String)>,
}

impl Emotion {
    fn from_pairs(name: &str, pairs: &[(&str, &str)]) -> Self {
        Emotion {
            name: name.into(),
            prompts: pairs
                .iter()
                .map(|(t, w)| (t.to_string(), w.to_string()))
                .collect(),
        }
    }

    fn word_prompts(&self) -> Vec<WordPrompt<'_>> {
        self.prompts
            .iter()
            .map(|(t, w)| WordPrompt::new(t, w))
            .collect()
    }

    /// The words read, deduplicated (`happy`, `glad`).
    fn words(&self) -> String {
        let mut words: Vec<&str> = Vec::new();
        for (_, w) in &self.prompts {
            if !words.contains(&w.as_str()) {
                words.push(w);
            }
        }
        words.join("/")
    }
}

/// The prompts of a study: English emotions (must include happy and excited) and French happy.
struct Prompts {
    english: Vec<Emotion>,
    french_happy: Emotion,
}

impl Prompts {
    /// The toy corpus' fixed emotion prompts, every mood.
    fn toy() -> Self {
        let emotion = |mood: Mood, lang: Lang| {
            let word = base_word(mood, lang);
            Emotion {
                name: mood.name().into(),
                prompts: emotion_prompts(mood, lang)
                    .into_iter()
                    .map(|t| (t, word.to_string()))
                    .collect(),
            }
        };
        Prompts {
            english: Mood::ALL.iter().map(|&m| emotion(m, Lang::En)).collect(),
            french_happy: emotion(Mood::Happy, Lang::Fr),
        }
    }

    /// The write-up's prompts (GPT-2 small).
    fn write_up() -> Self {
        Prompts {
            english: vec![
                Emotion::from_pairs("happy", &PROMPT_HAPPY),
                Emotion::from_pairs("sad", &PROMPT_SAD),
                Emotion::from_pairs("excited", &PROMPT_EXCITED),
            ],
            french_happy: Emotion::from_pairs("heureux", &PROMPT_HAPPY_FR),
        }
    }

    fn english(&self, name: &str) -> Res<&Emotion> {
        self.english
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| format!("no `{name}` prompts").into())
    }
}

/// The SAE reading `blocks.{layer}.hook_resid_pre`, `None` if there is none.
type SaeAt<'a> = dyn Fn(usize) -> Res<Option<Sae>> + 'a;

struct Options {
    layer: Option<usize>,
    top_k: usize,
    seed: u64,
    out: PathBuf,
    source: String,
}

/// Collects figures, the markdown report and the JSON results.
struct Output {
    dir: PathBuf,
    report: String,
    json: serde_json::Map<String, Value>,
}

impl Output {
    /// Draws a figure as `stem.png` and `stem.svg`; returns the PNG's file name.
    fn figure(
        &self,
        stem: &str,
        draw: impl Fn(&Path) -> Result<(), Box<dyn Error>>,
    ) -> Res<String> {
        for ext in ["png", "svg"] {
            draw(&self.dir.join(format!("{stem}.{ext}")))?;
        }
        Ok(format!("{stem}.png"))
    }

    fn md(&mut self, text: impl AsRef<str>) {
        self.report.push_str(text.as_ref());
        self.report.push('\n');
    }
}

fn feats(top: &[(usize, f32)]) -> String {
    if top.is_empty() {
        return "none fire".into();
    }
    top.iter()
        .map(|(i, a)| format!("{i} ({a:.3})"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn top_json(top: &[(usize, f32)]) -> Value {
    top.iter()
        .map(|&(i, a)| json!({"feature": i, "activation": a}))
        .collect()
}

fn matrix_json(m: &Array2<f32>) -> Value {
    m.rows().into_iter().map(|r| r.to_vec()).collect()
}

fn matrix_md(out: &mut Output, labels: &[String], m: &Array2<f32>) {
    out.md(format!("| | {} |", labels.join(" | ")));
    out.md(format!("|---|{}", "---|".repeat(labels.len())));
    for (l, row) in labels.iter().zip(m.rows()) {
        let cells: Vec<String> = row.iter().map(|c| format!("{c:.3}")).collect();
        out.md(format!("| {l} | {} |", cells.join(" | ")));
    }
}

/// Mean of the off-diagonal cells `m[i, j]` with `i ∈ rows`, `j ∈ cols`, `i ≠ j`.
fn block_mean(m: &Array2<f32>, rows: std::ops::Range<usize>, cols: std::ops::Range<usize>) -> f32 {
    let cells: Vec<f32> = rows
        .flat_map(|i| cols.clone().map(move |j| (i, j)))
        .filter(|(i, j)| i != j)
        .map(|(i, j)| m[[i, j]])
        .collect();
    if cells.is_empty() {
        f32::NAN
    } else {
        cells.iter().sum::<f32>() / cells.len() as f32
    }
}

/// The whole study on `model` with the SAEs of `sae_at`, shared by the toy and the real model.
fn run_study<B: Backend>(
    model: &HookedTransformer<B>,
    sae_at: &SaeAt<'_>,
    prompts: &Prompts,
    opts: &Options,
) -> Res<Output> {
    let n_layers = model.cfg().n_layers;
    let layer = opts.layer.unwrap_or(n_layers / 2);
    if layer >= n_layers {
        return Err(format!("--layer {layer}: the model has {n_layers} layers").into());
    }
    let k = opts.top_k;
    let sae = sae_at(layer)?.ok_or_else(|| format!("no SAE at blocks.{layer}.hook_resid_pre"))?;
    let bos_of = |sae: &Sae| sae.config().metadata.prepend_bos.unwrap_or(true);
    let bos = bos_of(&sae);
    std::fs::create_dir_all(&opts.out)?;
    let mut out = Output {
        dir: opts.out.clone(),
        report: String::new(),
        json: serde_json::Map::new(),
    };
    let hook = format!("blocks.{layer}.hook_resid_pre");
    out.md("# Emotion features (seed 001 §1.1, §1.2.1)\n");
    out.md(format!(
        "Model: {} ({n_layers} layers, d_model {}). SAE: `{hook}`, {} features. Prompts start \
         with BOS: {bos}. Top-k: {k}.\n",
        opts.source,
        model.cfg().d_model,
        sae.d_sae()
    ));
    out.json.insert(
        "setup".into(),
        json!({"source": opts.source, "n_layers": n_layers, "layer": layer, "hook": hook,
               "d_sae": sae.d_sae(), "prepend_bos": bos, "top_k": k, "seed": opts.seed}),
    );

    // §1.1.1 Top features per emotion: mean activations at the emotion word over five prompts.
    out.md(format!("## 1.1.1 Top features per emotion at `{hook}`\n"));
    out.md("Mean SAE activation at the emotion word over the five prompts.\n");
    out.md("| emotion | word | top features (mean activation) |\n|---|---|---|");
    let mut means: Vec<(String, Array1<f32>)> = Vec::new();
    let mut per_emotion = serde_json::Map::new();
    let mut bars = Vec::new();
    for e in &prompts.english {
        let mean = mean_word_feature_acts(model, &sae, &e.word_prompts(), bos)?;
        let top = top_features(mean.as_slice().expect("contiguous"), k);
        out.md(format!("| {} | {} | {} |", e.name, e.words(), feats(&top)));
        bars.extend(top.iter().map(|&(i, a)| (format!("{} f{i}", e.name), a)));
        per_emotion.insert(
            e.name.clone(),
            json!({"words": e.words(), "prompts": e.prompts, "top": top_json(&top)}),
        );
        means.push((e.name.clone(), mean));
    }
    let mean_of = |name: &str| {
        means
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, m)| m.as_slice().expect("contiguous"))
            .ok_or_else(|| format!("no `{name}` prompts"))
    };
    let mut figs = Vec::new();
    for (name, mean) in &means {
        let slice = mean.as_slice().expect("contiguous");
        figs.push(out.figure(&format!("fig1_{name}"), |p| {
            let title = format!("Feature activations on \"{name}\" at {hook}");
            Ok(plot_activations(p, &title, &[(name.as_str(), slice)], k)?)
        })?);
    }
    if !bars.is_empty() {
        figs.push(out.figure("fig1_top_features", |p| {
            let title = format!("Top {k} features per emotion at {hook}");
            Ok(plot_feature_bars(p, &title, &bars)?)
        })?);
    }
    out.md(format!("\nFigures: {}\n", figs.join(", ")));
    out.json
        .insert("top_features".into(), Value::Object(per_emotion));

    // §1.1.2 Features shared by happy and excited.
    let (happy, excited) = (mean_of("happy")?, mean_of("excited")?);
    let shared = shared_top_features(happy, excited, k);
    out.md(format!(
        "## 1.1.2 Features shared by happy and excited (top {k})\n"
    ));
    let mut shared_json = json!({"k": k, "features": shared.iter().map(|&f| {
        json!({"feature": f, "happy": happy[f], "excited": excited[f]})
    }).collect::<Vec<_>>()});
    if shared.is_empty() {
        let wider = shared_top_features(happy, excited, 10);
        out.md(format!(
            "No feature is among the top {k} of both. Among the top 10 of both: {}.\n",
            if wider.is_empty() {
                "none".into()
            } else {
                format!("{wider:?}")
            }
        ));
        shared_json["shared_in_top_10"] = json!(wider);
    } else {
        out.md("| feature | happy | excited |\n|---|---|---|");
        let mut bars = Vec::new();
        for &f in &shared {
            out.md(format!("| {f} | {:.3} | {:.3} |", happy[f], excited[f]));
            bars.push((format!("f{f} happy"), happy[f]));
            bars.push((format!("f{f} excited"), excited[f]));
        }
        let fig = out.figure("fig3_shared_happy_excited", |p| {
            let title = format!("Features in the top {k} of happy and excited at {hook}");
            Ok(plot_feature_bars(p, &title, &bars)?)
        })?;
        out.md(format!("\nFigure: {fig}\n"));
    }
    out.json.insert("shared_happy_excited".into(), shared_json);

    // §1.1.3 Cosines of activation-weighted representations on one happy prompt.
    let happy_prompts = prompts.english("happy")?;
    let (text, word) = &happy_prompts.prompts[0];
    let one = word_feature_acts(model, &sae, text, word, bos)?;
    let top_happy: Vec<usize> = top_features(happy, k).into_iter().map(|(i, _)| i).collect();
    let mut active: Vec<usize> = (0..sae.d_sae())
        .filter(|i| one.acts[*i] > 0.0 && !top_happy.contains(i))
        .collect();
    let mut rng = SplitMix64::new(opts.seed);
    rng.shuffle(&mut active);
    let mut others: Vec<usize> = active.into_iter().take(N_RANDOM).collect();
    let n_active_others = others.len();
    while others.len() < N_RANDOM.min(sae.d_sae().saturating_sub(top_happy.len())) {
        let f = rng.below(sae.d_sae());
        if !top_happy.contains(&f) && !others.contains(&f) {
            others.push(f);
        }
    }
    let chosen: Vec<usize> = top_happy.iter().chain(&others).copied().collect();
    let reprs = Directions::activation_weighted(&sae, one.acts.view())?;
    let cos = similarity_matrix(&reprs, &chosen, &reprs, &chosen)?;
    let dec = Directions::decoder(&sae);
    let dec_cos = similarity_matrix(&dec, &chosen, &dec, &chosen)?;
    let labels: Vec<String> = chosen
        .iter()
        .enumerate()
        .map(|(r, f)| {
            if r < top_happy.len() {
                format!("f{f} (top)")
            } else {
                format!("f{f}")
            }
        })
        .collect();
    let nt = top_happy.len();
    let (within, across, random) = (
        block_mean(&cos, 0..nt, 0..nt),
        block_mean(&cos, 0..nt, nt..chosen.len()),
        block_mean(&cos, nt..chosen.len(), nt..chosen.len()),
    );
    out.md("## 1.1.3 Similarity of the top happy features on one prompt\n");
    let drawn = if n_active_others == others.len() {
        "all drawn among the features active on this token".to_string()
    } else {
        format!(
            "{n_active_others} drawn among the features active on this token, the rest among \
             all features: an inactive feature has the zero representation, cosine 0"
        )
    };
    out.md(format!(
        "Prompt: \"{text}\", read at \"{word}\" (tokens {:?}). Representations `a_i · W_dec[i]` \
         of the top {nt} happy features (from §1.1.1) and {} random other features (seed {}; \
         {drawn}). For two active features this cosine is their decoder cosine.\n",
        one.tokens,
        others.len(),
        opts.seed
    ));
    out.md(format!(
        "Mean cosine among the top features: **{within:.3}**; top vs random: {across:.3}; \
         among random: {random:.3}.\n"
    ));
    matrix_md(&mut out, &labels, &cos);
    let fig = out.figure("fig4_happy_feature_similarity", |p| {
        let title = format!("Cosines of a_i W_dec[i] on \"{word}\" at {hook}");
        Ok(cosine_heatmap(p, &title, &labels, &labels, cos.view())?)
    })?;
    out.md(format!("\nFigure: {fig}\n"));
    out.json.insert(
        "happy_similarity".into(),
        json!({"prompt": text, "word": word, "tokens": one.tokens, "positions": one.positions,
               "features": chosen, "activations": chosen.iter().map(|&f| one.acts[f]).collect::<Vec<_>>(),
               "n_top": nt, "n_random_active": n_active_others,
               "activation_weighted_cosines": matrix_json(&cos),
               "decoder_cosines": matrix_json(&dec_cos),
               "mean_within_top": within, "mean_top_vs_random": across, "mean_within_random": random}),
    );

    // §1.1.4 Top happy features at every layer, and their decoder cosines across layers.
    out.md("## 1.1.4 Happy features in every layer\n");
    out.md("| layer | top features (mean activation) |\n|---|---|");
    let mut layer_means: Vec<(String, Array1<f32>)> = Vec::new();
    let mut picked: Vec<Directions> = Vec::new();
    let mut xlabels: Vec<String> = Vec::new();
    let mut xlayer: Vec<usize> = Vec::new();
    let mut layers_json = Vec::new();
    let mut bars = Vec::new();
    for l in 0..n_layers {
        let owned;
        let sae_l = if l == layer {
            &sae
        } else {
            match sae_at(l)? {
                Some(s) => {
                    owned = s;
                    &owned
                }
                None => continue,
            }
        };
        let mean =
            mean_word_feature_acts(model, sae_l, &happy_prompts.word_prompts(), bos_of(sae_l))?;
        let top = top_features(mean.as_slice().expect("contiguous"), k);
        let idx: Vec<usize> = top.iter().map(|&(i, _)| i).collect();
        out.md(format!("| {l} | {} |", feats(&top)));
        picked.push(Directions::decoder(sae_l).select(&idx)?);
        for &(i, a) in &top {
            xlabels.push(format!("L{l} f{i}"));
            xlayer.push(l);
            bars.push((format!("L{l} f{i}"), a));
        }
        layers_json.push(json!({"layer": l, "top": top_json(&top)}));
        layer_means.push((format!("L{l}"), mean));
    }
    let series: Vec<(&str, &[f32])> = layer_means
        .iter()
        .map(|(n, m)| (n.as_str(), m.as_slice().expect("contiguous")))
        .collect();
    let mut figs = vec![out.figure("fig5_happy_by_layer", |p| {
        Ok(plot_activations(
            p,
            "Feature activations on \"happy\" at every layer's resid_pre",
            &series,
            k,
        )?)
    })?];
    if !bars.is_empty() {
        figs.push(out.figure("fig5_happy_top_by_layer", |p| {
            Ok(plot_feature_bars(
                p,
                &format!("Top {k} happy features per layer"),
                &bars,
            )?)
        })?);
    }
    let mut cross_json = json!({"layers": layers_json, "labels": xlabels});
    if !xlabels.is_empty() {
        let m = joint_similarity_matrix(&picked)?;
        figs.push(out.figure("fig6_cross_layer_similarity", |p| {
            Ok(cosine_heatmap(
                p,
                "Decoder cosines of the top happy features across layers",
                &xlabels,
                &xlabels,
                m.view(),
            )?)
        })?);
        // Best match of each feature in every other layer, summarised by layer distance.
        let mut by_distance: Vec<Vec<f32>> = vec![Vec::new(); n_layers];
        let mut best_json = Vec::new();
        out.md("\nBest match of each feature in any other layer (decoder cosine):\n");
        out.md("| feature | best match (cosine) |\n|---|---|");
        for r in 0..xlabels.len() {
            let mut best: Option<(usize, f32)> = None;
            for l in 0..n_layers {
                if l == xlayer[r] {
                    continue;
                }
                let in_l = (0..xlabels.len()).filter(|&c| xlayer[c] == l);
                if let Some(c) = in_l.max_by(|&a, &b| m[[r, a]].total_cmp(&m[[r, b]])) {
                    by_distance[l.abs_diff(xlayer[r])].push(m[[r, c]]);
                    if best.is_none_or(|(_, v)| m[[r, c]] > v) {
                        best = Some((c, m[[r, c]]));
                    }
                }
            }
            if let Some((c, v)) = best {
                out.md(format!("| {} | {} ({v:.3}) |", xlabels[r], xlabels[c]));
                best_json.push(json!({"feature": xlabels[r], "match": xlabels[c], "cosine": v}));
            }
        }
        out.md("\nMean best-match cosine by layer distance (nearby layers more alike?):\n");
        out.md("| distance | mean best cosine | pairs |\n|---|---|---|");
        let mut dist_json = Vec::new();
        for (d, v) in by_distance
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.is_empty())
        {
            let mean = v.iter().sum::<f32>() / v.len() as f32;
            out.md(format!("| {d} | {mean:.3} | {} |", v.len()));
            dist_json.push(json!({"distance": d, "mean_best_cosine": mean, "n": v.len()}));
        }
        cross_json["decoder_cosines"] = matrix_json(&m);
        cross_json["best_matches"] = json!(best_json);
        cross_json["by_distance"] = json!(dist_json);
    }
    out.md(format!("\nFigures: {}\n", figs.join(", ")));
    out.json.insert("layers".into(), cross_json);

    // §1.2.1 French "heureux" against English "happy", activations summed over sub-tokens.
    let fr = &prompts.french_happy;
    let fr_mean = mean_word_feature_acts(model, &sae, &fr.word_prompts(), bos)?;
    let fr_slice = fr_mean.as_slice().expect("contiguous");
    let fr_top = top_features(fr_slice, k);
    let en_top = top_features(happy, k);
    let overlap = shared_top_features(fr_slice, happy, k);
    let (fr_text, fr_word) = &fr.prompts[fr.prompts.len() - 1];
    let split = word_feature_acts(model, &sae, fr_text, fr_word, bos)?;

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
    let fig7 = out.figure("fig7_french_token_probabilities", |p| {
        let title = format!("p(token | prefix) on \"{fr_text}\"");
        Ok(interp::plot::bar_chart(
            p,
            &title,
            "probability",
            &prob_bars,
        )?)
    })?;
    let pair = Directions::from_rows(
        ndarray::stack(ndarray::Axis(0), &[fr_mean.view(), ndarray::aview1(happy)])?.view(),
    )?;
    let act_cos = pair.cosine(0, 1)?;
    out.md(format!(
        "## 1.2.1 French \"{}\" and English \"happy\" at `{hook}`\n",
        fr.words()
    ));
    out.md(format!(
        "\"{fr_text}\": \"{fr_word}\" is {} token(s) {:?}; activations are summed over them.\n",
        split.tokens.len(),
        split.tokens
    ));
    let word_probs: Vec<String> = split
        .positions
        .iter()
        .filter_map(|&i| i.checked_sub(1).and_then(|j| probs.get(j)))
        .zip(&split.tokens)
        .map(|(p, t)| format!("{t:?} {p:.3}"))
        .collect();
    out.md(format!(
        "Fig 7 ({fig7}): probability of each token given the ones before it; the tokens of \
         \"{fr_word}\": {}.\n",
        word_probs.join(", ")
    ));
    out.md("| word | top features (mean activation) |\n|---|---|");
    out.md(format!("| {} | {} |", fr.words(), feats(&fr_top)));
    out.md(format!("| happy | {} |", feats(&en_top)));
    out.md(format!(
        "\nOverlap of the top {k}: {}. Cosine between the two mean activation vectors: {act_cos:.3}.\n",
        if overlap.is_empty() { "none".into() } else { format!("{overlap:?}") }
    ));
    let mut union: Vec<usize> = fr_top.iter().chain(&en_top).map(|&(i, _)| i).collect();
    union.sort_unstable();
    union.dedup();
    let bars: Vec<(String, f32)> = union
        .iter()
        .flat_map(|&f| {
            [
                (format!("f{f} {}", fr.words()), fr_slice[f]),
                (format!("f{f} happy"), happy[f]),
            ]
        })
        .collect();
    if !bars.is_empty() {
        let fig = out.figure("fig8_french_vs_english", |p| {
            let title = format!("Features of \"{}\" and \"happy\" at {hook}", fr.words());
            Ok(plot_feature_bars(p, &title, &bars)?)
        })?;
        out.md(format!("Figure: {fig}\n"));
    }
    out.json.insert(
        "french_vs_english".into(),
        json!({"french_word": fr.words(), "prompts": fr.prompts, "example_tokens": split.tokens,
               "example_token_probabilities": next_tokens.iter().zip(&probs).collect::<Vec<_>>(),
               "french_top": top_json(&fr_top), "english_top": top_json(&en_top),
               "overlap": overlap, "activation_cosine": act_cos}),
    );
    Ok(out)
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| -> Option<&String> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "emotion_features [--layer L] [--out DIR] [--top-k K] [--seed S] \
             [--toy-dir DIR | --model <DIR|HUB_ID> --sae-release <RELEASE>]"
        );
        return Ok(());
    }
    let mut opts = Options {
        layer: flag("--layer").map(|s| s.parse()).transpose()?,
        top_k: flag("--top-k").map_or(Ok(3), |s| s.parse())?,
        seed: flag("--seed").map_or(Ok(0), |s| s.parse())?,
        out: flag("--out").map_or_else(|| PathBuf::from("out/emotion_features"), PathBuf::from),
        source: String::new(),
    };
    let start = Instant::now();
    let out = match flag("--model") {
        Some(name) => {
            let release = flag("--sae-release").ok_or("--model needs --sae-release <RELEASE>")?;
            if interp::sae::registry::saes(release).is_empty() {
                return Err(format!(
                    "unknown SAE release `{release}`; known: {}",
                    interp::sae::registry::releases().join(", ")
                )
                .into());
            }
            let model = HookedTransformer::<Cpu>::from_pretrained(name, &Default::default())?
                .process_weights(ProcessingOptions::TRANSFORMER_LENS);
            opts.source = format!("`{name}` with SAE release `{release}`");
            let sae_at = |layer: usize| hub_sae(release, layer);
            run_study(&model, &sae_at, &Prompts::write_up(), &opts)?
        }
        None => {
            let world = match flag("--toy-dir") {
                Some(dir) => ToyWorld::from_dir(Path::new(dir))?,
                None => ToyWorld::load()?,
            };
            opts.source = format!("toy world `{}`", world.dir().display());
            let hooks = world.sae_hooks()?;
            let sae_at = |layer: usize| -> Res<Option<Sae>> {
                let hook = interp::models::HookPoint::resid_pre(layer);
                if !hooks.contains(&hook) {
                    return Ok(None);
                }
                Ok(Some(world.sae(&hook.to_string())?))
            };
            run_study(world.model(), &sae_at, &Prompts::toy(), &opts)?
        }
    };
    std::fs::write(out.dir.join("report.md"), &out.report)?;
    std::fs::write(
        out.dir.join("results.json"),
        serde_json::to_string_pretty(&Value::Object(out.json.clone()))?,
    )?;
    print_summary(&out);
    println!("wrote {} in {:.1?}", out.dir.display(), start.elapsed());
    Ok(())
}

/// The headline numbers on stdout.
fn print_summary(out: &Output) {
    let j = &out.json;
    let list = |v: &Value| -> String {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|t| format!("{}", t["feature"]))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} at {}",
        j["setup"]["source"].as_str().unwrap_or(""),
        j["setup"]["hook"]
    );
    if let Some(top) = j["top_features"].as_object() {
        for (name, e) in top {
            let _ = writeln!(s, "  top {name:8} [{}]", list(&e["top"]));
        }
    }
    let _ = writeln!(
        s,
        "  shared happy/excited {}",
        list(&j["shared_happy_excited"]["features"])
    );
    let h = &j["happy_similarity"];
    let _ = writeln!(
        s,
        "  happy feature cosines: within top {:.3}, top vs random {:.3}",
        h["mean_within_top"].as_f64().unwrap_or(f64::NAN),
        h["mean_top_vs_random"].as_f64().unwrap_or(f64::NAN)
    );
    let f = &j["french_vs_english"];
    let _ = writeln!(
        s,
        "  {} [{}] vs happy [{}]: overlap {}",
        f["french_word"].as_str().unwrap_or(""),
        list(&f["french_top"]),
        list(&f["english_top"]),
        f["overlap"]
    );
    print!("{s}");
}

/// The SAE of `release` on `blocks.{layer}.hook_resid_pre` from the hub.
#[cfg(feature = "hub")]
fn hub_sae(release: &str, layer: usize) -> Res<Option<Sae>> {
    let hook = format!("blocks.{layer}.hook_resid_pre");
    match interp::sae::registry::saes(release)
        .into_iter()
        .find(|e| e.hook_name == hook)
    {
        Some(entry) => Ok(Some(interp::sae::registry::from_pretrained(
            release,
            entry.sae_id,
        )?)),
        None => Ok(None),
    }
}

#[cfg(not(feature = "hub"))]
fn hub_sae(release: &str, _layer: usize) -> Res<Option<Sae>> {
    Err(format!(
        "loading SAE release `{release}` needs the hub: \
         cargo run --release --features hub --example emotion_features -- --model ... --sae-release {release}"
    )
    .into())
}
