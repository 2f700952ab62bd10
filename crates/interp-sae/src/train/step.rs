//! One training step: forward pass, losses, and hand-derived gradients.
//!
//! The gradients are written out rather than taken from an autodiff tape because the sparse
//! architectures need a sparse backward pass to be fast: with TopK only `k` of `d_sae` latents
//! per token carry gradient, so everything after the encoder GEMM touches `k` rows of each
//! weight matrix per token instead of all of them. `tests/sae/train.rs` checks every gradient
//! against finite differences of the loss this module reports.

use interp_core::{matmul_acc, matmul_into};
use ndarray::{Array1, Array2, ArrayView2, Axis, Zip};
use rayon::prelude::*;

use super::config::TrainArch;
use super::params::ParamSet;
use crate::kernels::TopK;

/// Rows per chunk of the deterministic reductions: partial sums are taken over fixed chunks and
/// added in chunk order, so results do not depend on the number of threads.
const CHUNK_ROWS: usize = 256;

/// Per-step inputs besides the parameters and the batch.
pub(crate) struct StepSettings<'a> {
    pub arch: &'a TrainArch,
    /// Current L1 (ReLU) or L0 (JumpReLU) coefficient.
    pub sparsity_coef: f32,
    /// Subtract `b_dec` from inputs before encoding.
    pub apply_b_dec: bool,
    /// Latents currently considered dead (AuxK candidates).
    pub dead: &'a [bool],
}

/// Latent codes of a batch.
pub(crate) enum Codes {
    /// CSR lists of `(latent, activation)` per token (TopK, BatchTopK, AuxK).
    Sparse(Csr),
    /// Dense activations `[batch, d_sae]` (ReLU, JumpReLU), with the pre-activations kept for
    /// JumpReLU's threshold gradient.
    Dense {
        z: Array2<f32>,
        pre: Option<Array2<f32>>,
    },
}

/// Row-compressed sparse codes.
#[derive(Default)]
pub(crate) struct Csr {
    pub indptr: Vec<usize>,
    pub idx: Vec<u32>,
    pub val: Vec<f32>,
}

impl Csr {
    fn from_rows(rows: Vec<(Vec<u32>, Vec<f32>)>) -> Self {
        let mut csr = Csr {
            indptr: Vec::with_capacity(rows.len() + 1),
            ..Csr::default()
        };
        csr.indptr.push(0);
        for (i, v) in rows {
            csr.idx.extend_from_slice(&i);
            csr.val.extend_from_slice(&v);
            csr.indptr.push(csr.idx.len());
        }
        csr
    }

    fn row(&self, b: usize) -> (&[u32], &[f32]) {
        let r = self.indptr[b]..self.indptr[b + 1];
        (&self.idx[r.clone()], &self.val[r])
    }

    fn rows(&self) -> usize {
        self.indptr.len() - 1
    }
}

/// The forward pass of a batch, kept for the backward pass.
pub(crate) struct Forward {
    /// Encoder input (`x − b_dec` with a tied input bias).
    pub x_c: Array2<f32>,
    /// Reconstruction.
    pub x_hat: Array2<f32>,
    pub codes: Codes,
    /// AuxK codes over dead latents, with the loss scale `coef · min(n_dead / k_aux, 1)`.
    pub aux: Option<(Csr, f32)>,
    /// BatchTopK: the smallest activation kept.
    pub min_kept: Option<f32>,
}

/// Loss terms and statistics of one step (means over the batch).
#[derive(Clone, Debug, Default)]
pub(crate) struct StepStats {
    /// Total loss that was differentiated.
    pub loss: f64,
    /// `mean_b ‖x − x̂‖²`.
    pub mse: f64,
    /// `mean_b Σ|z|` (decoder-norm weighted when configured) for ReLU; `mean_b ‖z‖₀` for JumpReLU;
    /// 0 otherwise. Without the coefficient.
    pub sparsity: f64,
    /// AuxK loss (with its scale, without the coefficient); 0 when unused.
    pub aux: f64,
    /// Mean active latents per token.
    pub l0: f64,
    /// `Σ‖x − x̂‖²` and `Σ‖x − μ‖²` (μ the per-dimension batch mean), whose ratio is the FVU.
    pub sq_err: f64,
    pub sq_var: f64,
    /// Tokens of the batch each latent fired on.
    pub fired: Vec<u32>,
}

fn x_centered(params: &ParamSet, x: ArrayView2<'_, f32>, apply_b_dec: bool) -> Array2<f32> {
    let mut x_c = x.to_owned();
    if apply_b_dec {
        x_c -= &params.b_dec;
    }
    x_c
}

/// Reused `[batch, d_sae]` buffers: allocating them afresh every step costs page faults on
/// hundreds of megabytes (glibc maps large blocks fresh each time).
pub(crate) type Pool = Vec<Array2<f32>>;

/// Buffers a pool keeps at most.
const POOL_MAX: usize = 4;

