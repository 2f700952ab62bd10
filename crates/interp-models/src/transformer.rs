//! The hooked forward pass shared by every architecture, and [`HookedTransformer`].
//!
//! One forward fires the TransformerLens hook points in TransformerLens order; a [`HookSpec`]
//! decides what is cached, edited or replaced. With an empty spec no hook code runs.

use std::path::Path;

use burn::module::{Module, Param};
use burn::tensor::activation::{gelu, relu, sigmoid, softmax};
use burn::tensor::{backend::Backend, Bool, Int, Tensor, TensorData};

use crate::config::{Activation as ActFn, ModelConfig};
use crate::error::{Error, Result};
use crate::hooks::{ActivationCache, BlockHook, HookPoint, HookRun, HookSpec, NameFilter};
use crate::tokenizer::TextTokenizer;

/// LayerNorm parameters (`ln1`, `ln2`, `ln_final`).
#[derive(Module, Debug)]
pub struct LayerNormWeights<B: Backend> {
    /// Scale, `[d_model]`.
    pub w: Param<Tensor<B, 1>>,
    /// Shift, `[d_model]`.
    pub b: Param<Tensor<B, 1>>,
}

/// Attention parameters, stored fused as `[d_model, 3 · n_heads · d_head]` (Q | K | V, heads
/// contiguous within each), the layout of GPT-2's `c_attn`, so one GEMM computes Q, K and V.
#[derive(Module, Debug)]
pub struct AttentionWeights<B: Backend> {
    /// `[d_model, 3 · n_heads · d_head]`.
    pub w_qkv: Param<Tensor<B, 2>>,
    /// `[3 · n_heads · d_head]`.
    pub b_qkv: Param<Tensor<B, 1>>,
    /// Output projection, `[n_heads · d_head, d_model]`.
    pub w_o: Param<Tensor<B, 2>>,
    /// `[d_model]`.
    pub b_o: Param<Tensor<B, 1>>,
}

/// MLP parameters.
#[derive(Module, Debug)]
pub struct MlpWeights<B: Backend> {
    /// `[d_model, d_mlp]`.
    pub w_in: Param<Tensor<B, 2>>,
    /// `[d_mlp]`.
    pub b_in: Param<Tensor<B, 1>>,
    /// `[d_mlp, d_model]`.
    pub w_out: Param<Tensor<B, 2>>,
    /// `[d_model]`.
    pub b_out: Param<Tensor<B, 1>>,
}

/// One transformer block.
#[derive(Module, Debug)]
pub struct BlockWeights<B: Backend> {
    /// LayerNorm before attention.
    pub ln1: LayerNormWeights<B>,
    /// Attention.
    pub attn: AttentionWeights<B>,
    /// LayerNorm before the MLP.
    pub ln2: LayerNormWeights<B>,
    /// MLP.
    pub mlp: MlpWeights<B>,
}

/// All parameters, named as TransformerLens names them (`embed.W_E`, `blocks.L.attn…`).
#[derive(Module, Debug)]
pub struct TransformerWeights<B: Backend> {
    /// Token embedding `W_E`, `[d_vocab, d_model]`.
    pub w_e: Param<Tensor<B, 2>>,
    /// Positional embedding `W_pos`, `[n_ctx, d_model]`.
    pub w_pos: Param<Tensor<B, 2>>,
    /// The blocks.
    pub blocks: Vec<BlockWeights<B>>,
    /// Final LayerNorm.
    pub ln_final: LayerNormWeights<B>,
    /// Unembedding `W_U`, `[d_model, d_vocab]`.
    pub w_u: Param<Tensor<B, 2>>,
    /// Unembedding bias `b_U`, `[d_vocab]`.
    pub b_u: Param<Tensor<B, 1>>,
}

/// Which side padding goes on when sequences of different lengths share a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PaddingSide {
    /// Pad at the end (positions of real tokens are unchanged).
    #[default]
    Right,
    /// Pad at the start (the last position is the last real token of every row).
    Left,
}

/// Token ids for one forward pass: `[batch, pos]`, with an attention mask when padded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    tokens: Vec<u32>,
    n_batch: usize,
    n_pos: usize,
    /// `true` for real tokens; `None` when nothing is padded.
    mask: Option<Vec<bool>>,
}

