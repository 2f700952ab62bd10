//! The [`Sae`]: weights in SAELens layout plus encode / decode / forward on CPU.

use ndarray::parallel::prelude::*;
use ndarray::{s, Array1, Array2, ArrayView1, ArrayView2, Axis};

use crate::config::{Architecture, Normalization, SaeConfig};
use crate::error::{check_finite, check_shape, Error, Result};
use crate::kernels::{self, Activation};
use crate::sparse::SparseCodes;

/// SAE parameters in SAELens layout (`x @ W_enc`, `f @ W_dec`).
#[derive(Clone, Debug, PartialEq)]
pub struct SaeWeights {
    /// Encoder `[d_in, d_sae]`.
    pub w_enc: Array2<f32>,
    /// Decoder `[d_sae, d_in]`: row `i` is feature `i`'s direction.
    pub w_dec: Array2<f32>,
    /// Encoder bias `[d_sae]` (all zeros for gated SAEs, which use `b_gate`/`b_mag`).
    pub b_enc: Array1<f32>,
    /// Decoder bias `[d_in]`.
    pub b_dec: Array1<f32>,
    /// JumpReLU thresholds `[d_sae]`.
    pub threshold: Option<Array1<f32>>,
    /// Gated-SAE parameters.
    pub gated: Option<GatedWeights>,
}

/// The extra parameters of a gated SAE, each `[d_sae]`.
#[derive(Clone, Debug, PartialEq)]
pub struct GatedWeights {
    /// Gate-path bias.
    pub b_gate: Array1<f32>,
    /// Magnitude-path bias.
    pub b_mag: Array1<f32>,
    /// Log of the per-feature magnitude rescale of `W_enc`.
    pub r_mag: Array1<f32>,
}

/// A sparse autoencoder ready for inference.
///
/// All computation is f32 on CPU with rayon; see [`crate::formats`] to load one and
/// [`Sae::encode_sparse`] / [`Sae::decode_sparse`] for the fast paths.
#[derive(Clone, Debug)]
pub struct Sae {
    cfg: SaeConfig,
    w: SaeWeights,
    /// `‖W_dec[i]‖` (clamped ≥ 1e-8) when TopK rescales by decoder norms.
    dec_norm: Option<Vec<f32>>,
    /// `exp(r_mag)` for gated SAEs.
    exp_r_mag: Option<Vec<f32>>,
}

impl Sae {
    /// Checks shapes and finiteness against `cfg` and builds the SAE.
    ///
    /// # Errors
    /// [`Error::Shape`] for a tensor of the wrong shape, [`Error::NonFinite`] for NaN/inf
    /// weights, [`Error::MissingTensor`] when the architecture needs `threshold` or the gated
    /// parameters and they are absent, [`Error::Config`] for `d_in`/`d_sae`/`k` of 0.
    pub fn new(cfg: SaeConfig, w: SaeWeights) -> Result<Self> {
        let (d_in, d_sae) = (cfg.d_in, cfg.d_sae);
        if d_in == 0 || d_sae == 0 {
            return Err(Error::config("<config>", "d_in and d_sae must be positive"));
        }
        if matches!(cfg.architecture, Architecture::TopK { k: 0, .. }) {
            return Err(Error::config("<config>", "TopK k must be positive"));
        }
        check_shape("W_enc", w.w_enc.shape(), &[d_in, d_sae])?;
        check_shape("W_dec", w.w_dec.shape(), &[d_sae, d_in])?;
        check_shape("b_enc", w.b_enc.shape(), &[d_sae])?;
        check_shape("b_dec", w.b_dec.shape(), &[d_in])?;
        let needs = |key: &str| Error::MissingTensor {
            path: "<weights>".into(),
            key: key.into(),
        };
        match cfg.architecture {
            Architecture::JumpRelu if w.threshold.is_none() => return Err(needs("threshold")),
            Architecture::Gated if w.gated.is_none() => return Err(needs("b_gate")),
            _ => {}
        }
        if let Some(t) = &w.threshold {
            check_shape("threshold", t.shape(), &[d_sae])?;
        }
        if let Some(g) = &w.gated {
            check_shape("b_gate", g.b_gate.shape(), &[d_sae])?;
            check_shape("b_mag", g.b_mag.shape(), &[d_sae])?;
            check_shape("r_mag", g.r_mag.shape(), &[d_sae])?;
        }
        check_finite("W_enc", w.w_enc.iter())?;
        check_finite("W_dec", w.w_dec.iter())?;
        check_finite("b_enc", w.b_enc.iter())?;
        check_finite("b_dec", w.b_dec.iter())?;
        if let Some(t) = &w.threshold {
            check_finite("threshold", t.iter())?;
        }
        if let Some(g) = &w.gated {
            check_finite("b_gate", g.b_gate.iter())?;
            check_finite("b_mag", g.b_mag.iter())?;
            check_finite("r_mag", g.r_mag.iter())?;
        }
        let mut w = w;
        // The kernels index rows of W_dec as contiguous slices.
        if !w.w_dec.is_standard_layout() {
            w.w_dec = w.w_dec.as_standard_layout().into_owned();
        }
        let mut sae = Sae {
            cfg,
            w,
            dec_norm: None,
            exp_r_mag: None,
        };
        sae.refresh_derived();
        Ok(sae)
    }

