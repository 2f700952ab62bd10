//! Matching tables: for every feature of every `R_L`, its top-`k` predecessors by decoder
//! cosine in `R_{L−1}`, `M_L` and `A_L` (Feature Flow §3.2: `s^(P) = max_k cos(f, W_dec^(P)_k)`),
//! or the one-to-one permutation match of Mechanistic Permutability for comparison.
//!
//! Tables are computed layer by layer through GEMM tiles ([`interp_geometry::top_k_matches`]):
//! at most two SAEs' decoders and a tile of cosines are in memory at once, never an `F × F`
//! matrix. They are saved as safetensors (`{L}.{source}.indices` i64 `[F, k]`, `-1` for a
//! row the permutation leaves unmatched; `{L}.{source}.scores` f32 `[F, k]`) so graphs can be
//! built from them in milliseconds.

use std::collections::BTreeMap;
use std::path::Path;

use interp_core::io::SafetensorsFile;
use interp_geometry::extremes::top_k_matches_with;
use interp_geometry::{sparse_assignment, Neighbors, TileShape};
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::node::{Module, NodeId};
use crate::stack::SaeStack;

/// Which predecessor of `R_L` a table matches against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The residual stream entering block `L` (`R_{L−1}`; `0/emb` for layer 0).
    Res,
    /// The MLP output `M_L`.
    Mlp,
    /// The attention output `A_L`.
    Att,
}

impl Source {
    /// All three, in the order Feature Flow names them.
    pub const ALL: [Source; 3] = [Source::Res, Source::Mlp, Source::Att];

    /// `res`, `mlp`, `att`.
    pub fn name(self) -> &'static str {
        match self {
            Source::Res => "res",
            Source::Mlp => "mlp",
            Source::Att => "att",
        }
    }

    /// The stack slot of layer `layer`'s predecessor of this kind.
    pub fn slot(self, layer: usize) -> (usize, Module) {
        match self {
            Source::Res => SaeStack::residual_predecessor(layer),
            Source::Mlp => (layer, Module::Mlp),
            Source::Att => (layer, Module::Att),
        }
    }

    /// The node of predecessor feature `feature` of layer `layer`.
    pub fn node(self, layer: usize, feature: usize) -> NodeId {
        let (l, m) = self.slot(layer);
        NodeId::new(l, m, feature)
    }

    fn parse(s: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|x| x.name() == s)
    }
}

/// How the tables were matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchMethod {
    /// Top-`k` decoder cosine (Feature Flow; `k = 1` is its many-to-one matching).
    TopK,
    /// One-to-one linear assignment maximising the summed cosine (Mechanistic Permutability),
    /// restricted to each row's top-`k` candidates; `k = 1` per row.
    Permutation,
}

/// One table: for each feature of `R_L`, `k` predecessor features and their cosines, best
/// first. A row the permutation leaves unmatched has index `None` and score `−∞`.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Entries per row.
    pub k: usize,
    /// `[F × k]` predecessor indices.
    pub indices: Vec<Option<u32>>,
    /// `[F × k]` cosines, descending within a row.
    pub scores: Vec<f32>,
}

impl Table {
    fn from_neighbors(n: Neighbors) -> Self {
        Table {
            k: n.k,
            indices: n.indices.into_iter().map(Some).collect(),
            scores: n.scores,
        }
    }

    /// Number of rows (target features).
    pub fn rows(&self) -> usize {
        self.indices.len().checked_div(self.k).unwrap_or(0)
    }

    /// Row `i`: `(predecessor, cosine)` pairs, best first, unmatched entries left out.
    pub fn row(&self, i: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let r = i * self.k..(i + 1) * self.k;
        self.indices[r.clone()]
            .iter()
            .zip(&self.scores[r])
            .filter_map(|(j, &s)| j.map(|j| (j as usize, s)))
    }

    /// Row `i`'s best match, if any.
    pub fn top1(&self, i: usize) -> Option<(usize, f32)> {
        self.row(i).next()
    }
}

/// The matching tables of a stack.
#[derive(Clone, Debug, PartialEq)]
pub struct MatchTables {
    /// How they were matched.
    pub method: MatchMethod,
    /// Entries per row.
    pub k: usize,
    tables: BTreeMap<(usize, Source), Table>,
}

/// Progress of [`MatchTables::compute_with`]: `(tables done, tables in all)`.
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

