//! The dashboard as values ([`Dashboard`], one [`FeatureView`] per shown feature) and as a
//! static site: `index.html` (a sortable, searchable table of the features, drawn by a small
//! script from data embedded in the page), `index.json` (the same rows), and one
//! `features/<id>.html` per feature, opened on demand from the index. Every page is
//! self-contained (no CDN, no server): it opens from the file system, and each holds its
//! data as JSON in `<script type="application/json">`.

mod feature_page;
mod histogram;
mod html;
mod index_page;

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::backend::Backend;
use interp_geometry::{top_k_matches, Directions};
use interp_models::HookedTransformer;
use interp_sae::Sae;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::explanations::Explanations;
use crate::gather::FeatureData;
use crate::logit_lens::{logit_lens, LogitLens};
use crate::select::FeatureSelection;
use crate::stats::{Example, FeatureStats};

/// What a dashboard shows besides the pass's statistics.
#[derive(Clone, Debug, Default)]
pub struct DashboardOptions {
    /// The site's title (default: the SAE's hook).
    pub title: Option<String>,
    /// Tokens listed each way in the logit lens. Default 10 (`0` means the default).
    pub logit_tokens: usize,
    /// Nearest features by decoder cosine listed. Default 8 (`0` means the default).
    pub neighbours: usize,
    /// Explanations to show (a Neuronpedia export).
    pub explanations: Option<Explanations>,
    /// Feature → link to its flow graph, relative to the site's root.
    pub flow_graphs: BTreeMap<usize, String>,
}

/// An example as a page shows it: the context's tokens and the feature's activation at each.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShownExample {
    /// The activation at the example's token.
    pub activation: f32,
    /// Which window and position of the pass.
    pub window: u32,
    /// Position in its window.
    pub position: u32,
    /// Index of the example's token in `tokens`.
    pub at: usize,
    /// Context token ids.
    pub tokens: Vec<u32>,
    /// The feature's activation at each context token.
    pub acts: Vec<f32>,
}

/// A group of random examples from one activation band.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShownBand {
    /// Lower end of the band.
    pub lower: f32,
    /// Upper end (exclusive).
    pub upper: f32,
    /// Activations in the band over the whole pass.
    pub seen: u64,
    /// The examples, strongest first.
    pub examples: Vec<ShownExample>,
}

/// Everything one feature's page shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureView {
    /// The feature id.
    pub feature: usize,
    /// Fraction of tokens where it fired.
    pub density: f64,
    /// Tokens where it fired.
    pub fired: u64,
    /// Largest activation.
    pub max: f32,
    /// Mean activation where it fired.
    pub mean: f64,
    /// Histogram of the non-zero activations: bin width and counts (up to the last non-empty
    /// bin).
    pub histogram_bin_width: f32,
    /// Counts per bin.
    pub histogram: Vec<u64>,
    /// Top activating tokens with context, strongest first.
    pub top: Vec<ShownExample>,
    /// Random examples per activation band, strongest band first.
    pub bands: Vec<ShownBand>,
    /// The logit lens (absent when the SAE's decoder is not in the residual stream).
    pub logit_lens: Option<LogitLens>,
    /// Nearest features by decoder cosine, nearest first.
    pub neighbours: Vec<(usize, f32)>,
    /// The most frequent tokens among the top examples (for the index).
    pub top_tokens: Vec<u32>,
    /// Its explanation, when one was imported.
    pub explanation: Option<String>,
    /// Link to its flow graph, relative to the site's root.
    pub flow_graph: Option<String>,
}

/// About the SAE and the pass, shown on every page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SiteInfo {
    /// The site's title.
    pub title: String,
    /// The SAE's hook.
    pub hook: String,
    /// The model's name, when the SAE's config gives it.
    pub model: Option<String>,
    /// The SAE's width.
    pub d_sae: usize,
    /// Tokens counted in the pass.
    pub tokens: u64,
    /// Windows read, and their length.
    pub windows: usize,
    /// Tokens per window.
    pub context_size: usize,
}

/// A feature dashboard: the shown features and the token strings their pages need.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dashboard {
    /// About the SAE and the pass.
    pub info: SiteInfo,
    /// The shown features, ascending.
    pub features: Vec<FeatureView>,
    /// Token id → text, for every token the pages show.
    pub token_text: BTreeMap<u32, String>,
}

fn shown(e: &Example, data: &FeatureData) -> ShownExample {
    let window = data.window(e.window as usize);
    let start = e.context_start as usize;
    ShownExample {
        activation: e.activation,
        window: e.window,
        position: e.position,
        at: e.position as usize - start,
        tokens: window[start..start + e.context.len()].to_vec(),
        acts: e.context.clone(),
    }
}

fn top_tokens(stats: &FeatureStats, data: &FeatureData, n: usize) -> Vec<u32> {
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    for e in &stats.top {
        *counts
            .entry(data.window(e.window as usize)[e.position as usize])
            .or_default() += 1;
    }
    let mut v: Vec<(u32, usize)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.into_iter().take(n).map(|(t, _)| t).collect()
}

