//! A small GPT-2-style byte-level BPE trained on the toy corpus.
//!
//! Layout as GPT-2's `tokenizer.json`: a `ByteLevel` pre-tokenizer (no prefix space, GPT-2's
//! split regex), a BPE model over the full 256-byte alphabet, `ByteLevel` post-processor
//! (offsets not trimmed) and decoder, and [`END_OF_TEXT`] as the special token (GPT-2's BOS and
//! EOS). As in GPT-2 it is the **last** id, `vocab_size - 1`, and is in the model's vocabulary
//! as well as in the added tokens. The file loads with `tokenizers::Tokenizer::from_file` and
//! with Hugging Face `transformers` (`GPT2TokenizerFast(tokenizer_file=…)`).
//!
//! Training is deterministic: the same texts and size give the same `tokenizer.json` bytes (the
//! BPE trainer breaks count ties by pair ids, which follow the sorted byte alphabet).

use std::collections::HashSet;
use std::path::Path;

use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

use crate::{Error, Result};

/// GPT-2's end-of-text token, used as BOS and EOS (id `vocab_size - 1`).
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// The smallest vocabulary [`train_tokenizer`] accepts: the 256 bytes and [`END_OF_TEXT`].
pub const MIN_VOCAB_SIZE: usize = 257;

fn tok_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

/// Trains a GPT-2-style byte-level BPE of `vocab_size` tokens (including [`END_OF_TEXT`], the
/// last id) on `texts`. If the texts support fewer merges, the vocabulary is smaller and
/// [`END_OF_TEXT`] is still the last id.
///
/// # Errors
/// [`Error::InvalidArgument`] if `vocab_size < MIN_VOCAB_SIZE`, [`Error::Tokenizer`] if training
/// fails.
pub fn train_tokenizer<I, S>(texts: I, vocab_size: usize) -> Result<Tokenizer>
where
    I: IntoIterator<Item = S>,
    I::IntoIter: Send,
    S: AsRef<str> + Send,
{
    if vocab_size < MIN_VOCAB_SIZE {
        return Err(Error::InvalidArgument(format!(
            "vocab_size {vocab_size} < {MIN_VOCAB_SIZE} (256 bytes and {END_OF_TEXT})"
        )));
    }
    let alphabet: HashSet<char> = ByteLevel::alphabet().into_iter().collect();
    let trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size - 1)
        .min_frequency(0)
        .show_progress(false)
        .initial_alphabet(alphabet)
        .build();
    let mut trainer = TrainerWrapper::BpeTrainer(trainer);
    let mut tok = Tokenizer::new(BPE::default());
    // As GPT-2: pre-tokenizer without prefix space, GPT-2's regex; offsets kept untrimmed by
    // the post-processor.
    tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tok.with_post_processor(Some(ByteLevel::new(true, false, true)));
    tok.with_decoder(Some(ByteLevel::new(true, true, true)));
    tok.train(&mut trainer, texts.into_iter())
        .map_err(tok_err)?;

    // Put END_OF_TEXT in the model vocabulary at the next id (as GPT-2's 50256), then register
    // it as the special token.
    let n = tok.get_vocab_size(false);
    let mut json: serde_json::Value =
        serde_json::from_str(&tok.to_string(false).map_err(tok_err)?)?;
    let vocab = json
        .get_mut("model")
        .and_then(|m| m.get_mut("vocab"))
        .and_then(|v| v.as_object_mut())
        .ok_or_else(|| Error::Tokenizer("serialised BPE has no model.vocab".into()))?;
    vocab.insert(END_OF_TEXT.to_string(), serde_json::Value::from(n));
    let mut tok: Tokenizer = serde_json::to_string(&json)?.parse().map_err(tok_err)?;
    tok.add_special_tokens(&[AddedToken::from(END_OF_TEXT, true)]);
    match tok.token_to_id(END_OF_TEXT) {
        Some(id) if id as usize == n => Ok(tok),
        other => Err(Error::Tokenizer(format!(
            "{END_OF_TEXT} got id {other:?}, expected {n}"
        ))),
    }
}

/// The id of [`END_OF_TEXT`] in `tok`, if it has one.
pub fn end_of_text_id(tok: &Tokenizer) -> Option<u32> {
    tok.token_to_id(END_OF_TEXT)
}

/// Writes `tok` as `tokenizer.json` (pretty-printed) to `path`, atomically.
///
/// # Errors
/// [`Error::Tokenizer`] if it cannot be serialised, [`Error::Io`] if the file cannot be
/// written.
pub fn save_tokenizer(tok: &Tokenizer, path: &Path) -> Result<()> {
    let json = tok.to_string(true).map_err(tok_err)?;
    interp_core::write_atomic(path, json.as_bytes()).map_err(|e| match e {
        interp_core::Error::Io { source, .. } => Error::Io {
            path: path.to_path_buf(),
            source,
        },
        other => Error::Core(other),
    })
}

/// Reads a `tokenizer.json`.
///
/// # Errors
/// [`Error::Tokenizer`] if the file cannot be read or parsed.
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    Tokenizer::from_file(path).map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))
}
