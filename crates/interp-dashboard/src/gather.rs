//! The pass that gathers dashboard data: token windows through the model up to the SAE's hook,
//! the SAE's sparse codes, and every tracked feature's [`FeatureStats`] updated in parallel
//! (features are split across threads; each feature's state is touched by one thread only, so
//! results do not depend on the thread count).
//!
//! Memory: the windows' tokens (4 bytes a token, for the examples' contexts), one batch of
//! activations and codes, and [`StatsShape::bytes_per_feature`] per tracked feature.

use std::time::Instant;

use burn::tensor::backend::Backend;
use indicatif::{ProgressBar, ProgressStyle};
use interp_models::hooks::HookPoint;
use interp_models::{Batch, HookSpec, HookedTransformer, NameFilter, PaddingSide};
use interp_sae::hooked::sae_hook_point;
use interp_sae::store::{token_windows, Corpus, StoreConfig};
use interp_sae::{Sae, SparseCodes};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::stats::{FeatureStats, StatsShape, Tracker};

/// How the pass reads the corpus and what it keeps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GatherOptions {
    /// What is kept per feature.
    pub shape: StatsShape,
    /// Tokens of context shown on either side of an example's token. Default 5 (SAEDashboard's
    /// `buffer=(5, 5)`).
    pub context: usize,
    /// Tokens to read (whole windows; the last window may pass it). Default 65 536.
    pub max_tokens: usize,
    /// Tokens per window; default the SAE's `metadata.context_size`, else 128, at most the
    /// model's `n_ctx`.
    pub context_size: Option<usize>,
    /// Start each window with BOS; default the SAE's `metadata.prepend_bos`, else true.
    pub prepend_bos: Option<bool>,
    /// Windows per forward pass. Default 8.
    pub windows_per_forward: usize,
    /// Seed of the band samples.
    pub seed: u64,
    /// Show a progress bar on stderr (drawn only on a terminal).
    pub progress: bool,
    /// Features to track (ascending, no repeats); `None` tracks all.
    pub features: Option<Vec<usize>>,
}

impl Default for GatherOptions {
    fn default() -> Self {
        GatherOptions {
            shape: StatsShape::default(),
            context: 5,
            max_tokens: 65_536,
            context_size: None,
            prepend_bos: None,
            windows_per_forward: 8,
            seed: 0,
            progress: true,
            features: None,
        }
    }
}

/// What the pass found: the windows it read and every tracked feature's statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureData {
    /// The SAE's hook.
    pub hook: String,
    /// The SAE's width.
    pub d_sae: usize,
    /// Tokens per window.
    pub context_size: usize,
    /// The windows' tokens, window after window (`context_size` each).
    pub tokens: Vec<u32>,
    /// Token positions counted (BOS positions are left out of every statistic).
    pub counted: u64,
    /// Statistics of the tracked features, ascending by id.
    pub features: Vec<FeatureStats>,
    /// Seconds the pass took.
    pub seconds: f64,
}

impl FeatureData {
    /// Number of windows read.
    pub fn n_windows(&self) -> usize {
        self.tokens
            .len()
            .checked_div(self.context_size)
            .unwrap_or(0)
    }

    /// The tokens of window `w`.
    ///
    /// # Panics
    /// If `w >= n_windows()`.
    pub fn window(&self, w: usize) -> &[u32] {
        &self.tokens[w * self.context_size..(w + 1) * self.context_size]
    }

    /// The statistics of `feature`, if it was tracked.
    pub fn get(&self, feature: usize) -> Option<&FeatureStats> {
        self.features
            .binary_search_by_key(&feature, |f| f.feature)
            .ok()
            .map(|i| &self.features[i])
    }

    /// Fraction of counted tokens where `stats` fired.
    pub fn density(&self, stats: &FeatureStats) -> f64 {
        if self.counted == 0 {
            0.0
        } else {
            stats.fired as f64 / self.counted as f64
        }
    }
}

/// The window rule the pass uses for `sae` on `model`.
fn store_config<B: Backend>(
    model: &HookedTransformer<B>,
    sae: &Sae,
    opts: &GatherOptions,
) -> StoreConfig {
    let meta = &sae.config().metadata;
    let mut cfg = StoreConfig::new([meta.hook_name.clone().unwrap_or_default()]);
    cfg.context_size = opts
        .context_size
        .or(meta.context_size)
        .unwrap_or(128)
        .min(model.cfg().n_ctx);
    cfg.prepend_bos = opts.prepend_bos.or(meta.prepend_bos).unwrap_or(true);
    cfg.cycle = false;
    cfg.progress = false;
    cfg
}

