//! Text ↔ tokens, and the tokenizer helpers the write-ups need (string tokens, the positions
//! of a word that the tokenizer splits into several tokens).

use std::path::Path;

use crate::error::{Error, Result};

/// A Hugging Face `tokenizer.json` tokenizer: byte-level BPE (GPT-2, Llama 3, Qwen2, Phi),
/// SentencePiece-style BPE with byte fallback (Gemma, Llama 2), or any other model the
/// `tokenizers` library reads.
#[derive(Clone, Debug)]
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    /// The BOS token the tokenizer's own configuration puts first (its post-processor, or
    /// `add_bos_token` in `tokenizer_config.json`), if any.
    default_bos: Option<u32>,
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
        Ok(Self::new(inner))
    }

    /// Loads a directory's `tokenizer.json`, with the BOS rule of its `tokenizer_config.json`
    /// when there is one (`add_bos_token` and `bos_token`, as `transformers` reads them).
    ///
    /// # Errors
    /// [`Error::Tokenizer`] for an unreadable `tokenizer.json`; [`Error::Config`] for a
    /// malformed `tokenizer_config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let mut tok = Self::from_file(&dir.join("tokenizer.json"))?;
        let config_path = dir.join("tokenizer_config.json");
        if config_path.is_file() {
            let text =
                std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
            let config: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| Error::Config {
                    path: config_path.clone(),
                    reason: e.to_string(),
                })?;
            let bos_name = match &config["bos_token"] {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Object(o) => o
                    .get("content")
                    .and_then(|c| c.as_str())
                    .map(str::to_string),
                _ => None,
            };
            if let Some(add) = config["add_bos_token"].as_bool() {
                tok.default_bos = if add {
                    bos_name
                        .and_then(|b| tok.token_to_id(&b))
                        .or(tok.default_bos)
                } else {
                    None
                };
            }
        }
        Ok(tok)
    }

    /// Wraps an existing `tokenizers::Tokenizer`.
    pub fn new(inner: tokenizers::Tokenizer) -> Self {
        let default_bos = post_processor_bos(&inner);
        TextTokenizer { inner, default_bos }
    }

    /// The BOS token this tokenizer's configuration prepends (`None` when it prepends none,
    /// as GPT-2's and Qwen2's): pass it to [`Self::encode`] to tokenize as `transformers`'
    /// `tokenizer(text)` does.
    pub fn default_bos(&self) -> Option<u32> {
        self.default_bos
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

/// The token the post-processor puts before a text's tokens, if it adds exactly one there
/// (Llama 3's and Gemma's `TemplateProcessing` with their BOS).
fn post_processor_bos(tok: &tokenizers::Tokenizer) -> Option<u32> {
    let with = tok.encode("a", true).ok()?;
    let without = tok.encode("a", false).ok()?;
    let (w, wo) = (with.get_ids(), without.get_ids());
    (w.len() == wo.len() + 1 && w[1..] == *wo).then(|| w[0])
}