impl MatchTables {
    /// Top-`k` tables for every `R_L` of `stack` against each predecessor it has.
    ///
    /// # Errors
    /// [`Error::Invalid`] for `k = 0`; [`Error::UnusableSae`] for an unmapped `attn.hook_z`
    /// SAE; [`Error::WidthMismatch`].
    pub fn compute(stack: &SaeStack, k: usize) -> Result<Self> {
        Self::compute_with(stack, k, MatchMethod::TopK, &|_, _| {})
    }

    /// As [`Self::compute`] with a method and a progress callback. For
    /// [`MatchMethod::Permutation`], `k` is the number of candidates per row the assignment
    /// may choose from (the tables keep one entry per row).
    ///
    /// # Errors
    /// As [`Self::compute`].
    pub fn compute_with(
        stack: &SaeStack,
        k: usize,
        method: MatchMethod,
        progress: Progress<'_>,
    ) -> Result<Self> {
        Self::compute_tiled(stack, k, method, TileShape::default(), progress)
    }

    /// As [`Self::compute_with`] with a chosen GEMM tile shape (memory: `rows × cols` f32 of
    /// cosines per tile, plus the two decoders of one pair).
    ///
    /// # Errors
    /// As [`Self::compute`].
    pub fn compute_tiled(
        stack: &SaeStack,
        k: usize,
        method: MatchMethod,
        tile: TileShape,
        progress: Progress<'_>,
    ) -> Result<Self> {
        if k == 0 {
            return Err(Error::invalid("k", "the tables need k ≥ 1"));
        }
        stack.validate()?;
        let jobs: Vec<(usize, Source)> = stack
            .res_layers()
            .into_iter()
            .flat_map(|l| Source::ALL.into_iter().map(move |s| (l, s)))
            .filter(|&(l, s)| {
                let (pl, pm) = s.slot(l);
                stack.has(pl, pm)
            })
            .collect();
        let mut tables = BTreeMap::new();
        let mut current: Option<(usize, interp_geometry::Directions)> = None;
        for (done, &(layer, source)) in jobs.iter().enumerate() {
            if current.as_ref().map(|c| c.0) != Some(layer) {
                current = Some((layer, stack.get(layer, Module::Res)?.directions()?));
            }
            let target = &current.as_ref().expect("set above").1;
            let (pl, pm) = source.slot(layer);
            let pred = stack.get(pl, pm)?.directions()?;
            if pred.dim() != target.dim() {
                return Err(Error::WidthMismatch {
                    layer,
                    module: pm.to_string(),
                    d_in: pred.dim(),
                    reference: format!("{layer}/res"),
                    expected: target.dim(),
                });
            }
            let neighbors = top_k_matches_with(target, &pred, k, tile)?;
            let table = match method {
                MatchMethod::TopK => Table::from_neighbors(neighbors),
                MatchMethod::Permutation => {
                    let a = sparse_assignment(&neighbors, pred.len(), 0.0)?;
                    Table {
                        k: 1,
                        indices: a.matches.iter().map(|m| m.map(|j| j as u32)).collect(),
                        scores: a
                            .matches
                            .iter()
                            .zip(&a.scores)
                            .map(|(m, &s)| if m.is_some() { s } else { f32::NEG_INFINITY })
                            .collect(),
                    }
                }
            };
            tables.insert((layer, source), table);
            progress(done + 1, jobs.len());
        }
        let k = match method {
            MatchMethod::TopK => tables.values().map(|t| t.k).min().unwrap_or(k),
            MatchMethod::Permutation => 1,
        };
        Ok(MatchTables { method, k, tables })
    }

    /// The table of `R_layer` against `source`.
    ///
    /// # Errors
    /// [`Error::NoSae`] when the stack had no such pair.
    pub fn get(&self, layer: usize, source: Source) -> Result<&Table> {
        self.tables.get(&(layer, source)).ok_or_else(|| {
            let (l, m) = source.slot(layer);
            Error::NoSae {
                layer: l,
                module: format!("{m} (as the {} predecessor of {layer}/res)", source.name()),
                available: self.describe(),
            }
        })
    }

    /// Whether there is a table for `R_layer` against `source`.
    pub fn has(&self, layer: usize, source: Source) -> bool {
        self.tables.contains_key(&(layer, source))
    }

    /// Layers with tables, ascending.
    pub fn layers(&self) -> Vec<usize> {
        let mut l: Vec<usize> = self.tables.keys().map(|&(l, _)| l).collect();
        l.dedup();
        l
    }

