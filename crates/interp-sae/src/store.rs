//! The activation store: a model from `interp-models` run over a text corpus, its activations
//! at one or several hooks shuffled through a bounded mixing buffer (SAELens'
//! `ActivationsStore`), optionally cached to disk as safetensors shards and read back.
//!
//! # Pipeline
//!
//! 1. [`Corpus`]: plain text files (one document per non-empty line, or per blank-line
//!    separated paragraph, [`TextUnit`]) and JSONL files (one JSON object per line, the text
//!    in a configurable field, default `"text"`), read line by line: a corpus is never held
//!    in memory.
//! 2. Documents are tokenized with the model's tokenizer (no special tokens added) and
//!    concatenated into context windows of [`StoreConfig::context_size`] tokens as SAELens does
//!    it: every window starts with BOS (`prepend_bos`), documents that meet inside a window are
//!    separated by BOS (`separate_with_bos`), a document that does not fit continues in the
//!    next window, and a trailing partial window is dropped. GPT-2's BOS is its EOS
//!    `<|endoftext|>`.
//! 3. [`StoreConfig::windows_per_forward`] windows at a time are run through the model, which
//!    stops after the last block any hook needs (`stop_at_layer`); every requested hook is
//!    read in that one pass. The activation at a window's first position is left out when it
//!    holds BOS (`exclude_bos`, default on: BOS activations are outliers), as are positions
//!    holding any token of `exclude_tokens`.
//! 4. Rows (one per kept token, all hooks together) go into a mixing buffer of at most
//!    [`StoreConfig::buffer_rows`] rows: it is filled, shuffled with a seeded [`SplitMix64`],
//!    half of it is handed out, and the other half stays to be mixed with the next fill.
//!
//! # Resuming
//!
//! [`ActivationStore::position`] is the number of rows handed out, with the number of windows
//! read and the generator state as a consistency check. [`ActivationStore::seek`] rebuilds the
//! exact buffer of an uninterrupted run without re-running the model over everything: it
//! re-reads and re-tokenizes the corpus up to that point and replays the buffer's fills and
//! shuffles on row *identities* only (window, position), then runs the model on just the
//! forward batches that still have rows in the buffer (the same batches as the original run, so
//! on a deterministic backend the activations are bit-identical). Cost: re-reading and re-tokenizing the corpus read so
//! far (no forward passes), then forwards over about `(log2(context_size) + 1) / 2` buffer
//! capacities of tokens (a row survives `k` refills with probability `2^-k`; e.g. ~4 ×
//! `buffer_rows` tokens at context 128), however long the run was; memory: those windows'
//! tokens.
//!
//! # Shards
//!
//! [`ActivationStore::write_shards`] writes the (already mixed) stream to a directory of
//! safetensors shards (one f32 tensor `[rows, d]` per hook, named by the hook) and a
//! `manifest.json` ([`ShardManifest`]); [`ShardReader`] reads them back in a fresh seeded order
//! every epoch, holding only a few shards in memory.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::backend::Backend;
use indicatif::{ProgressBar, ProgressStyle};
use interp_core::SafetensorsFile;
use interp_models::hooks::{HookPoint, HookSpec, NameFilter};
use interp_models::{Batch, HookedTransformer, ModelConfig, PaddingSide, TextTokenizer};
use ndarray::{Array2, ArrayViewMut2};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{check_finite, Error, Result};
use crate::train::{ActivationSource, SplitMix64};

fn data_err(reason: impl Into<String>) -> Error {
    Error::Data {
        reason: reason.into(),
    }
}

fn config_err(reason: impl Into<String>) -> Error {
    Error::TrainConfig {
        reason: reason.into(),
    }
}

// ----------------------------------------------------------------------------------- corpus

/// What one document is in a plain text file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextUnit {
    /// Every line with non-whitespace content is a document (the line terminator is dropped).
    #[default]
    Line,
    /// Runs of non-blank lines, separated by blank lines, are documents (lines joined by `\n`),
    /// for prose wrapped over several lines.
    Paragraph,
}

/// A text corpus: plain text files and JSONL files, read as a stream of documents.
///
/// A file ending in `.jsonl` or `.ndjson` holds one JSON object per non-empty line with the
/// document in a string field ([`Corpus::with_text_field`], default `"text"`; an empty string
/// is skipped). Any other file is plain text, split into documents by [`TextUnit`]. Files are
/// read line by line and must be UTF-8.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corpus {
    files: Vec<PathBuf>,
    text_unit: TextUnit,
    text_field: String,
}

