//! The store itself: [`ActivationStore`] runs the model over windows of the corpus, collects
//! every hook in one pass, hands rows out through the mixing buffer, and seeks back to a saved
//! position by replay (see the [module documentation](super#resuming)).

use std::collections::BTreeSet;
use std::sync::Arc;

use burn::tensor::backend::Backend;
use indicatif::{ProgressBar, ProgressStyle};
use interp_models::hooks::{HookPoint, HookSpec, NameFilter};
use interp_models::{Batch, HookedTransformer, PaddingSide};
use ndarray::{Array2, ArrayViewMut2};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::buffer::{Mixer, ReplayChunks};
use super::config::hook_width;
use super::windows::{window_rule, Packer};
use super::{config_err, data_err, Corpus, RowOrigin, StoreConfig};
use crate::error::{Error, Result};
use crate::train::{ActivationSource, SplitMix64};

/// Activations of a model over a corpus, at one or several hooks, through a bounded mixing
/// buffer. See the [module documentation](super).
///
/// ```no_run
/// use std::sync::Arc;
/// use interp_models::prelude::*;
/// use interp_sae::store::{ActivationStore, Corpus, StoreConfig};
///
/// let device = Default::default();
/// let model = Arc::new(HookedTransformer::<Cpu>::from_pretrained("gpt2", &device)?);
/// let cfg = StoreConfig::new(["blocks.6.hook_resid_pre", "blocks.8.hook_resid_pre"]);
/// let mut store = ActivationStore::new(model, Corpus::open("corpus.jsonl")?, cfg)?;
/// let batches = store.next_batches(4096)?; // one [4096, 768] batch per hook, same tokens
/// # Ok::<(), interp_sae::Error>(())
/// ```
pub struct ActivationStore<B: Backend> {
    model: Arc<HookedTransformer<B>>,
    corpus: Corpus,
    pub(super) cfg: StoreConfig,
    pub(super) points: Vec<HookPoint>,
    pub(super) dims: Vec<usize>,
    bos: u32,
    packer: Packer,
    mixer: Mixer,
    rng: SplitMix64,
    /// Windows read from the corpus so far.
    windows: u64,
    rows_out: u64,
    pub(super) tokens_processed: u64,
    exhausted: bool,
    progress: ProgressBar,
}

impl<B: Backend> std::fmt::Debug for ActivationStore<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivationStore")
            .field("cfg", &self.cfg)
            .field("corpus", &self.corpus)
            .field("windows", &self.windows)
            .field("rows_out", &self.rows_out)
            .field("buffered_rows", &self.mixer.len())
            .finish_non_exhaustive()
    }
}

/// A position of an [`ActivationStore`], as stored in checkpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct StorePosition {
    kind: String,
    rows_out: u64,
    windows: u64,
    rng: SplitMix64,
}

const STORE_KIND: &str = "interp-sae activation store";