/// Reads `corpus` (a `.txt` / `.jsonl` file or a directory of them) in windows cut as SAELens
/// cuts them, and gathers dashboard data for `sae` over the first
/// [`GatherOptions::max_tokens`] tokens.
///
/// # Errors
/// [`Error::EmptyCorpus`] when the corpus gives no full window; those of [`gather`].
pub fn gather_corpus<B: Backend>(
    model: &HookedTransformer<B>,
    sae: &Sae,
    corpus: &Corpus,
    opts: &GatherOptions,
) -> Result<FeatureData> {
    sae_hook_point(model, sae.config())?;
    let cfg = store_config(model, sae, opts);
    let context_size = cfg.context_size;
    let windows = token_windows(model, corpus, &cfg)?;
    let budget = opts.max_tokens.div_ceil(context_size.max(1));
    let windows: Vec<Vec<u32>> = windows
        .take(budget)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| match e {
            interp_sae::Error::Data { reason, .. } => Error::EmptyCorpus {
                context_size,
                reason,
            },
            e => e.into(),
        })?;
    if windows.is_empty() {
        return Err(Error::EmptyCorpus {
            context_size,
            reason: "the corpus holds fewer tokens than one window".into(),
        });
    }
    let bos = model.cfg().bos_token_id.or(model.cfg().eos_token_id);
    gather(model, sae, &windows, bos, opts)
}

/// Gathers dashboard data for `sae` over `windows` (equal lengths); positions holding `bos`
/// are left out of the statistics (they still show in contexts).
///
/// # Errors
/// [`Error::Sae`] when the model lacks the SAE's hook or its width is not the SAE's `d_in`;
/// [`Error::EmptyCorpus`] for no windows or windows of different lengths;
/// [`Error::FeatureOutOfRange`] for a tracked feature past `d_sae`; [`Error::NonFinite`] for
/// NaN activations; model errors.
pub fn gather<B: Backend>(
    model: &HookedTransformer<B>,
    sae: &Sae,
    windows: &[Vec<u32>],
    bos: Option<u32>,
    opts: &GatherOptions,
) -> Result<FeatureData> {
    let start = Instant::now();
    let point = sae_hook_point(model, sae.config())?;
    let context_size = windows.first().map_or(0, Vec::len);
    if context_size == 0 || windows.iter().any(|w| w.len() != context_size) {
        return Err(Error::EmptyCorpus {
            context_size,
            reason: "the windows are empty or of different lengths".into(),
        });
    }
    let d_sae = sae.d_sae();
    let features: Vec<usize> = match &opts.features {
        Some(f) => {
            if let Some(&bad) = f.iter().find(|&&i| i >= d_sae) {
                return Err(Error::FeatureOutOfRange {
                    feature: bad,
                    d_sae,
                });
            }
            let mut f = f.clone();
            f.sort_unstable();
            f.dedup();
            f
        }
        None => (0..d_sae).collect(),
    };
    // Feature id → tracker slot (u32::MAX: not tracked).
    let mut slot = vec![u32::MAX; d_sae];
    for (s, &f) in features.iter().enumerate() {
        slot[f] = s as u32;
    }
    let shape = opts.shape;
    if shape.bins < 2 || !shape.bins.is_multiple_of(2) || !shape.bands.is_power_of_two() {
        return Err(Error::invalid(
            "stats shape",
            format!(
                "bins must be even and ≥ 2, bands a power of two (got {} bins, {} bands)",
                shape.bins, shape.bands
            ),
        ));
    }
    let mut trackers: Vec<Tracker> = features
        .iter()
        .map(|&f| Tracker::new(f, &shape, opts.seed))
        .collect();

    let bar = progress_bar(opts.progress, windows.len() * context_size);
    let per_forward = opts.windows_per_forward.max(1);
    let mut counted = 0u64;
    for (b, batch) in windows.chunks(per_forward).enumerate() {
        let first_window = b * per_forward;
        let rows = activations(model, point, batch)?;
        if rows.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: format!("the activations at `{point}`"),
            });
        }
        let width = rows.len() / (batch.len() * context_size);
        let rows = ndarray::ArrayView2::from_shape((batch.len() * context_size, width), &rows)
            .map_err(|e| Error::invalid("activations", e.to_string()))?;
        let codes = sae.encode_sparse(rows)?;
        let tokens: Vec<u32> = batch.iter().flatten().copied().collect();
        let counts = |r: usize| Some(tokens[r]) != bos;
        counted += (0..tokens.len()).filter(|&r| counts(r)).count() as u64;
        let columns = Columns::new(&codes, &slot, features.len(), counts);
        let ctx = Ctx {
            codes: &codes,
            context_size,
            context: opts.context,
        };
        let chunk = trackers
            .len()
            .div_ceil(rayon::current_num_threads() * 4)
            .max(1);
        trackers
            .par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(c, part)| {
                for (i, t) in part.iter_mut().enumerate() {
                    let s = c * chunk + i;
                    let f = features[s];
                    for &(row, a) in columns.of(s) {
                        let (w, p) = (row as usize / context_size, row as usize % context_size);
                        t.observe(a, (first_window + w) as u32, p as u32, &shape, || {
                            ctx.context_of(f, row as usize)
                        });
                    }
                }
            });
        bar.inc((batch.len() * context_size) as u64);
    }
    bar.finish_and_clear();
    let features = trackers.into_iter().map(|t| t.finish(&shape)).collect();
    Ok(FeatureData {
        hook: point.to_string(),
        d_sae,
        context_size,
        tokens: windows.iter().flatten().copied().collect(),
        counted,
        features,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn progress_bar(show: bool, total: usize) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "dashboard pass {bar:30} {human_pos}/{human_len} tokens [{elapsed_precise}] {per_sec}",
        )
        .expect("valid template"),
    );
    bar
}