/// A `rows × cols` matrix from `pool` (stale contents) or newly allocated.
fn take(pool: &mut Pool, rows: usize, cols: usize) -> Array2<f32> {
    match pool.iter().position(|a| a.dim() == (rows, cols)) {
        Some(i) => pool.swap_remove(i),
        None => Array2::zeros((rows, cols)),
    }
}

/// Returns a buffer to `pool`.
fn give(pool: &mut Pool, a: Array2<f32>) {
    if pool.len() < POOL_MAX && a.is_standard_layout() {
        pool.push(a);
    }
}

/// Pre-activations `x_c · W_encᵀ + b_enc`, `[batch, d_sae]`.
fn pre_activations(params: &ParamSet, x_c: &Array2<f32>, pool: &mut Pool) -> Array2<f32> {
    let mut pre = take(pool, x_c.nrows(), params.w_enc.nrows());
    pre.axis_iter_mut(Axis(0))
        .into_par_iter()
        .for_each(|mut r| r.assign(&params.b_enc));
    matmul_acc(x_c.view(), params.w_enc.t(), pre.view_mut());
    pre
}

/// The `k` largest positive entries of each row of `pre` among `candidates` (all latents when
/// `None`).
fn top_k_rows(
    pre: &Array2<f32>,
    k: usize,
    candidates: Option<&[u32]>,
) -> Vec<(Vec<u32>, Vec<f32>)> {
    pre.axis_iter(Axis(0))
        .into_par_iter()
        .map(|row| {
            let row = row.as_slice().expect("standard layout");
            let mut top = TopK::new(k);
            match candidates {
                None => top.push_slice(row, 0),
                Some(c) => {
                    let vals: Vec<f32> = c.iter().map(|&i| row[i as usize]).collect();
                    top.push_slice(&vals, 0);
                    let (pos, v) = top.into_sorted();
                    return (pos.into_iter().map(|p| c[p as usize]).collect(), v);
                }
            }
            top.into_sorted()
        })
        .collect()
}

/// BatchTopK: the `k · batch` largest positive pre-activations of the whole batch.
///
/// Exact and cheap: the per-row top-k lists hold at least `k·batch` values, so their
/// `k·batch`-th largest is a lower bound of the batch-wide one; only entries above that bound
/// are gathered and ranked.
fn batch_top_k(pre: &Array2<f32>, k: usize) -> (Csr, Option<f32>) {
    let want = k * pre.nrows();
    let per_row = top_k_rows(pre, k, None);
    let mut union: Vec<f32> = per_row
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .collect();
    let bound = if union.len() >= want {
        let (_, nth, _) = union.select_nth_unstable_by(want - 1, |a, b| b.total_cmp(a));
        *nth
    } else {
        f32::MIN_POSITIVE
    };
    drop(union);
    let rows: Vec<(Vec<u32>, Vec<f32>)> = pre
        .axis_iter(Axis(0))
        .into_par_iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .filter(|&(_, &v)| v >= bound && v > 0.0)
                .map(|(i, &v)| (i as u32, v))
                .unzip()
        })
        .collect();
    let mut all: Vec<f32> = rows.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    let threshold = if all.len() > want {
        let (_, nth, _) = all.select_nth_unstable_by(want - 1, |a, b| b.total_cmp(a));
        *nth
    } else {
        all.iter().copied().fold(f32::INFINITY, f32::min)
    };
    let kept: Vec<(Vec<u32>, Vec<f32>)> = rows
        .into_iter()
        .map(|(i, v)| {
            i.into_iter()
                .zip(v)
                .filter(|&(_, v)| v >= threshold)
                .unzip()
        })
        .collect();
    let min_kept = threshold.is_finite().then_some(threshold);
    (Csr::from_rows(kept), min_kept)
}

/// `b_dec + Σ z_i · W_dec[i]` per token (no bias when `b_dec` is `None`).
fn decode_csr(codes: &Csr, w_dec: &Array2<f32>, b_dec: Option<&Array1<f32>>) -> Array2<f32> {
    let mut out = Array2::zeros((codes.rows(), w_dec.ncols()));
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(b, mut row)| {
            if let Some(bias) = b_dec {
                row.assign(bias);
            }
            let (idx, val) = codes.row(b);
            for (&i, &z) in idx.iter().zip(val) {
                row.scaled_add(z, &w_dec.row(i as usize));
            }
        });
    out
}

/// AuxK codes: the `k_aux` largest positive pre-activations among dead latents, and the loss
/// scale `coef · min(n_dead / k_aux, 1)` (SAELens).
fn aux_codes(pre: &Array2<f32>, d_in: usize, s: &StepSettings<'_>) -> Option<(Csr, f32)> {
    let (k_aux, coef) = s.arch.aux(d_in)?;
    let dead: Vec<u32> = (0..s.dead.len() as u32)
        .filter(|&i| s.dead[i as usize])
        .collect();
    if dead.is_empty() || coef == 0.0 {
        return None;
    }
    let csr = Csr::from_rows(top_k_rows(pre, k_aux, Some(&dead)));
    Some((csr, coef * (dead.len() as f32 / k_aux as f32).min(1.0)))
}

