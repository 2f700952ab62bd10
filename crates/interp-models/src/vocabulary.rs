//! The hook vocabulary of one model: which TransformerLens hook points its architecture fires,
//! each one's width, and where a forward may stop for a set of them. Every API that takes a
//! hook name (caching, interventions, SAEs, steering) checks it here, so a hook the
//! architecture lacks is an error, never a silent no-op.

use crate::config::{ModelConfig, Normalization};
use crate::error::{Error, Result};
use crate::hooks::{BlockHook, HookPoint};

impl ModelConfig {
    /// Whether a forward of this model fires `point`.
    ///
    /// `hook_pos_embed` needs learned positions, `attn.hook_rot_q/k` rotary ones,
    /// `ln1_post.*` / `ln2_post.*` Gemma-2's post-norms, `mlp.hook_pre_linear` a gated MLP;
    /// a parallel block (Phi-2) has no `hook_resid_mid` (its `ln2` normalizes the block's input,
    /// as TransformerLens computes it).
    pub fn fires(&self, point: &HookPoint) -> bool {
        let rotary = self.rotary().is_some();
        match *point {
            HookPoint::Embed | HookPoint::LnFinalScale | HookPoint::LnFinalNormalized => true,
            HookPoint::PosEmbed => !rotary,
            HookPoint::Block { layer, hook } => {
                layer < self.n_layers
                    && match hook {
                        BlockHook::AttnRotQ | BlockHook::AttnRotK => rotary,
                        BlockHook::Ln1PostScale
                        | BlockHook::Ln1PostNormalized
                        | BlockHook::Ln2PostScale
                        | BlockHook::Ln2PostNormalized => self.post_norms,
                        BlockHook::MlpPreLinear => self.gated_mlp,
                        BlockHook::ResidMid => !self.parallel_attn_mlp,
                        _ => true,
                    }
            }
        }
    }

    /// Every hook point this model fires, in execution order.
    pub fn hook_points(&self) -> Vec<HookPoint> {
        let mut out = vec![HookPoint::Embed, HookPoint::PosEmbed];
        for layer in 0..self.n_layers {
            out.extend(BlockHook::ALL.iter().map(|&h| HookPoint::block(layer, h)));
        }
        out.extend([HookPoint::LnFinalScale, HookPoint::LnFinalNormalized]);
        out.retain(|p| self.fires(p));
        out
    }

    /// The names this model fires, with block hooks written once as `blocks.{i}.…` (for
    /// error messages).
    pub fn hook_names_summary(&self) -> String {
        let mut names = Vec::new();
        for p in self.hook_points() {
            let name = match p {
                HookPoint::Block { layer: 0, hook } => format!("blocks.{{i}}.{}", hook.suffix()),
                HookPoint::Block { .. } => continue,
                other => other.to_string(),
            };
            names.push(name);
        }
        format!(
            "{} (i < {}, a {:?} model)",
            names.join(", "),
            self.n_layers,
            self.family
        )
    }

    /// Checks that this model fires `point`.
    ///
    /// # Errors
    /// [`Error::HookLayerOutOfRange`] past the last block; [`Error::HookNotFired`] for a hook
    /// this architecture does not have, listing the ones it has.
    pub fn check_fires(&self, point: &HookPoint) -> Result<()> {
        point.check_layer(self.n_layers)?;
        if self.fires(point) {
            Ok(())
        } else {
            Err(Error::HookNotFired {
                name: point.to_string(),
                fired: self.hook_names_summary(),
            })
        }
    }

    /// Parses a hook name and checks that this model fires it.
    ///
    /// # Errors
    /// [`Error::UnknownHook`] for a name TransformerLens does not have, and the errors of
    /// [`Self::check_fires`].
    pub fn parse_hook(&self, name: &str) -> Result<HookPoint> {
        let point: HookPoint = name.parse()?;
        self.check_fires(&point)?;
        Ok(point)
    }

