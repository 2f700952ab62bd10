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
//!    [`StoreConfig::buffer_rows`] rows: it is filled, shuffled with a seeded
//!    [`SplitMix64`](crate::train::SplitMix64), half of it is handed out, and the other half
//!    stays to be mixed with the next fill.
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
//!
//! # Files
//!
//! - `corpus.rs`: [`Corpus`], [`Documents`], [`TextUnit`]: `interp_core::corpus`'s reader
//!   (shared with steering, flow and dashboards) reporting this crate's [`Error`];
//! - `windows.rs`: [`token_windows`] and [`TokenWindows`], the corpus tokenized with the
//!   model's tokenizer and packed by `interp_core::corpus::WindowPacker`; [`RowOrigin`];
//! - `config.rs`: [`StoreConfig`] and the width of each hook's rows;
//! - `buffer.rs`: the mixing buffer;
//! - `activation_store.rs`: [`ActivationStore`]: forward passes, batches, position and seek;
//! - `shards.rs`: [`ActivationStore::write_shards`], [`ShardManifest`] and [`ShardReader`].

mod activation_store;
mod buffer;
mod config;
mod corpus;
mod shards;
mod windows;

pub use activation_store::ActivationStore;
pub use config::StoreConfig;
pub use corpus::{Corpus, Documents, TextUnit};
pub use shards::{ShardHook, ShardInfo, ShardManifest, ShardReader};
pub use windows::{token_windows, RowOrigin, TokenWindows};

use crate::error::Error;

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
