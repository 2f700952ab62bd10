//! Where training activations come from: the [`ActivationSource`] trait, and
//! [`ActivationMatrix`], a prepared activation file (or array) shuffled anew each epoch.

use std::path::Path;

use interp_core::SafetensorsFile;
use ndarray::{Array2, ArrayViewMut2};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{check_finite, Error, Result};
use interp_core::rng::SplitMix64;

/// A stream of activation rows for training.
///
/// Implementations must be deterministic given their construction and [`position`]: a trainer
/// resumed from a checkpoint calls [`seek`] with the stored position and must then see exactly
/// the batches an uninterrupted run would have seen.
///
/// [`position`]: ActivationSource::position
/// [`seek`]: ActivationSource::seek
pub trait ActivationSource {
    /// Width of each row.
    fn d_in(&self) -> usize;

    /// Fills every row of `batch` (`[n, d_in]`) with the next activations.
    ///
    /// # Errors
    /// [`Error::Data`] when the source cannot deliver (e.g. a finite stream ran out).
    fn next_batch(&mut self, batch: ArrayViewMut2<'_, f32>) -> Result<()>;

    /// The current position, as JSON a checkpoint can store.
    fn position(&self) -> Value;

    /// Moves to a position returned by [`ActivationSource::position`].
    ///
    /// # Errors
    /// [`Error::Data`] if `position` was not produced by this kind of source.
    fn seek(&mut self, position: &Value) -> Result<()>;
}

/// Activations held in memory, visited in a fresh seeded random order every epoch.
#[derive(Clone, Debug)]
pub struct ActivationMatrix {
    rows: Array2<f32>,
    seed: u64,
    order: Vec<u32>,
    cursor: Cursor,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    epoch: u64,
    index: usize,
}

impl ActivationMatrix {
    /// Wraps `rows` (`[n, d_in]`); `seed` fixes the order of every epoch.
    ///
    /// # Errors
    /// [`Error::Data`] if there are no rows or no columns, [`Error::NonFinite`] for NaN/inf.
    pub fn new(rows: Array2<f32>, seed: u64) -> Result<Self> {
        if rows.nrows() == 0 || rows.ncols() == 0 {
            return Err(Error::Data {
                reason: format!("activation matrix of shape {:?} is empty", rows.shape()),
            });
        }
        if rows.nrows() > u32::MAX as usize {
            return Err(Error::Data {
                reason: format!("{} rows exceed the 2^32 supported", rows.nrows()),
            });
        }
        check_finite("activations", rows.iter())?;
        let mut this = ActivationMatrix {
            order: Vec::new(),
            rows,
            seed,
            cursor: Cursor::default(),
        };
        this.shuffle_epoch();
        Ok(this)
    }

    /// Reads tensor `tensor` of a safetensors file (any float dtype), flattening all leading
    /// dimensions: `[batch, pos, d]` becomes `[batch·pos, d]`. With `tensor = None` the file must
    /// hold exactly one tensor.
    ///
    /// # Errors
    /// [`Error::Tensors`] for unreadable files, [`Error::Data`] for an ambiguous or empty tensor.
    pub fn from_safetensors(path: &Path, tensor: Option<&str>, seed: u64) -> Result<Self> {
        let file = SafetensorsFile::open(path)?;
        let name = match tensor {
            Some(name) => name.to_string(),
            None => {
                let shapes = file.shapes()?;
                let mut names = shapes.keys();
                match (names.next(), names.next()) {
                    (Some(only), None) => only.clone(),
                    _ => {
                        return Err(Error::Data {
                            reason: format!(
                                "{} holds {} tensors ({}); name one",
                                path.display(),
                                shapes.len(),
                                shapes.keys().cloned().collect::<Vec<_>>().join(", ")
                            ),
                        })
                    }
                }
            }
        };
        let t = file.read(&name)?;
        let (&d, lead) = t.shape.split_last().ok_or_else(|| Error::Data {
            reason: format!("tensor `{name}` is a scalar"),
        })?;
        let n = lead.iter().product();
        let rows = Array2::from_shape_vec((n, d), t.data).map_err(|e| Error::Data {
            reason: format!("tensor `{name}`: {e}"),
        })?;
        Self::new(rows, seed)
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.nrows()
    }

    /// Whether there are no rows (never true: construction rejects it).
    pub fn is_empty(&self) -> bool {
        self.rows.nrows() == 0
    }

    /// All rows, in storage order.
    pub fn rows(&self) -> &Array2<f32> {
        &self.rows
    }

    fn shuffle_epoch(&mut self) {
        self.order = (0..self.rows.nrows() as u32).collect();
        SplitMix64::stream(self.seed, self.cursor.epoch).shuffle(&mut self.order);
    }
}

impl ActivationSource for ActivationMatrix {
    fn d_in(&self) -> usize {
        self.rows.ncols()
    }

    fn next_batch(&mut self, mut batch: ArrayViewMut2<'_, f32>) -> Result<()> {
        if batch.ncols() != self.d_in() {
            return Err(Error::InputWidth {
                expected: self.d_in(),
                actual: batch.ncols(),
            });
        }
        for mut out in batch.rows_mut() {
            if self.cursor.index == self.order.len() {
                self.cursor = Cursor {
                    epoch: self.cursor.epoch + 1,
                    index: 0,
                };
                self.shuffle_epoch();
            }
            out.assign(&self.rows.row(self.order[self.cursor.index] as usize));
            self.cursor.index += 1;
        }
        Ok(())
    }

    fn position(&self) -> Value {
        serde_json::to_value(self.cursor).expect("cursor serialises")
    }

    fn seek(&mut self, position: &Value) -> Result<()> {
        let cursor: Cursor = serde_json::from_value(position.clone()).map_err(|e| Error::Data {
            reason: format!("not an activation-matrix position: {e}"),
        })?;
        if cursor.index > self.rows.nrows() {
            return Err(Error::Data {
                reason: format!(
                    "position {} beyond {} rows",
                    cursor.index,
                    self.rows.nrows()
                ),
            });
        }
        self.cursor = cursor;
        self.shuffle_epoch();
        Ok(())
    }
}
