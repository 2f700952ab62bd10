//! Tiled traversal of the dot-product (or cosine) matrix `A Bᵀ` of the rows of one or two
//! row-major f32 matrices, with bounded memory: the `F × F` matrix is never materialised.
//!
//! Each tile is one GEMM (`matmul_into`, which uses every core) into a reused buffer of at most
//! `TileShape::rows × TileShape::cols` floats; the tile is then handed to the caller's closure,
//! split into bands of rows that rayon processes in parallel. For a single matrix (`b = None`)
//! only the upper triangle is visited: the first tile of every row block starts on the
//! diagonal, and [`Tile::upper_start`] says where the strict upper triangle (`j > i`) begins in
//! each row of a tile that straddles it.
//!
//! [`gram_stats`] is the orthogonality statistic of SAE training (mean / max / RMS of
//! `|cos(w_i, w_j)|` over `i ≠ j`) computed this way.

use ndarray::{s, Array2, ArrayView2};
use rayon::prelude::*;

/// Rows and columns of one GEMM tile (`rows × cols × 4` bytes of scratch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileShape {
    /// Rows of `A` per tile.
    pub rows: usize,
    /// Rows of `B` (columns of the product) per tile.
    pub cols: usize,
}

impl Default for TileShape {
    /// 1024 × 4096 (16 MiB of f32 scratch).
    fn default() -> Self {
        Self {
            rows: 1024,
            cols: 4096,
        }
    }
}

impl TileShape {
    /// Both sides at least 1.
    fn sanitized(self) -> Self {
        Self {
            rows: self.rows.max(1),
            cols: self.cols.max(1),
        }
    }
}

/// A band of rows of one tile of `A Bᵀ`: `values[[r, c]] = a[row0 + r] · b[col0 + c]`.
#[derive(Clone, Copy, Debug)]
pub struct Tile<'a> {
    /// Global index (in `A`) of the first row.
    pub row0: usize,
    /// Global index (in `B`) of the first column.
    pub col0: usize,
    /// The products, `[rows, cols]`, row-major.
    pub values: ArrayView2<'a, f32>,
    /// `true` for a single matrix (`B = A`): only entries with `col > row` (globally) belong to
    /// the strict upper triangle; see [`Tile::upper_start`].
    pub symmetric: bool,
}

impl Tile<'_> {
    /// First local column of local row `r` that is part of the traversal: for a single matrix,
    /// the first column with global index `> row0 + r` (strict upper triangle, self excluded);
    /// for two matrices, 0.
    #[inline]
    pub fn upper_start(&self, r: usize) -> usize {
        if self.symmetric {
            (self.row0 + r + 1)
                .saturating_sub(self.col0)
                .min(self.values.ncols())
        } else {
            0
        }
    }
}

/// Rows per parallel band of a tile handed to the closures of [`fold_tiles`].
const BAND: usize = 32;