/// The activations at `point` for `batch`, one row per token (`[batch · pos, width]` flat).
fn activations<B: Backend>(
    model: &HookedTransformer<B>,
    point: HookPoint,
    batch: &[Vec<u32>],
) -> Result<Vec<f32>> {
    let mut spec = HookSpec::new().cache(NameFilter::patterns([point.to_string()]));
    if let Some(layer) = point.layer() {
        if layer + 1 < model.cfg().n_layers {
            spec = spec.stop_at_layer(layer + 1);
        }
    }
    let (_, cache) = model.run(&Batch::padded(batch, PaddingSide::Right), &spec)?;
    let act = cache
        .get(&point)
        .ok_or_else(|| Error::invalid("forward", format!("the forward did not cache `{point}`")))?;
    act.to_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| Error::invalid("activations", format!("{e:?}")))
}

/// The batch's codes by tracked feature: `(row, activation)` with activation > 0, rows
/// ascending.
struct Columns {
    offsets: Vec<usize>,
    entries: Vec<(u32, f32)>,
}

impl Columns {
    fn new(codes: &SparseCodes, slot: &[u32], n: usize, counts: impl Fn(usize) -> bool) -> Self {
        let mut offsets = vec![0usize; n + 1];
        let kept = |r: usize| {
            let (idx, val) = codes.row(r);
            idx.iter()
                .zip(val)
                .filter(|&(&i, &v)| v > 0.0 && slot[i as usize] != u32::MAX)
                .map(|(&i, &v)| (slot[i as usize] as usize, v))
                .collect::<Vec<_>>()
        };
        let rows: Vec<Vec<(usize, f32)>> = (0..codes.n_rows())
            .map(|r| if counts(r) { kept(r) } else { Vec::new() })
            .collect();
        for row in &rows {
            for &(s, _) in row {
                offsets[s + 1] += 1;
            }
        }
        for s in 0..n {
            offsets[s + 1] += offsets[s];
        }
        let mut fill = offsets.clone();
        let mut entries = vec![(0u32, 0f32); offsets[n]];
        for (r, row) in rows.iter().enumerate() {
            for &(s, v) in row {
                entries[fill[s]] = (r as u32, v);
                fill[s] += 1;
            }
        }
        Columns { offsets, entries }
    }

    fn of(&self, slot: usize) -> &[(u32, f32)] {
        &self.entries[self.offsets[slot]..self.offsets[slot + 1]]
    }
}

/// What an example's context is read from.
struct Ctx<'a> {
    codes: &'a SparseCodes,
    context_size: usize,
    context: usize,
}

impl Ctx<'_> {
    /// `feature`'s activations around `row` within its window: (first position, values).
    fn context_of(&self, feature: usize, row: usize) -> (u32, Vec<f32>) {
        let (w, p) = (row / self.context_size, row % self.context_size);
        let lo = p.saturating_sub(self.context);
        let hi = (p + self.context + 1).min(self.context_size);
        let values = (lo..hi)
            .map(|q| {
                let (idx, val) = self.codes.row(w * self.context_size + q);
                idx.iter()
                    .position(|&i| i as usize == feature)
                    .map_or(0.0, |j| val[j].max(0.0))
            })
            .collect();
        (lo as u32, values)
    }
}
