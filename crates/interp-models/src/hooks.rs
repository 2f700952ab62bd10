//! TransformerLens hook points, hook specifications and the activation cache.
//!
//! Hook names are the shared vocabulary with TransformerLens: [`HookPoint`] prints and parses
//! exactly the strings TransformerLens uses (`blocks.7.hook_resid_pre`, `blocks.0.attn.hook_z`,
//! `ln_final.hook_normalized`, …), with the same shapes:
//!
//! | hook | shape |
//! |---|---|
//! | `hook_embed`, `hook_pos_embed`, `hook_resid_*`, `hook_attn_out`, `hook_mlp_out`, `ln*.hook_normalized` | `[batch, pos, d_model]` |
//! | `ln*.hook_scale` | `[batch, pos, 1]` |
//! | `attn.hook_q`, `attn.hook_rot_q`, `attn.hook_z` | `[batch, pos, n_heads, d_head]` |
//! | `attn.hook_k`, `attn.hook_rot_k`, `attn.hook_v` | `[batch, pos, n_key_value_heads, d_head]` |
//! | `attn.hook_attn_scores`, `attn.hook_pattern` | `[batch, head_index, query_pos, key_pos]` |
//! | `mlp.hook_pre`, `mlp.hook_pre_linear`, `mlp.hook_post` | `[batch, pos, d_mlp]` |
//!
//! Which of them a model fires depends on its architecture (`hook_pos_embed` only with learned
//! positions, `attn.hook_rot_*` only with rotary ones, …): [`ModelConfig::hook_points`] is the
//! list, and every API that takes a hook name checks it against that list.
//!
//! Hooks are a value passed to each forward ([`HookSpec`]), never state left on the model.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::rc::Rc;
use std::str::FromStr;

use burn::tensor::{backend::Backend, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::config::ModelConfig;
use crate::error::{Error, Result};

/// A hook point inside a transformer block (`blocks.{i}.<this>`), in execution order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum BlockHook {
    /// `hook_resid_pre`: the residual stream entering the block.
    ResidPre,
    /// `ln1.hook_scale`: the LayerNorm scale before attention, `[batch, pos, 1]`.
    Ln1Scale,
    /// `ln1.hook_normalized`: the normalized attention input, before LayerNorm's scale and shift.
    Ln1Normalized,
    /// `attn.hook_q`: queries, `[batch, pos, head_index, d_head]`.
    AttnQ,
    /// `attn.hook_k`: keys, `[batch, pos, head_index, d_head]` (key/value heads).
    AttnK,
    /// `attn.hook_v`: values, `[batch, pos, head_index, d_head]` (key/value heads).
    AttnV,
    /// `attn.hook_rot_q`: queries after the rotary embedding (rotary models only).
    AttnRotQ,
    /// `attn.hook_rot_k`: keys after the rotary embedding (rotary models only).
    AttnRotK,
    /// `attn.hook_attn_scores`: scaled, masked (`-inf`) scores before softmax.
    AttnScores,
    /// `attn.hook_pattern`: attention probabilities.
    AttnPattern,
    /// `attn.hook_z`: the pattern-weighted values, `[batch, pos, head_index, d_head]`.
    AttnZ,
    /// `ln1_post.hook_scale`: the scale of Gemma-2's norm on the attention output.
    Ln1PostScale,
    /// `ln1_post.hook_normalized`: the normalized attention output (Gemma-2).
    Ln1PostNormalized,
    /// `hook_attn_out`: the attention output written to the residual stream.
    AttnOut,
    /// `hook_resid_mid`: the residual stream between attention and MLP.
    ResidMid,
    /// `ln2.hook_scale`: the LayerNorm scale before the MLP, `[batch, pos, 1]`.
    Ln2Scale,
    /// `ln2.hook_normalized`: the normalized MLP input, before LayerNorm's scale and shift.
    Ln2Normalized,
    /// `mlp.hook_pre`: MLP pre-activations, `[batch, pos, d_mlp]`.
    MlpPre,
    /// `mlp.hook_pre_linear`: the linear (ungated) half of a gated MLP, `[batch, pos, d_mlp]`.
    MlpPreLinear,
    /// `mlp.hook_post`: MLP activations after the nonlinearity (and the gate),
    /// `[batch, pos, d_mlp]`.
    MlpPost,
    /// `ln2_post.hook_scale`: the scale of Gemma-2's norm on the MLP output.
    Ln2PostScale,
    /// `ln2_post.hook_normalized`: the normalized MLP output (Gemma-2).
    Ln2PostNormalized,
    /// `hook_mlp_out`: the MLP output written to the residual stream.
    MlpOut,
    /// `hook_resid_post`: the residual stream leaving the block.
    ResidPost,
}

