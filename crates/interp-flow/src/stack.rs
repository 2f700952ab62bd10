//! An SAE stack keyed by hook: for every layer `L`, the SAEs Feature Flow matches — `R_L`
//! (`hook_resid_post`), `M_L` (`hook_mlp_out`), `A_L` (`hook_attn_out`, or `attn.hook_z`
//! mapped through `W_O`) — and the residual stream entering block 0.
//!
//! Which hook lands where:
//!
//! | SAE hook | node module | note |
//! |---|---|---|
//! | `blocks.L.hook_resid_post` | `L/res` | `R_L` |
//! | `blocks.L.hook_resid_pre`, `L > 0` | `(L−1)/res` | the same activations as `blocks.(L−1).hook_resid_post`; skipped when that SAE is present |
//! | `blocks.0.hook_resid_pre`, `hook_embed` | `0/emb` | the residual predecessor of layer 0 |
//! | `blocks.L.hook_mlp_out` | `L/mlp` | `M_L` |
//! | `blocks.L.hook_attn_out` | `L/att` | `A_L` |
//! | `blocks.L.attn.hook_z` | `L/att` | Gemma Scope "att": usable after [`SaeStack::map_attention_z`] |
//!
//! **Attention SAEs on `attn.hook_z`.** Feature Flow (§3.2) says its method "cannot be applied"
//! to Gemma Scope's attention SAEs because they read `z` (`n_heads · d_head` wide, before the
//! output projection) rather than the residual stream. But the attention output is linear in
//! `z`: `hook_attn_out = z_flat · W_O + b_O`. A feature's decoder row `d ∈ R^{n_heads·d_head}`
//! therefore writes `d · W_O` into the residual stream (the bias is shared by every feature and
//! is the SAE's `b_dec · W_O + b_O` term), and `d · W_O` is the direction to compare with
//! residual and MLP decoder rows. [`SaeStack::map_attention_z`] does that mapping.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::backend::Backend;
use interp_geometry::Directions;
use interp_models::{BlockHook, HookPoint, HookedTransformer};
use interp_sae::Sae;
use ndarray::{Array2, ArrayView2};

use crate::error::{Error, Result};
use crate::node::{Module, NodeId};

/// One SAE of a stack.
#[derive(Clone, Debug)]
pub struct StackSae {
    /// The hook the SAE reads (and where interventions on its features apply).
    pub hook: HookPoint,
    /// The SAE.
    pub sae: Sae,
    /// Where it came from (a path or `release/sae_id`), for messages and reports.
    pub source: String,
    /// The decoder rows in residual-stream space when they differ from the SAE's own
    /// (`attn.hook_z` SAEs after [`SaeStack::map_attention_z`]).
    residual_decoder: Option<Array2<f32>>,
}

impl StackSae {
    /// Whether the SAE reads `attn.hook_z` (its decoder is not in residual space by itself).
    pub fn reads_z(&self) -> bool {
        matches!(
            self.hook,
            HookPoint::Block {
                hook: BlockHook::AttnZ,
                ..
            }
        )
    }

    /// The decoder rows `[d_sae, d_model]` in residual-stream space.
    ///
    /// # Errors
    /// [`Error::UnusableSae`] for an `attn.hook_z` SAE not yet mapped through `W_O`.
    pub fn residual_decoder(&self) -> Result<ArrayView2<'_, f32>> {
        match (&self.residual_decoder, self.reads_z()) {
            (Some(d), _) => Ok(d.view()),
            (None, false) => Ok(self.sae.weights().w_dec.view()),
            (None, true) => Err(Error::UnusableSae {
                source_name: self.source.clone(),
                reason: format!(
                    "`{}` is read before W_O: map its decoder into the residual stream first \
                     (SaeStack::map_attention_z, or give the model)",
                    self.hook
                ),
            }),
        }
    }

    /// The decoder directions (unit rows and norms) in residual-stream space.
    ///
    /// # Errors
    /// As [`Self::residual_decoder`].
    pub fn directions(&self) -> Result<Directions> {
        Ok(Directions::from_rows(self.residual_decoder()?)?)
    }

    /// The width of the residual-space decoder rows.
    pub fn residual_width(&self) -> Option<usize> {
        match (&self.residual_decoder, self.reads_z()) {
            (Some(d), _) => Some(d.ncols()),
            (None, false) => Some(self.sae.d_in()),
            (None, true) => None,
        }
    }
}

