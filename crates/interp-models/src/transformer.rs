//! [`HookedTransformer`] and the hooked forward pass every architecture shares: embeddings,
//! blocks (sequential, or parallel as Phi-2's, with Gemma-2's post-norms where configured) built
//! from [`crate::components`], the final norm and the unembedding.
//!
//! One forward fires the TransformerLens hook points in TransformerLens order; a [`HookSpec`]
//! decides what is cached, edited or replaced. With an empty spec no hook code runs.

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};

use crate::components::attention::{attention, attention_mask, AttnContext, LayerKv};
use crate::components::mlp::mlp_hidden;
use crate::components::norm::norm;
use crate::components::rotary::RotaryTables;
use crate::components::{linear, residual_branch, unembed};
use crate::config::{AttentionKind, ModelConfig};
use crate::error::{Error, Result};
use crate::hooks::{ActivationCache, BlockHook, HookPoint, HookRun, HookSpec, NameFilter};
use crate::tokenizer::TextTokenizer;
pub use crate::weights::{
    AttentionWeights, BlockWeights, LayerNormWeights, MlpWeights, TransformerWeights,
};

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
    /// Per layer: keys and values, `[batch, kv_head, pos, d_head]`.
    layers: Vec<LayerKv<B>>,
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

    /// A model with random weights for `cfg` (see [`TransformerWeights::random`]), for tests
    /// and benchmarks. The same `seed` gives the same weights on the same backend.
    pub fn random(cfg: ModelConfig, seed: u64, device: &B::Device) -> Self {
        let weights = TransformerWeights::random(&cfg, seed, device);
        Self::new(cfg, weights, device)
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
        let mut run = spec.start(&self.cfg)?;
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
        let cfg = &self.cfg;
        let d_model = cfg.d_model;
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
        let w = &self.weights;
        let embed = w
            .w_e
            .val()
            .select(0, ids)
            .reshape([n_batch, n_pos, d_model]);
        let embed = match cfg.embed_scale {
            Some(scale) => embed * scale,
            None => embed,
        };
        let mut resid = run.apply(HookPoint::Embed, embed)?;
        if let Some(w_pos) = &w.w_pos {
            let pos_ids = Tensor::<B, 1, Int>::from_data(
                TensorData::new(positions.clone(), [n_batch * n_pos]),
                device,
            );
            let pos_embed = w_pos
                .val()
                .select(0, pos_ids)
                .reshape([n_batch, n_pos, d_model]);
            resid = resid + run.apply(HookPoint::PosEmbed, pos_embed)?;
        }

        let has = |kind| {
            cfg.layer_types.contains(&kind)
                || (kind == AttentionKind::Global && cfg.layer_types.len() < cfg.n_layers)
        };
        let ctx = AttnContext {
            global_mask: if has(AttentionKind::Global) {
                attention_mask::<B>(&key_mask, (past, n_pos), None, device)
            } else {
                None
            },
            local_mask: if has(AttentionKind::Local) {
                attention_mask::<B>(&key_mask, (past, n_pos), cfg.sliding_window, device)
            } else {
                None
            },
            padded: key_mask.iter().flatten().any(|m| !m),
            key_mask: &key_mask,
            past,
            rotary: cfg
                .rotary()
                .map(|r| RotaryTables::new(r, &positions, [n_batch, n_pos], device)),
        };

        for (layer, block) in w.blocks.iter().enumerate() {
            if run.stops_at(layer) {
                return Ok(resid);
            }
            let layer_kv = kv.as_deref_mut().map(|c| &mut c.layers[layer]);
            resid = self.block(layer, block, resid, &ctx, layer_kv, run)?;
        }
        if let Some(c) = kv {
            c.key_mask = key_mask;
            c.next_position = next_position;
        }
        if run.stops_at(cfg.n_layers) {
            return Ok(resid);
        }
        let x = norm(
            cfg.normalization,
            &w.ln_final,
            resid,
            cfg.eps,
            (HookPoint::LnFinalScale, HookPoint::LnFinalNormalized),
            run,
        )?;
        Ok(unembed(x, &w.w_u, &w.b_u, cfg.output_logits_soft_cap))
    }

    /// One block: `hook_resid_pre` in, `hook_resid_post` out.
    fn block(
        &self,
        layer: usize,
        block: &BlockWeights<B>,
        resid: Tensor<B, 3>,
        ctx: &AttnContext<'_, B>,
        kv: Option<&mut LayerKv<B>>,
        run: &mut HookRun<'_, B>,
    ) -> Result<Tensor<B, 3>> {
        let cfg = &self.cfg;
        let hp = |hook| HookPoint::block(layer, hook);
        let norm_at = |ln, x, hooks: (BlockHook, BlockHook), run: &mut HookRun<'_, B>| {
            norm(
                cfg.normalization,
                ln,
                x,
                cfg.eps,
                (hp(hooks.0), hp(hooks.1)),
                run,
            )
        };
        let resid = run.apply(hp(BlockHook::ResidPre), resid)?;
        let x = norm_at(
            &block.ln1,
            resid.clone(),
            (BlockHook::Ln1Scale, BlockHook::Ln1Normalized),
            run,
        )?;
        let z = attention(cfg, layer, &block.attn, x.clone(), ctx, kv, run)?;
        let attn = &block.attn;
        let mlp = &block.mlp;
        if cfg.parallel_attn_mlp {
            // Attention and MLP both read the block's input; no `hook_resid_mid`.
            let mlp_in = match &block.ln2 {
                Some(ln2) => norm_at(
                    ln2,
                    resid.clone(),
                    (BlockHook::Ln2Scale, BlockHook::Ln2Normalized),
                    run,
                )?,
                None => x,
            };
            let with_attn = self.write(
                z,
                (&attn.w_o, &attn.b_o),
                &block.ln1_post,
                resid,
                layer,
                true,
                run,
            )?;
            let post = mlp_hidden(cfg, layer, mlp, mlp_in, run)?;
            let out = self.write(
                post,
                (&mlp.w_out, &mlp.b_out),
                &block.ln2_post,
                with_attn,
                layer,
                false,
                run,
            )?;
            return run.apply(hp(BlockHook::ResidPost), out);
        }
        let mid = self.write(
            z,
            (&attn.w_o, &attn.b_o),
            &block.ln1_post,
            resid,
            layer,
            true,
            run,
        )?;
        let resid = run.apply(hp(BlockHook::ResidMid), mid)?;
        let Some(ln2) = &block.ln2 else {
            return Err(Error::Unsupported {
                key: "ln2",
                value: format!("missing in sequential block {layer}"),
            });
        };
        let x = norm_at(
            ln2,
            resid.clone(),
            (BlockHook::Ln2Scale, BlockHook::Ln2Normalized),
            run,
        )?;
        let post = mlp_hidden(cfg, layer, mlp, x, run)?;
        let resid = self.write(
            post,
            (&mlp.w_out, &mlp.b_out),
            &block.ln2_post,
            resid,
            layer,
            false,
            run,
        )?;
        run.apply(hp(BlockHook::ResidPost), resid)
    }

    /// `resid + hook_{attn,mlp}_out(post_norm(x @ w + b))`: a sublayer's output projection
    /// (`attn = true` for attention), its optional post-norm, and the residual update.
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        x: Tensor<B, 3>,
        (w, b): (
            &burn::module::Param<Tensor<B, 2>>,
            &burn::module::Param<Tensor<B, 1>>,
        ),
        post: &Option<LayerNormWeights<B>>,
        resid: Tensor<B, 3>,
        layer: usize,
        attn: bool,
        run: &mut HookRun<'_, B>,
    ) -> Result<Tensor<B, 3>> {
        let cfg = &self.cfg;
        let hp = |hook| HookPoint::block(layer, hook);
        let (out_hook, norm_hooks) = if attn {
            (
                BlockHook::AttnOut,
                (BlockHook::Ln1PostScale, BlockHook::Ln1PostNormalized),
            )
        } else {
            (
                BlockHook::MlpOut,
                (BlockHook::Ln2PostScale, BlockHook::Ln2PostNormalized),
            )
        };
        let Some(ln) = post else {
            return residual_branch(x, w, b, resid, hp(out_hook), run);
        };
        let out = norm(
            cfg.normalization,
            ln,
            linear(x, w, b),
            cfg.eps,
            (hp(norm_hooks.0), hp(norm_hooks.1)),
            run,
        )?;
        Ok(resid + run.apply(hp(out_hook), out)?)
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