impl BlockHook {
    /// Every block hook, in execution order.
    pub const ALL: [BlockHook; 24] = [
        BlockHook::ResidPre,
        BlockHook::Ln1Scale,
        BlockHook::Ln1Normalized,
        BlockHook::AttnQ,
        BlockHook::AttnK,
        BlockHook::AttnV,
        BlockHook::AttnRotQ,
        BlockHook::AttnRotK,
        BlockHook::AttnScores,
        BlockHook::AttnPattern,
        BlockHook::AttnZ,
        BlockHook::Ln1PostScale,
        BlockHook::Ln1PostNormalized,
        BlockHook::AttnOut,
        BlockHook::ResidMid,
        BlockHook::Ln2Scale,
        BlockHook::Ln2Normalized,
        BlockHook::MlpPre,
        BlockHook::MlpPreLinear,
        BlockHook::MlpPost,
        BlockHook::Ln2PostScale,
        BlockHook::Ln2PostNormalized,
        BlockHook::MlpOut,
        BlockHook::ResidPost,
    ];

    /// The TransformerLens name after `blocks.{i}.`.
    pub fn suffix(self) -> &'static str {
        match self {
            BlockHook::ResidPre => "hook_resid_pre",
            BlockHook::Ln1Scale => "ln1.hook_scale",
            BlockHook::Ln1Normalized => "ln1.hook_normalized",
            BlockHook::AttnQ => "attn.hook_q",
            BlockHook::AttnK => "attn.hook_k",
            BlockHook::AttnV => "attn.hook_v",
            BlockHook::AttnRotQ => "attn.hook_rot_q",
            BlockHook::AttnRotK => "attn.hook_rot_k",
            BlockHook::AttnScores => "attn.hook_attn_scores",
            BlockHook::AttnPattern => "attn.hook_pattern",
            BlockHook::AttnZ => "attn.hook_z",
            BlockHook::Ln1PostScale => "ln1_post.hook_scale",
            BlockHook::Ln1PostNormalized => "ln1_post.hook_normalized",
            BlockHook::AttnOut => "hook_attn_out",
            BlockHook::ResidMid => "hook_resid_mid",
            BlockHook::Ln2Scale => "ln2.hook_scale",
            BlockHook::Ln2Normalized => "ln2.hook_normalized",
            BlockHook::MlpPre => "mlp.hook_pre",
            BlockHook::MlpPreLinear => "mlp.hook_pre_linear",
            BlockHook::MlpPost => "mlp.hook_post",
            BlockHook::Ln2PostScale => "ln2_post.hook_scale",
            BlockHook::Ln2PostNormalized => "ln2_post.hook_normalized",
            BlockHook::MlpOut => "hook_mlp_out",
            BlockHook::ResidPost => "hook_resid_post",
        }
    }
}

/// A TransformerLens hook point. `Display` and `FromStr` use the exact TransformerLens strings.
///
/// The derived order is execution order, so a cache iterates in the order a forward fills it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum HookPoint {
    /// `hook_embed`: token embeddings, `[batch, pos, d_model]`.
    Embed,
    /// `hook_pos_embed`: positional embeddings, `[batch, pos, d_model]`.
    PosEmbed,
    /// `blocks.{layer}.{hook}`.
    Block {
        /// The block index.
        layer: usize,
        /// Which hook inside the block.
        hook: BlockHook,
    },
    /// `ln_final.hook_scale`: the final LayerNorm scale, `[batch, pos, 1]`.
    LnFinalScale,
    /// `ln_final.hook_normalized`: the normalized final residual, before LayerNorm's scale and shift.
    LnFinalNormalized,
}

impl HookPoint {
    /// `blocks.{layer}.{hook}`.
    pub fn block(layer: usize, hook: BlockHook) -> Self {
        HookPoint::Block { layer, hook }
    }
    /// `blocks.{layer}.hook_resid_pre`.
    pub fn resid_pre(layer: usize) -> Self {
        Self::block(layer, BlockHook::ResidPre)
    }
    /// `blocks.{layer}.hook_resid_mid`.
    pub fn resid_mid(layer: usize) -> Self {
        Self::block(layer, BlockHook::ResidMid)
    }
    /// `blocks.{layer}.hook_resid_post`.
    pub fn resid_post(layer: usize) -> Self {
        Self::block(layer, BlockHook::ResidPost)
    }
    /// `blocks.{layer}.hook_attn_out`.
    pub fn attn_out(layer: usize) -> Self {
        Self::block(layer, BlockHook::AttnOut)
    }
    /// `blocks.{layer}.hook_mlp_out`.
    pub fn mlp_out(layer: usize) -> Self {
        Self::block(layer, BlockHook::MlpOut)
    }

    /// The block index, for block hooks.
    pub fn layer(&self) -> Option<usize> {
        match self {
            HookPoint::Block { layer, .. } => Some(*layer),
            _ => None,
        }
    }

    /// The activation's rank: 4 for per-head attention hooks, 3 otherwise.
    pub fn rank(&self) -> usize {
        match self {
            HookPoint::Block {
                hook:
                    BlockHook::AttnQ
                    | BlockHook::AttnK
                    | BlockHook::AttnV
                    | BlockHook::AttnRotQ
                    | BlockHook::AttnRotK
                    | BlockHook::AttnScores
                    | BlockHook::AttnPattern
                    | BlockHook::AttnZ,
                ..
            } => 4,
            _ => 3,
        }
    }

    /// The dimension that indexes (query) positions: 2 for attention scores and pattern
    /// (`[batch, head_index, query_pos, key_pos]`), 1 for everything else.
    pub fn position_dim(&self) -> usize {
        match self {
            HookPoint::Block {
                hook: BlockHook::AttnScores | BlockHook::AttnPattern,
                ..
            } => 2,
            _ => 1,
        }
    }