/// Runs the encoder and decoder on `x` (already scaled).
pub(crate) fn forward(params: &ParamSet, x: ArrayView2<'_, f32>, s: &StepSettings<'_>) -> Forward {
    forward_in(params, x, s, &mut Pool::new())
}

/// [`forward`] with `[batch, d_sae]` buffers from `pool`.
fn forward_in(
    params: &ParamSet,
    x: ArrayView2<'_, f32>,
    s: &StepSettings<'_>,
    pool: &mut Pool,
) -> Forward {
    let x_c = x_centered(params, x, s.apply_b_dec);
    let mut pre = pre_activations(params, &x_c, pool);
    let mut min_kept = None;
    let mut aux = None;
    let codes = match *s.arch {
        TrainArch::TopK { .. } | TrainArch::BatchTopK { .. } => {
            let csr = match *s.arch {
                TrainArch::BatchTopK { k, .. } => {
                    let (csr, m) = batch_top_k(&pre, k);
                    min_kept = m;
                    csr
                }
                _ => Csr::from_rows(top_k_rows(&pre, s.arch.k().expect("TopK has k"), None)),
            };
            aux = aux_codes(&pre, x.ncols(), s);
            give(pool, pre);
            Codes::Sparse(csr)
        }
        TrainArch::Relu { .. } => {
            pre.par_mapv_inplace(|v| v.max(0.0));
            Codes::Dense { z: pre, pre: None }
        }
        TrainArch::JumpRelu { .. } => {
            let mut z = take(pool, pre.nrows(), pre.ncols());
            z.assign(&pre);
            Zip::from(z.rows_mut()).par_for_each(|mut r| {
                Zip::from(&mut r)
                    .and(&params.log_threshold)
                    .for_each(|z, &lt| {
                        if *z <= lt.exp() {
                            *z = 0.0;
                        }
                    })
            });
            Codes::Dense { z, pre: Some(pre) }
        }
    };
    let x_hat = match &codes {
        Codes::Sparse(csr) => decode_csr(csr, &params.w_dec, Some(&params.b_dec)),
        Codes::Dense { z, .. } => {
            let mut x_hat = Array2::zeros(x.raw_dim());
            x_hat
                .axis_iter_mut(Axis(0))
                .into_par_iter()
                .for_each(|mut r| r.assign(&params.b_dec));
            matmul_acc(z.view(), params.w_dec.view(), x_hat.view_mut());
            x_hat
        }
    };
    Forward {
        x_c,
        x_hat,
        codes,
        aux,
        min_kept,
    }
}

/// `‖x − x̂‖²` per token.
pub(crate) fn squared_errors(x: ArrayView2<'_, f32>, x_hat: &Array2<f32>) -> Vec<f32> {
    x.axis_iter(Axis(0))
        .into_par_iter()
        .zip(x_hat.axis_iter(Axis(0)))
        .map(|(a, b)| a.iter().zip(b).map(|(a, b)| (a - b) * (a - b)).sum())
        .collect()
}

/// Column sums of `m` over fixed row chunks, added in chunk order (deterministic).
fn column_sums(m: ArrayView2<'_, f32>) -> Array1<f32> {
    let parts: Vec<Array1<f32>> = m
        .axis_chunks_iter(Axis(0), CHUNK_ROWS)
        .into_par_iter()
        .map(|c| c.sum_axis(Axis(0)))
        .collect();
    parts
        .into_iter()
        .fold(Array1::zeros(m.ncols()), |acc, p| acc + p)
}

/// Fraction of variance unexplained by `sae` on the rows of `x`: `Σ‖x − x̂‖² / Σ‖x − μ‖²`, μ the
/// per-dimension mean of `x` (the metric the trainer logs; 0 when `x` has no variance).
///
/// # Errors
/// As [`crate::Sae::forward`]: a width other than the SAE's `d_in`, non-finite input.
pub fn fvu(sae: &crate::Sae, x: ArrayView2<'_, f32>) -> crate::Result<f64> {
    let x_hat = sae.forward(x)?;
    let err: f64 = squared_errors(x, &x_hat)
        .iter()
        .map(|&e| f64::from(e))
        .sum();
    let var = total_variance(x);
    Ok(if var > 0.0 { err / var } else { 0.0 })
}

/// Total variance `Σ‖x − μ‖²` of a batch.
pub(crate) fn total_variance(x: ArrayView2<'_, f32>) -> f64 {
    let mean = column_sums(x) / x.nrows() as f32;
    x.axis_iter(Axis(0))
        .into_par_iter()
        .map(|r| {
            r.iter()
                .zip(&mean)
                .map(|(&v, &m)| ((v - m) as f64).powi(2))
                .sum::<f64>()
        })
        .sum()
}