impl Batch {
    /// One sequence.
    pub fn single(tokens: &[u32]) -> Self {
        Batch {
            tokens: tokens.to_vec(),
            n_batch: 1,
            n_pos: tokens.len(),
            mask: None,
        }
    }

    /// Several sequences, padded to the longest on `side`; padded positions are masked out of
    /// attention and get offset positional embeddings as in TransformerLens.
    pub fn padded(seqs: &[Vec<u32>], side: PaddingSide) -> Self {
        let n_pos = seqs.iter().map(Vec::len).max().unwrap_or(0);
        let mut tokens = Vec::with_capacity(seqs.len() * n_pos);
        let mut mask = Vec::with_capacity(seqs.len() * n_pos);
        for s in seqs {
            let pad = n_pos - s.len();
            let real = s.iter().map(|&t| (t, true));
            let pads = std::iter::repeat_n((0, false), pad);
            let row: Vec<(u32, bool)> = match side {
                PaddingSide::Right => real.chain(pads).collect(),
                PaddingSide::Left => pads.chain(real).collect(),
            };
            tokens.extend(row.iter().map(|r| r.0));
            mask.extend(row.iter().map(|r| r.1));
        }
        let padded = mask.iter().any(|m| !m);
        Batch {
            tokens,
            n_batch: seqs.len(),
            n_pos,
            mask: padded.then_some(mask),
        }
    }

    /// `[batch, pos]`.
    pub fn dims(&self) -> [usize; 2] {
        [self.n_batch, self.n_pos]
    }

    /// Flattened token ids, row-major.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// The attention mask (`true` = real token), if any row is padded.
    pub fn mask(&self) -> Option<&[bool]> {
        self.mask.as_deref()
    }
}

impl From<&[u32]> for Batch {
    fn from(tokens: &[u32]) -> Self {
        Batch::single(tokens)
    }
}

impl From<Vec<u32>> for Batch {
    fn from(tokens: Vec<u32>) -> Self {
        Batch::single(&tokens)
    }
}

/// Keys and values of earlier positions, for incremental decoding. Kept outside the model:
/// pass the same cache to successive [`HookedTransformer::forward_cached`] calls.
#[derive(Clone, Debug)]
pub struct KvCache<B: Backend> {
    /// Per layer: keys and values, `[batch, head_index, pos, d_head]`.
    layers: Vec<Option<(Tensor<B, 4>, Tensor<B, 4>)>>,
    /// `[batch][pos]`: which cached positions are real tokens.
    key_mask: Vec<Vec<bool>>,
    /// Next position id per row (real tokens seen so far).
    next_position: Vec<usize>,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for a model with `n_layers` blocks.
    pub fn new(n_layers: usize) -> Self {
        KvCache {
            layers: vec![None; n_layers],
            key_mask: Vec::new(),
            next_position: Vec::new(),
        }
    }

    /// Number of cached positions (padding included).
    pub fn len(&self) -> usize {
        self.key_mask.first().map_or(0, Vec::len)
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cache of a batch of one repeated for `n` rows, so that `n` samples continue one
    /// prompt that ran once. No-op unless the cache holds exactly one row.
    pub(crate) fn repeat_single_row(&mut self, n: usize) {
        if self.key_mask.len() != 1 || n == 1 {
            return;
        }
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.clone().repeat_dim(0, n);
            *v = v.clone().repeat_dim(0, n);
        }
        self.key_mask = vec![self.key_mask[0].clone(); n];
        self.next_position = vec![self.next_position[0]; n];
    }
}

/// Optional TransformerLens weight processing (all off by default: raw HF numerics).
///
/// `HookedTransformer.from_pretrained` in TransformerLens turns all four on; the public
/// `gpt2-small-res-jb` SAEs were trained on such a processed model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessingOptions {
    /// Fold each LayerNorm's scale and shift into the next linear map (LN becomes LNPre).
    pub fold_ln: bool,
    /// Make every matrix writing to the residual stream (W_E, W_pos, W_O, W_out) zero-mean
    /// along d_model.
    pub center_writing_weights: bool,
    /// Make W_U zero-mean along the vocabulary (logits change by a per-position constant).
    pub center_unembed: bool,
    /// Fold the value biases into the output bias.
    pub fold_value_biases: bool,
}

