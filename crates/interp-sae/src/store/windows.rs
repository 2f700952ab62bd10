//! Token windows for a model: a [`Corpus`] tokenized with the model's tokenizer and cut by
//! [`interp_core::corpus::WindowPacker`] under the store's window settings, read once or
//! cycled; and [`RowOrigin`], where a row of the store came from.
//!
//! The packing itself needs no tokenizer and lives in `interp-core`; what stays here needs the
//! model (its tokenizer, BOS token and context length) and [`StoreConfig`].

use burn::tensor::backend::Backend;
use interp_core::corpus::{WindowPacker, WindowRule};
use interp_models::{HookedTransformer, ModelConfig, TextTokenizer};
use serde::{Deserialize, Serialize};

use super::{config_err, data_err, Corpus, Documents, StoreConfig};
use crate::error::Result;

/// Documents → tokens, over the corpus once or (`cycle`) over and over.
#[derive(Debug)]
struct DocumentTokens {
    corpus: Corpus,
    docs: Documents,
    cycle: bool,
    /// Completed passes over the corpus.
    passes: u64,
    tokens_this_pass: u64,
}

impl DocumentTokens {
    /// The next document's tokens (none empty); `None` when the corpus is done.
    fn next_document(&mut self, tokenizer: &TextTokenizer) -> Result<Option<Vec<u32>>> {
        loop {
            match self.docs.next() {
                Some(doc) => {
                    let ids = tokenizer.encode(&doc?, None)?.ids;
                    if ids.is_empty() {
                        continue;
                    }
                    self.tokens_this_pass += ids.len() as u64;
                    return Ok(Some(ids));
                }
                None => {
                    if self.tokens_this_pass == 0 {
                        return Err(data_err(format!(
                            "the corpus ({} file(s), first {}) holds no tokens: it is empty",
                            self.corpus.files().len(),
                            self.corpus.files()[0].display()
                        )));
                    }
                    if !self.cycle {
                        return Ok(None);
                    }
                    self.passes += 1;
                    self.tokens_this_pass = 0;
                    self.docs = self.corpus.documents();
                }
            }
        }
    }
}

/// Documents → tokens → context windows (SAELens' `concat_and_batch_sequences`).
#[derive(Debug)]
pub(super) struct Packer {
    tokens: DocumentTokens,
    windows: WindowPacker,
    /// The error that stopped the corpus, repeated by every later call.
    failed: Option<String>,
}

impl Packer {
    pub(super) fn new(corpus: &Corpus, rule: WindowRule, cycle: bool) -> Self {
        Packer {
            tokens: DocumentTokens {
                docs: corpus.documents(),
                corpus: corpus.clone(),
                cycle,
                passes: 0,
                tokens_this_pass: 0,
            },
            windows: WindowPacker::new(rule),
            failed: None,
        }
    }

    /// The window rule.
    pub(super) fn rule(&self) -> WindowRule {
        self.windows.rule()
    }

    /// Whether the corpus is cycled.
    pub(super) fn cycle(&self) -> bool {
        self.tokens.cycle
    }

    /// Completed passes over the corpus.
    pub(super) fn passes(&self) -> u64 {
        self.tokens.passes
    }

    /// The next full window; `None` once the corpus is done (without `cycle`). After an error
    /// (unreadable file, malformed line) every call fails.
    pub(super) fn next_window(&mut self, tokenizer: &TextTokenizer) -> Result<Option<Vec<u32>>> {
        if let Some(reason) = &self.failed {
            return Err(data_err(format!(
                "the corpus stopped at an earlier error: {reason}"
            )));
        }
        let tokens = &mut self.tokens;
        let window = self.windows.next_window(|| tokens.next_document(tokenizer));
        if let Err(e) = &window {
            self.failed = Some(e.to_string());
        }
        window
    }
}

/// The token windows an [`ActivationStore`](super::ActivationStore) with the same corpus and
/// configuration runs through the model, in order (window `i` is [`RowOrigin::window`] `i`):
/// for inspection, and as evaluation windows for [`crate::splice`]. Made by [`token_windows`].
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
/// As [`ActivationStore::new`](super::ActivationStore::new), for the tokenizer, BOS token and
/// context size.
pub fn token_windows<B: Backend>(
    model: &HookedTransformer<B>,
    corpus: &Corpus,
    cfg: &StoreConfig,
) -> Result<TokenWindows> {
    let rule = window_rule(model.cfg(), cfg)?;
    Ok(TokenWindows {
        packer: Packer::new(corpus, rule, cfg.cycle),
        tokenizer: model.tokenizer()?.clone(),
        done: false,
    })
}

/// Checks the window settings of `cfg` against the model.
pub(super) fn window_rule(mcfg: &ModelConfig, cfg: &StoreConfig) -> Result<WindowRule> {
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
