//! Cross-SAE matching: sparse top-`k` matches by decoder cosine (Feature Flow), and one-to-one
//! permutations by linear assignment (Mechanistic Permutability,
//! `P = argmax_P ⟨P, W_dec^(A) W_dec^(B)ᵀ⟩_F`).
//!
//! - [`linear_assignment`]: exact dense LAP by shortest augmenting paths with dual potentials
//!   (the Hungarian method in its `O(n²·m)` form, `n ≤ m`; Jonker–Volgenant without their
//!   initialisation heuristics). Memory is the `n × m` score matrix (f32) plus `O(m)`. The worst
//!   case is cubic; on SAE pairs that share many features the augmenting paths are short, but
//!   budget minutes, not seconds, beyond a few thousand features, and 16k × 16k needs 1 GiB for
//!   the scores alone.
//! - [`sparse_assignment`]: the same problem restricted to each row's top-`k` candidates (from
//!   [`top_k_matches`](crate::top_k_matches)), with an "unmatched" option of score `fallback`
//!   per row so that it is always feasible; Dijkstra with a binary heap over the candidate
//!   graph, exact for that restricted problem. Memory `O(n·k)`; this is the variant for 16k–131k
//!   features.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use ndarray::ArrayView2;
use serde::Serialize;

use crate::directions::{same_dim, Directions};
use crate::error::{Error, Result};
use crate::extremes::Neighbors;

/// A one-to-one matching of the features of `A` into `B`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Assignment {
    /// For each feature of `A`, its match in `B` (`None`: unmatched, when `A` is larger than
    /// `B`, or by choice in [`sparse_assignment`]).
    pub matches: Vec<Option<usize>>,
    /// The score (cosine) of each match (`fallback` or NaN for unmatched rows, see the
    /// producing function).
    pub scores: Vec<f32>,
    /// Sum of the scores of matched rows.
    pub total: f64,
    /// Number of matched rows.
    pub matched: usize,
}

/// Exact maximum-score assignment of the rows of `score` (`[n, m]`) to distinct columns. With
/// `n ≤ m` every row is assigned; with `n > m`, `m` rows are (the problem is solved transposed).
///
/// # Errors
/// [`Error::NonFinite`] for NaN or infinite scores.
pub fn linear_assignment(score: ArrayView2<'_, f32>) -> Result<Vec<Option<usize>>> {
    if score.iter().any(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: "assignment scores".into(),
        });
    }
    let (n, m) = score.dim();
    if n <= m {
        Ok(lap_rows(score).into_iter().map(Some).collect())
    } else {
        let cols = lap_rows(score.t());
        let mut rows = vec![None; n];
        for (j, i) in cols.into_iter().enumerate() {
            rows[i] = Some(j);
        }
        Ok(rows)
    }
}