impl Dashboard {
    /// Builds the dashboard of `selection` from a pass's `data` over `sae` on `model`: the
    /// logit lens, nearest features by decoder cosine (over all of the SAE's features) and the
    /// token strings.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `data` is of another SAE (hook or width); model, SAE and
    /// geometry errors.
    pub fn build<B: Backend>(
        model: &HookedTransformer<B>,
        sae: &Sae,
        data: &FeatureData,
        selection: &FeatureSelection,
        opts: &DashboardOptions,
    ) -> Result<Self> {
        if data.d_sae != sae.d_sae() {
            return Err(Error::invalid(
                "dashboard data",
                format!(
                    "gathered for an SAE of d_sae {}, this one has {}",
                    data.d_sae,
                    sae.d_sae()
                ),
            ));
        }
        let ids = selection.pick(data);
        let logit_n = if opts.logit_tokens == 0 {
            10
        } else {
            opts.logit_tokens
        };
        let neighbour_n = if opts.neighbours == 0 {
            8
        } else {
            opts.neighbours
        };
        let lens = logit_lens(model, sae, &ids, logit_n)?;
        let neighbours = if ids.is_empty() {
            None
        } else {
            let all = Directions::decoder(sae);
            let rows = sae.weights().w_dec.select(ndarray::Axis(0), &ids);
            let chosen = Directions::from_rows(rows.view())?;
            Some(top_k_matches(&chosen, &all, neighbour_n + 1)?)
        };
        let mut features = Vec::with_capacity(ids.len());
        for (i, &f) in ids.iter().enumerate() {
            let stats = data.get(f).expect("picked from the data");
            let neighbours = neighbours.as_ref().map_or_else(Vec::new, |n| {
                let (idx, score) = n.row(i);
                idx.iter()
                    .zip(score)
                    .filter(|&(&j, _)| j as usize != f)
                    .take(neighbour_n)
                    .map(|(&j, &s)| (j as usize, s))
                    .collect()
            });
            features.push(FeatureView {
                feature: f,
                density: data.density(stats),
                fired: stats.fired,
                max: stats.max,
                mean: stats.mean_when_fired(),
                histogram_bin_width: stats.histogram.bin_width(),
                histogram: stats.histogram.used().to_vec(),
                top: stats.top.iter().map(|e| shown(e, data)).collect(),
                bands: stats
                    .bands
                    .iter()
                    .map(|b| ShownBand {
                        lower: b.lower,
                        upper: b.upper,
                        seen: b.seen,
                        examples: b.examples.iter().map(|e| shown(e, data)).collect(),
                    })
                    .collect(),
                logit_lens: lens.as_ref().map(|l| l[i].clone()),
                neighbours,
                top_tokens: top_tokens(stats, data, 3),
                explanation: opts
                    .explanations
                    .as_ref()
                    .and_then(|e| e.by_feature.get(&f).cloned()),
                flow_graph: opts.flow_graphs.get(&f).cloned(),
            });
        }
        let mut ids_shown: Vec<u32> = Vec::new();
        for v in &features {
            ids_shown.extend(
                v.top
                    .iter()
                    .chain(v.bands.iter().flat_map(|b| &b.examples))
                    .flat_map(|e| e.tokens.iter().copied()),
            );
            if let Some(l) = &v.logit_lens {
                ids_shown.extend(l.promoted.iter().chain(&l.suppressed).map(|p| p.0));
            }
            ids_shown.extend(&v.top_tokens);
        }
        ids_shown.sort_unstable();
        ids_shown.dedup();
        let tokenizer = model.tokenizer()?;
        let texts = tokenizer.str_tokens(&ids_shown)?;
        let token_text = ids_shown.into_iter().zip(texts).collect();
        let meta = &sae.config().metadata;
        Ok(Dashboard {
            info: SiteInfo {
                title: opts
                    .title
                    .clone()
                    .unwrap_or_else(|| format!("Features of {}", data.hook)),
                hook: data.hook.clone(),
                model: meta.model_name.clone(),
                d_sae: data.d_sae,
                tokens: data.counted,
                windows: data.n_windows(),
                context_size: data.context_size,
            },
            features,
            token_text,
        })
    }

    /// The text of `token` (`�` for one the dashboard does not know).
    pub fn token(&self, token: u32) -> &str {
        self.token_text
            .get(&token)
            .map_or("\u{fffd}", String::as_str)
    }

    /// Writes the site into `dir` (created if missing): `index.html`, `index.json` and
    /// `features/<id>.html`, each file written atomically.
    ///
    /// # Errors
    /// [`Error::Core`] when a file cannot be written.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let rows = index_page::rows(self);
        let json = serde_json::to_vec_pretty(&serde_json::json!({
            "info": &self.info,
            "features": rows,
        }))
        .map_err(|e| Error::invalid("index.json", e.to_string()))?;
        interp_core::write_atomic(&dir.join("index.json"), &json)?;
        interp_core::write_atomic(
            &dir.join("index.html"),
            index_page::render(self, &rows).as_bytes(),
        )?;
        let shown: std::collections::BTreeSet<usize> =
            self.features.iter().map(|f| f.feature).collect();
        self.features
            .par_iter()
            .enumerate()
            .try_for_each(|(i, view)| {
                let prev = i.checked_sub(1).map(|j| self.features[j].feature);
                let next = self.features.get(i + 1).map(|f| f.feature);
                let page = feature_page::render(self, view, &shown, prev, next);
                interp_core::write_atomic(
                    &dir.join(feature_page::path(view.feature)),
                    page.as_bytes(),
                )
                .map_err(Error::from)
            })
    }
}