    /// Every table with its layer and source.
    pub fn iter(&self) -> impl Iterator<Item = ((usize, Source), &Table)> + '_ {
        self.tables.iter().map(|(&k, v)| (k, v))
    }

    /// `0/res←mlp, …`: what the tables cover.
    pub fn describe(&self) -> String {
        self.tables
            .keys()
            .map(|(l, s)| format!("{l}/res←{}", s.name()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Writes the tables as safetensors (atomically).
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::Malformed`] if serialisation fails.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut owned: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> = Vec::new();
        for (&(layer, source), t) in &self.tables {
            let shape = vec![t.rows(), t.k];
            let name = format!("{layer}.{}", source.name());
            let idx: Vec<u8> = t
                .indices
                .iter()
                .flat_map(|j| j.map_or(-1i64, |j| j as i64).to_le_bytes())
                .collect();
            let scores: Vec<u8> = t.scores.iter().flat_map(|s| s.to_le_bytes()).collect();
            owned.push((format!("{name}.indices"), shape.clone(), Dtype::I64, idx));
            owned.push((format!("{name}.scores"), shape, Dtype::F32, scores));
        }
        let views = owned
            .iter()
            .map(|(n, s, d, b)| {
                TensorView::new(*d, s.clone(), b)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| Error::Malformed {
                        path: path.to_path_buf(),
                        reason: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let method = match self.method {
            MatchMethod::TopK => "top_k",
            MatchMethod::Permutation => "permutation",
        };
        let meta: std::collections::HashMap<String, String> = [
            (
                "format".to_string(),
                "interp-flow match tables 1".to_string(),
            ),
            ("method".to_string(), method.to_string()),
            ("k".to_string(), self.k.to_string()),
        ]
        .into();
        let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| Error::Malformed {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        interp_core::io::write_atomic(path, &bytes).map_err(|e| Error::Malformed {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Reads tables written by [`Self::save`].
    ///
    /// # Errors
    /// [`Error::Malformed`] for a file that is not such tables (missing pair, shapes that
    /// disagree, indices below −1).
    pub fn load(path: &Path) -> Result<Self> {
        let malformed = |reason: String| Error::Malformed {
            path: path.to_path_buf(),
            reason,
        };
        let file = SafetensorsFile::open(path).map_err(|e| malformed(e.to_string()))?;
        let meta = file.metadata().map_err(|e| malformed(e.to_string()))?;
        if meta.get("format").map(String::as_str) != Some("interp-flow match tables 1") {
            return Err(malformed(
                "not interp-flow match tables (metadata `format` missing or different); make them with `interp flow tables`".into(),
            ));
        }
        let method = match meta.get("method").map(String::as_str) {
            Some("top_k") => MatchMethod::TopK,
            Some("permutation") => MatchMethod::Permutation,
            other => return Err(malformed(format!("unknown method {other:?}"))),
        };
        let mut tables = BTreeMap::new();
        for (name, _) in file.shapes().map_err(|e| malformed(e.to_string()))? {
            let Some(stem) = name.strip_suffix(".indices") else {
                continue;
            };
            let parsed = stem
                .split_once('.')
                .and_then(|(l, s)| Some((l.parse::<usize>().ok()?, Source::parse(s)?)));
            let Some((layer, source)) = parsed else {
                return Err(malformed(format!("unexpected tensor `{name}`")));
            };
            let (shape, idx) = file.read_i64(&name).map_err(|e| malformed(e.to_string()))?;
            let scores = file
                .read(&format!("{stem}.scores"))
                .map_err(|e| malformed(e.to_string()))?;
            if shape.len() != 2 || scores.shape != shape {
                return Err(malformed(format!(
                    "`{stem}`: indices {shape:?} and scores {:?} must be one [F, k] shape",
                    scores.shape
                )));
            }
            let indices = idx
                .iter()
                .map(|&j| match j {
                    -1 => Ok(None),
                    j if (0..=u32::MAX as i64).contains(&j) => Ok(Some(j as u32)),
                    j => Err(malformed(format!("`{stem}`: index {j} out of range"))),
                })
                .collect::<Result<Vec<_>>>()?;
            tables.insert(
                (layer, source),
                Table {
                    k: shape[1],
                    indices,
                    scores: scores.data,
                },
            );
        }
        if tables.is_empty() {
            return Err(malformed("the file holds no tables".into()));
        }
        let k = tables.values().map(|t| t.k).min().unwrap_or(1);
        Ok(MatchTables { method, k, tables })
    }
}