impl<B: Backend> ActivationStore<B> {
    /// A store over `corpus` for `model`. Checks the configuration, the hooks and the tokenizer
    /// and reads the start of the corpus (up to one window) before any forward pass.
    ///
    /// # Errors
    /// [`Error::Model`] for a hook the model does not have or a model without tokenizer;
    /// [`Error::Unsupported`] for attention scores/pattern hooks; [`Error::TrainConfig`] for
    /// an impossible configuration; [`Error::Data`] for an empty or malformed corpus.
    pub fn new(model: Arc<HookedTransformer<B>>, corpus: Corpus, cfg: StoreConfig) -> Result<Self> {
        let mcfg = model.cfg().clone();
        if cfg.hooks.is_empty() {
            return Err(config_err("the store needs at least one hook"));
        }
        let mut points = Vec::with_capacity(cfg.hooks.len());
        let mut dims = Vec::with_capacity(cfg.hooks.len());
        for name in &cfg.hooks {
            let point = mcfg.parse_hook(name)?;
            if points.contains(&point) {
                return Err(config_err(format!("hook `{name}` is listed twice")));
            }
            dims.push(hook_width(&mcfg, point)?);
            points.push(point);
        }
        let rule = window_rule(&mcfg, &cfg)?;
        let (bos, ctx) = (rule.bos, rule.context_size);
        if cfg.windows_per_forward == 0 {
            return Err(config_err("windows_per_forward must be at least 1"));
        }
        let rows_per_window = Self::max_rows_per_window(&cfg);
        if rows_per_window == 0 {
            return Err(config_err("every position of a window is excluded"));
        }
        if cfg.buffer_rows < 2 * rows_per_window {
            return Err(config_err(format!(
                "buffer_rows {} must hold at least two windows ({} rows)",
                cfg.buffer_rows,
                2 * rows_per_window
            )));
        }
        // Fail on an empty corpus (or one shorter than a window) before any forward pass.
        let mut probe = Packer::new(&corpus, rule, cfg.cycle);
        if probe.next_window(model.tokenizer()?)?.is_none() {
            return Err(data_err(format!(
                "the corpus holds fewer than context_size = {ctx} tokens"
            )));
        }
        let progress = if cfg.progress {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {msg} {human_pos} tokens [{elapsed_precise}] {per_sec}",
                )
                .expect("valid template"),
            );
            bar.set_message("activations:");
            bar
        } else {
            ProgressBar::hidden()
        };
        Ok(ActivationStore {
            packer: Packer::new(&corpus, rule, cfg.cycle),
            mixer: Mixer::new(cfg.buffer_rows, &dims),
            rng: SplitMix64::new(cfg.seed),
            model,
            corpus,
            points,
            dims,
            bos,
            cfg,
            windows: 0,
            rows_out: 0,
            tokens_processed: 0,
            exhausted: false,
            progress,
        })
    }

    fn max_rows_per_window(cfg: &StoreConfig) -> usize {
        cfg.context_size - usize::from(cfg.prepend_bos && cfg.exclude_bos)
    }

    /// The model.
    pub fn model(&self) -> &Arc<HookedTransformer<B>> {
        &self.model
    }

    /// The configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// The hooks, in batch order.
    pub fn hooks(&self) -> &[HookPoint] {
        &self.points
    }

    /// The activation width of each hook, in batch order.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// Rows handed out so far.
    pub fn rows_out(&self) -> u64 {
        self.rows_out
    }

    /// Windows read from the corpus so far.
    pub fn windows_read(&self) -> u64 {
        self.windows
    }

    /// Tokens run through the model so far (replays after [`ActivationStore::seek`] included).
    pub fn tokens_processed(&self) -> u64 {
        self.tokens_processed
    }

    /// Completed passes over the corpus.
    pub fn passes(&self) -> u64 {
        self.packer.passes()
    }

    /// Rows in the mixing buffer now.
    pub fn buffered_rows(&self) -> usize {
        self.mixer.len()
    }

    /// The most rows the mixing buffer has held (never above [`StoreConfig::buffer_rows`]).
    pub fn peak_buffered_rows(&self) -> usize {
        self.mixer.peak
    }

    /// Whether the position of `tokens` at `p` yields a row.
    fn keeps(&self, tokens: &[u32], p: usize) -> bool {
        if p == 0 && self.cfg.exclude_bos && tokens[0] == self.bos {
            return false;
        }
        !self.cfg.exclude_tokens.contains(&tokens[p])
    }

    /// Fills the buffer up to capacity (with values, or identities only while replaying into
    /// `replay`), shuffles it and marks the rows to hand out.
    fn refill(&mut self, mut replay: Option<&mut ReplayChunks>) -> Result<()> {
        let with_rows = replay.is_none();
        self.mixer.compact(with_rows);
        let ctx = self.cfg.context_size;
        let per_window = Self::max_rows_per_window(&self.cfg);
        while !self.exhausted && self.mixer.len() + per_window <= self.mixer.capacity {
            let room = (self.mixer.capacity - self.mixer.len()) / per_window;
            let k = room.min(self.cfg.windows_per_forward);
            let mut chunk = Vec::with_capacity(k);
            while chunk.len() < k {
                match self.packer.next_window(self.model.tokenizer()?)? {
                    Some(w) => chunk.push(w),
                    None => {
                        self.exhausted = true;
                        break;
                    }
                }
            }
            if chunk.is_empty() {
                break;
            }
            let first = self.windows;
            self.windows += chunk.len() as u64;
            let values = if with_rows {
                let v = forward_windows(&self.model, &self.points, &self.dims, &chunk)?;
                let n = (chunk.len() * ctx) as u64;
                self.tokens_processed += n;
                self.progress.inc(n);
                Some(v)
            } else {
                None
            };
            for (wi, tokens) in chunk.iter().enumerate() {
                for p in 0..ctx {
                    if !self.keeps(tokens, p) {
                        continue;
                    }
                    self.mixer
                        .ids
                        .push((first + wi as u64) * ctx as u64 + p as u64);
                    if let Some(values) = &values {
                        let row = wi * ctx + p;
                        for ((buf, v), &d) in self.mixer.rows.iter_mut().zip(values).zip(&self.dims)
                        {
                            buf.extend_from_slice(&v[row * d..row * d + d]);
                        }
                    }
                }
            }
            if let Some(chunks) = replay.as_deref_mut() {
                chunks.insert(first, chunk);
            }
            self.mixer.peak = self.mixer.peak.max(self.mixer.len());
        }
        self.mixer.shuffle(&mut self.rng, with_rows);
        let len = self.mixer.len();
        self.mixer.out_end = if self.exhausted { len } else { len / 2 };
        if len == 0 {
            return Err(data_err(format!(
                "the corpus is used up after {} rows (cycle is off)",
                self.rows_out
            )));
        }
        Ok(())
    }

    /// Hands out `n` rows, refilling as needed: calls `sink(mixer, rows_done, first_slot,
    /// count)` for each run of consecutive buffer slots (a no-op sink while replaying).
    fn advance(
        &mut self,
        n: usize,
        mut replay: Option<&mut ReplayChunks>,
        mut sink: impl FnMut(&Mixer, usize, usize, usize),
    ) -> Result<()> {
        let mut done = 0;
        while done < n {
            if self.mixer.cursor == self.mixer.out_end {
                self.refill(replay.as_deref_mut())?;
                if let Some(chunks) = replay.as_deref_mut() {
                    self.prune(chunks);
                }
            }
            let take = (n - done).min(self.mixer.out_end - self.mixer.cursor);
            sink(&self.mixer, done, self.mixer.cursor, take);
            self.mixer.cursor += take;
            done += take;
            self.rows_out += take as u64;
        }
        Ok(())
    }

    /// Drops replayed forward batches that no buffered row comes from any more.
    fn prune(&self, chunks: &mut ReplayChunks) {
        let ctx = self.cfg.context_size as u64;
        let live: BTreeSet<u64> = self.mixer.ids[self.mixer.cursor..]
            .iter()
            .map(|id| {
                *chunks
                    .range(..=id / ctx)
                    .next_back()
                    .expect("every buffered row comes from a recorded batch")
                    .0
            })
            .collect();
        chunks.retain(|k, _| live.contains(k));
    }

    /// The next `n` rows of every hook, in hook order: `[n, d_hook]` each, row `i` of every
    /// batch from the same token.
    ///
    /// # Errors
    /// [`Error::Data`] when the corpus is used up (without `cycle`) or malformed; model errors.
    pub fn next_batches(&mut self, n: usize) -> Result<Vec<Array2<f32>>> {
        let mut out: Vec<Array2<f32>> = self.dims.iter().map(|&d| Array2::zeros((n, d))).collect();
        {
            let mut views: Vec<ArrayViewMut2<'_, f32>> =
                out.iter_mut().map(|a| a.view_mut()).collect();
            self.fill_views(&mut views)?;
        }
        Ok(out)
    }

    /// [`ActivationStore::next_batches`], and where each row came from.
    ///
    /// # Errors
    /// As [`ActivationStore::next_batches`].
    pub fn next_batches_with_origin(
        &mut self,
        n: usize,
    ) -> Result<(Vec<Array2<f32>>, Vec<RowOrigin>)> {
        let mut out: Vec<Array2<f32>> = self.dims.iter().map(|&d| Array2::zeros((n, d))).collect();
        let mut origins = Vec::with_capacity(n);
        {
            let mut views: Vec<ArrayViewMut2<'_, f32>> =
                out.iter_mut().map(|a| a.view_mut()).collect();
            self.fill_views_with(&mut views, Some(&mut origins))?;
        }
        Ok((out, origins))
    }

    /// Fills each of `batches` (`[n, d_hook]`, in hook order, the same `n`) with the next rows.
    fn fill_views(&mut self, batches: &mut [ArrayViewMut2<'_, f32>]) -> Result<()> {
        self.fill_views_with(batches, None)
    }

    fn fill_views_with(
        &mut self,
        batches: &mut [ArrayViewMut2<'_, f32>],
        mut origins: Option<&mut Vec<RowOrigin>>,
    ) -> Result<()> {
        for (i, (b, &d)) in batches.iter().zip(&self.dims).enumerate() {
            if b.ncols() != d {
                return Err(Error::InputWidth {
                    expected: d,
                    actual: b.ncols(),
                });
            }
            if b.nrows() != batches[0].nrows() {
                return Err(Error::Shape {
                    key: format!("batch for `{}`", self.points[i]),
                    expected: vec![batches[0].nrows(), d],
                    actual: vec![b.nrows(), d],
                });
            }
        }
        let n = batches.first().map_or(0, |b| b.nrows());
        let dims = self.dims.clone();
        let ctx = self.cfg.context_size as u64;
        self.advance(n, None, |mixer, at, slot, count| {
            if let Some(origins) = origins.as_deref_mut() {
                origins.extend(mixer.ids[slot..slot + count].iter().map(|&id| RowOrigin {
                    window: id / ctx,
                    position: (id % ctx) as usize,
                }));
            }
            for ((batch, buf), &d) in batches.iter_mut().zip(&mixer.rows).zip(&dims) {
                let src = &buf[slot * d..(slot + count) * d];
                for (r, row) in src.chunks_exact(d).enumerate() {
                    let mut dst = batch.row_mut(at + r);
                    match dst.as_slice_mut() {
                        Some(s) => s.copy_from_slice(row),
                        None => dst.iter_mut().zip(row).for_each(|(dst, &src)| *dst = src),
                    }
                }
            }
        })
    }

    /// The current position, as JSON a checkpoint can store (see the
    /// [module documentation](super#resuming)).
    pub fn position(&self) -> Value {
        serde_json::to_value(StorePosition {
            kind: STORE_KIND.into(),
            rows_out: self.rows_out,
            windows: self.windows,
            rng: self.rng.clone(),
        })
        .expect("position serialises")
    }

    /// Moves to a position from [`ActivationStore::position`] of a store with the same model,
    /// corpus and configuration, rebuilding the buffer an uninterrupted run would hold there.
    ///
    /// # Errors
    /// [`Error::Data`] for a position of another kind, or one this corpus and configuration do
    /// not lead to (they changed since it was saved); corpus and model errors.
    pub fn seek(&mut self, position: &Value) -> Result<()> {
        let pos: StorePosition = serde_json::from_value(position.clone())
            .map_err(|e| data_err(format!("not an activation-store position: {e}")))?;
        if pos.kind != STORE_KIND {
            return Err(data_err(format!(
                "not an activation-store position (kind `{}`)",
                pos.kind
            )));
        }
        self.packer = Packer::new(&self.corpus, self.packer.rule(), self.packer.cycle());
        self.mixer = Mixer::new(self.cfg.buffer_rows, &self.dims);
        self.rng = SplitMix64::new(self.cfg.seed);
        self.windows = 0;
        self.rows_out = 0;
        self.exhausted = false;
        let mut chunks = ReplayChunks::new();
        self.progress
            .set_message("replaying to the saved position:");
        let replayed = self.advance_replay(pos.rows_out, &mut chunks);
        self.progress.set_message("activations:");
        replayed?;
        if self.windows != pos.windows || self.rng != pos.rng {
            return Err(data_err(format!(
                "position {} rows / {} windows does not match this corpus and configuration \
                 (replay read {} windows): they changed since it was saved",
                pos.rows_out, pos.windows, self.windows
            )));
        }
        self.recompute(&chunks)
    }

    fn advance_replay(&mut self, rows: u64, chunks: &mut ReplayChunks) -> Result<()> {
        let mut left = rows;
        while left > 0 {
            let step = left.min(1 << 30) as usize;
            self.advance(step, Some(chunks), |_, _, _, _| {})?;
            left -= step as u64;
        }
        Ok(())
    }

    /// After a replay: runs the recorded forward batches that still have rows in the buffer
    /// and fills those rows' values.
    fn recompute(&mut self, chunks: &ReplayChunks) -> Result<()> {
        let ctx = self.cfg.context_size as u64;
        let len = self.mixer.len();
        for (buf, &d) in self.mixer.rows.iter_mut().zip(&self.dims) {
            *buf = Vec::with_capacity(self.cfg.buffer_rows * d);
            buf.resize(len * d, 0.0);
        }
        // (first window of its batch, slot) for every row still to hand out or retained.
        let mut slots: Vec<(u64, usize)> = (self.mixer.cursor..len)
            .map(|s| {
                let w = self.mixer.ids[s] / ctx;
                let first = *chunks.range(..=w).next_back().expect("recorded batch").0;
                (first, s)
            })
            .collect();
        slots.sort_unstable();
        let mut i = 0;
        while i < slots.len() {
            let first = slots[i].0;
            let windows = &chunks[&first];
            let values = forward_windows(&self.model, &self.points, &self.dims, windows)?;
            let n = (windows.len() as u64) * ctx;
            self.tokens_processed += n;
            self.progress.inc(n);
            while i < slots.len() && slots[i].0 == first {
                let s = slots[i].1;
                let id = self.mixer.ids[s];
                let row = ((id / ctx - first) * ctx + id % ctx) as usize;
                for ((buf, v), &d) in self.mixer.rows.iter_mut().zip(&values).zip(&self.dims) {
                    buf[s * d..s * d + d].copy_from_slice(&v[row * d..row * d + d]);
                }
                i += 1;
            }
        }
        Ok(())
    }
}

/// A single-hook store is an [`ActivationSource`]; with several hooks use
/// [`ActivationStore::next_batches`] (`next_batch` then fails with [`Error::TrainConfig`]).
impl<B: Backend> ActivationSource for ActivationStore<B> {
    fn d_in(&self) -> usize {
        self.dims[0]
    }

    fn next_batch(&mut self, batch: ArrayViewMut2<'_, f32>) -> Result<()> {
        if self.dims.len() != 1 {
            return Err(config_err(format!(
                "this store collects {} hooks; use next_batches, or a store with one hook",
                self.dims.len()
            )));
        }
        self.fill_views(&mut [batch])
    }

    fn position(&self) -> Value {
        ActivationStore::position(self)
    }

    fn seek(&mut self, position: &Value) -> Result<()> {
        ActivationStore::seek(self, position)
    }
}

/// Runs `windows` (all of one length) through `model` and returns each hook's activations,
/// flattened to `[windows · positions, d]`.
fn forward_windows<B: Backend>(
    model: &HookedTransformer<B>,
    points: &[HookPoint],
    dims: &[usize],
    windows: &[Vec<u32>],
) -> Result<Vec<Vec<f32>>> {
    let names: Vec<String> = points.iter().map(ToString::to_string).collect();
    let mut spec = HookSpec::<B>::new().cache(NameFilter::patterns(names));
    if let Some(stop) = model.cfg().stop_layer_for(points) {
        spec = spec.stop_at_layer(stop);
    }
    let batch = Batch::padded(windows, PaddingSide::Right);
    let (_, cache) = model.run(&batch, &spec)?;
    let rows = windows.len() * windows.first().map_or(0, Vec::len);
    points
        .iter()
        .zip(dims)
        .map(|(point, &d)| {
            let act = cache
                .get(point)
                .ok_or_else(|| data_err(format!("the forward did not reach `{point}`")))?;
            let shape = act.dims();
            if shape.iter().product::<usize>() != rows * d {
                return Err(Error::Shape {
                    key: point.to_string(),
                    expected: vec![windows.len(), rows / windows.len().max(1), d],
                    actual: shape,
                });
            }
            act.to_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .map_err(|e| data_err(format!("`{point}`: {e:?}")))
        })
        .collect()
}