impl ProcessingOptions {
    /// No processing: the checkpoint's own numerics.
    pub const NONE: Self = ProcessingOptions {
        fold_ln: false,
        center_writing_weights: false,
        center_unembed: false,
        fold_value_biases: false,
    };
    /// TransformerLens `from_pretrained` defaults: everything on.
    pub const TRANSFORMER_LENS: Self = ProcessingOptions {
        fold_ln: true,
        center_writing_weights: true,
        center_unembed: true,
        fold_value_biases: true,
    };
}

/// A transformer whose forward pass exposes TransformerLens hook points.
///
/// ```no_run
/// use interp_models::prelude::*;
/// let device = Default::default();
/// let model = HookedTransformer::<Cpu>::from_dir("assets/model".as_ref(), &device)?;
/// let tokens = model.to_tokens("The cat sat", false)?;
/// let (logits, cache) = model.run_with_cache(
///     &Batch::single(&tokens),
///     NameFilter::patterns(["blocks.*.hook_resid_pre"]),
/// )?;
/// # Ok::<(), interp_models::Error>(())
/// ```
#[derive(Debug)]
pub struct HookedTransformer<B: Backend> {
    pub(crate) cfg: ModelConfig,
    pub(crate) weights: TransformerWeights<B>,
    pub(crate) tokenizer: Option<TextTokenizer>,
    pub(crate) processing: ProcessingOptions,
    pub(crate) device: B::Device,
}

impl<B: Backend> HookedTransformer<B> {
    /// A model from resolved config and weights (no tokenizer).
    pub fn new(cfg: ModelConfig, weights: TransformerWeights<B>, device: &B::Device) -> Self {
        HookedTransformer {
            cfg,
            weights,
            tokenizer: None,
            processing: ProcessingOptions::NONE,
            device: device.clone(),
        }
    }

    /// A model with random weights initialised as GPT-2 is (normal, std 0.02; LayerNorm scale 1
    /// and shift 0; zero biases), for tests and benchmarks. The same `seed` gives the same
    /// weights on the same backend.
    pub fn random(cfg: ModelConfig, seed: u64, device: &B::Device) -> Self {
        use burn::tensor::Distribution;
        B::seed(device, seed);
        let normal = |shape: [usize; 2]| {
            Param::from_tensor(Tensor::<B, 2>::random(
                shape,
                Distribution::Normal(0.0, 0.02),
                device,
            ))
        };
        let zeros = |n: usize| Param::from_tensor(Tensor::<B, 1>::zeros([n], device));
        let ln = |n: usize| LayerNormWeights {
            w: Param::from_tensor(Tensor::ones([n], device)),
            b: zeros(n),
        };
        let (d, d_mlp, qkv) = (cfg.d_model, cfg.d_mlp, 3 * cfg.n_heads * cfg.d_head);
        let blocks = (0..cfg.n_layers)
            .map(|_| BlockWeights {
                ln1: ln(d),
                attn: AttentionWeights {
                    w_qkv: normal([d, qkv]),
                    b_qkv: zeros(qkv),
                    w_o: normal([cfg.n_heads * cfg.d_head, d]),
                    b_o: zeros(d),
                },
                ln2: ln(d),
                mlp: MlpWeights {
                    w_in: normal([d, d_mlp]),
                    b_in: zeros(d_mlp),
                    w_out: normal([d_mlp, d]),
                    b_out: zeros(d),
                },
            })
            .collect();
        let w_e = normal([cfg.d_vocab, d]);
        // A row-major copy, as loaded checkpoints have (not a transposed view of W_E, whose
        // column-major layout makes a generation step's unembedding ≈ 1.5× slower); a leaf
        // tensor, as an autodiff backend needs of a parameter.
        let w_u = Param::from_tensor(Tensor::from_data(w_e.val().transpose().into_data(), device));
        let weights = TransformerWeights {
            w_e,
            w_pos: normal([cfg.n_ctx, d]),
            blocks,
            ln_final: ln(d),
            w_u,
            b_u: zeros(cfg.d_vocab),
        };
        Self::new(cfg, weights, device)
    }

    /// Loads a model directory in Hugging Face layout: `config.json`, `model.safetensors`, and
    /// optionally `tokenizer.json`. The architecture is read from `config.json`'s `model_type`.
    pub fn from_dir(dir: &Path, device: &B::Device) -> Result<Self> {
        crate::loading::load_dir(dir, device)
    }