    /// The width of one position's activation at `point`, as an SAE or a steering vector sees
    /// it: `d_model` for the residual stream, embeddings, `hook_attn_out`, `hook_mlp_out` and
    /// `ln*.hook_normalized`; `d_mlp` for `mlp.hook_pre` / `hook_pre_linear` / `hook_post`;
    /// `n_heads · d_head` for `attn.hook_q` / `hook_rot_q` / `hook_z` and
    /// `n_key_value_heads · d_head` for `attn.hook_k` / `hook_rot_k` / `hook_v` (flattened over
    /// heads, as SAELens reads `hook_z`). `None` for hooks this model does not fire and hooks
    /// without such a width (`hook_scale`, attention scores and pattern).
    pub fn hook_width(&self, point: &HookPoint) -> Option<usize> {
        if !self.fires(point) {
            return None;
        }
        let HookPoint::Block { hook, .. } = point else {
            return match point {
                HookPoint::LnFinalScale => None,
                _ => Some(self.d_model),
            };
        };
        match hook {
            BlockHook::MlpPre | BlockHook::MlpPreLinear | BlockHook::MlpPost => Some(self.d_mlp),
            BlockHook::AttnQ | BlockHook::AttnRotQ | BlockHook::AttnZ => {
                Some(self.n_heads * self.d_head)
            }
            BlockHook::AttnK | BlockHook::AttnRotK | BlockHook::AttnV => {
                Some(self.n_kv_heads() * self.d_head)
            }
            BlockHook::AttnScores
            | BlockHook::AttnPattern
            | BlockHook::Ln1Scale
            | BlockHook::Ln2Scale
            | BlockHook::Ln1PostScale
            | BlockHook::Ln2PostScale => None,
            _ => Some(self.d_model),
        }
    }

    /// The length of one position's activation at `point` as one flat row: [`Self::hook_width`],
    /// or 1 for the `ln*.hook_scale` hooks (`[batch, pos, 1]`); `None` for hooks this model does
    /// not fire and for attention scores and pattern (one row per head and key).
    pub fn row_width(&self, point: &HookPoint) -> Option<usize> {
        let scale = matches!(
            point,
            HookPoint::LnFinalScale
                | HookPoint::Block {
                    hook: BlockHook::Ln1Scale
                        | BlockHook::Ln2Scale
                        | BlockHook::Ln1PostScale
                        | BlockHook::Ln2PostScale,
                    ..
                }
        );
        if scale && self.fires(point) {
            Some(1)
        } else {
            self.hook_width(point)
        }
    }

    /// The number of heads of a per-head attention hook (`n_heads` for queries, `z`, scores
    /// and pattern; `n_key_value_heads` for keys and values); `None` for other hooks.
    pub fn hook_heads(&self, point: &HookPoint) -> Option<usize> {
        match point {
            HookPoint::Block { hook, .. } => match hook {
                BlockHook::AttnQ
                | BlockHook::AttnRotQ
                | BlockHook::AttnZ
                | BlockHook::AttnScores
                | BlockHook::AttnPattern => Some(self.n_heads),
                BlockHook::AttnK | BlockHook::AttnRotK | BlockHook::AttnV => {
                    Some(self.n_kv_heads())
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// The earliest layer a forward can stop at and still fire every point in `points`:
    /// one past the last block any of them sits in, or `None` when one needs the whole model
    /// (`ln_final.*`). Embedding hooks need no block (`Some(0)`).
    pub fn stop_layer_for<'a>(
        &self,
        points: impl IntoIterator<Item = &'a HookPoint>,
    ) -> Option<usize> {
        let mut stop = 0;
        for p in points {
            match p {
                HookPoint::Embed | HookPoint::PosEmbed => {}
                HookPoint::Block { layer, .. } => stop = stop.max(layer + 1),
                _ => return None,
            }
        }
        Some(stop.min(self.n_layers))
    }

    /// Whether the model normalizes with RMSNorm.
    pub fn is_rms(&self) -> bool {
        self.normalization == Normalization::RmsNorm
    }
}
