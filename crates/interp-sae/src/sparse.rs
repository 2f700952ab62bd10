//! Sparse latent codes: compressed rows of (feature index, activation).

use ndarray::{Array2, ArrayView2};

use crate::error::{check_finite, Error, Result};

/// Per-token statistics of an input normalisation, kept so decoding can undo it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RowNorm {
    /// Subtracted before encoding (layer norm mean; 0 otherwise).
    pub shift: f32,
    /// Inputs were divided by this (layer-norm `σ + ε`, or `‖x‖/√d_in`).
    pub scale: f32,
}

impl RowNorm {
    /// Maps a decoded row from the normalised space back to the input space, in place.
    pub(crate) fn undo(self, row: &mut [f32]) {
        row.iter_mut()
            .for_each(|v| *v = *v * self.scale + self.shift);
    }
}

/// Latent activations of `n` tokens in compressed sparse row form: only non-zero entries.
///
/// Produced by [`crate::Sae::encode_sparse`]; consumed by [`crate::Sae::decode_sparse`], which
/// touches only the decoder rows of active latents.
#[derive(Clone, Debug, PartialEq)]
pub struct SparseCodes {
    pub(crate) d_sae: usize,
    pub(crate) indptr: Vec<usize>,
    pub(crate) indices: Vec<u32>,
    pub(crate) values: Vec<f32>,
    pub(crate) norms: Option<Vec<RowNorm>>,
}

impl SparseCodes {
    /// Builds codes from per-row `(indices, values)` (any order; stored sorted by index).
    ///
    /// # Errors
    /// [`Error::FeatureOutOfRange`] for an index `≥ d_sae`, [`Error::DuplicateFeature`] for an
    /// index given twice in a row, [`Error::Shape`] when a row's index and value lists differ in
    /// length, [`Error::NonFinite`] for a NaN/inf value.
    pub fn from_rows<'a>(
        d_sae: usize,
        rows: impl IntoIterator<Item = (&'a [u32], &'a [f32])>,
    ) -> Result<Self> {
        let mut codes = SparseCodes::empty(d_sae);
        for (idx, val) in rows {
            if idx.len() != val.len() {
                return Err(Error::Shape {
                    key: "values".into(),
                    expected: vec![idx.len()],
                    actual: vec![val.len()],
                });
            }
            if let Some(&bad) = idx.iter().find(|&&i| i as usize >= d_sae) {
                return Err(Error::FeatureOutOfRange {
                    index: bad as usize,
                    d_sae,
                });
            }
            if let Some(p) = val.iter().position(|v| !v.is_finite()) {
                return Err(Error::NonFinite {
                    key: "values".into(),
                    index: codes.values.len() + p,
                });
            }
            let mut pairs: Vec<(u32, f32)> = idx.iter().copied().zip(val.iter().copied()).collect();
            pairs.sort_unstable_by_key(|p| p.0);
            if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(Error::DuplicateFeature {
                    row: codes.n_rows(),
                    index: w[0].0 as usize,
                });
            }
            codes.indices.extend(pairs.iter().map(|p| p.0));
            codes.values.extend(pairs.iter().map(|p| p.1));
            codes.indptr.push(codes.indices.len());
        }
        Ok(codes)
    }

    /// Codes of dense activations `[n, d_sae]` (zeros dropped).
    ///
    /// # Errors
    /// [`Error::NonFinite`] for a NaN/inf activation.
    pub fn from_dense(acts: ArrayView2<'_, f32>) -> Result<Self> {
        check_finite("feature_acts", acts.iter())?;
        Ok(Self::nonzeros(acts))
    }

    /// Codes of dense activations already checked to be finite.
    pub(crate) fn nonzeros(acts: ArrayView2<'_, f32>) -> Self {
        let mut codes = SparseCodes::empty(acts.ncols());
        for row in acts.rows() {
            for (j, &v) in row.iter().enumerate() {
                if v != 0.0 {
                    codes.indices.push(j as u32);
                    codes.values.push(v);
                }
            }
            codes.indptr.push(codes.indices.len());
        }
        codes
    }

    pub(crate) fn empty(d_sae: usize) -> Self {
        SparseCodes {
            d_sae,
            indptr: vec![0],
            indices: Vec::new(),
            values: Vec::new(),
            norms: None,
        }
    }

    /// Number of tokens (rows).
    pub fn n_rows(&self) -> usize {
        self.indptr.len() - 1
    }

    /// Number of latents (columns).
    pub fn d_sae(&self) -> usize {
        self.d_sae
    }

    /// Total number of active entries.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Active latent indices and their activations for token `row`.
    ///
    /// # Panics
    /// If `row >= n_rows()`.
    pub fn row(&self, row: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.indptr[row], self.indptr[row + 1]);
        (&self.indices[a..b], &self.values[a..b])
    }

    /// Number of active latents per token (L0).
    pub fn l0(&self) -> Vec<usize> {
        self.indptr.windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// The activation of `feature` at every token (a column), `0` where inactive.
    ///
    /// # Errors
    /// [`Error::FeatureOutOfRange`] if `feature >= d_sae`.
    pub fn feature_column(&self, feature: usize) -> Result<Vec<f32>> {
        if feature >= self.d_sae {
            return Err(Error::FeatureOutOfRange {
                index: feature,
                d_sae: self.d_sae,
            });
        }
        Ok((0..self.n_rows())
            .map(|r| {
                let (idx, val) = self.row(r);
                idx.iter()
                    .position(|&i| i as usize == feature)
                    .map_or(0.0, |p| val[p])
            })
            .collect())
    }

    /// Dense `[n, d_sae]` activations.
    pub fn to_dense(&self) -> Array2<f32> {
        let mut out = Array2::zeros((self.n_rows(), self.d_sae));
        for (r, mut row) in out.rows_mut().into_iter().enumerate() {
            let (idx, val) = self.row(r);
            for (&i, &v) in idx.iter().zip(val) {
                row[i as usize] = v;
            }
        }
        out
    }

    /// Per-token normalisation statistics recorded by the encoder (None when the SAE does not
    /// normalise its input per token).
    pub fn row_norms(&self) -> Option<&[RowNorm]> {
        self.norms.as_deref()
    }
}
