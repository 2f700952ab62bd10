//! Sets of feature directions, unit-normalised once, and the cosines between them.

use interp_core::tiles::{for_each_tile, normalized_rows, TileShape};
use interp_sae::Sae;
use ndarray::{Array2, ArrayView1, ArrayView2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{check_indices, Error, Result};

/// Which weight matrix of an SAE gives the feature directions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Matrix {
    /// Decoder rows `W_dec[i]` (what a feature writes).
    Dec,
    /// Encoder columns `W_enc[:, i]` (what a feature reads).
    Enc,
}

impl Matrix {
    /// `"decoder"` or `"encoder"`.
    pub fn long_name(self) -> &'static str {
        match self {
            Matrix::Dec => "decoder",
            Matrix::Enc => "encoder",
        }
    }
}

impl std::str::FromStr for Matrix {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "dec" | "decoder" | "W_dec" => Ok(Matrix::Dec),
            "enc" | "encoder" | "W_enc" => Ok(Matrix::Enc),
            other => Err(Error::invalid(format!(
                "matrix must be `dec` or `enc`, got `{other}`"
            ))),
        }
    }
}

/// `F` directions in `R^d`, stored unit-normalised (row-major, contiguous) with their original
/// norms.
///
/// **Zero vectors** (a dead decoder row, or a feature whose activation is 0 in
/// [`Directions::activation_weighted`]) stay zero after normalisation: every cosine involving
/// one is 0, so they never appear among the most aligned or most opposed pairs unless all
/// other cosines are of the same sign; [`Directions::is_zero`] lets callers mask them.
#[derive(Clone, Debug)]
pub struct Directions {
    unit: Array2<f32>,
    norms: Vec<f32>,
}

impl Directions {
    /// From the rows of `rows` (`[F, d]`).
    ///
    /// # Errors
    /// [`Error::NonFinite`] if a value is NaN or infinite.
    pub fn from_rows(rows: ArrayView2<'_, f32>) -> Result<Self> {
        check_finite("directions", rows)?;
        Ok(Self::from_finite_rows(rows))
    }

    /// From the columns of `cols` (`[d, F]`, e.g. an encoder `W_enc`).
    ///
    /// # Errors
    /// [`Error::NonFinite`] if a value is NaN or infinite.
    pub fn from_columns(cols: ArrayView2<'_, f32>) -> Result<Self> {
        Self::from_rows(cols.t())
    }

    fn from_finite_rows(rows: ArrayView2<'_, f32>) -> Self {
        let norms = rows
            .axis_iter(Axis(0))
            .map(|r| {
                r.iter()
                    .map(|&v| (v as f64) * (v as f64))
                    .sum::<f64>()
                    .sqrt() as f32
            })
            .collect();
        let rows = if rows.is_standard_layout() {
            rows
        } else {
            // Transposed input (encoder columns): normalise from a contiguous copy so that the
            // per-row passes stream memory.
            return Self::from_finite_rows_owned(rows.as_standard_layout().into_owned(), norms);
        };
        Directions {
            unit: normalized_rows(rows),
            norms,
        }
    }

    fn from_finite_rows_owned(mut rows: Array2<f32>, norms: Vec<f32>) -> Self {
        let d = rows.ncols();
        if d > 0 {
            let slice = rows.as_slice_mut().expect("standard layout");
            slice
                .par_chunks_mut(d)
                .zip(norms.par_iter())
                .for_each(|(row, &n)| {
                    if n > 0.0 {
                        let inv = 1.0 / n as f64;
                        row.iter_mut().for_each(|v| *v = (*v as f64 * inv) as f32);
                    } else {
                        row.fill(0.0);
                    }
                });
        }
        Directions { unit: rows, norms }
    }

    /// The decoder rows `W_dec[i]` of an SAE.
    pub fn decoder(sae: &Sae) -> Self {
        // `Sae::new` has checked the weights are finite.
        Self::from_finite_rows(sae.weights().w_dec.view())
    }

    /// The encoder columns `W_enc[:, i]` of an SAE.
    pub fn encoder(sae: &Sae) -> Self {
        Self::from_finite_rows(sae.weights().w_enc.t())
    }

    /// The decoder or encoder directions of an SAE.
    pub fn of(sae: &Sae, matrix: Matrix) -> Self {
        match matrix {
            Matrix::Dec => Self::decoder(sae),
            Matrix::Enc => Self::encoder(sae),
        }
    }