    /// Parses a name and checks its layer against a model of `n_layers` blocks (not whether
    /// that model's architecture fires it: [`ModelConfig::parse_hook`] checks both).
    pub fn parse_for(name: &str, n_layers: usize) -> Result<Self> {
        let point: HookPoint = name.parse()?;
        point.check_layer(n_layers)?;
        Ok(point)
    }

    /// Checks that this hook point exists in a model of `n_layers` blocks.
    pub fn check_layer(&self, n_layers: usize) -> Result<()> {
        match self.layer() {
            Some(layer) if layer >= n_layers => Err(Error::HookLayerOutOfRange {
                name: self.to_string(),
                layer,
                n_layers,
            }),
            _ => Ok(()),
        }
    }

    pub(crate) fn valid_names() -> String {
        let mut names = vec!["hook_embed".to_string(), "hook_pos_embed".to_string()];
        names.extend(
            BlockHook::ALL
                .iter()
                .map(|h| format!("blocks.{{i}}.{}", h.suffix())),
        );
        names.extend([
            "ln_final.hook_scale".into(),
            "ln_final.hook_normalized".into(),
        ]);
        names.join(", ")
    }
}

impl fmt::Display for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookPoint::Embed => f.write_str("hook_embed"),
            HookPoint::PosEmbed => f.write_str("hook_pos_embed"),
            HookPoint::Block { layer, hook } => write!(f, "blocks.{layer}.{}", hook.suffix()),
            HookPoint::LnFinalScale => f.write_str("ln_final.hook_scale"),
            HookPoint::LnFinalNormalized => f.write_str("ln_final.hook_normalized"),
        }
    }
}

impl FromStr for HookPoint {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        let unknown = || Error::UnknownHook {
            name: name.to_string(),
            valid: HookPoint::valid_names(),
        };
        match name {
            "hook_embed" => return Ok(HookPoint::Embed),
            "hook_pos_embed" => return Ok(HookPoint::PosEmbed),
            "ln_final.hook_scale" => return Ok(HookPoint::LnFinalScale),
            "ln_final.hook_normalized" => return Ok(HookPoint::LnFinalNormalized),
            _ => {}
        }
        let rest = name.strip_prefix("blocks.").ok_or_else(unknown)?;
        let (layer, suffix) = rest.split_once('.').ok_or_else(unknown)?;
        if layer.is_empty() || !layer.bytes().all(|b| b.is_ascii_digit()) {
            return Err(unknown());
        }
        let layer: usize = layer.parse().map_err(|_| unknown())?;
        let hook = BlockHook::ALL
            .iter()
            .find(|h| h.suffix() == suffix)
            .ok_or_else(unknown)?;
        Ok(HookPoint::block(layer, *hook))
    }
}

/// An activation at a hook point: rank 3 (`[batch, pos, d]`) or rank 4 (per-head attention).
#[derive(Clone, Debug)]
pub enum Activation<B: Backend> {
    /// `[batch, pos, d]` activations.
    Rank3(Tensor<B, 3>),
    /// `[batch, pos, head_index, d_head]` or `[batch, head_index, query_pos, key_pos]`.
    Rank4(Tensor<B, 4>),
}

impl<B: Backend> Activation<B> {
    /// The shape.
    pub fn dims(&self) -> Vec<usize> {
        match self {
            Activation::Rank3(t) => t.dims().to_vec(),
            Activation::Rank4(t) => t.dims().to_vec(),
        }
    }
    /// The rank-3 tensor, if this is one.
    pub fn into_rank3(self) -> Option<Tensor<B, 3>> {
        match self {
            Activation::Rank3(t) => Some(t),
            Activation::Rank4(_) => None,
        }
    }
    /// The rank-4 tensor, if this is one.
    pub fn into_rank4(self) -> Option<Tensor<B, 4>> {
        match self {
            Activation::Rank4(t) => Some(t),
            Activation::Rank3(_) => None,
        }
    }
    /// The values as host data (f32 on the default float element).
    pub fn to_data(&self) -> TensorData {
        match self {
            Activation::Rank3(t) => t.to_data(),
            Activation::Rank4(t) => t.to_data(),
        }
    }
    fn narrow(self, dim: usize, start: usize, len: usize) -> Self {
        match self {
            Activation::Rank3(t) => Activation::Rank3(t.narrow(dim, start, len)),
            Activation::Rank4(t) => Activation::Rank4(t.narrow(dim, start, len)),
        }
    }
    fn assign_at(self, dim: usize, start: usize, values: Self) -> Self {
        match (self, values) {
            (Activation::Rank3(t), Activation::Rank3(v)) => {
                let mut ranges = t.dims().map(|d| 0..d);
                ranges[dim] = start..start + v.dims()[dim];
                Activation::Rank3(t.slice_assign(ranges, v))
            }
            (Activation::Rank4(t), Activation::Rank4(v)) => {
                let mut ranges = t.dims().map(|d| 0..d);
                ranges[dim] = start..start + v.dims()[dim];
                Activation::Rank4(t.slice_assign(ranges, v))
            }
            _ => unreachable!("shapes are checked before assignment"),
        }
    }
}