/// Visits `a bᵀ` (or `a aᵀ`'s upper triangle, diagonal tiles included, when `b` is `None`) tile
/// by tile. `fold` receives bands of at most 32 rows of each tile, in parallel (rayon), with a
/// per-task accumulator made by `identity`; the accumulators are merged with `reduce`.
///
/// Memory: one `shape.rows × shape.cols` f32 buffer, whatever the matrix sizes. The order in
/// which bands reach `fold` is unspecified; make `reduce` associative (and the result
/// order-independent) for reproducible output.
///
/// # Panics
/// If `a` and `b` have different numbers of columns.
pub fn fold_tiles<T, I, F, R>(
    a: ArrayView2<'_, f32>,
    b: Option<ArrayView2<'_, f32>>,
    shape: TileShape,
    identity: I,
    fold: F,
    reduce: R,
) -> T
where
    T: Send,
    I: Fn() -> T + Sync + Send,
    F: Fn(T, &Tile<'_>) -> T + Sync + Send,
    R: Fn(T, T) -> T + Sync + Send,
{
    let mut acc = Some(identity());
    for_each_tile(a, b, shape, |tile| {
        let rows = tile.values.nrows();
        let part = (0..rows.div_ceil(BAND))
            .into_par_iter()
            .fold(&identity, |t, band| {
                let r0 = band * BAND;
                let r1 = (r0 + BAND).min(rows);
                let sub = Tile {
                    row0: tile.row0 + r0,
                    col0: tile.col0,
                    values: tile.values.slice(s![r0..r1, ..]),
                    symmetric: tile.symmetric,
                };
                fold(t, &sub)
            })
            .reduce(&identity, &reduce);
        let prev = acc.take().expect("accumulator present");
        acc = Some(reduce(prev, part));
    });
    acc.expect("accumulator present")
}

/// Visits `a bᵀ` tile by tile, in row-major tile order, calling `f` once per whole tile (the
/// GEMM of each tile is parallel; `f` runs on the calling thread and may itself use rayon).
/// With `b = None`, tiles cover the upper triangle of `a aᵀ`: for every block of `shape.rows`
/// rows starting at `r0`, the column tiles start at `r0`.
///
/// # Panics
/// If `a` and `b` have different numbers of columns.
pub fn for_each_tile<F>(
    a: ArrayView2<'_, f32>,
    b: Option<ArrayView2<'_, f32>>,
    shape: TileShape,
    mut f: F,
) where
    F: FnMut(&Tile<'_>),
{
    let shape = shape.sanitized();
    let symmetric = b.is_none();
    let b = b.unwrap_or(a);
    assert_eq!(
        a.ncols(),
        b.ncols(),
        "tiles: both matrices need the same number of columns"
    );
    let (n_a, n_b) = (a.nrows(), b.nrows());
    if n_a == 0 || n_b == 0 {
        return;
    }
    let mut buf = vec![0f32; shape.rows.min(n_a) * shape.cols.min(n_b)];
    for r0 in (0..n_a).step_by(shape.rows) {
        let r1 = (r0 + shape.rows).min(n_a);
        let c_start = if symmetric { r0 } else { 0 };
        for c0 in (c_start..n_b).step_by(shape.cols) {
            let c1 = (c0 + shape.cols).min(n_b);
            let (m, n) = (r1 - r0, c1 - c0);
            let out = &mut buf[..m * n];
            let mut view =
                ndarray::ArrayViewMut2::from_shape((m, n), out).expect("buffer sized for tile");
            crate::matmul_into(
                a.slice(s![r0..r1, ..]),
                b.slice(s![c0..c1, ..]).t(),
                view.view_mut(),
            );
            let tile = Tile {
                row0: r0,
                col0: c0,
                values: view.view(),
                symmetric,
            };
            f(&tile);
        }
    }
}

/// The rows of `a` scaled to unit Euclidean norm (in f64, stored as f32), contiguous. Rows of
/// norm 0 stay zero (their cosine with anything is then 0). Non-finite values propagate.
pub fn normalized_rows(a: ArrayView2<'_, f32>) -> Array2<f32> {
    let (n, d) = a.dim();
    let mut out = vec![0f32; n * d];
    if d > 0 {
        out.par_chunks_mut(d).enumerate().for_each(|(i, dst)| {
            let src = a.row(i);
            let norm = src
                .iter()
                .map(|&v| (v as f64) * (v as f64))
                .sum::<f64>()
                .sqrt();
            if norm > 0.0 {
                let inv = 1.0 / norm;
                dst.iter_mut()
                    .zip(src.iter())
                    .for_each(|(d, &v)| *d = (v as f64 * inv) as f32);
            } else if !norm.is_finite() {
                dst.fill(f32::NAN);
            }
        });
    }
    Array2::from_shape_vec((n, d), out).expect("shape matches")
}

/// Orthogonality statistics of a set of directions: over all ordered pairs `i ≠ j` of the
/// unit-normalised rows, `|cos(w_i, w_j)|`.
///
/// Zero rows are kept as zero vectors: each of their pairs counts with cosine 0 (so they lower
/// the mean and never raise the maximum). With fewer than two rows every field is 0.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GramStats {
    /// `mean_{i≠j} |G_ij|` (seed 002's orthogonality metric).
    pub mean_abs_off_diagonal: f64,
    /// `max_{i≠j} |G_ij|`.
    pub max_abs_off_diagonal: f64,
    /// `sqrt(mean_{i≠j} G_ij²)`, i.e. `‖G − diag(G)‖_F / sqrt(F(F−1))`.
    pub rms_off_diagonal: f64,
}

/// [`GramStats`] of the rows of `rows` (`[F, d]`, e.g. an SAE's `W_dec`), computed tile by tile
/// over the upper triangle of the cosine Gram matrix (memory: a normalised copy of `rows` plus one
/// 16 MiB tile; never `F × F`). Sums are accumulated in f64.
pub fn gram_stats(rows: ArrayView2<'_, f32>) -> GramStats {
    let n = rows.nrows();
    if n < 2 {
        return GramStats::default();
    }
    let unit = normalized_rows(rows);
    let (sum_abs, sum_sq, max_abs) = fold_tiles(
        unit.view(),
        None,
        TileShape::default(),
        || (0f64, 0f64, 0f32),
        |(mut sa, mut sq, mut mx), tile| {
            for (r, row) in tile.values.outer_iter().enumerate() {
                let row = row.as_slice().expect("tile rows are contiguous");
                let row = &row[tile.upper_start(r)..];
                // f32 lanes per row (≤ 4096 entries of magnitude ≤ 1), f64 across rows.
                let (mut a, mut q, mut m) = (0f32, 0f32, 0f32);
                for &v in row {
                    let av = v.abs();
                    a += av;
                    q += v * v;
                    m = m.max(av);
                }
                sa += a as f64;
                sq += q as f64;
                mx = mx.max(m);
            }
            (sa, sq, mx)
        },
        |x, y| (x.0 + y.0, x.1 + y.1, x.2.max(y.2)),
    );
    let pairs = (n as f64) * (n as f64 - 1.0) / 2.0;
    GramStats {
        mean_abs_off_diagonal: sum_abs / pairs,
        max_abs_off_diagonal: max_abs as f64,
        rms_off_diagonal: (sum_sq / pairs).sqrt(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
        let mut s = seed;
        Array2::from_shape_simple_fn((rows, cols), || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
    }

    fn brute(a: &Array2<f32>) -> GramStats {
        let u = normalized_rows(a.view());
        let n = u.nrows();
        let (mut sa, mut sq, mut mx, mut cnt) = (0f64, 0f64, 0f64, 0f64);
        for i in 0..n {
            for j in 0..n {
                if i == j {
                    continue;
                }
                let g: f64 = (0..u.ncols())
                    .map(|k| u[[i, k]] as f64 * u[[j, k]] as f64)
                    .sum();
                sa += g.abs();
                sq += g * g;
                mx = mx.max(g.abs());
                cnt += 1.0;
            }
        }
        GramStats {
            mean_abs_off_diagonal: sa / cnt,
            max_abs_off_diagonal: mx,
            rms_off_diagonal: (sq / cnt).sqrt(),
        }
    }

    fn close(a: GramStats, b: GramStats) {
        assert!(
            (a.mean_abs_off_diagonal - b.mean_abs_off_diagonal).abs() < 1e-5,
            "{a:?} {b:?}"
        );
        assert!(
            (a.max_abs_off_diagonal - b.max_abs_off_diagonal).abs() < 1e-5,
            "{a:?} {b:?}"
        );
        assert!(
            (a.rms_off_diagonal - b.rms_off_diagonal).abs() < 1e-5,
            "{a:?} {b:?}"
        );
    }

    #[test]
    fn gram_stats_matches_brute_force() {
        for (n, d, seed) in [(2, 3, 1), (7, 5, 2), (150, 17, 3), (1100, 9, 4)] {
            let a = matrix(n, d, seed);
            close(gram_stats(a.view()), brute(&a));
        }
    }

    #[test]
    fn zero_rows_count_as_cosine_zero_and_tiny_inputs_are_zero() {
        let mut a = matrix(40, 6, 9);
        a.row_mut(3).fill(0.0);
        a.row_mut(17).fill(0.0);
        close(gram_stats(a.view()), brute(&a));
        assert_eq!(gram_stats(matrix(1, 4, 1).view()), GramStats::default());
        assert_eq!(gram_stats(matrix(0, 4, 1).view()), GramStats::default());
        let orth = Array2::<f32>::eye(5);
        assert_eq!(gram_stats(orth.view()), GramStats::default());
    }

    #[test]
    fn tiles_cover_upper_triangle_once_and_rectangles_fully() {
        let a = matrix(23, 4, 5);
        let b = matrix(11, 4, 6);
        for shape in [
            TileShape { rows: 4, cols: 5 },
            TileShape { rows: 7, cols: 3 },
            TileShape {
                rows: 100,
                cols: 100,
            },
        ] {
            let seen = fold_tiles(
                a.view(),
                None,
                shape,
                Vec::new,
                |mut v: Vec<(usize, usize, f32)>, t| {
                    for r in 0..t.values.nrows() {
                        for c in t.upper_start(r)..t.values.ncols() {
                            v.push((t.row0 + r, t.col0 + c, t.values[[r, c]]));
                        }
                    }
                    v
                },
                |mut x, y| {
                    x.extend(y);
                    x
                },
            );
            let mut pairs: Vec<_> = seen.iter().map(|&(i, j, _)| (i, j)).collect();
            pairs.sort();
            let want: Vec<_> = (0..23)
                .flat_map(|i| (i + 1..23).map(move |j| (i, j)))
                .collect();
            assert_eq!(pairs, want, "{shape:?}");
            for &(i, j, v) in &seen {
                let d: f32 = (0..4).map(|k| a[[i, k]] * a[[j, k]]).sum();
                assert!((d - v).abs() < 1e-5);
            }
            let mut n = 0;
            for_each_tile(a.view(), Some(b.view()), shape, |t| {
                for ((r, c), &v) in t.values.indexed_iter() {
                    assert_eq!(t.upper_start(r), 0);
                    let d: f32 = (0..4)
                        .map(|k| a[[t.row0 + r, k]] * b[[t.col0 + c, k]])
                        .sum();
                    assert!((d - v).abs() < 1e-5);
                    n += 1;
                }
            });
            assert_eq!(n, 23 * 11);
        }
    }
}
