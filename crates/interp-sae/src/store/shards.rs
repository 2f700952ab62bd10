//! Shards on disk: [`ActivationStore::write_shards`] writes the mixed stream as safetensors
//! shards and a `manifest.json` ([`ShardManifest`]); [`ShardReader`] reads them back in a
//! fresh seeded order every epoch.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use interp_core::SafetensorsFile;
use ndarray::{Array2, ArrayViewMut2};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{config_err, data_err, ActivationStore};
use crate::error::{check_finite, Error, Result};
use crate::train::{ActivationSource, SplitMix64};

const SHARD_FORMAT: &str = "interp-rs activation shards v1";
const MANIFEST: &str = "manifest.json";

/// One hook of a shard directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardHook {
    /// TransformerLens hook name (also the tensor name in every shard).
    pub name: String,
    /// Activation width.
    pub d: usize,
}

/// One shard file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// File name, relative to the directory.
    pub file: String,
    /// Rows in it.
    pub rows: usize,
}

/// `manifest.json` of a shard directory written by [`ActivationStore::write_shards`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardManifest {
    /// `"interp-rs activation shards v1"`.
    pub format: String,
    /// The model's name, if the store was told it.
    pub model_name: Option<String>,
    /// Tokens per window.
    pub context_size: usize,
    /// Whether windows started with BOS.
    pub prepend_bos: bool,
    /// Whether BOS positions were left out.
    pub exclude_bos: bool,
    /// The store's shuffle seed.
    pub seed: u64,
    /// The hooks, in order.
    pub hooks: Vec<ShardHook>,
    /// The shards, in writing order.
    pub shards: Vec<ShardInfo>,
    /// Rows in all shards (one per kept token).
    pub n_rows: u64,
    /// Tokens run through the model to produce them.
    pub n_tokens: u64,
}