/// Conversion between typed tensors and [`Activation`], used by the forward pass.
pub trait HookTensor<B: Backend>: Sized {
    /// Wraps the tensor.
    fn into_activation(self) -> Activation<B>;
    /// Unwraps a tensor of this rank.
    fn from_activation(act: Activation<B>) -> Option<Self>;
}

impl<B: Backend> HookTensor<B> for Tensor<B, 3> {
    fn into_activation(self) -> Activation<B> {
        Activation::Rank3(self)
    }
    fn from_activation(act: Activation<B>) -> Option<Self> {
        act.into_rank3()
    }
}

impl<B: Backend> HookTensor<B> for Tensor<B, 4> {
    fn into_activation(self) -> Activation<B> {
        Activation::Rank4(self)
    }
    fn from_activation(act: Activation<B>) -> Option<Self> {
        act.into_rank4()
    }
}

/// Which hook points to cache: all, none, or a list of exact names and glob patterns
/// (`*` matches any run of characters, `?` one character), e.g. `blocks.*.hook_resid_pre`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum NameFilter {
    /// Cache nothing.
    #[default]
    None,
    /// Cache every hook point.
    All,
    /// Cache hook points whose name matches any of these patterns.
    Patterns(Vec<String>),
}

impl NameFilter {
    /// A filter from names or globs.
    pub fn patterns<S: Into<String>>(patterns: impl IntoIterator<Item = S>) -> Self {
        NameFilter::Patterns(patterns.into_iter().map(Into::into).collect())
    }

    /// Whether `point` passes the filter.
    pub fn matches(&self, point: &HookPoint) -> bool {
        match self {
            NameFilter::None => false,
            NameFilter::All => true,
            NameFilter::Patterns(ps) => {
                let name = point.to_string();
                ps.iter().any(|p| glob_match(p.as_bytes(), name.as_bytes()))
            }
        }
    }

    /// A filter passing what either passes.
    pub fn union(self, other: NameFilter) -> NameFilter {
        match (self, other) {
            (NameFilter::None, f) | (f, NameFilter::None) => f,
            (NameFilter::All, _) | (_, NameFilter::All) => NameFilter::All,
            (NameFilter::Patterns(mut a), NameFilter::Patterns(b)) => {
                a.extend(b.into_iter().filter(|p| !a.contains(p)).collect::<Vec<_>>());
                NameFilter::Patterns(a)
            }
        }
    }

    /// The matching hook points of the model `cfg` describes. A pattern that matches no hook
    /// this model fires is an error naming what it does fire (a typo, or a hook of another
    /// architecture, must not silently cache nothing).
    pub fn resolve(&self, cfg: &ModelConfig) -> Result<BTreeSet<HookPoint>> {
        let all = cfg.hook_points();
        if let NameFilter::Patterns(ps) = self {
            for p in ps {
                let hit = all
                    .iter()
                    .any(|h| glob_match(p.as_bytes(), h.to_string().as_bytes()));
                if !hit {
                    return Err(match cfg.parse_hook(p) {
                        Err(e) => e,
                        Ok(_) => unreachable!("a fired hook's name matches itself"),
                    });
                }
            }
        }
        Ok(all.into_iter().filter(|h| self.matches(h)).collect())
    }
}

/// Glob match with `*` (any run) and `?` (one byte).
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// A ready-made edit of an activation, for [`HookSpec::intervene`].
#[derive(Clone, Debug)]
pub enum Intervention<B: Backend> {
    /// Replace the activation with this one (same shape, or the shape of the chosen positions).
    Replace(Activation<B>),
    /// Add a vector along the last dimension (steering), broadcast over all other dimensions.
    AddVector(Tensor<B, 1>),
    /// Multiply by a scalar.
    Scale(f32),
    /// Set to zero (ablation).
    Zero,
}

/// A hook function: receives the activation and its hook point, returns the (possibly edited)
/// activation of the same shape.
pub type HookFn<B> = Rc<dyn Fn(Activation<B>, HookPoint) -> Activation<B>>;

/// A fallible hook function that also sees where it runs ([`HookContext`]).
pub type ContextHookFn<B> = Rc<dyn Fn(Activation<B>, &HookContext) -> Result<Activation<B>>>;

/// Which positions a hook acts on. Positions are absolute: with a KV cache, a pass over new
/// tokens covers positions `[offset, offset + n_pos)`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Positions {
    /// Every position of every pass.
    #[default]
    All,
    /// The prompt's positions. Outside generation every position is a prompt position.
    Prompt,
    /// The positions of generated tokens (from the prompt's length on): during generation with
    /// a KV cache, every pass after the first. Outside generation there are none. The first
    /// generated token is predicted from the prompt, so it is not steered by such a hook.
    Generated,
    /// These absolute positions; each is handed to the hook as a slice with a position
    /// dimension of size 1. Outside generation a position past the sequence is an error.
    At(Vec<usize>),
}