/// Where a step's loss terms and gradients come from.
pub(crate) trait GradientEngine: Send {
    /// A name for logs.
    fn name(&self) -> String;

    /// Forward and backward pass: fills `grads` (overwriting) and returns the loss terms and,
    /// for BatchTopK, the smallest activation kept.
    fn forward_backward(
        &mut self,
        params: &ParamSet,
        x: ArrayView2<'_, f32>,
        s: &StepSettings<'_>,
        grads: &mut ParamSet,
    ) -> crate::Result<(StepStats, Option<f32>)>;
}

/// The hand-derived CPU step below (sparse backward pass for TopK/BatchTopK), with the
/// `[batch, d_sae]` buffers it reuses from step to step.
#[derive(Default)]
pub(crate) struct HandDerived {
    pool: Pool,
}

impl GradientEngine for HandDerived {
    fn name(&self) -> String {
        "hand-derived (CPU)".into()
    }

    fn forward_backward(
        &mut self,
        params: &ParamSet,
        x: ArrayView2<'_, f32>,
        s: &StepSettings<'_>,
        grads: &mut ParamSet,
    ) -> crate::Result<(StepStats, Option<f32>)> {
        Ok(forward_backward(params, x, s, grads, &mut self.pool))
    }
}

/// Forward and backward pass: fills `grads` (overwriting) and returns the loss terms;
/// `[batch, d_sae]` buffers come from and go back to `pool`.
pub(crate) fn forward_backward(
    params: &ParamSet,
    x: ArrayView2<'_, f32>,
    s: &StepSettings<'_>,
    grads: &mut ParamSet,
    pool: &mut Pool,
) -> (StepStats, Option<f32>) {
    let fwd = forward_in(params, x, s, pool);
    let batch = x.nrows();
    let inv_b = 1.0 / batch as f32;
    let err_sq = squared_errors(x, &fwd.x_hat);
    let sq_err: f64 = err_sq.iter().map(|&e| e as f64).sum();
    let mut stats = StepStats {
        mse: sq_err / batch as f64,
        sq_err,
        sq_var: total_variance(x),
        ..StepStats::default()
    };
    grads.zero();
    // d(mean_b ‖x̂ − x‖²)/dx̂
    let mut g_xhat = &fwd.x_hat - &x;
    g_xhat *= 2.0 * inv_b;
    grads.b_dec.assign(&column_sums(g_xhat.view()));

    match &fwd.codes {
        Codes::Sparse(csr) => sparse_backward(params, &fwd, csr, &g_xhat, x, &mut stats, grads),
        Codes::Dense { z, pre } => dense_backward(
            params,
            s,
            &fwd,
            z,
            pre.as_ref(),
            &g_xhat,
            &mut stats,
            grads,
            pool,
        ),
    }
    if s.apply_b_dec {
        // x_c = x − b_dec: the encoder's input gradient summed over the batch is
        // (Σ_b ∂L/∂pre_b) · W_enc = db_enc · W_enc.
        let through_encoder = grads.b_enc.dot(&params.w_enc);
        grads.b_dec -= &through_encoder;
    }
    stats.loss = stats.mse
        + s.sparsity_coef as f64 * stats.sparsity
        + fwd.aux.as_ref().map_or(0.0, |_| stats.aux);
    if let Codes::Dense { z, pre } = fwd.codes {
        give(pool, z);
        pre.into_iter().for_each(|p| give(pool, p));
    }
    (stats, fwd.min_kept)
}

/// One gradient contribution of a sparse code entry, gathered per latent.
#[derive(Clone, Copy)]
struct Entry {
    token: u32,
    z: f32,
    g_pre: f32,
    aux: bool,
}