impl ShardManifest {
    /// Reads `dir/manifest.json` and checks that every shard holds each hook as `[rows, d]`.
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Data`] for a missing or malformed manifest or shard,
    /// [`Error::Tensors`] for unreadable shards.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let m: ShardManifest = serde_json::from_slice(&text)
            .map_err(|e| data_err(format!("{}: {e}", path.display())))?;
        if m.format != SHARD_FORMAT {
            return Err(data_err(format!(
                "{}: format `{}`, expected `{SHARD_FORMAT}`",
                path.display(),
                m.format
            )));
        }
        if m.hooks.is_empty() || m.shards.is_empty() || m.n_rows == 0 {
            return Err(data_err(format!("{}: no activations", path.display())));
        }
        let total: u64 = m.shards.iter().map(|s| s.rows as u64).sum();
        if total != m.n_rows {
            return Err(data_err(format!(
                "{}: shards hold {total} rows, n_rows says {}",
                path.display(),
                m.n_rows
            )));
        }
        for shard in &m.shards {
            let file = SafetensorsFile::open(&dir.join(&shard.file))?;
            let shapes = file.shapes()?;
            for h in &m.hooks {
                let want = [shard.rows, h.d];
                match shapes.get(&h.name) {
                    Some(s) if s[..] == want[..] => {}
                    Some(s) => {
                        return Err(Error::Shape {
                            key: format!("{}/{}", shard.file, h.name),
                            expected: want.to_vec(),
                            actual: s.clone(),
                        })
                    }
                    None => {
                        return Err(data_err(format!(
                            "{}: no tensor `{}`",
                            dir.join(&shard.file).display(),
                            h.name
                        )))
                    }
                }
            }
        }
        Ok(m)
    }
}

/// Where a [`ShardReader`] is: epoch, group of shards within it, row within the group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct ReaderCursor {
    epoch: u64,
    group: usize,
    index: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ReaderPosition {
    kind: String,
    #[serde(flatten)]
    cursor: ReaderCursor,
}

const READER_KIND: &str = "interp-sae shard reader";

/// Reads a shard directory back: every epoch visits all rows once in a fresh seeded order.
///
/// Each epoch shuffles the shard order, then takes the shards `shards_in_memory` at a time
/// (default 4), shuffling the rows of each group together; only one group is in memory. The
/// shards themselves were written from the store's mixing buffer, so their rows are already
/// mixed across the corpus. [`ShardReader::seek`] costs reading one group.
#[derive(Debug)]
pub struct ShardReader {
    dir: PathBuf,
    manifest: ShardManifest,
    /// Indices into `manifest.hooks` of the hooks handed out.
    selected: Vec<usize>,
    seed: u64,
    shards_in_memory: usize,
    cursor: ReaderCursor,
    /// The loaded group: per selected hook, row-major values; and the order to hand them out.
    group: Option<(Vec<Vec<f32>>, Vec<u32>)>,
}

impl ShardReader {
    /// Opens `dir` (see [`ShardManifest::read`]), handing out every hook, with shuffles seeded
    /// by `seed`.
    ///
    /// # Errors
    /// As [`ShardManifest::read`].
    pub fn open(dir: &Path, seed: u64) -> Result<Self> {
        let manifest = ShardManifest::read(dir)?;
        Ok(ShardReader {
            dir: dir.to_path_buf(),
            selected: (0..manifest.hooks.len()).collect(),
            manifest,
            seed,
            shards_in_memory: 4,
            cursor: ReaderCursor::default(),
            group: None,
        })
    }

    /// Hands out only these hooks, in this order.
    ///
    /// # Errors
    /// [`Error::Data`] for a hook the shards do not hold, or an empty list.
    pub fn with_hooks<S: AsRef<str>>(mut self, hooks: &[S]) -> Result<Self> {
        if hooks.is_empty() {
            return Err(data_err("select at least one hook"));
        }
        self.selected = hooks
            .iter()
            .map(|h| {
                let h = h.as_ref();
                self.manifest
                    .hooks
                    .iter()
                    .position(|m| m.name == h)
                    .ok_or_else(|| {
                        data_err(format!(
                            "{}: no hook `{h}` (has {})",
                            self.dir.display(),
                            self.manifest
                                .hooks
                                .iter()
                                .map(|m| m.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })
            })
            .collect::<Result<_>>()?;
        self.group = None;
        Ok(self)
    }

    /// Holds `n` shards in memory at a time (at least 1); more mixes better.
    pub fn with_shards_in_memory(mut self, n: usize) -> Self {
        self.shards_in_memory = n.max(1);
        self.group = None;
        self
    }

    /// The manifest.
    pub fn manifest(&self) -> &ShardManifest {
        &self.manifest
    }

    /// The width of each handed-out hook, in order.
    pub fn dims(&self) -> Vec<usize> {
        self.selected
            .iter()
            .map(|&i| self.manifest.hooks[i].d)
            .collect()
    }

    fn n_groups(&self) -> usize {
        self.manifest.shards.len().div_ceil(self.shards_in_memory)
    }

    /// Loads the current group and its row order.
    fn load_group(&mut self) -> Result<()> {
        let n_shards = self.manifest.shards.len();
        let mut order: Vec<usize> = (0..n_shards).collect();
        SplitMix64::stream(self.seed, self.cursor.epoch).shuffle(&mut order);
        let start = self.cursor.group * self.shards_in_memory;
        let members = &order[start..(start + self.shards_in_memory).min(n_shards)];
        let mut values: Vec<Vec<f32>> = self.selected.iter().map(|_| Vec::new()).collect();
        let mut rows = 0;
        for &s in members {
            let info = &self.manifest.shards[s];
            let file = SafetensorsFile::open(&self.dir.join(&info.file))?;
            for (buf, &h) in values.iter_mut().zip(&self.selected) {
                let name = &self.manifest.hooks[h].name;
                let t = file.read(name)?;
                check_finite(name, t.data.iter())?;
                buf.extend_from_slice(&t.data);
            }
            rows += info.rows;
        }
        let mut perm: Vec<u32> = (0..rows as u32).collect();
        let group_seed = self.seed.rotate_left(29) ^ 0xA076_1D64_78BD_642F;
        let stream = self.cursor.epoch.wrapping_mul(0x1_0000_0001) ^ self.cursor.group as u64;
        SplitMix64::stream(group_seed, stream).shuffle(&mut perm);
        self.group = Some((values, perm));
        Ok(())
    }

    /// The next `n` rows of every selected hook, `[n, d]` each, row `i` of every batch from
    /// the same token.
    ///
    /// # Errors
    /// Shard read errors; [`Error::NonFinite`] for NaN/inf in a shard.
    pub fn next_batches(&mut self, n: usize) -> Result<Vec<Array2<f32>>> {
        let mut out: Vec<Array2<f32>> =
            self.dims().iter().map(|&d| Array2::zeros((n, d))).collect();
        {
            let mut views: Vec<ArrayViewMut2<'_, f32>> =
                out.iter_mut().map(|a| a.view_mut()).collect();
            self.fill_views(&mut views)?;
        }
        Ok(out)
    }

    fn fill_views(&mut self, batches: &mut [ArrayViewMut2<'_, f32>]) -> Result<()> {
        let dims = self.dims();
        for (b, &d) in batches.iter().zip(&dims) {
            if b.ncols() != d {
                return Err(Error::InputWidth {
                    expected: d,
                    actual: b.ncols(),
                });
            }
        }
        let n = batches.first().map_or(0, |b| b.nrows());
        let mut r = 0;
        while r < n {
            if self.group.is_none() {
                self.load_group()?;
            }
            let (values, perm) = self.group.as_ref().expect("loaded above");
            let start = self.cursor.index;
            if start >= perm.len() {
                self.cursor.index = 0;
                self.cursor.group += 1;
                if self.cursor.group == self.n_groups() {
                    self.cursor.group = 0;
                    self.cursor.epoch += 1;
                }
                self.group = None;
                continue;
            }
            let take = (n - r).min(perm.len() - start);
            for ((batch, buf), &d) in batches.iter_mut().zip(values).zip(&dims) {
                for (i, &src) in perm[start..start + take].iter().enumerate() {
                    let src = src as usize;
                    batch
                        .row_mut(r + i)
                        .iter_mut()
                        .zip(&buf[src * d..src * d + d])
                        .for_each(|(o, &v)| *o = v);
                }
            }
            self.cursor.index += take;
            r += take;
        }
        Ok(())
    }
}

/// A reader handing out one hook is an [`ActivationSource`] (see [`ShardReader::with_hooks`]);
/// with several, `next_batch` fails with [`Error::TrainConfig`].
impl ActivationSource for ShardReader {
    fn d_in(&self) -> usize {
        self.manifest.hooks[self.selected[0]].d
    }

    fn next_batch(&mut self, batch: ArrayViewMut2<'_, f32>) -> Result<()> {
        if self.selected.len() != 1 {
            return Err(config_err(format!(
                "this reader hands out {} hooks; use next_batches, or with_hooks(&[one])",
                self.selected.len()
            )));
        }
        self.fill_views(&mut [batch])
    }

    fn position(&self) -> Value {
        serde_json::to_value(ReaderPosition {
            kind: READER_KIND.into(),
            cursor: self.cursor,
        })
        .expect("position serialises")
    }

    fn seek(&mut self, position: &Value) -> Result<()> {
        let pos: ReaderPosition = serde_json::from_value(position.clone())
            .map_err(|e| data_err(format!("not a shard-reader position: {e}")))?;
        if pos.kind != READER_KIND || pos.cursor.group >= self.n_groups() {
            return Err(data_err(format!(
                "not a position of this shard reader: {position}"
            )));
        }
        self.cursor = pos.cursor;
        self.load_group()?;
        let rows = self.group.as_ref().map_or(0, |g| g.1.len());
        if self.cursor.index > rows {
            return Err(data_err(format!(
                "position row {} beyond the {rows} rows of its shard group",
                self.cursor.index
            )));
        }
        Ok(())
    }
}

impl<B: Backend> ActivationStore<B> {
    /// Writes the next `n_rows` rows to `dir` as shards of at most `rows_per_shard` rows
    /// (`shard_00000.safetensors`, …: one f32 tensor `[rows, d]` per hook, named by the hook)
    /// and then `manifest.json`, each file atomically (the manifest last, so a directory whose
    /// writing died has no manifest, or the previous one). Returns the manifest.
    ///
    /// # Errors
    /// [`Error::TrainConfig`] for zero sizes; [`Error::Tensors`] / [`Error::Io`] on write
    /// failure; as [`ActivationStore::next_batches`].
    pub fn write_shards(
        &mut self,
        dir: &Path,
        n_rows: u64,
        rows_per_shard: usize,
    ) -> Result<ShardManifest> {
        if n_rows == 0 || rows_per_shard == 0 {
            return Err(config_err("n_rows and rows_per_shard must be positive"));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let tokens_before = self.tokens_processed;
        let names: Vec<String> = self.points.iter().map(ToString::to_string).collect();
        let mut shards = Vec::new();
        let mut left = n_rows;
        while left > 0 {
            let rows = left.min(rows_per_shard as u64) as usize;
            let batches = self.next_batches(rows)?;
            let file = format!("shard_{:05}.safetensors", shards.len());
            let shapes: Vec<[usize; 2]> = batches.iter().map(|b| [b.nrows(), b.ncols()]).collect();
            let tensors = names.iter().zip(&batches).zip(&shapes).map(|((n, b), s)| {
                (
                    n.as_str(),
                    &s[..],
                    b.as_slice()
                        .expect("freshly allocated arrays are contiguous"),
                )
            });
            interp_core::write_safetensors(&dir.join(&file), tensors)?;
            shards.push(ShardInfo { file, rows });
            left -= rows as u64;
        }
        let manifest = ShardManifest {
            format: SHARD_FORMAT.into(),
            model_name: self.cfg.model_name.clone(),
            context_size: self.cfg.context_size,
            prepend_bos: self.cfg.prepend_bos,
            exclude_bos: self.cfg.exclude_bos,
            seed: self.cfg.seed,
            hooks: names
                .iter()
                .zip(&self.dims)
                .map(|(name, &d)| ShardHook {
                    name: name.clone(),
                    d,
                })
                .collect(),
            shards,
            n_rows,
            n_tokens: self.tokens_processed - tokens_before,
        };
        let path = dir.join(MANIFEST);
        let json = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
        interp_core::write_atomic(&path, &json)?;
        Ok(manifest)
    }
}