/// Where a hook runs: handed to [`HookSpec::hook_with`] functions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookContext {
    /// The hook point.
    pub point: HookPoint,
    /// Absolute position of the first position of the activation handed to the hook.
    pub offset: usize,
    /// Generation step: 0 for the first pass (the prompt, or any forward outside generation),
    /// `k` for the pass that feeds the `k`-th generated token.
    pub step: usize,
    /// The prompt's length during generation; `None` outside it.
    pub prompt_len: Option<usize>,
}

enum Action<B: Backend> {
    Fn(HookFn<B>),
    Context(ContextHookFn<B>),
    Intervention(Intervention<B>),
}

impl<B: Backend> Clone for Action<B> {
    fn clone(&self) -> Self {
        match self {
            Action::Fn(f) => Action::Fn(Rc::clone(f)),
            Action::Context(f) => Action::Context(Rc::clone(f)),
            Action::Intervention(i) => Action::Intervention(i.clone()),
        }
    }
}

struct Hook<B: Backend> {
    point: HookPoint,
    positions: Positions,
    action: Action<B>,
}

impl<B: Backend> Clone for Hook<B> {
    fn clone(&self) -> Self {
        Hook {
            point: self.point,
            positions: self.positions.clone(),
            action: self.action.clone(),
        }
    }
}

/// What to do during one forward pass: which activations to cache, which hooks to run, and
/// where to stop. Built with `with_*`-style methods and passed by reference to each forward;
/// it never modifies the model. Specs are values: cloning one shares its hook functions, and
/// [`HookSpec::merge`] combines two (for example a steering plan and a cache filter).
///
/// ```
/// use interp_models::prelude::*;
/// let spec = HookSpec::<Cpu>::new()
///     .cache(NameFilter::patterns(["blocks.*.hook_resid_pre"]))
///     .stop_at_layer(2);
/// ```
pub struct HookSpec<B: Backend> {
    cache: NameFilter,
    hooks: Vec<Hook<B>>,
    stop_at_layer: Option<usize>,
}

impl<B: Backend> Clone for HookSpec<B> {
    fn clone(&self) -> Self {
        HookSpec {
            cache: self.cache.clone(),
            hooks: self.hooks.clone(),
            stop_at_layer: self.stop_at_layer,
        }
    }
}

impl<B: Backend> fmt::Debug for HookSpec<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hooks: Vec<String> = self
            .hooks
            .iter()
            .map(|h| format!("{} {:?}", h.point, h.positions))
            .collect();
        f.debug_struct("HookSpec")
            .field("cache", &self.cache)
            .field("hooks", &hooks)
            .field("stop_at_layer", &self.stop_at_layer)
            .finish()
    }
}

impl<B: Backend> Default for HookSpec<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: Backend> HookSpec<B> {
    /// No caching, no hooks: a plain forward.
    pub fn new() -> Self {
        HookSpec {
            cache: NameFilter::None,
            hooks: Vec::new(),
            stop_at_layer: None,
        }
    }

    /// Caches the hook points passing `filter`.
    pub fn cache(mut self, filter: NameFilter) -> Self {
        self.cache = filter;
        self
    }

    /// Stops before block `layer` (TransformerLens `stop_at_layer`): the forward returns the
    /// residual stream entering that block instead of logits. `0` stops right after the
    /// embeddings.
    pub fn stop_at_layer(mut self, layer: usize) -> Self {
        self.stop_at_layer = Some(layer);
        self
    }

    /// Runs `f` on the activation at `point` (all positions); its return value replaces it.
    pub fn hook(
        self,
        point: HookPoint,
        f: impl Fn(Activation<B>, HookPoint) -> Activation<B> + 'static,
    ) -> Self {
        self.push(point, Positions::All, Action::Fn(Rc::new(f)))
    }

    /// Runs `f` on the slice of the activation at each of `positions` (query positions for
    /// attention scores/pattern); each slice keeps a position dimension of size 1.
    pub fn hook_at(
        self,
        point: HookPoint,
        positions: impl IntoIterator<Item = usize>,
        f: impl Fn(Activation<B>, HookPoint) -> Activation<B> + 'static,
    ) -> Self {
        let positions = Positions::At(positions.into_iter().collect());
        self.push(point, positions, Action::Fn(Rc::new(f)))
    }

    /// Runs the fallible `f` on the part of the activation at `point` that `positions` selects,
    /// telling it where it runs ([`HookContext`]: absolute offset, generation step, prompt
    /// length). [`Positions::All`], [`Positions::Prompt`] and [`Positions::Generated`] hand
    /// over one contiguous slice per pass; [`Positions::At`] one slice per position. An error
    /// from `f` ends the forward with that error.
    pub fn hook_with(
        self,
        point: HookPoint,
        positions: Positions,
        f: impl Fn(Activation<B>, &HookContext) -> Result<Activation<B>> + 'static,
    ) -> Self {
        self.push(point, positions, Action::Context(Rc::new(f)))
    }

    /// Applies a ready-made [`Intervention`] at `point`, at all positions or at `positions`.
    pub fn intervene(
        self,
        point: HookPoint,
        positions: Option<Vec<usize>>,
        intervention: Intervention<B>,
    ) -> Self {
        let positions = positions.map_or(Positions::All, Positions::At);
        self.intervene_on(point, positions, intervention)
    }