    /// Activation-weighted representations `a_i · W_dec[i]` (seeds 000/001's `feat_repr`) for
    /// one token's (or a prompt-averaged) activation vector `acts` (`[d_sae]`).
    ///
    /// Since `cos(a_i w_i, a_j w_j) = sign(a_i a_j) · cos(w_i, w_j)`, the cosines equal the
    /// decoder cosines for two active (positive) features. **Zero-activation policy:** a feature
    /// with `a_i = 0` has the zero representation; its cosines are all 0 (see [`Directions`])
    /// and [`Directions::is_zero`] is true for it. Negative activations (possible with some
    /// architectures' pre-activations) flip the direction.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] if `acts.len() != d_sae`; [`Error::NonFinite`] for a NaN or
    /// infinite activation.
    pub fn activation_weighted(sae: &Sae, acts: ArrayView1<'_, f32>) -> Result<Self> {
        let w = &sae.weights().w_dec;
        if acts.len() != w.nrows() {
            return Err(Error::LengthMismatch {
                what: "activations".into(),
                expected: w.nrows(),
                actual: acts.len(),
            });
        }
        if acts.iter().any(|a| !a.is_finite()) {
            return Err(Error::NonFinite {
                what: "activations".into(),
            });
        }
        let mut rows = w.to_owned();
        rows.axis_iter_mut(Axis(0))
            .zip(acts.iter())
            .for_each(|(mut r, &a)| r.mapv_inplace(|v| v * a));
        Self::from_rows(rows.view())
    }

    /// Number of directions `F`.
    pub fn len(&self) -> usize {
        self.unit.nrows()
    }

    /// `true` when there are no directions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Width `d` of the space.
    pub fn dim(&self) -> usize {
        self.unit.ncols()
    }

    /// The unit-normalised directions, `[F, d]`, contiguous.
    pub fn unit(&self) -> ArrayView2<'_, f32> {
        self.unit.view()
    }

    /// The Euclidean norm of each original direction.
    pub fn norms(&self) -> &[f32] {
        &self.norms
    }

    /// Whether direction `i` is the zero vector (cosines with it are 0).
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn is_zero(&self, i: usize) -> bool {
        self.norms[i] == 0.0
    }

    /// Unit direction `i`.
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`] if `i >= len()`.
    pub fn row(&self, i: usize) -> Result<ArrayView1<'_, f32>> {
        check_indices("direction", &[i], self.len())?;
        Ok(self.unit.row(i))
    }

    /// `cos(self[i], other[j])` (0 if either is a zero vector).
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`], [`Error::DimensionMismatch`].
    pub fn cosine_with(&self, i: usize, other: &Directions, j: usize) -> Result<f32> {
        same_dim(self, other)?;
        Ok(dot(self.row(i)?, other.row(j)?))
    }

    /// `cos(self[i], self[j])`.
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`].
    pub fn cosine(&self, i: usize, j: usize) -> Result<f32> {
        self.cosine_with(i, self, j)
    }

    /// The directions of every set in `parts`, stacked in order (e.g. the top features of
    /// SAEs at several layers, each `Directions::decoder(&sae).select(&top)?`).
    ///
    /// # Errors
    /// [`Error::Empty`] when `parts` is empty; [`Error::DimensionMismatch`] when two sets live
    /// in spaces of different widths.
    pub fn concat(parts: &[Directions]) -> Result<Directions> {
        let first = parts
            .first()
            .ok_or_else(|| Error::empty("direction sets"))?;
        for p in parts {
            same_dim(first, p)?;
        }
        let views: Vec<ArrayView2<'_, f32>> = parts.iter().map(|p| p.unit.view()).collect();
        Ok(Directions {
            unit: ndarray::concatenate(Axis(0), &views).expect("equal widths checked"),
            norms: parts.iter().flat_map(|p| p.norms.iter().copied()).collect(),
        })
    }

    /// The directions at `indices`, in that order (repeats allowed).
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`].
    pub fn select(&self, indices: &[usize]) -> Result<Directions> {
        check_indices("selection", indices, self.len())?;
        Ok(Directions {
            unit: self.unit.select(Axis(0), indices),
            norms: indices.iter().map(|&i| self.norms[i]).collect(),
        })
    }
}