    /// Loads `name`: a local directory if one exists at that path, otherwise a hub model id
    /// (with the `hub` feature; `HF_HUB_OFFLINE=1` restricts it to the local cache).
    pub fn from_pretrained(name: &str, device: &B::Device) -> Result<Self> {
        let dir = crate::loading::resolve_model_dir(name)?;
        Self::from_dir(&dir, device)
    }

    /// Attaches a tokenizer.
    pub fn with_tokenizer(mut self, tokenizer: TextTokenizer) -> Self {
        self.tokenizer = Some(tokenizer);
        self
    }

    /// The configuration.
    pub fn cfg(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The parameters.
    pub fn weights(&self) -> &TransformerWeights<B> {
        &self.weights
    }

    /// The tokenizer, if one was loaded.
    pub fn tokenizer(&self) -> Result<&TextTokenizer> {
        self.tokenizer.as_ref().ok_or(Error::NoTokenizer)
    }

    /// The weight processing applied so far.
    pub fn processing(&self) -> ProcessingOptions {
        self.processing
    }

    /// The device the weights live on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// Logits for `batch`.
    ///
    /// # Shapes
    /// returns `[batch, pos, d_vocab]`.
    pub fn forward(&self, batch: &Batch) -> Result<Tensor<B, 3>> {
        self.run_with_hooks(batch, &HookSpec::new())
    }

    /// Runs `batch`, caching the hook points passing `filter` (TransformerLens
    /// `run_with_cache(names_filter=…)`).
    ///
    /// # Shapes
    /// logits `[batch, pos, d_vocab]`; cached activations as in [`crate::hooks`].
    pub fn run_with_cache(
        &self,
        batch: &Batch,
        filter: NameFilter,
    ) -> Result<(Tensor<B, 3>, ActivationCache<B>)> {
        self.run(batch, &HookSpec::new().cache(filter))
    }

    /// Runs `batch` with the hooks of `spec` active and returns the output: logits
    /// `[batch, pos, d_vocab]`, or with `stop_at_layer(L)` the residual stream entering block
    /// `L`, `[batch, pos, d_model]`.
    pub fn run_with_hooks(&self, batch: &Batch, spec: &HookSpec<B>) -> Result<Tensor<B, 3>> {
        Ok(self.run(batch, spec)?.0)
    }

    /// The general forward: hooks, cache and early stop from `spec`; returns the output (see
    /// [`Self::run_with_hooks`]) and the cache.
    pub fn run(
        &self,
        batch: &Batch,
        spec: &HookSpec<B>,
    ) -> Result<(Tensor<B, 3>, ActivationCache<B>)> {
        self.run_pass(batch, spec, None, Pass::default())
    }

    /// Forward over new tokens only, reading and extending `kv` (incremental decoding). Hooks
    /// see the new positions only; positional hooks use absolute positions. On error `kv` is
    /// left as it was.
    pub fn forward_cached(
        &self,
        batch: &Batch,
        spec: &HookSpec<B>,
        kv: &mut KvCache<B>,
    ) -> Result<(Tensor<B, 3>, ActivationCache<B>)> {
        self.run_pass(batch, spec, Some(kv), Pass::default())
    }

    /// One forward pass, with or without a KV cache, that hooks see as generation step
    /// `pass.step` (see [`crate::hooks::HookContext`]). On error `kv` is left as it was.
    pub(crate) fn run_pass(
        &self,
        batch: &Batch,
        spec: &HookSpec<B>,
        kv: Option<&mut KvCache<B>>,
        pass: Pass,
    ) -> Result<(Tensor<B, 3>, ActivationCache<B>)> {
        let mut run = spec.start(self.cfg.n_layers)?;
        run.step = pass.step;
        run.prompt_len = pass.prompt_len;
        run.generated_only = pass.generated_only;
        let Some(kv) = kv else {
            let out = self.forward_inner(batch, &mut run, None)?;
            return Ok((out, run.cache));
        };
        run.offset = kv.len();
        // Tensors are reference-counted: the backup costs no copy of keys and values.
        let backup = kv.clone();
        match self.forward_inner(batch, &mut run, Some(kv)) {
            Ok(out) => Ok((out, run.cache)),
            Err(e) => {
                *kv = backup;
                Err(e)
            }
        }
    }

    fn check_input(&self, batch: &Batch, past: usize) -> Result<()> {
        let [n_batch, n_pos] = batch.dims();
        if n_batch == 0 || n_pos == 0 {
            return Err(Error::EmptyInput {
                what: "batch has no tokens",
            });
        }
        if past + n_pos > self.cfg.n_ctx {
            return Err(Error::SequenceTooLong {
                len: past + n_pos,
                n_ctx: self.cfg.n_ctx,
            });
        }
        if let Some((position, &id)) = batch
            .tokens()
            .iter()
            .enumerate()
            .find(|(_, &t)| t as usize >= self.cfg.d_vocab)
        {
            return Err(Error::TokenOutOfRange {
                id,
                position,
                d_vocab: self.cfg.d_vocab,
            });
        }
        Ok(())
    }

    fn forward_inner(
        &self,
        batch: &Batch,
        run: &mut HookRun<'_, B>,
        mut kv: Option<&mut KvCache<B>>,
    ) -> Result<Tensor<B, 3>> {
        let [n_batch, n_pos] = batch.dims();
        let past = kv.as_ref().map_or(0, |c| c.len());
        self.check_input(batch, past)?;
        if let Some(c) = kv.as_deref() {
            if past > 0 && c.key_mask.len() != n_batch {
                return Err(Error::ShapeMismatch {
                    key: "kv_cache batch".into(),
                    expected: vec![c.key_mask.len()],
                    actual: vec![n_batch],
                });
            }
        }
        let d_model = self.cfg.d_model;
        let device = &self.device;

        // Position ids: count of real tokens before each position (TransformerLens offsets
        // positions past left padding the same way).
        let (positions, key_mask, next_position) = positions_and_mask(batch, kv.as_deref());
        let ids = Tensor::<B, 1, Int>::from_data(
            TensorData::new(
                batch.tokens().iter().map(|&t| t as i64).collect::<Vec<_>>(),
                [n_batch * n_pos],
            ),
            device,
        );
        let pos_ids =
            Tensor::<B, 1, Int>::from_data(TensorData::new(positions, [n_batch * n_pos]), device);
        let w = &self.weights;
        let embed = w
            .w_e
            .val()
            .select(0, ids)
            .reshape([n_batch, n_pos, d_model]);
        let embed = run.apply(HookPoint::Embed, embed)?;
        let pos_embed = w
            .w_pos
            .val()
            .select(0, pos_ids)
            .reshape([n_batch, n_pos, d_model]);
        let pos_embed = run.apply(HookPoint::PosEmbed, pos_embed)?;
        let mut resid = embed + pos_embed;

        let n_keys = past + n_pos;
        let attn_mask = attention_mask::<B>(&key_mask, n_batch, past, n_pos, n_keys, device);
        let padded = key_mask.iter().flatten().any(|m| !m);

        for (layer, block) in w.blocks.iter().enumerate() {
            if run.stops_at(layer) {
                return Ok(resid);
            }
            let hp = |hook| HookPoint::block(layer, hook);
            resid = run.apply(hp(BlockHook::ResidPre), resid)?;
            let x = layer_norm(
                &block.ln1,
                resid.clone(),
                self.cfg.eps,
                (hp(BlockHook::Ln1Scale), hp(BlockHook::Ln1Normalized)),
                run,
            )?;
            let layer_kv = kv.as_deref_mut().map(|c| &mut c.layers[layer]);
            let masks = AttnMasks {
                mask: attn_mask.clone(),
                padded,
                key_mask: &key_mask,
                past,
            };
            let z = self.attention(layer, &block.attn, x, masks, layer_kv, run)?;
            let attn = &block.attn;
            let mid = residual_branch(z, &attn.w_o, &attn.b_o, resid, hp(BlockHook::AttnOut), run)?;
            resid = run.apply(hp(BlockHook::ResidMid), mid)?;
            let x = layer_norm(
                &block.ln2,
                resid.clone(),
                self.cfg.eps,
                (hp(BlockHook::Ln2Scale), hp(BlockHook::Ln2Normalized)),
                run,
            )?;
            let fused =
                if run.is_active(hp(BlockHook::MlpPre)) || run.is_active(hp(BlockHook::MlpPost)) {
                    None
                } else {
                    linear_act(&x, &block.mlp.w_in, &block.mlp.b_in, self.cfg.act_fn)
                };
            let post = match fused {
                Some(post) => post,
                None => {
                    let pre = run.apply(
                        hp(BlockHook::MlpPre),
                        linear(x, &block.mlp.w_in, &block.mlp.b_in),
                    )?;
                    let post = match self.cfg.act_fn {
                        ActFn::GeluNew => gelu_new(pre),
                        ActFn::Gelu => gelu(pre),
                        ActFn::Relu => relu(pre),
                    };
                    run.apply(hp(BlockHook::MlpPost), post)?
                }
            };
            let mlp = &block.mlp;
            let post_res = residual_branch(
                post,
                &mlp.w_out,
                &mlp.b_out,
                resid,
                hp(BlockHook::MlpOut),
                run,
            )?;
            resid = run.apply(hp(BlockHook::ResidPost), post_res)?;
        }
        if let Some(c) = kv {
            c.key_mask = key_mask;
            c.next_position = next_position;
        }
        if run.stops_at(self.cfg.n_layers) {
            return Ok(resid);
        }
        let x = layer_norm(
            &w.ln_final,
            resid,
            self.cfg.eps,
            (HookPoint::LnFinalScale, HookPoint::LnFinalNormalized),
            run,
        )?;
        Ok(linear(x, &w.w_u, &w.b_u))
    }

    /// Attention up to `hook_z`, flattened to `[batch, pos, n_heads · d_head]`.
    ///
    /// On the CPU fast path, scores, pattern and `z` come from one fused kernel unless
    /// `hook_attn_scores` or `hook_pattern` is active.
    fn attention(
        &self,
        layer: usize,
        attn: &AttentionWeights<B>,
        x: Tensor<B, 3>,
        masks: AttnMasks<'_, B>,
        kv: Option<&mut Option<(Tensor<B, 4>, Tensor<B, 4>)>>,
        run: &mut HookRun<'_, B>,
    ) -> Result<Tensor<B, 3>> {
        let [n_batch, n_pos, _] = x.dims();
        let (h, dh) = (self.cfg.n_heads, self.cfg.d_head);
        let hp = |hook| HookPoint::block(layer, hook);
        let (w_qkv, b_qkv) = (attn.w_qkv.val(), attn.b_qkv.val());
        let part_shape = [n_batch, n_pos, h, dh];
        let [q, k, v] = match crate::kernels::linear_split(&x, &w_qkv, &b_qkv, part_shape) {
            Some(qkv) => qkv,
            None => {
                let qkv = linear(x, &attn.w_qkv, &attn.b_qkv).reshape([n_batch, n_pos, 3 * h, dh]);
                [0, 1, 2].map(|i| qkv.clone().narrow(2, i * h, h))
            }
        };
        let q = run.apply(hp(BlockHook::AttnQ), q)?;
        let k = run.apply(hp(BlockHook::AttnK), k)?;
        let v = run.apply(hp(BlockHook::AttnV), v)?;
        // [batch, head_index, pos, d_head]
        let (mut k, mut v) = (k.swap_dims(1, 2), v.swap_dims(1, 2));
        if let Some(slot) = kv {
            if let Some((pk, pv)) = slot.take() {
                k = crate::kernels::cat_positions(&pk, &k)
                    .unwrap_or_else(|| Tensor::cat(vec![pk, k], 2));
                v = crate::kernels::cat_positions(&pv, &v)
                    .unwrap_or_else(|| Tensor::cat(vec![pv, v], 2));
            }
            *slot = Some((k.clone(), v.clone()));
        }
        let mut scale = (dh as f64).sqrt();
        if self.cfg.scale_attn_by_inverse_layer_idx {
            scale *= (layer + 1) as f64;
        }
        let AttnMasks {
            mask,
            padded,
            key_mask,
            past,
        } = masks;
        if !run.is_active(hp(BlockHook::AttnScores)) && !run.is_active(hp(BlockHook::AttnPattern)) {
            let scale = scale as f32;
            if !run.is_active(hp(BlockHook::AttnZ)) {
                let merged = [n_batch, n_pos, h * dh];
                if let Some(z) =
                    crate::kernels::attention(&q, &k, &v, key_mask, past, scale, merged)
                {
                    return Ok(z);
                }
            } else if let Some(z) = crate::kernels::attention(
                &q,
                &k,
                &v,
                key_mask,
                past,
                scale,
                [n_batch, n_pos, h, dh],
            ) {
                let z = run.apply(hp(BlockHook::AttnZ), z)?;
                return Ok(z.reshape([n_batch, n_pos, h * dh]));
            }
        }
        let q = q.swap_dims(1, 2);
        let mut scores = q.matmul(k.swap_dims(2, 3)) / scale;
        if let Some(mask) = mask {
            let n_keys = scores.dims()[3];
            scores = scores.mask_fill(mask.expand([n_batch, h, n_pos, n_keys]), f32::NEG_INFINITY);
        }
        let scores = run.apply(hp(BlockHook::AttnScores), scores)?;
        let mut pattern = softmax(scores, 3);
        if padded {
            // Rows whose keys are all padding are NaN after softmax; TransformerLens zeroes them.
            pattern = pattern.clone().mask_fill(pattern.is_nan(), 0.0);
        }
        let pattern = run.apply(hp(BlockHook::AttnPattern), pattern)?;
        let z = pattern.matmul(v).swap_dims(1, 2);
        let z = run.apply(hp(BlockHook::AttnZ), z)?;
        Ok(z.reshape([n_batch, n_pos, h * dh]))
    }
}

/// Where a forward pass sits in generation, for the hooks' [`crate::hooks::HookContext`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Pass {
    /// Generation step (0 for the prompt and outside generation).
    pub(crate) step: usize,
    /// The prompt's length during generation.
    pub(crate) prompt_len: Option<usize>,
    /// Hooks act on generated positions only.
    pub(crate) generated_only: bool,
}