impl Corpus {
    /// A corpus from a file, or from a directory: every `.txt`, `.text`, `.jsonl` and `.ndjson`
    /// file below it (recursively), in path order.
    ///
    /// # Errors
    /// [`Error::Io`] if `path` cannot be read, [`Error::Data`] if a directory holds no such file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        let files = if meta.is_dir() {
            let mut files = Vec::new();
            collect_corpus_files(path, &mut files)?;
            files.sort();
            if files.is_empty() {
                return Err(data_err(format!(
                    "{}: no .txt/.text/.jsonl/.ndjson files: the corpus is empty",
                    path.display()
                )));
            }
            files
        } else {
            vec![path.to_path_buf()]
        };
        Self::from_files(files)
    }

    /// A corpus of these files, read in this order.
    ///
    /// # Errors
    /// [`Error::Data`] for an empty list.
    pub fn from_files(files: Vec<PathBuf>) -> Result<Self> {
        if files.is_empty() {
            return Err(data_err("the corpus has no files"));
        }
        Ok(Corpus {
            files,
            text_unit: TextUnit::Line,
            text_field: "text".into(),
        })
    }

    /// Reads the document text of JSONL files from `field` (default `"text"`).
    pub fn with_text_field(mut self, field: impl Into<String>) -> Self {
        self.text_field = field.into();
        self
    }

    /// Splits plain text files into documents by `unit` (default [`TextUnit::Line`]).
    pub fn with_text_unit(mut self, unit: TextUnit) -> Self {
        self.text_unit = unit;
        self
    }

    /// The files, in reading order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The documents, streamed.
    pub fn documents(&self) -> Documents {
        Documents {
            corpus: self.clone(),
            file: 0,
            reader: None,
            line_no: 0,
            buf: Vec::new(),
        }
    }
}

fn collect_corpus_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_dir() {
            collect_corpus_files(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("txt" | "text" | "jsonl" | "ndjson")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

fn is_jsonl(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("jsonl" | "ndjson")
    )
}

/// The documents of a [`Corpus`], one file and one line at a time.
#[derive(Debug)]
pub struct Documents {
    corpus: Corpus,
    file: usize,
    reader: Option<BufReader<File>>,
    line_no: u64,
    buf: Vec<u8>,
}

impl Documents {
    /// The next line of the current file without its terminator; `None` at its end.
    fn read_line(&mut self) -> Result<Option<String>> {
        let path = &self.corpus.files[self.file];
        let reader = self.reader.as_mut().expect("a file is open");
        self.buf.clear();
        let n = reader
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
        }
        let line = String::from_utf8(std::mem::take(&mut self.buf)).map_err(|e| {
            data_err(format!(
                "{}:{}: not UTF-8 ({})",
                path.display(),
                self.line_no,
                e.utf8_error()
            ))
        })?;
        Ok(Some(line))
    }

    /// The next document of the current file; `None` at its end.
    fn next_in_file(&mut self) -> Result<Option<String>> {
        let path = self.corpus.files[self.file].clone();
        if is_jsonl(&path) {
            while let Some(line) = self.read_line()? {
                if line.trim().is_empty() {
                    continue;
                }
                let at = || format!("{}:{}", path.display(), self.line_no);
                let value: Value = serde_json::from_str(&line)
                    .map_err(|e| data_err(format!("{}: malformed JSONL line: {e}", at())))?;
                let field = &self.corpus.text_field;
                match value.get(field) {
                    Some(Value::String(text)) if text.is_empty() => continue,
                    Some(Value::String(text)) => return Ok(Some(text.clone())),
                    Some(other) if value.is_object() => {
                        return Err(data_err(format!(
                            "{}: field `{field}` is not a string: {other}",
                            at()
                        )))
                    }
                    _ if value.is_object() => {
                        return Err(data_err(format!("{}: no field `{field}`", at())))
                    }
                    _ => {
                        return Err(data_err(format!(
                            "{}: malformed JSONL line: not a JSON object",
                            at()
                        )))
                    }
                }
            }
            return Ok(None);
        }
        match self.corpus.text_unit {
            TextUnit::Line => {
                while let Some(line) = self.read_line()? {
                    if !line.trim().is_empty() {
                        return Ok(Some(line));
                    }
                }
                Ok(None)
            }
            TextUnit::Paragraph => {
                let mut doc: Option<String> = None;
                while let Some(line) = self.read_line()? {
                    if line.trim().is_empty() {
                        if doc.is_some() {
                            return Ok(doc);
                        }
                        continue;
                    }
                    match &mut doc {
                        Some(d) => {
                            d.push('\n');
                            d.push_str(&line);
                        }
                        None => doc = Some(line),
                    }
                }
                Ok(doc)
            }
        }
    }
}