    /// Applies a ready-made [`Intervention`] at `point` on the positions `positions` selects.
    pub fn intervene_on(
        self,
        point: HookPoint,
        positions: Positions,
        intervention: Intervention<B>,
    ) -> Self {
        self.push(point, positions, Action::Intervention(intervention))
    }

    fn push(mut self, point: HookPoint, positions: Positions, action: Action<B>) -> Self {
        self.hooks.push(Hook {
            point,
            positions,
            action,
        });
        self
    }

    /// Both specs in one: `self`'s hooks run before `other`'s at a shared hook point, the
    /// cache filters are united, and the forward stops at the earlier of the two stop layers.
    pub fn merge(mut self, other: HookSpec<B>) -> Self {
        self.cache = self.cache.union(other.cache);
        self.hooks.extend(other.hooks);
        self.stop_at_layer = match (self.stop_at_layer, other.stop_at_layer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self
    }

    /// The cache filter.
    pub fn cache_filter(&self) -> &NameFilter {
        &self.cache
    }

    /// The layer to stop at, if any.
    pub fn stop_layer(&self) -> Option<usize> {
        self.stop_at_layer
    }

    /// The hook points this spec hooks (with repeats, in the order hooks were added).
    pub fn hooked_points(&self) -> impl Iterator<Item = HookPoint> + '_ {
        self.hooks.iter().map(|h| h.point)
    }

    /// Whether this spec does nothing (no cache, no hooks, no early stop).
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty() && self.cache == NameFilter::None && self.stop_at_layer.is_none()
    }

    /// Checks every hook point and the stop layer against the model `cfg` describes: each
    /// hooked point must be one the model fires.
    pub fn validate(&self, cfg: &ModelConfig) -> Result<()> {
        self.start(cfg).map(|_| ())
    }

    /// Checks the spec and resolves which hook points a forward caches and hooks.
    pub(crate) fn start(&self, cfg: &ModelConfig) -> Result<HookRun<'_, B>> {
        let n_layers = cfg.n_layers;
        let cached = self.cache.resolve(cfg)?;
        for h in &self.hooks {
            cfg.check_fires(&h.point)?;
        }
        if let Some(layer) = self.stop_at_layer {
            if layer > n_layers {
                return Err(Error::HookLayerOutOfRange {
                    name: format!("stop_at_layer={layer}"),
                    layer,
                    n_layers,
                });
            }
        }
        let hooked: BTreeSet<HookPoint> = self.hooks.iter().map(|h| h.point).collect();
        Ok(HookRun {
            spec: self,
            idle: cached.is_empty() && hooked.is_empty(),
            cached,
            hooked,
            cache: ActivationCache::default(),
            offset: 0,
            step: 0,
            prompt_len: None,
            generated_only: false,
        })
    }
}

/// The state of one forward pass over a [`HookSpec`].
pub(crate) struct HookRun<'a, B: Backend> {
    spec: &'a HookSpec<B>,
    idle: bool,
    cached: BTreeSet<HookPoint>,
    hooked: BTreeSet<HookPoint>,
    pub(crate) cache: ActivationCache<B>,
    /// Absolute position of the first position in this pass (non-zero with a KV cache), so
    /// positional hooks address absolute positions.
    pub(crate) offset: usize,
    /// Generation step (0 outside generation).
    pub(crate) step: usize,
    /// The prompt's length during generation.
    pub(crate) prompt_len: Option<usize>,
    /// Restrict every hook to generated positions ([`crate::HookMode::GeneratedOnly`]).
    pub(crate) generated_only: bool,
}