fn sparse_backward(
    params: &ParamSet,
    fwd: &Forward,
    csr: &Csr,
    g_xhat: &Array2<f32>,
    x: ArrayView2<'_, f32>,
    stats: &mut StepStats,
    grads: &mut ParamSet,
) {
    let batch = x.nrows();
    let d_sae = params.w_dec.nrows();
    // AuxK: model the (detached) residual with the dead latents' decoder rows, no bias.
    let aux = fwd.aux.as_ref().map(|(aux_csr, scale)| {
        let residual = &x - &fwd.x_hat;
        let aux_hat = decode_csr(aux_csr, &params.w_dec, None);
        let aux_loss = squared_errors(residual.view(), &aux_hat)
            .iter()
            .map(|&e| e as f64)
            .sum::<f64>()
            / batch as f64;
        let mut g_aux = aux_hat - &residual;
        g_aux *= 2.0 * scale / batch as f32;
        stats.aux = *scale as f64 * aux_loss;
        (aux_csr, g_aux)
    });

    // ∂L/∂pre for every entry: the code's decoder row dotted with the output gradient.
    let entry_grads = |codes: &Csr, g_out: &Array2<f32>| -> Vec<f32> {
        (0..codes.rows())
            .into_par_iter()
            .flat_map_iter(|b| {
                let g = g_out.row(b);
                let (idx, _) = codes.row(b);
                idx.iter()
                    .map(move |&i| params.w_dec.row(i as usize).dot(&g))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let g_main = entry_grads(csr, g_xhat);
    let g_aux_pre = aux.as_ref().map(|(c, g)| entry_grads(c, g));

    // Gather entries per latent (counting sort, tokens ascending within a latent).
    let mut counts = vec![0usize; d_sae + 1];
    let lists = std::iter::once((csr, &g_main, false)).chain(
        aux.as_ref()
            .zip(g_aux_pre.as_ref())
            .map(|((c, _), g)| (*c, g, true)),
    );
    let lists: Vec<_> = lists.collect();
    for (c, _, _) in &lists {
        for &i in &c.idx {
            counts[i as usize + 1] += 1;
        }
    }
    for i in 0..d_sae {
        counts[i + 1] += counts[i];
    }
    let starts = counts.clone();
    let mut fill = counts;
    let mut entries = vec![
        Entry {
            token: 0,
            z: 0.0,
            g_pre: 0.0,
            aux: false
        };
        starts[d_sae]
    ];
    for (c, g, is_aux) in &lists {
        for b in 0..c.rows() {
            for p in c.indptr[b]..c.indptr[b + 1] {
                let i = c.idx[p] as usize;
                entries[fill[i]] = Entry {
                    token: b as u32,
                    z: c.val[p],
                    g_pre: g[p],
                    aux: *is_aux,
                };
                fill[i] += 1;
            }
        }
    }
    stats.l0 = csr.idx.len() as f64 / batch as f64;
    stats.fired = (0..d_sae)
        .map(|i| count_main(&entries[starts[i]..starts[i + 1]]))
        .collect();

    let g_aux_out = aux.as_ref().map(|(_, g)| g);
    let b_enc_grads: Vec<f32> = grads
        .w_enc
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(grads.w_dec.axis_iter_mut(Axis(0)))
        .enumerate()
        .map(|(i, (mut g_enc, mut g_dec))| {
            let mut g_b = 0.0f32;
            for e in &entries[starts[i]..starts[i + 1]] {
                let t = e.token as usize;
                let g_out = if e.aux {
                    g_aux_out.expect("aux entries imply aux gradients").row(t)
                } else {
                    g_xhat.row(t)
                };
                g_dec.scaled_add(e.z, &g_out);
                g_enc.scaled_add(e.g_pre, &fwd.x_c.row(t));
                g_b += e.g_pre;
            }
            g_b
        })
        .collect();
    grads.b_enc.assign(&Array1::from(b_enc_grads));
}

fn count_main(entries: &[Entry]) -> u32 {
    entries.iter().filter(|e| !e.aux).count() as u32
}

#[allow(clippy::too_many_arguments)]
fn dense_backward(
    params: &ParamSet,
    s: &StepSettings<'_>,
    fwd: &Forward,
    z: &Array2<f32>,
    pre: Option<&Array2<f32>>,
    g_xhat: &Array2<f32>,
    stats: &mut StepStats,
    grads: &mut ParamSet,
    pool: &mut Pool,
) {
    let batch = z.nrows();
    let d_sae = z.ncols();
    let inv_b = 1.0 / batch as f32;
    let coef = s.sparsity_coef;
    // ∂/∂W_dec of the reconstruction: zᵀ · g_x̂.
    matmul_acc(z.t(), g_xhat.view(), grads.w_dec.view_mut());
    // ∂L/∂z = g_x̂ · W_decᵀ, turned into ∂L/∂pre in place below.
    let mut g = take(pool, batch, d_sae);
    matmul_into(g_xhat.view(), params.w_dec.t(), g.view_mut());

    let dec_norms: Array1<f32> = params.w_dec.map_axis(Axis(1), |r| r.dot(&r).sqrt());
    let (weighted, jump) = match *s.arch {
        TrainArch::Relu {
            weight_by_decoder_norm,
            ..
        } => (weight_by_decoder_norm, None),
        TrainArch::JumpRelu { bandwidth, .. } => {
            let theta = params.log_threshold.mapv(f32::exp);
            (false, Some((bandwidth, theta)))
        }
        _ => unreachable!("sparse architectures take the sparse path"),
    };
    let l1_grad: Array1<f32> = if weighted {
        dec_norms.mapv(|n| coef * inv_b * n)
    } else {
        Array1::from_elem(d_sae, coef * inv_b)
    };

    // Per fixed row chunk: turn g into ∂L/∂pre and collect per-latent sums (fired counts, Σz,
    // Σ ∂L/∂pre for b_enc, the threshold gradient). Plain slices: this pass touches every
    // element of three [batch, d_sae] matrices.
    struct Partial {
        fired: Vec<u32>,
        z_sum: Vec<f32>,
        g_sum: Vec<f32>,
        d_theta: Vec<f32>,
    }
    let l1_grad = l1_grad.as_slice().expect("contiguous");
    let theta = jump
        .as_ref()
        .map(|(eps, t)| (*eps, t.as_slice().expect("contiguous")));
    let parts: Vec<Partial> = g
        .axis_chunks_iter_mut(Axis(0), CHUNK_ROWS)
        .into_par_iter()
        .zip(z.axis_chunks_iter(Axis(0), CHUNK_ROWS))
        .enumerate()
        .map(|(c, (mut g_chunk, z_chunk))| {
            let mut part = Partial {
                fired: vec![0; d_sae],
                z_sum: vec![0.0; d_sae],
                g_sum: vec![0.0; d_sae],
                d_theta: vec![0.0; if theta.is_some() { d_sae } else { 0 }],
            };
            for (r, (mut g_row, z_row)) in g_chunk
                .rows_mut()
                .into_iter()
                .zip(z_chunk.rows())
                .enumerate()
            {
                let g_row = g_row.as_slice_mut().expect("standard layout");
                let z_row = z_row.as_slice().expect("standard layout");
                if let (Some((eps, theta)), Some(pre)) = (theta, pre) {
                    // Straight-through estimators (Rajamanoharan et al. 2024): a rectangle
                    // kernel of width ε around θ; the value passes ∂L/∂z where z is active.
                    let pre_row = pre.row(c * CHUNK_ROWS + r);
                    let pre_row = pre_row.as_slice().expect("standard layout");
                    for i in 0..d_sae {
                        if (pre_row[i] - theta[i]).abs() < 0.5 * eps {
                            part.d_theta[i] += -(theta[i] / eps) * g_row[i] - coef * inv_b / eps;
                        }
                    }
                    for i in 0..d_sae {
                        let active = z_row[i] > 0.0;
                        g_row[i] = if active { g_row[i] } else { 0.0 };
                        part.fired[i] += active as u32;
                        part.z_sum[i] += z_row[i];
                        part.g_sum[i] += g_row[i];
                    }
                } else {
                    for i in 0..d_sae {
                        let active = z_row[i] > 0.0;
                        g_row[i] = if active { g_row[i] + l1_grad[i] } else { 0.0 };
                        part.fired[i] += active as u32;
                        part.z_sum[i] += z_row[i];
                        part.g_sum[i] += g_row[i];
                    }
                }
            }
            part
        })
        .collect();
    let mut fired = vec![0u32; d_sae];
    let mut z_sum = Array1::<f32>::zeros(d_sae);
    let mut g_sum = Array1::<f32>::zeros(d_sae);
    let mut d_theta = Array1::<f32>::zeros(params.log_threshold.len());
    for p in parts {
        fired.iter_mut().zip(&p.fired).for_each(|(a, b)| *a += b);
        z_sum.iter_mut().zip(&p.z_sum).for_each(|(a, b)| *a += b);
        g_sum.iter_mut().zip(&p.g_sum).for_each(|(a, b)| *a += b);
        d_theta
            .iter_mut()
            .zip(&p.d_theta)
            .for_each(|(a, b)| *a += b);
    }
    let sparsity: f64 = if jump.is_some() {
        fired.iter().map(|&f| f as f64).sum()
    } else if weighted {
        z_sum
            .iter()
            .zip(&dec_norms)
            .map(|(&s, &n)| s as f64 * n as f64)
            .sum()
    } else {
        z_sum.iter().map(|&s| s as f64).sum()
    };
    stats.sparsity = sparsity / batch as f64;
    stats.l0 = fired.iter().map(|&f| f as f64).sum::<f64>() / batch as f64;
    stats.fired = fired;
    if let Some((_, theta)) = &jump {
        // d/d ln θ = θ · d/dθ
        grads.log_threshold.assign(&(d_theta * theta));
    }
    if weighted {
        // ∂(coef/B · Σ_b z_bi ‖W_dec[i]‖)/∂W_dec[i] = coef/B · Σ_b z_bi · W_dec[i]/‖W_dec[i]‖
        Zip::from(grads.w_dec.rows_mut())
            .and(params.w_dec.rows())
            .and(&z_sum)
            .and(&dec_norms)
            .par_for_each(|mut g, w, &zs, &n| {
                if n > 0.0 {
                    g.scaled_add(coef * inv_b * zs / n, &w);
                }
            });
    }
    grads.b_enc.assign(&g_sum);
    matmul_acc(g.t(), fwd.x_c.view(), grads.w_enc.view_mut());
    give(pool, g);
}

/// The decoder row gradient with its component along the (unit) row removed, so a step keeps
/// the row's norm to first order.
pub(crate) fn project_out_radial(grads: &mut Array2<f32>, w_dec: &Array2<f32>) {
    Zip::from(grads.rows_mut())
        .and(w_dec.rows())
        .par_for_each(|mut g, w| {
            let ww = w.dot(&w);
            if ww > 0.0 {
                let c = g.dot(&w) / ww;
                g.scaled_add(-c, &w);
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::config::TrainConfig;
    use interp_core::rng::SplitMix64;

    fn setup(arch: TrainArch, d: usize, f: usize, b: usize, seed: u64) -> (ParamSet, Array2<f32>) {
        let cfg = TrainConfig::new(arch.clone(), d, f, 10);
        let mut rng = SplitMix64::new(seed);
        let jump = matches!(arch, TrainArch::JumpRelu { .. });
        let mut p = ParamSet::init(&cfg, jump.then_some(0.05), &mut rng);
        // Break the tied initialisation and make biases non-zero so every term matters.
        p.w_enc.iter_mut().for_each(|w| *w += 0.3 * rng.normal());
        p.w_dec
            .iter_mut()
            .for_each(|w| *w *= 1.0 + 0.2 * rng.normal());
        p.b_enc.iter_mut().for_each(|v| *v = 0.1 * rng.normal());
        p.b_dec.iter_mut().for_each(|v| *v = 0.2 * rng.normal());
        let x = Array2::from_shape_simple_fn((b, d), || rng.normal());
        (p, x)
    }

    fn loss(p: &ParamSet, x: &Array2<f32>, s: &StepSettings<'_>) -> f64 {
        let mut g = p.clone();
        forward_backward(p, x.view(), s, &mut g, &mut Pool::new())
            .0
            .loss
    }

    /// Central differences in f64 of the f32 loss for every parameter (excluding `ln θ`).
    fn check_gradients(arch: TrainArch, coef: f32, dead: &[bool], apply_b_dec: bool) {
        let (p, x) = setup(arch.clone(), 6, 10, 7, 3);
        let s = StepSettings {
            arch: &arch,
            sparsity_coef: coef,
            apply_b_dec,
            dead,
        };
        let mut grads = p.clone();
        forward_backward(&p, x.view(), &s, &mut grads, &mut Pool::new());
        let h = 1e-3f32;
        let mut checked = 0;
        for t in 0..4 {
            for k in 0..p.tensors()[t].len() {
                let mut plus = p.clone();
                plus.tensors_mut()[t][k] += h;
                let mut minus = p.clone();
                minus.tensors_mut()[t][k] -= h;
                let numeric = (loss(&plus, &x, &s) - loss(&minus, &x, &s)) / (2.0 * h as f64);
                let analytic = grads.tensors()[t][k] as f64;
                let tol = 2e-3 + 2e-2 * numeric.abs();
                assert!(
                    (numeric - analytic).abs() < tol,
                    "{arch:?} tensor {} [{k}]: numeric {numeric} analytic {analytic}",
                    super::super::params::TENSOR_NAMES[t]
                );
                checked += (analytic != 0.0) as usize;
            }
        }
        assert!(
            checked > 20,
            "too few non-zero gradients ({checked}) to be a test"
        );
    }

    #[test]
    fn relu_l1_gradients_match_finite_differences() {
        check_gradients(TrainArch::relu(0.3), 0.3, &[false; 10], true);
        check_gradients(TrainArch::relu(0.3), 0.3, &[false; 10], false);
    }

    #[test]
    fn weighted_l1_gradients_match_finite_differences() {
        let arch = TrainArch::Relu {
            l1: 0.3,
            l1_warmup_steps: 0,
            weight_by_decoder_norm: true,
        };
        check_gradients(arch, 0.3, &[false; 10], true);
    }

    #[test]
    fn topk_gradients_match_finite_differences() {
        check_gradients(TrainArch::topk(2), 0.0, &[false; 10], true);
        check_gradients(TrainArch::topk(4), 0.0, &[false; 10], false);
    }

    /// AuxK's target, the residual `x − x̂`, is detached (as in SAELens and OpenAI): its
    /// gradient is that of `scale · mean_b ‖x̂_aux − r‖²` with `r` held fixed, which is what the
    /// difference of the analytic gradients with and without dead latents must equal.
    #[test]
    fn auxk_gradients_match_finite_differences_with_a_detached_residual() {
        let arch = TrainArch::TopK {
            k: 3,
            aux_k: Some(2),
            aux_coef: 0.5,
        };
        let dead: Vec<bool> = (0..10).map(|i| i % 3 == 0).collect();
        let (p, x) = setup(arch.clone(), 6, 10, 7, 3);
        let settings = |dead| StepSettings {
            arch: &arch,
            sparsity_coef: 0.0,
            apply_b_dec: true,
            dead,
        };
        let (with, without) = (settings(&dead), settings(&[false; 10]));
        let residual = &x - &forward(&p, x.view(), &with).x_hat;
        let aux_loss = |q: &ParamSet| -> f64 {
            let fwd = forward(q, x.view(), &with);
            let (csr, scale) = fwd.aux.expect("dead latents give AuxK codes");
            let hat = decode_csr(&csr, &q.w_dec, None);
            scale as f64
                * squared_errors(residual.view(), &hat)
                    .iter()
                    .map(|&e| e as f64)
                    .sum::<f64>()
                / 7.0
        };
        let (mut g_with, mut g_without) = (p.clone(), p.clone());
        forward_backward(&p, x.view(), &with, &mut g_with, &mut Pool::new());
        forward_backward(&p, x.view(), &without, &mut g_without, &mut Pool::new());
        let h = 1e-3f32;
        let mut checked = 0;
        for t in 0..4 {
            for k in 0..p.tensors()[t].len() {
                let (mut plus, mut minus) = (p.clone(), p.clone());
                plus.tensors_mut()[t][k] += h;
                minus.tensors_mut()[t][k] -= h;
                let numeric = (aux_loss(&plus) - aux_loss(&minus)) / (2.0 * h as f64);
                let analytic = (g_with.tensors()[t][k] - g_without.tensors()[t][k]) as f64;
                assert!(
                    (numeric - analytic).abs() < 2e-3 + 2e-2 * numeric.abs(),
                    "tensor {t} [{k}]: numeric {numeric} analytic {analytic}"
                );
                checked += (analytic.abs() > 1e-6) as usize;
            }
        }
        assert!(
            checked > 20,
            "too few AuxK gradients ({checked}) to be a test"
        );
    }

    #[test]
    fn batch_topk_gradients_match_finite_differences() {
        check_gradients(TrainArch::batch_topk(2), 0.0, &[false; 10], true);
    }

    #[test]
    fn jumprelu_gradients_match_finite_differences_away_from_the_threshold() {
        // With ε tiny no pre-activation lies within ε/2 of θ, so the loss is smooth in every
        // weight and the straight-through terms vanish.
        let arch = TrainArch::JumpRelu {
            l0: 0.1,
            bandwidth: 1e-6,
            init_threshold: 0.05,
        };
        check_gradients(arch, 0.1, &[false; 10], true);
    }

    #[test]
    fn jumprelu_threshold_gradient_is_the_rectangle_kernel_estimate() {
        let arch = TrainArch::JumpRelu {
            l0: 0.5,
            bandwidth: 0.2,
            init_threshold: 0.3,
        };
        let (p, x) = setup(arch.clone(), 6, 10, 7, 5);
        let s = StepSettings {
            arch: &arch,
            sparsity_coef: 0.5,
            apply_b_dec: true,
            dead: &[false; 10],
        };
        let mut grads = p.clone();
        let fwd = forward(&p, x.view(), &s);
        forward_backward(&p, x.view(), &s, &mut grads, &mut Pool::new());
        let pre = match &fwd.codes {
            Codes::Dense { pre: Some(pre), .. } => pre.clone(),
            _ => unreachable!(),
        };
        let g_xhat = (&fwd.x_hat - &x) * (2.0 / 7.0);
        let mut nonzero = 0;
        for i in 0..10 {
            let th = p.log_threshold[i].exp();
            let mut want = 0.0f64;
            for b in 0..7 {
                if (pre[[b, i]] - th).abs() < 0.1 {
                    let gz = g_xhat.row(b).dot(&p.w_dec.row(i)) as f64;
                    want += -(th as f64 / 0.2) * gz - 0.5 / 7.0 / 0.2;
                }
            }
            want *= th as f64;
            nonzero += (want != 0.0) as usize;
            assert!(
                (grads.log_threshold[i] as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                "{i}"
            );
        }
        assert!(
            nonzero > 0,
            "no pre-activation near a threshold: not a test"
        );
    }

    #[test]
    fn batch_topk_keeps_exactly_the_k_batch_largest() {
        let (p, x) = setup(TrainArch::batch_topk(3), 6, 10, 7, 9);
        let arch = TrainArch::batch_topk(3);
        let s = StepSettings {
            arch: &arch,
            sparsity_coef: 0.0,
            apply_b_dec: true,
            dead: &[false; 10],
        };
        let x_c = x_centered(&p, x.view(), true);
        let pre = pre_activations(&p, &x_c, &mut Pool::new());
        let mut all: Vec<f32> = pre.iter().copied().filter(|&v| v > 0.0).collect();
        all.sort_by(|a, b| b.total_cmp(a));
        let fwd = forward(&p, x.view(), &s);
        let Codes::Sparse(csr) = fwd.codes else {
            unreachable!()
        };
        assert_eq!(csr.idx.len(), 21);
        let mut kept = csr.val.clone();
        kept.sort_by(|a, b| b.total_cmp(a));
        assert_eq!(kept, all[..21].to_vec());
        assert_eq!(fwd.min_kept, Some(all[20]));
    }
}
