//! Text ↔ tokens, and the tokenizer helpers the write-ups need (string tokens, the positions
//! of a word that the tokenizer splits into several tokens).

use std::path::Path;

use crate::error::{Error, Result};

/// A Hugging Face `tokenizer.json` tokenizer (byte-level BPE for GPT-2).
#[derive(Clone, Debug)]
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
}

/// Tokens of a text with each token's byte span in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoding {
    /// Token ids.
    pub ids: Vec<u32>,
    /// `(start, end)` byte offsets of each token in the text; `(0, 0)` for a prepended BOS.
    pub offsets: Vec<(usize, usize)>,
}

impl TextTokenizer {
    /// Loads `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
        Ok(TextTokenizer { inner })
    }

    /// Wraps an existing `tokenizers::Tokenizer`.
    pub fn new(inner: tokenizers::Tokenizer) -> Self {
        TextTokenizer { inner }
    }

    /// The underlying tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Vocabulary size, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of a token string, e.g. `<|endoftext|>`.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Tokenizes `text`, optionally prepending `bos`.
    pub fn encode(&self, text: &str, bos: Option<u32>) -> Result<Encoding> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let mut ids = Vec::with_capacity(enc.len() + 1);
        let mut offsets = Vec::with_capacity(enc.len() + 1);
        if let Some(bos) = bos {
            ids.push(bos);
            offsets.push((0, 0));
        }
        ids.extend_from_slice(enc.get_ids());
        offsets.extend_from_slice(enc.get_offsets());
        Ok(Encoding { ids, offsets })
    }

    /// Decodes tokens to text.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// Each token decoded on its own (TransformerLens `to_str_tokens`), e.g. `["I", " am", " he", "ure", "ux"]`.
    pub fn str_tokens(&self, ids: &[u32]) -> Result<Vec<String>> {
        ids.iter().map(|&id| self.decode(&[id])).collect()
    }

    /// Token positions of every occurrence of `word` in `text`: one list per occurrence, with
    /// every token that overlaps it, so a word split into sub-tokens (French "heureux" in
    /// GPT-2) yields all of them. Positions count a prepended BOS when `bos` is given.
    ///
    /// # Errors
    /// [`Error::WordNotFound`] when `word` does not occur in `text`.
    pub fn word_positions(
        &self,
        text: &str,
        word: &str,
        bos: Option<u32>,
    ) -> Result<Vec<Vec<usize>>> {
        if word.is_empty() {
            return Err(Error::WordNotFound {
                word: String::new(),
            });
        }
        let enc = self.encode(text, bos)?;
        let skip = usize::from(bos.is_some());
        let found: Vec<Vec<usize>> = text
            .match_indices(word)
            .map(|(start, w)| {
                let end = start + w.len();
                enc.offsets
                    .iter()
                    .enumerate()
                    .skip(skip)
                    .filter(|(_, &(s, e))| s < end && e > start)
                    .map(|(i, _)| i)
                    .collect()
            })
            .collect();
        if found.is_empty() {
            return Err(Error::WordNotFound { word: word.into() });
        }
        Ok(found)
    }
}