/// The attention masks of one forward pass, in both forms: the burn mask of the reference path
/// and the per-row key mask of the fused kernel.
struct AttnMasks<'a, B: Backend> {
    /// `true` where masked, `[batch, 1, query_pos, key_pos]`; `None` when nothing is.
    mask: Option<Tensor<B, 4, Bool>>,
    /// Whether any key is padding.
    padded: bool,
    /// `[batch][key_pos]`, `true` for real tokens.
    key_mask: &'a [Vec<bool>],
    /// Number of cached positions before this pass.
    past: usize,
}

/// `act(x @ w + b)` on the CPU fast path (`None` elsewhere).
fn linear_act<B: Backend>(
    x: &Tensor<B, 3>,
    w: &Param<Tensor<B, 2>>,
    b: &Param<Tensor<B, 1>>,
    act: ActFn,
) -> Option<Tensor<B, 3>> {
    let [n_batch, n_pos, _] = x.dims();
    let w = w.val();
    let shape = [n_batch, n_pos, w.dims()[1]];
    crate::kernels::linear(x, &w, &b.val(), None, Some(act), shape)
}

/// `resid + hook(x @ w + b)`, the attention and MLP outputs added to the residual stream: one
/// GEMM accumulating onto the residual on the CPU fast path when `hook` is inactive, otherwise
/// the reference ops with the hook applied.
fn residual_branch<B: Backend>(
    x: Tensor<B, 3>,
    w: &Param<Tensor<B, 2>>,
    b: &Param<Tensor<B, 1>>,
    resid: Tensor<B, 3>,
    hook: HookPoint,
    run: &mut HookRun<'_, B>,
) -> Result<Tensor<B, 3>> {
    if !run.is_active(hook) {
        let shape = resid.dims();
        if let Some(y) = crate::kernels::linear(&x, &w.val(), &b.val(), Some(&resid), None, shape) {
            return Ok(y);
        }
    }
    Ok(resid + run.apply(hook, linear(x, w, b))?)
}