impl<B: Backend> HookRun<'_, B> {
    /// Runs the hooks at `point` on `x`, caches the result if asked, and returns it.
    #[inline]
    pub(crate) fn apply<T: HookTensor<B>>(&mut self, point: HookPoint, x: T) -> Result<T> {
        if self.idle {
            return Ok(x);
        }
        let hooked = self.hooked.contains(&point);
        let cached = self.cached.contains(&point);
        if !hooked && !cached {
            return Ok(x);
        }
        let mut act = x.into_activation();
        if hooked {
            for hook in self.spec.hooks.iter().filter(|h| h.point == point) {
                act = self.run_hook(hook, act)?;
            }
        }
        if cached {
            self.cache.insert(point, act.clone());
        }
        Ok(T::from_activation(act).expect("hooks keep the rank (checked in run_hook)"))
    }

    fn context(&self, point: HookPoint, offset: usize) -> HookContext {
        HookContext {
            point,
            offset,
            step: self.step,
            prompt_len: self.prompt_len,
        }
    }

    fn run_hook(&self, hook: &Hook<B>, act: Activation<B>) -> Result<Activation<B>> {
        let point = hook.point;
        let dim = point.position_dim();
        let n_pos = act.dims()[dim];
        let (start, end) = (self.offset, self.offset + n_pos);
        // Generated positions start at the prompt's length; outside generation there are none.
        let first_generated = self.prompt_len.unwrap_or(usize::MAX);
        let floor = if self.generated_only {
            first_generated
        } else {
            0
        };
        let range = match &hook.positions {
            Positions::All => start.max(floor)..end,
            Positions::Prompt => start.max(floor)..end.min(first_generated),
            Positions::Generated => start.max(first_generated)..end,
            Positions::At(positions) => return self.run_at(hook, act, positions, floor),
        };
        if range.start >= range.end {
            return Ok(act);
        }
        let ctx = self.context(point, range.start);
        if range.start == start && range.end == end {
            return call_checked(hook, act, &ctx);
        }
        let (local, len) = (range.start - start, range.end - range.start);
        let edited = call_checked(hook, act.clone().narrow(dim, local, len), &ctx)?;
        Ok(act.assign_at(dim, local, edited))
    }

    fn run_at(
        &self,
        hook: &Hook<B>,
        mut act: Activation<B>,
        positions: &[usize],
        floor: usize,
    ) -> Result<Activation<B>> {
        let point = hook.point;
        let dim = point.position_dim();
        let n_pos = act.dims()[dim];
        for &abs in positions.iter().filter(|&&p| p >= floor) {
            // Positions are absolute; with a KV cache this pass covers [offset, offset + n_pos).
            let Some(p) = abs.checked_sub(self.offset).filter(|p| *p < n_pos) else {
                if self.offset == 0 && self.prompt_len.is_none() {
                    return Err(Error::PositionOutOfRange {
                        hook: point.to_string(),
                        position: abs,
                        n_pos,
                    });
                }
                continue;
            };
            let slice = act.clone().narrow(dim, p, 1);
            let edited = call_checked(hook, slice, &self.context(point, abs))?;
            act = act.assign_at(dim, p, edited);
        }
        Ok(act)
    }

    /// Whether anything (a hook or the cache) looks at `point` in this pass. Fused kernels may
    /// skip a hook point only when it is inactive.
    #[inline]
    pub(crate) fn is_active(&self, point: HookPoint) -> bool {
        !self.idle && (self.hooked.contains(&point) || self.cached.contains(&point))
    }

    /// Whether the forward should stop before `layer`.
    pub(crate) fn stops_at(&self, layer: usize) -> bool {
        self.spec.stop_at_layer == Some(layer)
    }
}

fn call_checked<B: Backend>(
    hook: &Hook<B>,
    act: Activation<B>,
    ctx: &HookContext,
) -> Result<Activation<B>> {
    let expected = act.dims();
    let out = match &hook.action {
        Action::Fn(f) => f(act, hook.point),
        Action::Context(f) => f(act, ctx)?,
        Action::Intervention(i) => apply_intervention(i, act, hook.point)?,
    };
    let actual = out.dims();
    if actual != expected {
        return Err(Error::HookShape {
            hook: hook.point.to_string(),
            expected,
            actual,
        });
    }
    Ok(out)
}

fn apply_intervention<B: Backend>(
    i: &Intervention<B>,
    act: Activation<B>,
    point: HookPoint,
) -> Result<Activation<B>> {
    Ok(match i {
        Intervention::Replace(new) => new.clone(),
        Intervention::Scale(s) => match act {
            Activation::Rank3(t) => Activation::Rank3(t * *s),
            Activation::Rank4(t) => Activation::Rank4(t * *s),
        },
        Intervention::Zero => match act {
            Activation::Rank3(t) => Activation::Rank3(t.zeros_like()),
            Activation::Rank4(t) => Activation::Rank4(t.zeros_like()),
        },
        Intervention::AddVector(v) => {
            let dims = act.dims();
            let last = *dims.last().expect("activations have rank >= 3");
            if v.dims()[0] != last {
                return Err(Error::HookShape {
                    hook: point.to_string(),
                    expected: vec![last],
                    actual: v.dims().to_vec(),
                });
            }
            match act {
                Activation::Rank3(t) => Activation::Rank3(t + v.clone().unsqueeze::<3>()),
                Activation::Rank4(t) => Activation::Rank4(t + v.clone().unsqueeze::<4>()),
            }
        }
    })
}

/// Activations recorded during a forward pass, keyed by hook point, in execution order.
#[derive(Clone, Debug)]
pub struct ActivationCache<B: Backend> {
    map: BTreeMap<HookPoint, Activation<B>>,
}

impl<B: Backend> Default for ActivationCache<B> {
    fn default() -> Self {
        ActivationCache {
            map: BTreeMap::new(),
        }
    }
}

impl<B: Backend> ActivationCache<B> {
    pub(crate) fn insert(&mut self, point: HookPoint, act: Activation<B>) {
        self.map.insert(point, act);
    }

    /// The activation at `point`, if cached.
    pub fn get(&self, point: &HookPoint) -> Option<&Activation<B>> {
        self.map.get(point)
    }

    /// The activation at a hook named by its TransformerLens string.
    ///
    /// # Errors
    /// [`Error::UnknownHook`] for names that are no hook point; `Ok(None)` for valid names that
    /// were not cached.
    pub fn get_by_name(&self, name: &str) -> Result<Option<&Activation<B>>> {
        let point: HookPoint = name.parse()?;
        Ok(self.map.get(&point))
    }

    /// A rank-3 activation (`[batch, pos, d]`), e.g. a residual stream, if cached.
    pub fn rank3(&self, point: &HookPoint) -> Option<Tensor<B, 3>> {
        self.map.get(point).and_then(|a| a.clone().into_rank3())
    }