/// The SAEs of a model, keyed by `(layer, module)`.
#[derive(Clone, Debug, Default)]
pub struct SaeStack {
    entries: BTreeMap<(usize, Module), StackSae>,
    /// `resid_pre` SAEs skipped because the `resid_post` SAE of the layer before was given.
    skipped: Vec<String>,
}

/// Where an SAE at `hook` sits in the stack; `None` for hooks the flow analysis does not use.
fn slot(hook: HookPoint) -> Option<(usize, Module)> {
    match hook {
        HookPoint::Embed => Some((0, Module::Emb)),
        HookPoint::Block { layer, hook } => match hook {
            BlockHook::ResidPost => Some((layer, Module::Res)),
            BlockHook::ResidPre if layer == 0 => Some((0, Module::Emb)),
            BlockHook::ResidPre => Some((layer - 1, Module::Res)),
            BlockHook::MlpOut => Some((layer, Module::Mlp)),
            BlockHook::AttnOut | BlockHook::AttnZ => Some((layer, Module::Att)),
            _ => None,
        },
        _ => None,
    }
}

impl SaeStack {
    /// An empty stack.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `sae`, placed by the hook its config names (`metadata.hook_name`).
    ///
    /// # Errors
    /// [`Error::UnusableSae`] when it names no hook or a hook the analysis does not use;
    /// [`Error::DuplicateHook`] when its place is taken (two SAEs on one hook, or a
    /// `hook_attn_out` and an `attn.hook_z` SAE in one layer).
    pub fn insert(&mut self, source: impl Into<String>, sae: Sae) -> Result<()> {
        let source = source.into();
        let name = sae
            .config()
            .metadata
            .hook_name
            .clone()
            .ok_or_else(|| Error::UnusableSae {
                source_name: source.clone(),
                reason: "its config names no hook (metadata.hook_name)".into(),
            })?;
        let hook: HookPoint = name.parse().map_err(|_| Error::UnusableSae {
            source_name: source.clone(),
            reason: format!("`{name}` is not a TransformerLens hook name"),
        })?;
        let place = slot(hook).ok_or_else(|| Error::UnusableSae {
            source_name: source.clone(),
            reason: format!(
                "`{hook}` is not a hook the flow analysis uses (hook_resid_post, hook_resid_pre, \
                 hook_mlp_out, hook_attn_out, attn.hook_z, hook_embed)"
            ),
        })?;
        let is_pre = matches!(
            hook,
            HookPoint::Block {
                hook: BlockHook::ResidPre,
                layer
            } if layer > 0
        );
        if let Some(existing) = self.entries.get(&place) {
            let existing_pre = matches!(
                existing.hook,
                HookPoint::Block {
                    hook: BlockHook::ResidPre,
                    ..
                }
            );
            if existing.hook != hook && is_pre {
                self.skipped.push(source);
                return Ok(());
            }
            if existing.hook != hook && existing_pre && place.1 == Module::Res {
                self.skipped.push(existing.source.clone());
            } else {
                return Err(Error::DuplicateHook {
                    hook: if existing.hook == hook {
                        hook.to_string()
                    } else {
                        format!("{} and {}", existing.hook, hook)
                    },
                    first: existing.source.clone(),
                    second: source,
                });
            }
        }
        self.entries.insert(
            place,
            StackSae {
                hook,
                sae,
                source,
                residual_decoder: None,
            },
        );
        Ok(())
    }