/// `x @ w + b` over the last dimension, as one GEMM.
///
/// # Shapes
/// `x: [batch, pos, d_in]`, `w: [d_in, d_out]`, `b: [d_out]` → `[batch, pos, d_out]`.
pub(crate) fn linear<B: Backend>(
    x: Tensor<B, 3>,
    w: &Param<Tensor<B, 2>>,
    b: &Param<Tensor<B, 1>>,
) -> Tensor<B, 3> {
    let [n_batch, n_pos, d_in] = x.dims();
    let w = w.val();
    let d_out = w.dims()[1];
    let b = b.val();
    if let Some(y) = crate::kernels::linear(&x, &w, &b, None, None, [n_batch, n_pos, d_out]) {
        return y;
    }
    let y = crate::kernels::linear2d(x.reshape([n_batch * n_pos, d_in]), w, b);
    y.reshape([n_batch, n_pos, d_out])
}

/// GPT-2's tanh approximation of GELU, `0.5 x (1 + tanh(u))` with
/// `u = sqrt(2/π) (x + 0.044715 x³)`, computed as `x · sigmoid(2u)` (the same function:
/// `0.5 (1 + tanh(u)) = sigmoid(2u)`), which is faster on CPU than burn's `gelu_approximate`.
pub(crate) fn gelu_new<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    const TWO_SQRT_2_OVER_PI: f64 = 1.595_769_121_605_730_7;
    let two_u = (x.clone() * x.clone() * 0.044715 + 1.0) * x.clone() * TWO_SQRT_2_OVER_PI;
    sigmoid(two_u) * x
}