    fn refresh_derived(&mut self) {
        self.dec_norm = match self.cfg.architecture {
            Architecture::TopK {
                rescale_acts_by_decoder_norm: true,
                ..
            } => Some(self.decoder_norms()),
            _ => None,
        };
        self.exp_r_mag = self
            .w
            .gated
            .as_ref()
            .map(|g| g.r_mag.iter().map(|r| r.exp()).collect());
    }

    /// The configuration.
    pub fn config(&self) -> &SaeConfig {
        &self.cfg
    }

    /// Records the TransformerLens hook this SAE reads (`metadata.hook_name`); for
    /// `attn.hook_z` hooks, inputs are `[.., n_heads, d_head]` flattened.
    pub fn set_hook_name(&mut self, hook_name: &str) {
        self.cfg.reshape_hook_z |= hook_name.ends_with("attn.hook_z");
        self.cfg.metadata.hook_name = Some(hook_name.to_string());
    }

    /// The parameters.
    pub fn weights(&self) -> &SaeWeights {
        &self.w
    }

    /// Input width.
    pub fn d_in(&self) -> usize {
        self.cfg.d_in
    }

    /// Number of latents.
    pub fn d_sae(&self) -> usize {
        self.cfg.d_sae
    }

    /// Feature `i`'s decoder direction `W_dec[i]` (`[d_in]`).
    ///
    /// # Errors
    /// [`Error::FeatureOutOfRange`] if `i >= d_sae`.
    pub fn feature_direction(&self, i: usize) -> Result<ArrayView1<'_, f32>> {
        self.check_feature(i)?;
        Ok(self.w.w_dec.row(i))
    }

    /// Feature `i`'s encoder direction `W_enc[:, i]` (`[d_in]`).
    ///
    /// # Errors
    /// [`Error::FeatureOutOfRange`] if `i >= d_sae`.
    pub fn encoder_direction(&self, i: usize) -> Result<ArrayView1<'_, f32>> {
        self.check_feature(i)?;
        Ok(self.w.w_enc.column(i))
    }

    fn check_feature(&self, i: usize) -> Result<()> {
        if i >= self.cfg.d_sae {
            return Err(Error::FeatureOutOfRange {
                index: i,
                d_sae: self.cfg.d_sae,
            });
        }
        Ok(())
    }

    /// `‖W_dec[i]‖` per feature, clamped below at 1e-8.
    pub fn decoder_norms(&self) -> Vec<f32> {
        self.w
            .w_dec
            .rows()
            .into_iter()
            .map(|r| r.dot(&r).sqrt().max(1e-8))
            .collect()
    }

    fn check_input(&self, x: &ArrayView2<'_, f32>) -> Result<()> {
        if x.ncols() != self.cfg.d_in {
            return Err(Error::InputWidth {
                expected: self.cfg.d_in,
                actual: x.ncols(),
            });
        }
        check_finite("input", x.iter())
    }

    fn activation(&self) -> Activation<'_> {
        match self.cfg.architecture {
            Architecture::Standard => Activation::Relu,
            Architecture::JumpRelu => Activation::JumpRelu {
                threshold: slice(self.w.threshold.as_ref().expect("checked in new")),
            },
            Architecture::TopK { k, .. } => Activation::TopK {
                k,
                scale: self.dec_norm.as_deref(),
            },
            Architecture::Gated => {
                let g = self.w.gated.as_ref().expect("checked in new");
                Activation::Gated {
                    b_gate: slice(&g.b_gate),
                    b_mag: slice(&g.b_mag),
                    exp_r_mag: self.exp_r_mag.as_deref().expect("set with gated"),
                }
            }
        }
    }

    fn b_enc(&self) -> Option<ArrayView1<'_, f32>> {
        match self.cfg.architecture {
            Architecture::Gated => None,
            _ => Some(self.w.b_enc.view()),
        }
    }

    /// Runs `f` on each block of at most [`kernels::ROW_BLOCK`] processed inputs (normalised,
    /// `b_dec` subtracted) with their normalisation statistics.
    fn for_each_block(
        &self,
        x: ArrayView2<'_, f32>,
        mut f: impl FnMut(usize, ArrayView2<'_, f32>, Option<Vec<crate::sparse::RowNorm>>),
    ) {
        for (b, block) in x.axis_chunks_iter(Axis(0), kernels::ROW_BLOCK).enumerate() {
            let mut xin = block.to_owned();
            let norms = kernels::normalize_rows(&mut xin, self.cfg.normalize_activations);
            if self.cfg.apply_b_dec_to_input {
                xin -= &self.w.b_dec;
            }
            f(b * kernels::ROW_BLOCK, xin.view(), norms);
        }
    }

    /// Pre-activations `x' @ W_enc + b_enc` (`[n, d_sae]`), after input normalisation and
    /// `b_dec` subtraction (gated SAEs: the bias-free product shared by both paths).
    ///
    /// # Errors
    /// [`Error::InputWidth`] / [`Error::NonFinite`] for bad input.
    pub fn pre_activations(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        self.check_input(&x)?;
        let mut out = Array2::zeros((x.nrows(), self.cfg.d_sae));
        self.for_each_block(x, |row0, xin, _| {
            let rows = s![row0..row0 + xin.nrows(), ..];
            kernels::pre_activations_into(
                xin,
                self.w.w_enc.view(),
                self.b_enc(),
                out.slice_mut(rows),
            );
        });
        Ok(out)
    }

    /// Latent activations `[n, d_sae]` (dense). Prefer [`Sae::encode_sparse`] for large SAEs.
    ///
    /// # Errors
    /// [`Error::InputWidth`] if `x` is not `[n, d_in]`, [`Error::NonFinite`] for NaN/inf input.
    pub fn encode(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        let mut out = self.pre_activations(x)?;
        let act = self.activation();
        out.axis_iter_mut(Axis(0))
            .into_par_iter()
            .for_each(|mut row| {
                let row = row.as_slice_mut().expect("owned rows are contiguous");
                kernels::activate_dense_row(row, &act);
            });
        Ok(out)
    }

    /// Latent activations as [`SparseCodes`], with the normalisation statistics needed to decode
    /// back into the input space. The nonlinearity (TopK selection included) is fused into the
    /// blocked GEMM; `[n, d_sae]` is never materialised.
    ///
    /// # Errors
    /// [`Error::InputWidth`] if `x` is not `[n, d_in]`, [`Error::NonFinite`] for NaN/inf input.
    pub fn encode_sparse(&self, x: ArrayView2<'_, f32>) -> Result<SparseCodes> {
        self.check_input(&x)?;
        let act = self.activation();
        let mut codes = SparseCodes::empty(self.cfg.d_sae);
        let mut all_norms: Option<Vec<_>> = None;
        self.for_each_block(x, |_, xin, norms| {
            let mut rows: Vec<kernels::RowCodes> = (0..xin.nrows())
                .map(|_| kernels::RowCodes::new(&act))
                .collect();
            kernels::tiled_pre_activations(
                xin,
                self.w.w_enc.view(),
                self.b_enc(),
                |col0, mut tile| {
                    tile.axis_iter_mut(Axis(0))
                        .into_par_iter()
                        .zip(rows.par_iter_mut())
                        .for_each(|(mut pre, state)| {
                            let pre = pre.as_slice_mut().expect("tile rows are contiguous");
                            state.push_tile(pre, col0, &act);
                        });
                },
            );
            for state in rows {
                let (idx, val) = state.finish();
                codes.indices.extend_from_slice(&idx);
                codes.values.extend_from_slice(&val);
                codes.indptr.push(codes.indices.len());
            }
            if let Some(n) = norms {
                all_norms.get_or_insert_with(Vec::new).extend(n);
            }
        });
        codes.norms = all_norms;
        Ok(codes)
    }

    /// Reconstruction from sparse codes: a gather-sum over the active decoder rows, plus
    /// `b_dec`, mapped back through the input normalisation recorded in `codes`.
    ///
    /// # Errors
    /// [`Error::Shape`] if `codes` has a different `d_sae`.
    pub fn decode_sparse(&self, codes: &SparseCodes) -> Result<Array2<f32>> {
        if codes.d_sae() != self.cfg.d_sae {
            return Err(Error::Shape {
                key: "codes".into(),
                expected: vec![codes.n_rows(), self.cfg.d_sae],
                actual: vec![codes.n_rows(), codes.d_sae()],
            });
        }
        let inv: Option<Vec<f32>> = self
            .dec_norm
            .as_ref()
            .map(|n| n.iter().map(|v| 1.0 / v).collect());
        let mut out = Array2::zeros((codes.n_rows(), self.cfg.d_in));
        kernels::decode_sparse_into(
            codes,
            self.w.w_dec.view(),
            self.w.b_dec.view(),
            inv.as_deref(),
            &mut out,
        );
        Ok(out)
    }

    /// Reconstruction `acts @ W_dec + b_dec` from dense activations `[n, d_sae]`.
    ///
    /// Codes sparser than 1 in 8 go through the sparse gather kernel, denser ones through GEMM.
    /// Input normalisation is not undone (dense activations do not carry it): for
    /// `layer_norm` / `constant_norm_rescale` SAEs the result is in the normalised space; use
    /// [`Sae::forward`] or [`Sae::decode_sparse`] of [`Sae::encode_sparse`] codes instead.
    ///
    /// # Errors
    /// [`Error::Shape`] if `acts` is not `[n, d_sae]`, [`Error::NonFinite`] for NaN/inf.
    pub fn decode(&self, acts: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        if acts.ncols() != self.cfg.d_sae {
            return Err(Error::Shape {
                key: "feature_acts".into(),
                expected: vec![acts.nrows(), self.cfg.d_sae],
                actual: acts.shape().to_vec(),
            });
        }
        check_finite("feature_acts", acts.iter())?;
        let nnz = acts.iter().filter(|v| **v != 0.0).count();
        if nnz * 8 < acts.len() {
            return self.decode_sparse(&SparseCodes::nonzeros(acts));
        }
        let scaled;
        let acts = match &self.dec_norm {
            Some(n) => {
                let inv = Array1::from_iter(n.iter().map(|v| 1.0 / v));
                scaled = &acts * &inv;
                scaled.view()
            }
            None => acts,
        };
        let mut out = Array2::zeros((acts.nrows(), self.cfg.d_in));
        kernels::gemm_bias(
            acts,
            self.w.w_dec.view(),
            Some(self.w.b_dec.view()),
            out.view_mut(),
        );
        Ok(out)
    }

    /// Reconstruction `x̂ = decode(encode(x))` in the input space (sparse path throughout).
    ///
    /// # Errors
    /// As [`Sae::encode_sparse`].
    pub fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        let codes = self.encode_sparse(x)?;
        self.decode_sparse(&codes)
    }

    /// The error term `x − x̂` (what SAELens' `use_error_term` adds back).
    ///
    /// # Errors
    /// As [`Sae::encode_sparse`].
    pub fn error_term(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        Ok(&x - &self.forward(x)?)
    }

    /// Folds decoder row norms into the encoder so that every `‖W_dec[i]‖ = 1` while outputs stay
    /// the same: `W_enc[:,i]`, `b_enc[i]`, thresholds and gated biases scale by the norm,
    /// `W_dec[i]` divides by it (SAELens `fold_W_dec_norm`).
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a TopK SAE without `rescale_acts_by_decoder_norm`, where the
    /// fold would change which latents win (SAELens refuses too).
    pub fn fold_decoder_norms(&mut self) -> Result<()> {
        if let Architecture::TopK {
            rescale_acts_by_decoder_norm,
            ..
        } = &mut self.cfg.architecture
        {
            if !*rescale_acts_by_decoder_norm {
                return Err(Error::Unsupported {
                    what: "folding decoder norms of a TopK SAE ranked on raw pre-activations \
                           changes its outputs"
                        .into(),
                });
            }
            *rescale_acts_by_decoder_norm = false;
        }
        let norms = Array1::from(self.decoder_norms());
        let col = norms.view().insert_axis(Axis(1));
        self.w.w_dec /= &col;
        self.w.w_enc *= &norms;
        self.w.b_enc *= &norms;
        if let Some(t) = &mut self.w.threshold {
            *t *= &norms;
        }
        if let Some(g) = &mut self.w.gated {
            g.b_gate *= &norms;
            g.b_mag *= &norms;
        }
        self.refresh_derived();
        Ok(())
    }

    /// Folds a constant input scale `s` into the weights: an SAE trained on `s·x` becomes one
    /// that reads `x` directly (`W_enc·s`, `W_dec/s`, `b_dec/s`; pre-activations, hence
    /// thresholds, unchanged), and the normalisation becomes `none` (SAELens
    /// `fold_activation_norm_scaling_factor`).
    ///
    /// # Errors
    /// [`Error::NonFinite`] if `s` is not a finite positive number; [`Error::Unsupported`] for
    /// `layer_norm` / `constant_norm_rescale` SAEs (their per-token scaling would be lost).
    pub fn fold_activation_scale(&mut self, s: f32) -> Result<()> {
        if !(s.is_finite() && s > 0.0) {
            return Err(Error::NonFinite {
                key: "activation scale".into(),
                index: 0,
            });
        }
        if matches!(
            self.cfg.normalize_activations,
            Normalization::LayerNorm | Normalization::ConstantNormRescale
        ) {
            return Err(Error::Unsupported {
                what: "folding a constant scale into an SAE that normalises each token".into(),
            });
        }
        self.w.w_enc *= s;
        self.w.w_dec /= s;
        self.w.b_dec /= s;
        self.cfg.normalize_activations = Normalization::None;
        self.refresh_derived();
        Ok(())
    }
}

fn slice(a: &Array1<f32>) -> &[f32] {
    a.as_slice().expect("1-d owned arrays are contiguous")
}