    /// Loads every subdirectory of `dir` as an SAE (any format [`interp_sae::load`] detects;
    /// each must name its hook in its own config), in name order, and checks the stack.
    ///
    /// # Errors
    /// [`Error::Io`] when `dir` cannot be listed; [`Error::Invalid`] when it has no SAE; the
    /// loaders' errors; as [`Self::insert`] and [`Self::validate`].
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        let mut dirs: Vec<_> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        if dirs.is_empty() {
            return Err(Error::invalid(
                "SAE stack",
                format!(
                    "{} has no subdirectories: it should hold one SAE per subdirectory",
                    dir.display()
                ),
            ));
        }
        let mut stack = SaeStack::new();
        for d in dirs {
            let sae = interp_sae::load(&d)?;
            stack.insert(d.display().to_string(), sae)?;
        }
        stack.validate()?;
        Ok(stack)
    }

    /// Downloads (or reads from the local cache) the SAEs of SAELens `releases` whose id
    /// passes `keep` (e.g. `|id| id.contains("width_16k/canonical")`) and stacks them.
    ///
    /// # Errors
    /// The hub's and loaders' errors; as [`Self::insert`] and [`Self::validate`].
    #[cfg(feature = "hub")]
    pub fn from_pretrained(releases: &[&str], keep: impl Fn(&str) -> bool) -> Result<Self> {
        let mut stack = SaeStack::new();
        for release in releases {
            let ids = interp_sae::registry::saes(release);
            if ids.is_empty() {
                return Err(Error::invalid(
                    "release",
                    format!(
                        "unknown SAELens release `{release}` (known: {})",
                        interp_sae::registry::releases().join(", ")
                    ),
                ));
            }
            for entry in ids.into_iter().filter(|e| keep(e.sae_id)) {
                let sae = interp_sae::registry::from_pretrained(release, entry.sae_id)?;
                stack.insert(format!("{release}/{}", entry.sae_id), sae)?;
            }
        }
        stack.validate()?;
        Ok(stack)
    }

    /// Maps the decoder of every `attn.hook_z` SAE through its layer's `W_O` (see the module
    /// docs), so it can be matched in the residual stream.
    ///
    /// # Errors
    /// [`Error::WidthMismatch`] when an SAE's width is not the model's `n_heads · d_head`;
    /// [`Error::Invalid`] when its layer is past the model's.
    pub fn map_attention_z<B: Backend>(&mut self, model: &HookedTransformer<B>) -> Result<()> {
        let layers: Vec<usize> = self
            .entries
            .iter()
            .filter(|(_, e)| e.reads_z())
            .map(|(&(l, _), _)| l)
            .collect();
        for layer in layers {
            let block = model.weights().blocks.get(layer).ok_or_else(|| {
                Error::invalid(
                    "attn.hook_z SAE",
                    format!(
                        "layer {layer} is past the model's {} layers",
                        model.cfg().n_layers
                    ),
                )
            })?;
            let w_o = block.attn.w_o.val();
            let [rows, cols] = w_o.dims();
            let data = w_o
                .into_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .map_err(|e| Error::invalid("W_O", format!("could not read the weights: {e:?}")))?;
            let w_o = Array2::from_shape_vec((rows, cols), data)
                .map_err(|e| Error::invalid("W_O", e.to_string()))?;
            self.map_attention_z_with(layer, w_o.view())?;
        }
        Ok(())
    }

    /// Maps layer `layer`'s `attn.hook_z` SAE decoder through `w_o` (`[n_heads · d_head,
    /// d_model]`, TransformerLens' `W_O` flattened over heads).
    ///
    /// # Errors
    /// [`Error::NoSae`] when the layer has no `attn.hook_z` SAE; [`Error::WidthMismatch`] when
    /// `w_o` has not `d_in` rows.
    pub fn map_attention_z_with(&mut self, layer: usize, w_o: ArrayView2<'_, f32>) -> Result<()> {
        let available = self.describe();
        let entry = self
            .entries
            .get_mut(&(layer, Module::Att))
            .filter(|e| e.reads_z())
            .ok_or_else(|| Error::NoSae {
                layer,
                module: "attn.hook_z".into(),
                available,
            })?;
        if w_o.nrows() != entry.sae.d_in() {
            return Err(Error::WidthMismatch {
                layer,
                module: "att (attn.hook_z)".into(),
                d_in: entry.sae.d_in(),
                reference: "W_O's rows (n_heads · d_head)".into(),
                expected: w_o.nrows(),
            });
        }
        let mut out = Array2::<f32>::zeros((entry.sae.d_sae(), w_o.ncols()));
        interp_core::matmul_into(entry.sae.weights().w_dec.view(), w_o, out.view_mut());
        entry.residual_decoder = Some(out);
        Ok(())
    }

    /// Checks that within every layer all SAEs write vectors of one width (residual space).
    ///
    /// # Errors
    /// [`Error::WidthMismatch`].
    pub fn validate(&self) -> Result<()> {
        let mut reference: BTreeMap<usize, (Module, usize)> = BTreeMap::new();
        for (&(layer, module), e) in &self.entries {
            let Some(width) = e.residual_width() else {
                continue;
            };
            // The emb SAE of layer 0 and R_{L−1} share the residual stream with layer L.
            match reference.get(&layer) {
                Some(&(m, w)) if w != width => {
                    return Err(Error::WidthMismatch {
                        layer,
                        module: module.to_string(),
                        d_in: width,
                        reference: format!("{layer}/{m}"),
                        expected: w,
                    })
                }
                Some(_) => {}
                None => {
                    reference.insert(layer, (module, width));
                }
            }
        }
        Ok(())
    }

    /// The SAE at `layer`/`module`.
    ///
    /// # Errors
    /// [`Error::NoSae`] listing what the stack has.
    pub fn get(&self, layer: usize, module: Module) -> Result<&StackSae> {
        self.entries
            .get(&(layer, module))
            .ok_or_else(|| Error::NoSae {
                layer,
                module: module.to_string(),
                available: self.describe(),
            })
    }

    /// Whether the stack has an SAE at `layer`/`module`.
    pub fn has(&self, layer: usize, module: Module) -> bool {
        self.entries.contains_key(&(layer, module))
    }

    /// Checks that `node`'s layer and module have an SAE and its feature is in range.
    ///
    /// # Errors
    /// [`Error::NoSae`], [`Error::FeatureOutOfRange`].
    pub fn check_node(&self, node: NodeId) -> Result<&StackSae> {
        let e = self.get(node.layer, node.module)?;
        if node.feature >= e.sae.d_sae() {
            return Err(Error::FeatureOutOfRange {
                layer: node.layer,
                module: node.module.to_string(),
                feature: node.feature,
                d_sae: e.sae.d_sae(),
            });
        }
        Ok(e)
    }

    /// The residual-stream predecessor `R_{L−1}` of layer `layer`: `(L−1)/res`, or `0/emb`
    /// for layer 0.
    pub fn residual_predecessor(layer: usize) -> (usize, Module) {
        match layer {
            0 => (0, Module::Emb),
            l => (l - 1, Module::Res),
        }
    }

    /// Layers with an `R_L` SAE, ascending.
    pub fn res_layers(&self) -> Vec<usize> {
        self.entries
            .keys()
            .filter(|(_, m)| *m == Module::Res)
            .map(|&(l, _)| l)
            .collect()
    }

    /// Every `(layer, module)` with an SAE, in order.
    pub fn slots(&self) -> impl Iterator<Item = ((usize, Module), &StackSae)> + '_ {
        self.entries.iter().map(|(&k, v)| (k, v))
    }

    /// The number of SAEs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the stack is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sources of `resid_pre` SAEs skipped because the `resid_post` SAE carrying the same
    /// activations was given.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// `0/emb, 0/att, 0/mlp, 0/res, 1/att, …`: what the stack holds.
    pub fn describe(&self) -> String {
        if self.entries.is_empty() {
            return "no SAEs".into();
        }
        self.entries
            .keys()
            .map(|(l, m)| format!("{l}/{m}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