/// TransformerLens LayerNorm: centre, divide by `sqrt(var + eps)` (`hook_scale`), record the
/// normalized value (`hook_normalized`, before the affine map, as TransformerLens does), then
/// apply the scale and shift.
fn layer_norm<B: Backend>(
    ln: &LayerNormWeights<B>,
    x: Tensor<B, 3>,
    eps: f64,
    (scale_hook, normalized_hook): (HookPoint, HookPoint),
    run: &mut HookRun<'_, B>,
) -> Result<Tensor<B, 3>> {
    if !run.is_active(scale_hook) && !run.is_active(normalized_hook) {
        if let Some(y) = crate::kernels::layer_norm(&x, &ln.w.val(), &ln.b.val(), eps) {
            return Ok(y);
        }
    }
    let x = x.clone() - x.mean_dim(2);
    let scale = (x.clone().powi_scalar(2).mean_dim(2) + eps).sqrt();
    let scale = run.apply(scale_hook, scale)?;
    let normalized = run.apply(normalized_hook, x / scale)?;
    Ok(normalized * ln.w.val().unsqueeze::<3>() + ln.b.val().unsqueeze::<3>())
}

/// Position ids of the new tokens, the key mask over all (cached + new) positions, and each
/// row's next position id.
///
/// A padded position takes the id of the real token before it (0 before any), as
/// TransformerLens' `get_offset_position_ids` does.
fn positions_and_mask<B: Backend>(
    batch: &Batch,
    kv: Option<&KvCache<B>>,
) -> (Vec<i64>, Vec<Vec<bool>>, Vec<usize>) {
    let [n_batch, n_pos] = batch.dims();
    let mut positions = Vec::with_capacity(n_batch * n_pos);
    let mut key_mask = Vec::with_capacity(n_batch);
    let mut next_position = Vec::with_capacity(n_batch);
    for row in 0..n_batch {
        let mut seen = kv
            .and_then(|c| c.next_position.get(row).copied())
            .unwrap_or(0);
        let mut keys = kv
            .and_then(|c| c.key_mask.get(row).cloned())
            .unwrap_or_default();
        for p in 0..n_pos {
            let real = batch.mask().is_none_or(|m| m[row * n_pos + p]);
            positions.push(seen.saturating_sub(usize::from(!real)) as i64);
            if real {
                seen += 1;
            }
            keys.push(real);
        }
        key_mask.push(keys);
        next_position.push(seen);
    }
    (positions, key_mask, next_position)
}

/// `true` where attention is masked: future keys, and padded keys. `None` when nothing is.
///
/// # Shapes
/// `[batch, 1, query_pos, key_pos]`.
pub(crate) fn attention_mask<B: Backend>(
    key_mask: &[Vec<bool>],
    n_batch: usize,
    past: usize,
    n_pos: usize,
    n_keys: usize,
    device: &B::Device,
) -> Option<Tensor<B, 4, Bool>> {
    let padded = key_mask.iter().flatten().any(|m| !m);
    if n_pos == 1 && !padded {
        return None;
    }
    let rows = if padded { n_batch } else { 1 };
    let mut masked = Vec::with_capacity(rows * n_pos * n_keys);
    for keys in key_mask.iter().take(rows) {
        for i in 0..n_pos {
            for (j, &real) in keys.iter().enumerate() {
                masked.push(j > past + i || !real);
            }
        }
    }
    let mask =
        Tensor::<B, 4, Bool>::from_data(TensorData::new(masked, [rows, 1, n_pos, n_keys]), device);
    Some(if rows == n_batch {
        mask
    } else {
        mask.expand([n_batch, 1, n_pos, n_keys])
    })
}