/// Dot product of two equal-length views, accumulated in f64 lanes of f32 products.
pub(crate) fn dot(a: ArrayView1<'_, f32>, b: ArrayView1<'_, f32>) -> f32 {
    a.iter()
        .zip(b.iter())
        .map(|(&x, &y)| (x * y) as f64)
        .sum::<f64>() as f32
}

pub(crate) fn same_dim(a: &Directions, b: &Directions) -> Result<()> {
    if a.dim() != b.dim() {
        return Err(Error::DimensionMismatch {
            a: a.dim(),
            b: b.dim(),
        });
    }
    Ok(())
}

fn check_finite(what: &str, m: ArrayView2<'_, f32>) -> Result<()> {
    let bad = match m.as_slice_memory_order() {
        Some(s) => s.par_iter().any(|v| !v.is_finite()),
        None => m.iter().any(|v| !v.is_finite()),
    };
    if bad {
        return Err(Error::NonFinite { what: what.into() });
    }
    Ok(())
}

/// Row-wise cosines `cos(a[i], b[i])` of two equally long sets.
///
/// # Errors
/// [`Error::DimensionMismatch`]; [`Error::LengthMismatch`] if `a.len() != b.len()`.
pub fn paired_cosines(a: &Directions, b: &Directions) -> Result<Vec<f32>> {
    same_dim(a, b)?;
    if a.len() != b.len() {
        return Err(Error::LengthMismatch {
            what: "paired directions".into(),
            expected: a.len(),
            actual: b.len(),
        });
    }
    Ok((0..a.len())
        .into_par_iter()
        .map(|i| dot(a.unit.row(i), b.unit.row(i)))
        .collect())
}

/// Encoder–decoder self-similarity `cos(W_enc[:, i], W_dec[i])` for every feature of `sae`
/// (seed 004's positive control).
pub fn self_similarity(sae: &Sae) -> Vec<f32> {
    paired_cosines(&Directions::encoder(sae), &Directions::decoder(sae))
        .expect("an SAE's encoder and decoder have the same shape")
}

/// The full cosine matrix `[|rows_a|, |rows_b|]` between `a[rows_a]` and `b[rows_b]` (e.g. the
/// features chosen for a heatmap), computed in tiles. Memory is the output plus the selected
/// directions; for all-pairs questions over whole SAEs use [`crate::extremes`] instead.
///
/// # Errors
/// [`Error::IndexOutOfRange`], [`Error::DimensionMismatch`].
pub fn similarity_matrix(
    a: &Directions,
    rows_a: &[usize],
    b: &Directions,
    rows_b: &[usize],
) -> Result<Array2<f32>> {
    same_dim(a, b)?;
    let sa = a.select(rows_a)?;
    let sb = b.select(rows_b)?;
    let mut out = Array2::<f32>::zeros((rows_a.len(), rows_b.len()));
    for_each_tile(sa.unit(), Some(sb.unit()), TileShape::default(), |tile| {
        let (m, n) = tile.values.dim();
        out.slice_mut(ndarray::s![
            tile.row0..tile.row0 + m,
            tile.col0..tile.col0 + n
        ])
        .assign(&tile.values);
    });
    Ok(out)
}

/// The full cosine matrix among the directions of several sets stacked in order (see
/// [`Directions::concat`]): seed 001's cross-layer heatmap of the top "happy" features of the
/// SAE at every layer, row and column `r` being the `r`-th direction of the stack.
///
/// # Errors
/// See [`Directions::concat`].
pub fn joint_similarity_matrix(parts: &[Directions]) -> Result<Array2<f32>> {
    let all = Directions::concat(parts)?;
    let every: Vec<usize> = (0..all.len()).collect();
    similarity_matrix(&all, &every, &all, &every)
}

/// Mean of several activation vectors (`[n, d_sae]` → `[d_sae]`), e.g. a feature's activation
/// at the same word over several prompts as in seed 001, to pass to
/// [`Directions::activation_weighted`].
///
/// # Errors
/// [`Error::Empty`] when `acts` has no rows.
pub fn mean_activations(acts: ArrayView2<'_, f32>) -> Result<ndarray::Array1<f32>> {
    acts.mean_axis(Axis(0))
        .ok_or_else(|| Error::empty("activation rows"))
}
