//! # interp-models
//!
//! Transformers whose forward pass exposes TransformerLens hook points, on any
//! [burn](https://burn.dev) backend (ndarray on CPU by default, CUDA with the `cuda` feature).
//!
//! The pipeline: a Hugging Face model directory (`config.json`, `model.safetensors`,
//! `tokenizer.json`) is loaded into a [`HookedTransformer`] with the checkpoint's own numerics;
//! [`HookedTransformer::process_weights`] optionally applies TransformerLens' weight
//! processing; every forward takes a [`HookSpec`] saying which activations to cache
//! ([`NameFilter`], globs allowed), which to edit or replace, and where to stop
//! (`stop_at_layer`). Hook names are exactly TransformerLens' (`blocks.7.hook_resid_pre`).
//!
//! ```no_run
//! use interp_models::prelude::*;
//!
//! let device = Default::default();
//! let model = HookedTransformer::<Cpu>::from_pretrained("gpt2", &device)?
//!     .process_weights(ProcessingOptions::TRANSFORMER_LENS);
//! let tokens = model.to_tokens("I'm so happy today", true)?;
//! let (_logits, cache) = model.run_with_cache(
//!     &Batch::single(&tokens),
//!     NameFilter::patterns(["blocks.7.hook_resid_pre"]),
//! )?;
//! let resid = cache.rank3(&HookPoint::resid_pre(7)).unwrap(); // [1, pos, 768]
//! // Zero-ablate head outputs at position 3 of layer 0 and generate:
//! let spec = HookSpec::new().intervene(
//!     HookPoint::block(0, BlockHook::AttnZ),
//!     Some(vec![3]),
//!     Intervention::Zero,
//! );
//! let text = model.generate_text("The cat", &GenerateOptions::greedy(10), &spec)?;
//! # Ok::<(), interp_models::Error>(())
//! ```
//!
//! Supported architectures ([`models`]): GPT-2 (gpt2 … gpt2-xl, distilgpt2), Gemma 2, Llama
//! 1–3 and Mistral, Qwen2 / Qwen2.5, Phi-1 / 1.5 / 2. Which hooks a model fires and their
//! widths follow from its config ([`ModelConfig::hook_points`], [`ModelConfig::hook_width`]).

pub mod checkpoint;
mod components;
pub mod config;
pub mod error;
pub mod generation;
pub mod hooks;
pub mod io;
mod kernels;
pub mod loading;
pub mod models;
pub mod processing;
pub mod tokenizer;
pub mod transformer;
pub mod vocabulary;
pub mod weights;

pub use config::{Family, ModelConfig};
pub use error::{Error, Result};
pub use generation::{GenerateOptions, Generation, HookMode};
pub use hooks::{
    Activation, ActivationCache, BlockHook, HookContext, HookPoint, HookSpec, Intervention,
    NameFilter, Positions,
};
pub use tokenizer::{Encoding, TextTokenizer};
pub use transformer::{
    Batch, HookedTransformer, KvCache, PaddingSide, ProcessingOptions, TransformerWeights,
};

/// The default CPU backend: burn-ndarray with f32.
pub type Cpu = burn_ndarray::NdArray<f32>;

/// The CUDA backend (feature `cuda`).
#[cfg(feature = "cuda")]
pub type Cuda = burn_cuda::Cuda<f32, i32>;

/// Everything needed for everyday use.
pub mod prelude {
    #[cfg(feature = "cuda")]
    pub use crate::Cuda;
    pub use crate::{
        Activation, ActivationCache, Batch, BlockHook, Cpu, Error, Family, GenerateOptions,
        Generation, HookContext, HookMode, HookPoint, HookSpec, HookedTransformer, Intervention,
        KvCache, ModelConfig, NameFilter, PaddingSide, Positions, ProcessingOptions, TextTokenizer,
    };
    pub use burn::tensor::Tensor;
}

use burn::tensor::backend::Backend;

impl<B: Backend> HookedTransformer<B> {
    /// Tokenizes `text`, with the BOS token first if `prepend_bos`.
    pub fn to_tokens(&self, text: &str, prepend_bos: bool) -> Result<Vec<u32>> {
        Ok(self.tokenizer()?.encode(text, self.bos(prepend_bos))?.ids)
    }

    /// [`Self::to_tokens`] of each text.
    pub fn to_tokens_each<S: AsRef<str>>(
        &self,
        texts: &[S],
        prepend_bos: bool,
    ) -> Result<Vec<Vec<u32>>> {
        texts
            .iter()
            .map(|t| self.to_tokens(t.as_ref(), prepend_bos))
            .collect()
    }

    /// Each token as its own string (TransformerLens `to_str_tokens`).
    pub fn to_str_tokens(&self, tokens: &[u32]) -> Result<Vec<String>> {
        self.tokenizer()?.str_tokens(tokens)
    }

    /// The log-probability of each token given the ones before it: entry `i` is
    /// `log p(tokens[i + 1] | tokens[..=i])`, so there are `tokens.len() − 1` entries
    /// (TransformerLens `loss_fn(logits, tokens, per_token=True)`, negated).
    ///
    /// # Errors
    /// [`Error::EmptyInput`] for fewer than two tokens; the forward pass's errors (token ids
    /// out of range, a sequence longer than the context).
    pub fn token_log_probs(&self, tokens: &[u32]) -> Result<Vec<f32>> {
        use burn::tensor::{activation::log_softmax, Int, Tensor, TensorData};
        if tokens.len() < 2 {
            return Err(Error::EmptyInput {
                what: "token_log_probs needs at least two tokens",
            });
        }
        let logits = self.forward(&Batch::single(tokens))?;
        let [_, n, v] = logits.dims();
        let logp = log_softmax(logits.slice([0..1, 0..n - 1, 0..v]).reshape([n - 1, v]), 1);
        let next: Vec<i64> = tokens[1..].iter().map(|&t| i64::from(t)).collect();
        let next = Tensor::<B, 2, Int>::from_data(TensorData::new(next, [n - 1, 1]), &self.device);
        logp.gather(1, next)
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .map_err(|e| Error::Dtype {
                key: "log-probs".into(),
                dtype: format!("{e:?}"),
            })
    }

    /// Token positions of each occurrence of `word` in `text` as [`Self::to_tokens`] tokenizes
    /// it, every sub-token included (see [`TextTokenizer::word_positions`]).
    pub fn word_positions(
        &self,
        text: &str,
        word: &str,
        prepend_bos: bool,
    ) -> Result<Vec<Vec<usize>>> {
        self.tokenizer()?
            .word_positions(text, word, self.bos(prepend_bos))
    }

    /// The BOS token `prepend_bos` puts first: the config's `bos_token_id`, else the
    /// tokenizer's own BOS, else the end-of-text token (GPT-2's convention).
    fn bos(&self, prepend_bos: bool) -> Option<u32> {
        if !prepend_bos {
            return None;
        }
        let tokenizer_bos = self.tokenizer.as_ref().and_then(TextTokenizer::default_bos);
        self.cfg
            .bos_token_id
            .or(tokenizer_bos)
            .or(self.cfg.eos_token_id)
    }
}