    /// A rank-4 activation, if cached.
    pub fn rank4(&self, point: &HookPoint) -> Option<Tensor<B, 4>> {
        self.map.get(point).and_then(|a| a.clone().into_rank4())
    }

    /// Cached hook points, in execution order.
    pub fn points(&self) -> impl Iterator<Item = &HookPoint> {
        self.map.keys()
    }

    /// `(hook point, activation)` pairs, in execution order.
    pub fn iter(&self) -> impl Iterator<Item = (&HookPoint, &Activation<B>)> {
        self.map.iter()
    }

    /// Number of cached activations.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing was cached.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Writes every activation as an f32 tensor named by its hook name, plus `extra` named
    /// tensors (e.g. `logits`), to a safetensors file, atomically (temp file + rename).
    pub fn save_safetensors(&self, path: &Path, extra: &[(&str, TensorData)]) -> Result<()> {
        let mut tensors: Vec<(String, TensorData)> = self
            .map
            .iter()
            .map(|(p, a)| (p.to_string(), a.to_data()))
            .collect();
        tensors.extend(extra.iter().map(|(n, d)| (n.to_string(), d.clone())));
        crate::io::write_safetensors_f32(path, tensors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cfg(n_layers: usize) -> ModelConfig {
        ModelConfig {
            n_layers,
            ..ModelConfig::gpt2_small()
        }
    }

    #[test]
    fn names_round_trip_and_are_transformer_lens_strings() {
        // GPT-2 fires 17 hooks per block; the rest of the vocabulary belongs to other families.
        let all = cfg(2).hook_points();
        assert_eq!(all.len(), 2 + 2 * 17 + 2);
        let every: Vec<HookPoint> = (0..2)
            .flat_map(|l| BlockHook::ALL.map(|h| HookPoint::block(l, h)))
            .collect();
        for p in every.iter().chain(&all) {
            assert_eq!(p.to_string().parse::<HookPoint>().unwrap(), *p);
        }
        for p in &all {
            assert_eq!(p.to_string().parse::<HookPoint>().unwrap(), *p);
        }
        assert_eq!(
            HookPoint::resid_pre(7).to_string(),
            "blocks.7.hook_resid_pre"
        );
        assert_eq!(
            HookPoint::block(0, BlockHook::AttnScores).to_string(),
            "blocks.0.attn.hook_attn_scores"
        );
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(sorted, all, "derived order is execution order");
    }

    #[test]
    fn unknown_names_list_valid_ones() {
        for bad in [
            "blocks.0.hook_resid",
            "blocks.x.hook_resid_pre",
            "hook_embeds",
            "blocks..hook_z",
            "blocks.0.attn.hook_scores",
        ] {
            match bad.parse::<HookPoint>() {
                Err(Error::UnknownHook { valid, .. }) => {
                    assert!(valid.contains("blocks.{i}.attn.hook_z"))
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(matches!(
            HookPoint::parse_for("blocks.5.hook_resid_pre", 2),
            Err(Error::HookLayerOutOfRange { layer: 5, .. })
        ));
    }

    #[test]
    fn globs_select_hooks_and_typos_are_errors() {
        let f = NameFilter::patterns(["blocks.*.hook_resid_pre", "ln_final.hook_scale"]);
        let got: Vec<String> = f
            .resolve(&cfg(3))
            .unwrap()
            .iter()
            .map(|h| h.to_string())
            .collect();
        assert_eq!(
            got,
            [
                "blocks.0.hook_resid_pre",
                "blocks.1.hook_resid_pre",
                "blocks.2.hook_resid_pre",
                "ln_final.hook_scale"
            ]
        );
        assert_eq!(
            NameFilter::patterns(["blocks.1?.*"])
                .resolve(&cfg(12))
                .unwrap()
                .len(),
            2 * 17
        );
        assert!(NameFilter::patterns(["blocks.*.hook_resid_pre_typo"])
            .resolve(&cfg(3))
            .is_err());
        assert!(NameFilter::patterns(["blocks.3.hook_z"])
            .resolve(&cfg(3))
            .is_err());
        // A real hook name this architecture does not fire names what it does fire.
        match NameFilter::patterns(["blocks.0.attn.hook_rot_q"]).resolve(&cfg(3)) {
            Err(Error::HookNotFired { fired, .. }) => {
                assert!(fired.contains("blocks.{i}.attn.hook_z"), "{fired}");
                assert!(!fired.contains("hook_rot_q"), "{fired}");
            }
            other => panic!("{other:?}"),
        }
    }

    proptest! {
        #[test]
        fn round_trip_any_layer(layer in 0usize..10_000, i in 0usize..24) {
            let p = HookPoint::block(layer, BlockHook::ALL[i]);
            prop_assert_eq!(p.to_string().parse::<HookPoint>().unwrap(), p);
        }

        #[test]
        fn glob_star_matches_everything(s in "[a-z._0-9]{0,30}") {
            prop_assert!(glob_match(b"*", s.as_bytes()));
            prop_assert!(glob_match(s.as_bytes(), s.as_bytes()));
        }
    }
}