impl Iterator for Documents {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Result<String>> {
        while self.file < self.corpus.files.len() {
            if self.reader.is_none() {
                let path = &self.corpus.files[self.file];
                match File::open(path) {
                    Ok(f) => self.reader = Some(BufReader::with_capacity(1 << 16, f)),
                    Err(e) => {
                        self.file = self.corpus.files.len();
                        return Some(Err(Error::io(path, e)));
                    }
                }
                self.line_no = 0;
            }
            match self.next_in_file() {
                Ok(Some(doc)) => return Some(Ok(doc)),
                Ok(None) => {
                    self.reader = None;
                    self.file += 1;
                }
                Err(e) => {
                    self.file = self.corpus.files.len();
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------------- windows

/// How documents become windows.
#[derive(Clone, Copy, Debug)]
struct WindowRule {
    context_size: usize,
    bos: u32,
    prepend_bos: bool,
    separate_with_bos: bool,
    cycle: bool,
}

/// Documents → tokens → context windows (SAELens' `concat_and_batch_sequences`).
#[derive(Debug)]
struct Packer {
    corpus: Corpus,
    rule: WindowRule,
    docs: Documents,
    /// Tokens of the current document and how many of them are used.
    pending: Vec<u32>,
    used: usize,
    /// Whether the next pending token is a document's first.
    doc_start: bool,
    /// Completed passes over the corpus.
    passes: u64,
    tokens_this_pass: u64,
    exhausted: bool,
    /// The error that stopped the corpus, repeated by every later call.
    failed: Option<String>,
}

impl Packer {
    fn new(corpus: &Corpus, rule: WindowRule) -> Self {
        Packer {
            docs: corpus.documents(),
            corpus: corpus.clone(),
            rule,
            pending: Vec::new(),
            used: 0,
            doc_start: false,
            passes: 0,
            tokens_this_pass: 0,
            exhausted: false,
            failed: None,
        }
    }

    /// Makes the next document's tokens pending; `false` when the corpus is done.
    fn next_document(&mut self, tokenizer: &TextTokenizer) -> Result<bool> {
        loop {
            match self.docs.next() {
                Some(doc) => {
                    let ids = tokenizer.encode(&doc?, None)?.ids;
                    if ids.is_empty() {
                        continue;
                    }
                    self.tokens_this_pass += ids.len() as u64;
                    self.pending = ids;
                    self.used = 0;
                    self.doc_start = true;
                    return Ok(true);
                }
                None => {
                    if self.tokens_this_pass == 0 {
                        return Err(data_err(format!(
                            "the corpus ({} file(s), first {}) holds no tokens: it is empty",
                            self.corpus.files.len(),
                            self.corpus.files[0].display()
                        )));
                    }
                    if !self.rule.cycle {
                        return Ok(false);
                    }
                    self.passes += 1;
                    self.tokens_this_pass = 0;
                    self.docs = self.corpus.documents();
                }
            }
        }
    }

    /// The next full window; `None` once the corpus is done (without `cycle`). After an error
    /// (unreadable file, malformed line) every call fails.
    fn next_window(&mut self, tokenizer: &TextTokenizer) -> Result<Option<Vec<u32>>> {
        if let Some(reason) = &self.failed {
            return Err(data_err(format!(
                "the corpus stopped at an earlier error: {reason}"
            )));
        }
        let window = self.pack(tokenizer);
        if let Err(e) = &window {
            self.failed = Some(e.to_string());
        }
        window
    }

    fn pack(&mut self, tokenizer: &TextTokenizer) -> Result<Option<Vec<u32>>> {
        if self.exhausted {
            return Ok(None);
        }
        let WindowRule {
            context_size: ctx,
            bos,
            ..
        } = self.rule;
        let mut w = Vec::with_capacity(ctx);
        loop {
            if w.len() == ctx {
                return Ok(Some(w));
            }
            if self.used == self.pending.len() && !self.next_document(tokenizer)? {
                self.exhausted = true;
                return Ok(None);
            }
            let next = self.pending[self.used];
            if w.is_empty() {
                // A window starts with BOS (unless the text itself continues with it); a
                // document that starts a window gets no separator.
                if self.rule.prepend_bos && next != bos {
                    w.push(bos);
                }
            } else if self.doc_start && self.rule.separate_with_bos && next != bos {
                w.push(bos);
            }
            self.doc_start = false;
            let take = (ctx - w.len()).min(self.pending.len() - self.used);
            w.extend_from_slice(&self.pending[self.used..self.used + take]);
            self.used += take;
        }
    }
}

/// The token windows an [`ActivationStore`] with the same corpus and configuration runs
/// through the model, in order (window `i` is [`RowOrigin::window`] `i`): for inspection, and
/// as evaluation windows for [`crate::splice`]. Made by [`token_windows`].
#[derive(Debug)]
pub struct TokenWindows {
    packer: Packer,
    tokenizer: TextTokenizer,
    done: bool,
}

impl Iterator for TokenWindows {
    type Item = Result<Vec<u32>>;

    /// The next window; after an error, `None`.
    fn next(&mut self) -> Option<Result<Vec<u32>>> {
        if self.done {
            return None;
        }
        let next = self.packer.next_window(&self.tokenizer).transpose();
        self.done = !matches!(next, Some(Ok(_)));
        next
    }
}

/// The windows `cfg` cuts `corpus` into for `model` (its tokenizer and BOS token); with
/// `cfg.cycle` the iterator never ends.
///
/// # Errors
/// As [`ActivationStore::new`], for the tokenizer, BOS token and context size.
pub fn token_windows<B: Backend>(
    model: &HookedTransformer<B>,
    corpus: &Corpus,
    cfg: &StoreConfig,
) -> Result<TokenWindows> {
    let rule = window_rule(model.cfg(), cfg)?;
    Ok(TokenWindows {
        packer: Packer::new(corpus, rule),
        tokenizer: model.tokenizer()?.clone(),
        done: false,
    })
}

/// Checks the window settings of `cfg` against the model.
fn window_rule(mcfg: &ModelConfig, cfg: &StoreConfig) -> Result<WindowRule> {
    let bos = match mcfg.bos_token_id.or(mcfg.eos_token_id) {
        Some(b) => b,
        None if cfg.prepend_bos || cfg.separate_with_bos => {
            return Err(config_err(
                "prepend_bos / separate_with_bos need a model with a BOS or EOS token",
            ))
        }
        // No BOS: nothing is excluded as BOS.
        None => u32::MAX,
    };
    let ctx = cfg.context_size;
    let min_ctx = 1 + usize::from(cfg.prepend_bos);
    if ctx < min_ctx || ctx > mcfg.n_ctx {
        return Err(config_err(format!(
            "context_size {ctx} must be in {min_ctx}..={} (the model's n_ctx)",
            mcfg.n_ctx
        )));
    }
    Ok(WindowRule {
        context_size: ctx,
        bos,
        prepend_bos: cfg.prepend_bos,
        separate_with_bos: cfg.separate_with_bos,
        cycle: cfg.cycle,
    })
}

/// Where a row came from: window `window` (counting from the start of the corpus, across
/// passes; see [`token_windows`]) at token position `position`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RowOrigin {
    /// The window index.
    pub window: u64,
    /// The position in the window.
    pub position: usize,
}

// ------------------------------------------------------------------------------------ store

/// How an [`ActivationStore`] builds windows, runs the model and mixes rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoreConfig {
    /// TransformerLens hook names to collect, in the order batches are returned.
    pub hooks: Vec<String>,
    /// Tokens per window (at most the model's `n_ctx`). Default 128.
    pub context_size: usize,
    /// Start every window with BOS. Default true.
    pub prepend_bos: bool,
    /// Put BOS between documents that share a window. Default true.
    pub separate_with_bos: bool,
    /// Leave out the activation at a window's first position when it holds BOS. Default true.
    pub exclude_bos: bool,
    /// Leave out positions holding any of these tokens. Default none.
    pub exclude_tokens: Vec<u32>,
    /// Windows per forward pass. Default 8.
    pub windows_per_forward: usize,
    /// Capacity of the mixing buffer, in rows (tokens); at least two windows' worth. Memory is
    /// `buffer_rows × Σ d_hook × 4` bytes. Default 65 536.
    pub buffer_rows: usize,
    /// Seed of the buffer shuffles. Default 0.
    pub seed: u64,
    /// Start the corpus over when it ends (default true); otherwise the store runs dry with
    /// [`Error::Data`] once the corpus and the buffer are used up.
    pub cycle: bool,
    /// Show a progress bar (tokens and tokens/s) on stderr; it draws only when stderr is a
    /// terminal. Default true.
    pub progress: bool,
    /// The model's name, recorded in shard manifests.
    pub model_name: Option<String>,
}

impl StoreConfig {
    /// The defaults, collecting `hooks`.
    pub fn new<S: Into<String>>(hooks: impl IntoIterator<Item = S>) -> Self {
        StoreConfig {
            hooks: hooks.into_iter().map(Into::into).collect(),
            context_size: 128,
            prepend_bos: true,
            separate_with_bos: true,
            exclude_bos: true,
            exclude_tokens: Vec::new(),
            windows_per_forward: 8,
            buffer_rows: 65_536,
            seed: 0,
            cycle: true,
            progress: true,
            model_name: None,
        }
    }
}

/// The activation width of `point` in a model of config `cfg` (the model's own vocabulary:
/// grouped key/value heads make `hook_k` / `hook_v` narrower than `hook_q`).
fn hook_width(cfg: &ModelConfig, point: HookPoint) -> Result<usize> {
    cfg.row_width(&point).ok_or_else(|| Error::Unsupported {
        what: format!("collecting `{point}` (its activations are not one vector per token)"),
    })
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

/// A forward batch kept during a replay: its first window index and its windows' tokens.
type ReplayChunks = BTreeMap<u64, Vec<Vec<u32>>>;

/// The mixing buffer: row identities and, per hook, row-major values.
#[derive(Debug)]
struct Mixer {
    capacity: usize,
    dims: Vec<usize>,
    /// Row identity `window · context_size + position`, one per buffered row.
    ids: Vec<u64>,
    /// Per hook, `ids.len() × d` values (empty while replaying).
    rows: Vec<Vec<f32>>,
    /// Rows `[cursor, out_end)` are to be handed out; `[out_end, len)` stay for the next fill.
    cursor: usize,
    out_end: usize,
    peak: usize,
}

impl Mixer {
    fn new(capacity: usize, dims: &[usize]) -> Self {
        Mixer {
            capacity,
            dims: dims.to_vec(),
            ids: Vec::with_capacity(capacity),
            rows: dims
                .iter()
                .map(|&d| Vec::with_capacity(capacity * d))
                .collect(),
            cursor: 0,
            out_end: 0,
            peak: 0,
        }
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    /// Drops the rows handed out, keeping the retained ones at the front.
    fn compact(&mut self, with_rows: bool) {
        let h = self.out_end;
        self.ids.drain(..h);
        if with_rows {
            for (buf, &d) in self.rows.iter_mut().zip(&self.dims) {
                buf.drain(..h * d);
            }
        }
        self.cursor = 0;
        self.out_end = 0;
    }

    /// Fisher–Yates over the rows (ids and values alike).
    fn shuffle(&mut self, rng: &mut SplitMix64, with_rows: bool) {
        for i in (1..self.ids.len()).rev() {
            let j = rng.below(i + 1);
            if i == j {
                continue;
            }
            self.ids.swap(i, j);
            if with_rows {
                for (buf, &d) in self.rows.iter_mut().zip(&self.dims) {
                    let (lo, hi) = buf.split_at_mut(i * d);
                    lo[j * d..j * d + d].swap_with_slice(&mut hi[..d]);
                }
            }
        }
    }
}

/// Activations of a model over a corpus, at one or several hooks, through a bounded mixing
/// buffer. See the [module documentation](self).
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
    cfg: StoreConfig,
    points: Vec<HookPoint>,
    dims: Vec<usize>,
    bos: u32,
    packer: Packer,
    mixer: Mixer,
    rng: SplitMix64,
    /// Windows read from the corpus so far.
    windows: u64,
    rows_out: u64,
    tokens_processed: u64,
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
        let mut probe = Packer::new(&corpus, rule);
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
            packer: Packer::new(&corpus, rule),
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
        self.packer.passes
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
    /// [module documentation](self#resuming)).
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
        let rule = self.packer.rule;
        self.packer = Packer::new(&self.corpus, rule);
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

    /// Writes the next `n_rows` rows to `dir` as shards of at most `rows_per_shard` rows
    /// (`shard_00000.safetensors`, …: one f32 tensor `[rows, d]` per hook, named by the hook)
    /// and then `manifest.json`, each file atomically (the manifest last, so a directory whose
    /// writing died has no manifest, or the previous one). Returns the manifest.
    ///
    /// # Errors
    /// [`Error::TrainConfig`] for zero sizes; [`Error::Tensors`] / [`Error::Io`] on write
    /// failure; as [`ActivationStore::next_batches`].
    pub fn write_shards(
        &mut self,
        dir: &Path,
        n_rows: u64,
        rows_per_shard: usize,
    ) -> Result<ShardManifest> {
        if n_rows == 0 || rows_per_shard == 0 {
            return Err(config_err("n_rows and rows_per_shard must be positive"));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let tokens_before = self.tokens_processed;
        let names: Vec<String> = self.points.iter().map(ToString::to_string).collect();
        let mut shards = Vec::new();
        let mut left = n_rows;
        while left > 0 {
            let rows = left.min(rows_per_shard as u64) as usize;
            let batches = self.next_batches(rows)?;
            let file = format!("shard_{:05}.safetensors", shards.len());
            let shapes: Vec<[usize; 2]> = batches.iter().map(|b| [b.nrows(), b.ncols()]).collect();
            let tensors = names.iter().zip(&batches).zip(&shapes).map(|((n, b), s)| {
                (
                    n.as_str(),
                    &s[..],
                    b.as_slice()
                        .expect("freshly allocated arrays are contiguous"),
                )
            });
            interp_core::write_safetensors(&dir.join(&file), tensors)?;
            shards.push(ShardInfo { file, rows });
            left -= rows as u64;
        }
        let manifest = ShardManifest {
            format: SHARD_FORMAT.into(),
            model_name: self.cfg.model_name.clone(),
            context_size: self.cfg.context_size,
            prepend_bos: self.cfg.prepend_bos,
            exclude_bos: self.cfg.exclude_bos,
            seed: self.cfg.seed,
            hooks: names
                .iter()
                .zip(&self.dims)
                .map(|(name, &d)| ShardHook {
                    name: name.clone(),
                    d,
                })
                .collect(),
            shards,
            n_rows,
            n_tokens: self.tokens_processed - tokens_before,
        };
        let path = dir.join(MANIFEST);
        let json = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
        interp_core::write_atomic(&path, &json)?;
        Ok(manifest)
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

// ----------------------------------------------------------------------------------- shards

const SHARD_FORMAT: &str = "interp-rs activation shards v1";
const MANIFEST: &str = "manifest.json";

/// One hook of a shard directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardHook {
    /// TransformerLens hook name (also the tensor name in every shard).
    pub name: String,
    /// Activation width.
    pub d: usize,
}

/// One shard file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// File name, relative to the directory.
    pub file: String,
    /// Rows in it.
    pub rows: usize,
}

/// `manifest.json` of a shard directory written by [`ActivationStore::write_shards`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardManifest {
    /// `"interp-rs activation shards v1"`.
    pub format: String,
    /// The model's name, if the store was told it.
    pub model_name: Option<String>,
    /// Tokens per window.
    pub context_size: usize,
    /// Whether windows started with BOS.
    pub prepend_bos: bool,
    /// Whether BOS positions were left out.
    pub exclude_bos: bool,
    /// The store's shuffle seed.
    pub seed: u64,
    /// The hooks, in order.
    pub hooks: Vec<ShardHook>,
    /// The shards, in writing order.
    pub shards: Vec<ShardInfo>,
    /// Rows in all shards (one per kept token).
    pub n_rows: u64,
    /// Tokens run through the model to produce them.
    pub n_tokens: u64,
}

impl ShardManifest {
    /// Reads `dir/manifest.json` and checks that every shard holds each hook as `[rows, d]`.
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Data`] for a missing or malformed manifest or shard,
    /// [`Error::Tensors`] for unreadable shards.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let m: ShardManifest = serde_json::from_slice(&text)
            .map_err(|e| data_err(format!("{}: {e}", path.display())))?;
        if m.format != SHARD_FORMAT {
            return Err(data_err(format!(
                "{}: format `{}`, expected `{SHARD_FORMAT}`",
                path.display(),
                m.format
            )));
        }
        if m.hooks.is_empty() || m.shards.is_empty() || m.n_rows == 0 {
            return Err(data_err(format!("{}: no activations", path.display())));
        }
        let total: u64 = m.shards.iter().map(|s| s.rows as u64).sum();
        if total != m.n_rows {
            return Err(data_err(format!(
                "{}: shards hold {total} rows, n_rows says {}",
                path.display(),
                m.n_rows
            )));
        }
        for shard in &m.shards {
            let file = SafetensorsFile::open(&dir.join(&shard.file))?;
            let shapes = file.shapes()?;
            for h in &m.hooks {
                let want = [shard.rows, h.d];
                match shapes.get(&h.name) {
                    Some(s) if s[..] == want[..] => {}
                    Some(s) => {
                        return Err(Error::Shape {
                            key: format!("{}/{}", shard.file, h.name),
                            expected: want.to_vec(),
                            actual: s.clone(),
                        })
                    }
                    None => {
                        return Err(data_err(format!(
                            "{}: no tensor `{}`",
                            dir.join(&shard.file).display(),
                            h.name
                        )))
                    }
                }
            }
        }
        Ok(m)
    }
}

/// Where a [`ShardReader`] is: epoch, group of shards within it, row within the group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct ReaderCursor {
    epoch: u64,
    group: usize,
    index: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ReaderPosition {
    kind: String,
    #[serde(flatten)]
    cursor: ReaderCursor,
}

const READER_KIND: &str = "interp-sae shard reader";

/// Reads a shard directory back: every epoch visits all rows once in a fresh seeded order.
///
/// Each epoch shuffles the shard order, then takes the shards `shards_in_memory` at a time
/// (default 4), shuffling the rows of each group together; only one group is in memory. The
/// shards themselves were written from the store's mixing buffer, so their rows are already
/// mixed across the corpus. [`ShardReader::seek`] costs reading one group.
#[derive(Debug)]
pub struct ShardReader {
    dir: PathBuf,
    manifest: ShardManifest,
    /// Indices into `manifest.hooks` of the hooks handed out.
    selected: Vec<usize>,
    seed: u64,
    shards_in_memory: usize,
    cursor: ReaderCursor,
    /// The loaded group: per selected hook, row-major values; and the order to hand them out.
    group: Option<(Vec<Vec<f32>>, Vec<u32>)>,
}

impl ShardReader {
    /// Opens `dir` (see [`ShardManifest::read`]), handing out every hook, with shuffles seeded
    /// by `seed`.
    ///
    /// # Errors
    /// As [`ShardManifest::read`].
    pub fn open(dir: &Path, seed: u64) -> Result<Self> {
        let manifest = ShardManifest::read(dir)?;
        Ok(ShardReader {
            dir: dir.to_path_buf(),
            selected: (0..manifest.hooks.len()).collect(),
            manifest,
            seed,
            shards_in_memory: 4,
            cursor: ReaderCursor::default(),
            group: None,
        })
    }

    /// Hands out only these hooks, in this order.
    ///
    /// # Errors
    /// [`Error::Data`] for a hook the shards do not hold, or an empty list.
    pub fn with_hooks<S: AsRef<str>>(mut self, hooks: &[S]) -> Result<Self> {
        if hooks.is_empty() {
            return Err(data_err("select at least one hook"));
        }
        self.selected = hooks
            .iter()
            .map(|h| {
                let h = h.as_ref();
                self.manifest
                    .hooks
                    .iter()
                    .position(|m| m.name == h)
                    .ok_or_else(|| {
                        data_err(format!(
                            "{}: no hook `{h}` (has {})",
                            self.dir.display(),
                            self.manifest
                                .hooks
                                .iter()
                                .map(|m| m.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })
            })
            .collect::<Result<_>>()?;
        self.group = None;
        Ok(self)
    }

    /// Holds `n` shards in memory at a time (at least 1); more mixes better.
    pub fn with_shards_in_memory(mut self, n: usize) -> Self {
        self.shards_in_memory = n.max(1);
        self.group = None;
        self
    }

    /// The manifest.
    pub fn manifest(&self) -> &ShardManifest {
        &self.manifest
    }

    /// The width of each handed-out hook, in order.
    pub fn dims(&self) -> Vec<usize> {
        self.selected
            .iter()
            .map(|&i| self.manifest.hooks[i].d)
            .collect()
    }

    fn n_groups(&self) -> usize {
        self.manifest.shards.len().div_ceil(self.shards_in_memory)
    }

    /// Loads the current group and its row order.
    fn load_group(&mut self) -> Result<()> {
        let n_shards = self.manifest.shards.len();
        let mut order: Vec<usize> = (0..n_shards).collect();
        SplitMix64::stream(self.seed, self.cursor.epoch).shuffle(&mut order);
        let start = self.cursor.group * self.shards_in_memory;
        let members = &order[start..(start + self.shards_in_memory).min(n_shards)];
        let mut values: Vec<Vec<f32>> = self.selected.iter().map(|_| Vec::new()).collect();
        let mut rows = 0;
        for &s in members {
            let info = &self.manifest.shards[s];
            let file = SafetensorsFile::open(&self.dir.join(&info.file))?;
            for (buf, &h) in values.iter_mut().zip(&self.selected) {
                let name = &self.manifest.hooks[h].name;
                let t = file.read(name)?;
                check_finite(name, t.data.iter())?;
                buf.extend_from_slice(&t.data);
            }
            rows += info.rows;
        }
        let mut perm: Vec<u32> = (0..rows as u32).collect();
        let group_seed = self.seed.rotate_left(29) ^ 0xA076_1D64_78BD_642F;
        let stream = self.cursor.epoch.wrapping_mul(0x1_0000_0001) ^ self.cursor.group as u64;
        SplitMix64::stream(group_seed, stream).shuffle(&mut perm);
        self.group = Some((values, perm));
        Ok(())
    }

    /// The next `n` rows of every selected hook, `[n, d]` each, row `i` of every batch from
    /// the same token.
    ///
    /// # Errors
    /// Shard read errors; [`Error::NonFinite`] for NaN/inf in a shard.
    pub fn next_batches(&mut self, n: usize) -> Result<Vec<Array2<f32>>> {
        let mut out: Vec<Array2<f32>> =
            self.dims().iter().map(|&d| Array2::zeros((n, d))).collect();
        {
            let mut views: Vec<ArrayViewMut2<'_, f32>> =
                out.iter_mut().map(|a| a.view_mut()).collect();
            self.fill_views(&mut views)?;
        }
        Ok(out)
    }

    fn fill_views(&mut self, batches: &mut [ArrayViewMut2<'_, f32>]) -> Result<()> {
        let dims = self.dims();
        for (b, &d) in batches.iter().zip(&dims) {
            if b.ncols() != d {
                return Err(Error::InputWidth {
                    expected: d,
                    actual: b.ncols(),
                });
            }
        }
        let n = batches.first().map_or(0, |b| b.nrows());
        let mut r = 0;
        while r < n {
            if self.group.is_none() {
                self.load_group()?;
            }
            let (values, perm) = self.group.as_ref().expect("loaded above");
            let start = self.cursor.index;
            if start >= perm.len() {
                self.cursor.index = 0;
                self.cursor.group += 1;
                if self.cursor.group == self.n_groups() {
                    self.cursor.group = 0;
                    self.cursor.epoch += 1;
                }
                self.group = None;
                continue;
            }
            let take = (n - r).min(perm.len() - start);
            for ((batch, buf), &d) in batches.iter_mut().zip(values).zip(&dims) {
                for (i, &src) in perm[start..start + take].iter().enumerate() {
                    let src = src as usize;
                    batch
                        .row_mut(r + i)
                        .iter_mut()
                        .zip(&buf[src * d..src * d + d])
                        .for_each(|(o, &v)| *o = v);
                }
            }
            self.cursor.index += take;
            r += take;
        }
        Ok(())
    }
}

/// A reader handing out one hook is an [`ActivationSource`] (see [`ShardReader::with_hooks`]);
/// with several, `next_batch` fails with [`Error::TrainConfig`].
impl ActivationSource for ShardReader {
    fn d_in(&self) -> usize {
        self.manifest.hooks[self.selected[0]].d
    }

    fn next_batch(&mut self, batch: ArrayViewMut2<'_, f32>) -> Result<()> {
        if self.selected.len() != 1 {
            return Err(config_err(format!(
                "this reader hands out {} hooks; use next_batches, or with_hooks(&[one])",
                self.selected.len()
            )));
        }
        self.fill_views(&mut [batch])
    }

    fn position(&self) -> Value {
        serde_json::to_value(ReaderPosition {
            kind: READER_KIND.into(),
            cursor: self.cursor,
        })
        .expect("position serialises")
    }

    fn seek(&mut self, position: &Value) -> Result<()> {
        let pos: ReaderPosition = serde_json::from_value(position.clone())
            .map_err(|e| data_err(format!("not a shard-reader position: {e}")))?;
        if pos.kind != READER_KIND || pos.cursor.group >= self.n_groups() {
            return Err(data_err(format!(
                "not a position of this shard reader: {position}"
            )));
        }
        self.cursor = pos.cursor;
        self.load_group()?;
        let rows = self.group.as_ref().map_or(0, |g| g.1.len());
        if self.cursor.index > rows {
            return Err(data_err(format!(
                "position row {} beyond the {rows} rows of its shard group",
                self.cursor.index
            )));
        }
        Ok(())
    }
}