/// Shortest augmenting paths for `n ≤ m`, minimising `−score`; returns each row's column.
fn lap_rows(score: ArrayView2<'_, f32>) -> Vec<usize> {
    let (n, m) = score.dim();
    debug_assert!(n <= m);
    if n == 0 {
        return Vec::new();
    }
    let contiguous = score.as_standard_layout();
    // 1-based rows and columns; column 0 is the virtual root of each search.
    let mut u = vec![0f64; n + 1];
    let mut v = vec![0f64; m + 1];
    let mut owner = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    let mut minv = vec![f64::INFINITY; m + 1];
    let mut used = vec![false; m + 1];
    for i in 1..=n {
        owner[0] = i;
        let mut j0 = 0usize;
        minv.fill(f64::INFINITY);
        used.fill(false);
        loop {
            used[j0] = true;
            let i0 = owner[j0];
            let row = contiguous.row(i0 - 1);
            let row = row.as_slice().expect("standard layout");
            let ui = u[i0];
            let (mut delta, mut j1) = (f64::INFINITY, 0usize);
            for j in 1..=m {
                if !used[j] {
                    let cur = -(row[j - 1] as f64) - ui - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[owner[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if owner[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            owner[j0] = owner[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut rows = vec![usize::MAX; n];
    for j in 1..=m {
        if owner[j] != 0 {
            rows[owner[j] - 1] = j - 1;
        }
    }
    rows
}

/// One-to-one matching of `a` into `b` maximising the summed cosine, exactly, on the dense
/// `|a| × |b|` cosine matrix (see the [module docs](self) for cost). Refuses more than
/// `max_cells` score cells (e.g. `1 << 28`, 1 GiB).
///
/// # Errors
/// [`Error::DimensionMismatch`]; [`Error::InvalidArgument`] beyond `max_cells`.
pub fn permutation_match(a: &Directions, b: &Directions, max_cells: usize) -> Result<Assignment> {
    same_dim(a, b)?;
    let cells = a.len().saturating_mul(b.len());
    if cells > max_cells {
        return Err(Error::invalid(format!(
            "a dense assignment of {} × {} features needs {cells} score cells (limit {max_cells}); \
             use sparse_assignment on top-k candidates",
            a.len(),
            b.len()
        )));
    }
    let ia: Vec<usize> = (0..a.len()).collect();
    let ib: Vec<usize> = (0..b.len()).collect();
    let score = crate::directions::similarity_matrix(a, &ia, b, &ib)?;
    let matches = linear_assignment(score.view())?;
    let scores: Vec<f32> = matches
        .iter()
        .enumerate()
        .map(|(i, m)| m.map_or(f32::NAN, |j| score[[i, j]]))
        .collect();
    Ok(finish(matches, scores))
}

fn finish(matches: Vec<Option<usize>>, scores: Vec<f32>) -> Assignment {
    let mut total = 0f64;
    let mut matched = 0;
    for (m, s) in matches.iter().zip(&scores) {
        if m.is_some() {
            total += *s as f64;
            matched += 1;
        }
    }
    Assignment {
        matches,
        scores,
        total,
        matched,
    }
}

/// Maximum-score one-to-one matching restricted to candidate edges: row `i` may take any column
/// in `candidates.row(i)` (e.g. its top-`k` matches) or stay unmatched with score `fallback`.
/// Columns are `0..n_cols`. Exact for this restricted problem (successive shortest paths with
/// potentials, Dijkstra on a binary heap); unmatched rows report `fallback` as their score.
///
/// # Errors
/// [`Error::NonFinite`] for a non-finite `fallback` or candidate score;
/// [`Error::IndexOutOfRange`] for a candidate column `>= n_cols`.
pub fn sparse_assignment(
    candidates: &Neighbors,
    n_cols: usize,
    fallback: f32,
) -> Result<Assignment> {
    if !fallback.is_finite() || candidates.scores.iter().any(|s| !s.is_finite()) {
        return Err(Error::NonFinite {
            what: "sparse assignment scores".into(),
        });
    }
    if let Some(&j) = candidates.indices.iter().find(|&&j| j as usize >= n_cols) {
        return Err(Error::IndexOutOfRange {
            what: "assignment candidate".into(),
            index: j as usize,
            len: n_cols,
        });
    }
    let n = candidates.len();
    let k = candidates.k;
    // Columns: 0..n_cols real, n_cols + i the private "unmatched" column of row i.
    let total_cols = n_cols + n;
    let edge_cost = |i: usize, e: usize| -> (usize, f64) {
        if e < k {
            (
                candidates.indices[i * k + e] as usize,
                -(candidates.scores[i * k + e] as f64),
            )
        } else {
            (n_cols + i, -(fallback as f64))
        }
    };
    // Feasible start with every free column at v = 0 (shortest paths then compare real
    // costs): u_i = the row's cheapest edge, so every reduced cost is ≥ 0.
    let mut u: Vec<f64> = (0..n)
        .map(|i| {
            (0..=k)
                .map(|e| edge_cost(i, e).1)
                .fold(f64::INFINITY, f64::min)
        })
        .collect();
    let mut v = vec![0f64; total_cols];
    let mut col_owner = vec![usize::MAX; total_cols];
    let mut row_col = vec![usize::MAX; n];
    let mut dist = vec![f64::INFINITY; total_cols];
    let mut pred = vec![usize::MAX; total_cols]; // row that reached the column
    let mut settled = vec![false; total_cols];
    let mut touched: Vec<usize> = Vec::new();
    let mut settled_list: Vec<usize> = Vec::new();
    let mut heap: BinaryHeap<Reverse<(OrdF64, usize)>> = BinaryHeap::new();
    for s in 0..n {
        heap.clear();
        // Dijkstra over columns: relax the edges of the row just reached (first `s`, then
        // the owner of each settled column) until a free column is settled.
        let (mut row, mut base) = (s, 0.0);
        let (end, big_d) = loop {
            for e in 0..=k {
                let (j, c) = edge_cost(row, e);
                if settled[j] {
                    continue;
                }
                let d = base + (c - u[row] - v[j]).max(0.0);
                if d < dist[j] {
                    if dist[j] == f64::INFINITY {
                        touched.push(j);
                    }
                    dist[j] = d;
                    pred[j] = row;
                    heap.push(Reverse((OrdF64(d), j)));
                }
            }
            let j = loop {
                let Reverse((OrdF64(d), j)) =
                    heap.pop().expect("the private column keeps it feasible");
                if !settled[j] && d <= dist[j] {
                    break j;
                }
            };
            settled[j] = true;
            settled_list.push(j);
            if col_owner[j] == usize::MAX {
                break (j, dist[j]);
            }
            (row, base) = (col_owner[j], dist[j]);
        };
        // Potentials: reached rows up, settled columns down, by D − d.
        u[s] += big_d;
        for &j in &settled_list {
            let delta = big_d - dist[j];
            v[j] -= delta;
            if col_owner[j] != usize::MAX {
                u[col_owner[j]] += delta;
            }
        }
        // Augment along the predecessor chain.
        let mut j = end;
        loop {
            let i = pred[j];
            let prev = row_col[i];
            row_col[i] = j;
            col_owner[j] = i;
            if i == s {
                break;
            }
            j = prev;
        }
        for &j in &touched {
            dist[j] = f64::INFINITY;
            pred[j] = usize::MAX;
            settled[j] = false;
        }
        for &j in &settled_list {
            dist[j] = f64::INFINITY;
            settled[j] = false;
        }
        touched.clear();
        settled_list.clear();
    }
    let mut matches = Vec::with_capacity(n);
    let mut scores = Vec::with_capacity(n);
    for (i, &j) in row_col.iter().enumerate() {
        if j < n_cols {
            let e = (0..k)
                .find(|&e| candidates.indices[i * k + e] as usize == j)
                .expect("matched along a candidate edge");
            matches.push(Some(j));
            scores.push(candidates.scores[i * k + e]);
        } else {
            matches.push(None);
            scores.push(fallback);
        }
    }
    Ok(finish(matches, scores))
}

/// `f64` with a total order, for the heap.
#[derive(Clone, Copy, Debug, PartialEq)]
struct OrdF64(f64);
impl Eq for OrdF64 {}
impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for OrdF64 {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array2};

    fn brute_best(score: &Array2<f32>) -> f64 {
        fn rec(s: &Array2<f32>, i: usize, used: &mut Vec<bool>) -> f64 {
            if i == s.nrows() {
                return 0.0;
            }
            let mut best = f64::NEG_INFINITY;
            for j in 0..s.ncols() {
                if !used[j] {
                    used[j] = true;
                    best = best.max(s[[i, j]] as f64 + rec(s, i + 1, used));
                    used[j] = false;
                }
            }
            best
        }
        rec(score, 0, &mut vec![false; score.ncols()])
    }

    fn total(score: &Array2<f32>, m: &[Option<usize>]) -> f64 {
        m.iter()
            .enumerate()
            .filter_map(|(i, j)| j.map(|j| score[[i, j]] as f64))
            .sum()
    }

    #[test]
    fn dense_lap_is_optimal_on_small_matrices() {
        let mut s = 7u64;
        for (n, m) in [(1, 1), (3, 3), (4, 6), (6, 6), (7, 5)] {
            let score = Array2::from_shape_simple_fn((n, m), || {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) % 1000) as f32 / 500.0 - 1.0
            });
            let got = linear_assignment(score.view()).unwrap();
            let mut cols: Vec<_> = got.iter().flatten().collect();
            assert_eq!(cols.len(), n.min(m));
            cols.sort();
            cols.dedup();
            assert_eq!(cols.len(), n.min(m));
            let want = if n <= m {
                brute_best(&score)
            } else {
                brute_best(&score.t().to_owned())
            };
            assert!((total(&score, &got) - want).abs() < 1e-5, "{n}x{m}");
        }
        let anti = array![[1.0f32, 0.9], [0.9, 0.0]];
        assert_eq!(
            linear_assignment(anti.view()).unwrap(),
            vec![Some(1), Some(0)]
        );
    }

    #[test]
    fn sparse_assignment_with_all_candidates_matches_dense() {
        let mut s = 11u64;
        let (n, m) = (6, 7);
        let score = Array2::from_shape_simple_fn((n, m), || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) % 1000) as f32 / 500.0 - 1.0
        });
        let mut indices = Vec::new();
        let mut scores = Vec::new();
        for i in 0..n {
            for j in 0..m {
                indices.push(j as u32);
                scores.push(score[[i, j]]);
            }
        }
        let cand = Neighbors {
            k: m,
            indices,
            scores,
        };
        let got = sparse_assignment(&cand, m, -10.0).unwrap();
        assert_eq!(got.matched, n);
        assert!((got.total - brute_best(&score)).abs() < 1e-5);
        // A high fallback leaves rows unmatched rather than taking poor edges.
        let got = sparse_assignment(&cand, m, 0.99).unwrap();
        assert!(got.scores.iter().all(|&x| x >= 0.99 - 1e-6));
    }
}
