//! Node ids of flow graphs: `layer/module/feature`, as Feature Flow writes them (`24/res/14548`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where in a layer an SAE reads: the four points of Feature Flow's inner-layer matching, plus
/// the residual stream entering block 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Module {
    /// The residual stream before block 0 (`blocks.0.hook_resid_pre` or `hook_embed`): the
    /// residual predecessor of layer 0's features. Only at layer 0.
    Emb,
    /// The attention block's output added to the residual stream (`hook_attn_out`, or an
    /// `attn.hook_z` SAE mapped through `W_O`): `A_L`.
    Att,
    /// The MLP's output added to the residual stream (`hook_mlp_out`): `M_L`.
    Mlp,
    /// The residual stream leaving block `L` (`hook_resid_post`): `R_L`.
    Res,
}

impl Module {
    /// Every module, in forward order within a layer.
    pub const ALL: [Module; 4] = [Module::Emb, Module::Att, Module::Mlp, Module::Res];

    /// The short name used in node ids (`res`, `mlp`, `att`, `emb`).
    pub fn name(self) -> &'static str {
        match self {
            Module::Emb => "emb",
            Module::Att => "att",
            Module::Mlp => "mlp",
            Module::Res => "res",
        }
    }
}

impl fmt::Display for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Module {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Module::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown module `{s}`"))
    }
}

/// One SAE feature of a stack: `layer/module/feature`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId {
    /// The layer (block index).
    pub layer: usize,
    /// Which SAE of the layer.
    pub module: Module,
    /// The feature (latent) index.
    pub feature: usize,
}

impl NodeId {
    /// `layer/module/feature`.
    pub fn new(layer: usize, module: Module, feature: usize) -> Self {
        NodeId {
            layer,
            module,
            feature,
        }
    }

    /// A residual-stream feature `layer/res/feature`.
    pub fn res(layer: usize, feature: usize) -> Self {
        Self::new(layer, Module::Res, feature)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.layer, self.module, self.feature)
    }
}

impl FromStr for NodeId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::BadNodeId {
            id: s.to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = s.split('/').collect();
        let [layer, module, feature] = parts[..] else {
            return Err(bad("it needs exactly three parts separated by `/`"));
        };
        let number = |part: &str, what: &str| -> Result<usize> {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(&format!(
                    "the {what} `{part}` is not a non-negative integer"
                )));
            }
            part.parse()
                .map_err(|_| bad(&format!("the {what} `{part}` is too large")))
        };
        let layer = number(layer, "layer")?;
        let module: Module = module.parse().map_err(|e: String| bad(&e))?;
        if module == Module::Emb && layer != 0 {
            return Err(bad("`emb` exists only at layer 0"));
        }
        Ok(NodeId::new(layer, module, number(feature, "feature")?))
    }
}

impl Serialize for NodeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_round_trip_and_reject_malformed_text() {
        for id in ["2/res/10", "0/emb/3", "25/att/16383", "7/mlp/0"] {
            assert_eq!(id.parse::<NodeId>().unwrap().to_string(), id);
        }
        for bad in [
            "",
            "2/res",
            "2/res/10/1",
            "x/res/1",
            "2/foo/1",
            "2/res/-1",
            "3/emb/1",
            "2//1",
        ] {
            assert!(
                matches!(bad.parse::<NodeId>(), Err(Error::BadNodeId { .. })),
                "{bad}"
            );
        }
    }
}
