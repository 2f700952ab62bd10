//! The training loop: schedules, dead-latent handling, metrics, checkpoints and resume.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use interp_core::SafetensorsFile;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::config::{BDecInit, DeadPolicy, TrainArch, TrainConfig};
use super::metrics::{
    append_line, density_bin, Accumulator, StepMetrics, DENSITY_BINS, METRICS_FILE,
};
use super::params::{normalize_rows, Adam, ParamSet, TENSOR_NAMES};
use super::plots::write_plots;
use super::source::ActivationSource;
use super::step::{
    forward, project_out_radial, squared_errors, GradientEngine, HandDerived, StepSettings,
    StepStats,
};
use crate::config::{Architecture, SaeConfig};
use crate::error::{Error, Result};
use crate::sae::{Sae, SaeWeights};
use interp_core::rng::SplitMix64;

/// Rows drawn before training to estimate the input scale and initialise `b_dec`.
const INIT_SAMPLE_ROWS: usize = 16_384;
/// Metadata key of the training state in a checkpoint.
const STATE_KEY: &str = "interp_sae.train_state";

/// A loss and its gradients: [`Trainer::loss_and_gradients`]. Matrices in SAELens layout.
#[derive(Clone, Debug, PartialEq)]
pub struct Gradients {
    /// The loss that was differentiated (reconstruction + sparsity + AuxK terms).
    pub loss: f64,
    /// `∂loss/∂W_enc`, `[d_in, d_sae]`.
    pub w_enc: Array2<f32>,
    /// `∂loss/∂b_enc`, `[d_sae]`.
    pub b_enc: Array1<f32>,
    /// `∂loss/∂W_dec`, `[d_sae, d_in]`.
    pub w_dec: Array2<f32>,
    /// `∂loss/∂b_dec`, `[d_in]`.
    pub b_dec: Array1<f32>,
    /// `∂loss/∂ln θ` of JumpReLU's thresholds, `[d_sae]`.
    pub log_threshold: Option<Array1<f32>>,
}

/// Periodic evaluation of the SAE being trained (e.g. CE loss recovered with the SAE spliced
/// into a model).
pub trait Evaluator {
    /// Measures `sae` (already in input units, ready to use) and returns named values.
    ///
    /// # Errors
    /// Whatever the evaluation can fail with; training stops with it.
    fn evaluate(&mut self, sae: &Sae) -> Result<Map<String, Value>>;
}

/// How [`Trainer::fit`] reports and saves.
#[derive(Default)]
pub struct FitOptions<'a> {
    /// Directory for `metrics.jsonl`, `checkpoint.safetensors`, plots and the final SAE
    /// (SAELens layout). Nothing is written without one.
    pub out_dir: Option<PathBuf>,
    /// Show a progress bar with tokens/s.
    pub progress: bool,
    /// Evaluate every `eval_every` steps (and at the end) with this.
    pub evaluator: Option<&'a mut dyn Evaluator>,
    /// Steps between evaluations (0 = only at the end).
    pub eval_every: u64,
    /// Stop after this many steps even if the config asks for more (for tests of resume).
    pub stop_after: Option<u64>,
    /// Measure decoder orthogonality every this many steps (0: every 10 logging intervals;
    /// it costs a `d_sae × d_sae` Gram pass). Seed 002 logs it every 100 steps.
    pub orthogonality_every: u64,
}

/// What [`Trainer::fit`] produced.
#[derive(Clone, Debug)]
pub struct TrainReport {
    /// Every logged interval.
    pub history: Vec<StepMetrics>,
    /// Where the SAELens directory was written, if an output directory was given.
    pub sae_dir: Option<PathBuf>,
}

/// Everything besides the tensors that a checkpoint must restore for an exact resume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct TrainState {
    config: TrainConfig,
    step: u64,
    tokens: u64,
    input_scale: f32,
    rng: SplitMix64,
    steps_since_fired: Vec<u64>,
    window_fires: Vec<u64>,
    interval_fires: Vec<u64>,
    interval_tokens: u64,
    resample_rounds: u32,
    batch_topk_threshold: Option<f32>,
    /// log10 firing density of each latent over the last logging interval (-10: never fired),
    /// saved as SAELens' `sparsity.safetensors`.
    log10_density: Vec<f32>,
    acc: Accumulator,
    last_lr: f32,
    history: Vec<StepMetrics>,
    source_position: Value,
}

/// An SAE in training: parameters, Adam moments and all bookkeeping.
pub struct Trainer {
    params: ParamSet,
    m: ParamSet,
    v: ParamSet,
    grads: ParamSet,
    state: TrainState,
    engine: Box<dyn GradientEngine>,
}

impl Trainer {
    /// Validates `cfg`, draws up to 16 384 rows from `source` to set the input scale (inputs are
    /// scaled so that `E‖x‖² = d_in`, as SAELens' `expected_average_only_in`) and `b_dec`, and
    /// initialises the weights.
    ///
    /// # Errors
    /// [`Error::TrainConfig`] for an impossible config, [`Error::InputWidth`] if the source's
    /// width is not `d_in`, [`Error::Data`] for unusable data.
    pub fn new(cfg: TrainConfig, source: &mut dyn ActivationSource) -> Result<Self> {
        cfg.validate()?;
        if source.d_in() != cfg.d_in {
            return Err(Error::InputWidth {
                expected: cfg.d_in,
                actual: source.d_in(),
            });
        }
        let mut rng = SplitMix64::stream(cfg.seed, 0);
        let init_threshold = match cfg.arch {
            TrainArch::JumpRelu { init_threshold, .. } => Some(init_threshold),
            _ => None,
        };
        let mut params = ParamSet::init(&cfg, init_threshold, &mut rng);

        let rows = INIT_SAMPLE_ROWS;
        let mut sample = Array2::zeros((rows, cfg.d_in));
        source.next_batch(sample.view_mut())?;
        let mean_sq = sample.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / rows as f64;
        if !(mean_sq.is_finite() && mean_sq > 0.0) {
            return Err(Error::Data {
                reason: format!("activations have mean squared norm {mean_sq}"),
            });
        }
        let input_scale = (cfg.d_in as f64 / mean_sq).sqrt() as f32;
        sample *= input_scale;
        match cfg.b_dec_init {
            BDecInit::Zeros => {}
            BDecInit::Mean => params.b_dec = sample.mean_axis(Axis(0)).expect("rows > 0"),
            BDecInit::GeometricMedian => params.b_dec = geometric_median(sample.view(), 100),
        }

        let f = cfg.d_sae;
        let state = TrainState {
            step: 0,
            tokens: 0,
            input_scale,
            rng,
            steps_since_fired: vec![0; f],
            window_fires: vec![0; f],
            interval_fires: vec![0; f],
            interval_tokens: 0,
            resample_rounds: 0,
            batch_topk_threshold: None,
            log10_density: vec![-10.0; f],
            acc: Accumulator::default(),
            last_lr: 0.0,
            history: Vec::new(),
            source_position: source.position(),
            config: cfg,
        };
        Ok(Trainer {
            m: params_like(&params),
            v: params_like(&params),
            grads: params_like(&params),
            params,
            state,
            engine: Box::<HandDerived>::default(),
        })
    }

    /// Takes the gradients from burn autodiff on backend `B` (e.g. `Autodiff<NdArray>`, or a GPU
    /// backend) on `device` instead of the hand-derived CPU step. The losses, and everything
    /// around the gradients (Adam, schedules, dead latents, checkpoints), are the same; the
    /// codes are dense on the device, so on the CPU the default step is much faster.
    #[cfg(feature = "burn")]
    #[must_use]
    pub fn with_burn_backend<B: burn::tensor::backend::AutodiffBackend>(
        mut self,
        device: B::Device,
    ) -> Self {
        self.engine = Box::new(super::autodiff::BurnAutodiff::<B> { device });
        self
    }

    /// Where the gradients come from: `"hand-derived (CPU)"` or `"burn autodiff (<device>)"`.
    pub fn gradient_engine(&self) -> String {
        self.engine.name()
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.state.config
    }

    /// Steps completed.
    pub fn step_count(&self) -> u64 {
        self.state.step
    }

    /// The factor inputs are multiplied by before training (`√(d_in / E‖x‖²)`).
    pub fn input_scale(&self) -> f32 {
        self.state.input_scale
    }

    /// Metrics logged so far.
    pub fn history(&self) -> &[StepMetrics] {
        &self.state.history
    }

    fn lr_at(&self, step: u64) -> f32 {
        let c = &self.state.config;
        let warm = if c.lr_warmup_steps > 0 {
            ((step + 1) as f32 / c.lr_warmup_steps as f32).min(1.0)
        } else {
            1.0
        };
        let decay_steps = (c.lr_decay_fraction as f64 * c.steps as f64).round() as u64;
        let decay = if decay_steps > 0 && step >= c.steps.saturating_sub(decay_steps) {
            (c.steps - step) as f32 / decay_steps as f32
        } else {
            1.0
        };
        c.lr * warm * decay
    }

    fn sparsity_coef_at(&self, step: u64) -> f32 {
        match self.state.config.arch {
            TrainArch::Relu {
                l1,
                l1_warmup_steps,
                ..
            } => {
                if l1_warmup_steps > 0 {
                    l1 * ((step + 1) as f32 / l1_warmup_steps as f32).min(1.0)
                } else {
                    l1
                }
            }
            TrainArch::JumpRelu { l0, .. } => l0,
            _ => 0.0,
        }
    }

    fn dead_mask(&self) -> Vec<bool> {
        let after = self.state.config.dead_after_steps;
        self.state
            .steps_since_fired
            .iter()
            .map(|&s| s >= after)
            .collect()
    }

    /// Checks and scales `batch`, then fills `self.grads` for the current step.
    fn forward_backward(&mut self, batch: ArrayView2<'_, f32>) -> Result<(StepStats, Option<f32>)> {
        let cfg = &self.state.config;
        if batch.ncols() != cfg.d_in {
            return Err(Error::InputWidth {
                expected: cfg.d_in,
                actual: batch.ncols(),
            });
        }
        crate::error::check_finite("input", batch.iter())?;
        let x = &batch * self.state.input_scale;
        let dead = self.dead_mask();
        let settings = StepSettings {
            arch: &cfg.arch,
            sparsity_coef: self.sparsity_coef_at(self.state.step),
            apply_b_dec: cfg.apply_b_dec_to_input,
            dead: &dead,
        };
        self.engine
            .forward_backward(&self.params, x.view(), &settings, &mut self.grads)
    }

    /// The loss of a batch of raw activations at the current step and its gradient with respect
    /// to every trainable tensor, without updating anything: what the next [`Trainer::step`]
    /// would differentiate (before unit-norm projection and clipping). The parameters act on
    /// inputs multiplied by [`Trainer::input_scale`].
    ///
    /// # Errors
    /// As [`Trainer::step`], except that a non-finite loss is returned rather than an error.
    pub fn loss_and_gradients(&mut self, batch: ArrayView2<'_, f32>) -> Result<Gradients> {
        let (stats, _) = self.forward_backward(batch)?;
        let g = &self.grads;
        Ok(Gradients {
            loss: stats.loss,
            w_enc: g.w_enc.t().to_owned(),
            b_enc: g.b_enc.clone(),
            w_dec: g.w_dec.clone(),
            b_dec: g.b_dec.clone(),
            log_threshold: (!g.log_threshold.is_empty()).then(|| g.log_threshold.clone()),
        })
    }

    /// One optimisation step on a batch of raw (unscaled) activations `[n, d_in]`.
    ///
    /// Drives training from any data (e.g. one model pass feeding several SAEs); [`Trainer::fit`]
    /// calls it and adds dead-latent handling, logging and checkpoints. Returns the loss.
    ///
    /// # Errors
    /// [`Error::InputWidth`] for the wrong width, [`Error::NonFinite`] for NaN inputs,
    /// [`Error::NonFiniteLoss`] if the loss is NaN/inf (the parameters are left unchanged).
    pub fn step(&mut self, batch: ArrayView2<'_, f32>) -> Result<f64> {
        let cfg = self.state.config.clone();
        let step = self.state.step;
        let (stats, min_kept) = self.forward_backward(batch)?;
        if !stats.loss.is_finite() {
            return Err(Error::NonFiniteLoss {
                step: step + 1,
                checkpoint: None,
            });
        }
        if cfg.unit_norm_decoder {
            project_out_radial(&mut self.grads.w_dec, &self.params.w_dec);
        }
        if let Some(clip) = cfg.grad_clip {
            let norm = self.grads.norm();
            if norm > clip as f64 {
                self.grads.scale((clip as f64 / norm) as f32);
            }
        }
        let lr = self.lr_at(step);
        Adam {
            lr,
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: cfg.eps,
            t: step + 1,
            m: &mut self.m,
            v: &mut self.v,
        }
        .update(&mut self.params, &self.grads);
        if cfg.unit_norm_decoder {
            normalize_rows(&mut self.params.w_dec, 1.0);
        }

        let st = &mut self.state;
        if let Some(m) = min_kept {
            st.batch_topk_threshold = Some(match st.batch_topk_threshold {
                None => m,
                Some(t) => 0.99 * t + 0.01 * m,
            });
        }
        for (i, &f) in stats.fired.iter().enumerate() {
            st.steps_since_fired[i] = if f > 0 {
                0
            } else {
                st.steps_since_fired[i] + 1
            };
            st.window_fires[i] += f as u64;
            st.interval_fires[i] += f as u64;
        }
        st.interval_tokens += batch.nrows() as u64;
        st.step += 1;
        st.tokens += batch.nrows() as u64;
        st.last_lr = lr;
        let a = &mut st.acc;
        a.steps += 1;
        a.loss += stats.loss;
        a.mse += stats.mse;
        a.sparsity += stats.sparsity;
        a.aux += stats.aux;
        a.l0 += stats.l0;
        a.sq_err += stats.sq_err;
        a.sq_var += stats.sq_var;
        Ok(stats.loss)
    }

    /// Applies the configured dead-latent policy if this step is a check point; draws inputs
    /// from `source` for resampling. Returns how many latents were revived.
    ///
    /// # Errors
    /// Whatever `source` fails with.
    pub fn handle_dead(&mut self, source: &mut dyn ActivationSource) -> Result<usize> {
        let step = self.state.step;
        let policy = self.state.config.dead.clone();
        let (every, window) = match policy {
            DeadPolicy::None => return Ok(0),
            DeadPolicy::Resample { every, window, .. }
            | DeadPolicy::Reinit { every, window, .. } => (every, window),
        };
        let revived = if step > 0 && step.is_multiple_of(every) && step < self.state.config.steps {
            self.revive_dead(&policy, window, source)?
        } else {
            0
        };
        // The firing window of the next check starts now (after this check when window = every).
        if step % every == every - window {
            self.state.window_fires.iter_mut().for_each(|c| *c = 0);
        }
        Ok(revived)
    }

    /// Finds the latents the policy counts as dead over the last window and revives them.
    fn revive_dead(
        &mut self,
        policy: &DeadPolicy,
        window: u64,
        source: &mut dyn ActivationSource,
    ) -> Result<usize> {
        let tokens = (window * self.state.config.batch_size as u64) as f64;
        let dead: Vec<usize> = match *policy {
            DeadPolicy::Resample {
                threshold,
                max_rounds,
                ..
            } => {
                if self.state.resample_rounds >= max_rounds {
                    return Ok(0);
                }
                self.state.resample_rounds += 1;
                self.latents_where(|c| c as f64 <= threshold * tokens)
            }
            DeadPolicy::Reinit { threshold, .. } => {
                self.latents_where(|c| (c as f64) < threshold * tokens)
            }
            DeadPolicy::None => unreachable!(),
        };
        if dead.is_empty() {
            return Ok(0);
        }
        match *policy {
            DeadPolicy::Resample { sample_size, .. } => {
                self.resample(&dead, sample_size, source)?
            }
            _ => self.reinit(&dead),
        }
        for &i in &dead {
            self.state.steps_since_fired[i] = 0;
        }
        self.state.acc.revived += dead.len() as u64;
        Ok(dead.len())
    }

    fn latents_where(&self, pred: impl Fn(u64) -> bool) -> Vec<usize> {
        (0..self.state.window_fires.len())
            .filter(|&i| pred(self.state.window_fires[i]))
            .collect()
    }

    fn reset_latent_state(&mut self, i: usize) {
        self.m.zero_latent(i);
        self.v.zero_latent(i);
    }

    /// Anthropic's resampling of `dead` latents from inputs drawn ∝ squared loss.
    fn resample(
        &mut self,
        dead: &[usize],
        sample_size: usize,
        source: &mut dyn ActivationSource,
    ) -> Result<()> {
        let cfg = self.state.config.clone();
        let mut sample = Array2::zeros((sample_size, cfg.d_in));
        source.next_batch(sample.view_mut())?;
        sample *= self.state.input_scale;
        let all_dead = self.dead_mask();
        let settings = StepSettings {
            arch: &cfg.arch,
            sparsity_coef: 0.0,
            apply_b_dec: cfg.apply_b_dec_to_input,
            dead: &all_dead,
        };
        let mut weights: Vec<f64> = Vec::with_capacity(sample_size);
        for chunk in sample.axis_chunks_iter(Axis(0), cfg.batch_size) {
            let fwd = forward(&self.params, chunk, &settings);
            weights.extend(
                squared_errors(chunk, &fwd.x_hat)
                    .iter()
                    .map(|&e| (e as f64).powi(2)),
            );
        }
        if weights.iter().sum::<f64>() <= 0.0 {
            weights.iter_mut().for_each(|w| *w = 1.0);
        }
        let is_dead: Vec<bool> = {
            let mut m = vec![false; cfg.d_sae];
            dead.iter().for_each(|&i| m[i] = true);
            m
        };
        let alive_norms: Vec<f32> = (0..cfg.d_sae)
            .filter(|&i| !is_dead[i])
            .map(|i| {
                self.params
                    .w_enc
                    .row(i)
                    .dot(&self.params.w_enc.row(i))
                    .sqrt()
            })
            .collect();
        let mean_alive = if alive_norms.is_empty() {
            1.0
        } else {
            alive_norms.iter().sum::<f32>() / alive_norms.len() as f32
        };
        let cumulative = cumulative(&weights);
        for &i in dead {
            let j = sample_index(&cumulative, self.state.rng.uniform());
            let x = sample.row(j);
            let n = x.dot(&x).sqrt();
            if n == 0.0 {
                continue;
            }
            let dir = &x / n;
            let dec_norm = if cfg.unit_norm_decoder {
                1.0
            } else {
                self.params
                    .w_dec
                    .row(i)
                    .dot(&self.params.w_dec.row(i))
                    .sqrt()
                    .max(1e-3)
            };
            self.params.w_dec.row_mut(i).assign(&(&dir * dec_norm));
            self.params
                .w_enc
                .row_mut(i)
                .assign(&(&dir * (0.2 * mean_alive)));
            self.params.b_enc[i] = 0.0;
            self.reset_latent_state(i);
        }
        Ok(())
    }

    /// Seed 002's re-initialisation of `dead` encoder rows.
    fn reinit(&mut self, dead: &[usize]) {
        let scale = 1.0 / (self.state.config.d_in as f32).sqrt();
        for &i in dead {
            for w in self.params.w_enc.row_mut(i) {
                *w = self.state.rng.normal() * scale;
            }
            self.params.b_enc[i] = 0.0;
            self.reset_latent_state(i);
        }
    }

    /// Closes the current logging interval: averages, dead fraction, density histogram and
    /// (when `with_orthogonality`) decoder orthogonality.
    fn log_interval(&mut self, with_orthogonality: bool, eval: Map<String, Value>) -> StepMetrics {
        let sparsity_coef = self.sparsity_coef_at(self.state.step.saturating_sub(1));
        let st = &mut self.state;
        let a = std::mem::take(&mut st.acc);
        let n = a.steps.max(1) as f64;
        let after = st.config.dead_after_steps;
        let dead = st.steps_since_fired.iter().filter(|&&s| s >= after).count();
        let mut hist = vec![0u32; DENSITY_BINS + 1];
        for (&c, d) in st.interval_fires.iter().zip(&mut st.log10_density) {
            let l = (c as f64 / st.interval_tokens.max(1) as f64).log10();
            *d = if c == 0 { -10.0 } else { l as f32 };
            let bin = density_bin(c > 0, l);
            hist[bin] += 1;
        }
        st.interval_fires.iter_mut().for_each(|c| *c = 0);
        st.interval_tokens = 0;
        let (mean_cos, max_cos) = if with_orthogonality {
            let g = interp_core::tiles::gram_stats(self.params.w_dec.view());
            (Some(g.mean_abs_off_diagonal), Some(g.max_abs_off_diagonal))
        } else {
            (None, None)
        };
        let metrics = StepMetrics {
            step: st.step,
            tokens: st.tokens,
            lr: st.last_lr,
            loss: a.loss / n,
            mse: a.mse / n,
            sparsity: a.sparsity / n,
            sparsity_coef,
            aux_loss: a.aux / n,
            l0: a.l0 / n,
            fvu: if a.sq_var > 0.0 {
                a.sq_err / a.sq_var
            } else {
                0.0
            },
            dead_fraction: dead as f64 / st.steps_since_fired.len() as f64,
            density_histogram: hist,
            decoder_mean_abs_cos: mean_cos,
            decoder_max_abs_cos: max_cos,
            revived: a.revived,
            eval,
        };
        self.state.history.push(metrics.clone());
        metrics
    }

    /// Trains until `config().steps` (or `opts.stop_after`), pulling batches from `source`:
    /// dead-latent handling, metrics every `log_every` steps (`metrics.jsonl`), checkpoints
    /// every `checkpoint_every` steps, and at the end the SAE in SAELens layout, its
    /// `sparsity.safetensors`, and plots of the curves and feature densities.
    ///
    /// # Errors
    /// [`Error::NonFiniteLoss`] naming the last good checkpoint; source, evaluator and I/O
    /// errors.
    pub fn fit(
        &mut self,
        source: &mut dyn ActivationSource,
        mut opts: FitOptions<'_>,
    ) -> Result<TrainReport> {
        let cfg = self.state.config.clone();
        let end = opts.stop_after.map_or(cfg.steps, |s| s.min(cfg.steps));
        let out = opts.out_dir.clone();
        if let Some(dir) = &out {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            // A resumed run rewrites the log up to its checkpoint, then appends.
            let lines: String = self
                .state
                .history
                .iter()
                .map(|m| serde_json::to_string(m).expect("metrics serialise") + "\n")
                .collect();
            interp_core::write_atomic(&dir.join(METRICS_FILE), lines.as_bytes())?;
        }
        let bar = progress_bar(opts.progress, end, self.state.step);
        let mut last_checkpoint: Option<PathBuf> = out
            .as_ref()
            .map(|d| d.join(CHECKPOINT_FILE))
            .filter(|p| p.exists());
        let mut batch = Array2::zeros((cfg.batch_size, cfg.d_in));
        let ortho_every = match opts.orthogonality_every {
            0 => cfg.log_every * 10,
            n => n,
        };
        while self.state.step < end {
            source.next_batch(batch.view_mut())?;
            match self.step(batch.view()) {
                Err(Error::NonFiniteLoss { step, .. }) => {
                    return Err(Error::NonFiniteLoss {
                        step,
                        checkpoint: last_checkpoint,
                    })
                }
                other => other?,
            };
            self.handle_dead(source)?;
            let step = self.state.step;
            // Logging depends only on the step (not on `stop_after`), so an interrupted and
            // resumed run logs exactly what an uninterrupted one does.
            let last = step == cfg.steps;
            let eval_now = opts.evaluator.is_some()
                && ((opts.eval_every > 0 && step.is_multiple_of(opts.eval_every)) || last);
            if step.is_multiple_of(cfg.log_every) || last {
                let eval = match (&mut opts.evaluator, eval_now) {
                    (Some(e), true) => e.evaluate(&self.to_sae()?)?,
                    _ => Map::new(),
                };
                let m = self.log_interval(step.is_multiple_of(ortho_every) || last, eval);
                if let Some(dir) = &out {
                    append_line(&dir.join(METRICS_FILE), &m)?;
                }
                if let Some(bar) = &bar {
                    bar.set_message(format!(
                        "mse {:.4} l0 {:.1} fvu {:.4} dead {:.3}",
                        m.mse, m.l0, m.fvu, m.dead_fraction
                    ));
                }
            }
            if let Some(dir) = &out {
                if cfg.checkpoint_every > 0
                    && step.is_multiple_of(cfg.checkpoint_every)
                    && step != end
                {
                    self.state.source_position = source.position();
                    let path = dir.join(CHECKPOINT_FILE);
                    self.save_checkpoint(&path)?;
                    last_checkpoint = Some(path);
                }
            }
            if let Some(bar) = &bar {
                bar.set_position(step);
            }
        }
        if let Some(bar) = &bar {
            bar.finish();
        }
        let mut sae_dir = None;
        if let Some(dir) = &out {
            self.state.source_position = source.position();
            self.save_checkpoint(&dir.join(CHECKPOINT_FILE))?;
            if self.state.step == cfg.steps {
                let sae = self.to_sae()?;
                crate::formats::saelens::save(&sae, dir, Some(&self.state.log10_density))?;
                write_plots(dir, &self.state.history)?;
                sae_dir = Some(dir.clone());
            }
        }
        Ok(TrainReport {
            history: self.state.history.clone(),
            sae_dir,
        })
    }

    /// The SAE as trained so far, in input units (the input scale folded into the weights).
    /// BatchTopK becomes a JumpReLU whose threshold is the running mean of the smallest kept
    /// activation, as SAELens saves it.
    ///
    /// # Errors
    /// [`Error::NonFinite`] if a weight is NaN/inf.
    pub fn to_sae(&self) -> Result<Sae> {
        let cfg = &self.state.config;
        let p = &self.params;
        let (architecture, threshold) = match cfg.arch {
            TrainArch::Relu { .. } => (Architecture::Standard, None),
            TrainArch::TopK { k, .. } => (
                Architecture::TopK {
                    k,
                    rescale_acts_by_decoder_norm: false,
                },
                None,
            ),
            TrainArch::BatchTopK { .. } => (
                Architecture::JumpRelu,
                Some(Array1::from_elem(
                    cfg.d_sae,
                    self.state.batch_topk_threshold.unwrap_or(0.0),
                )),
            ),
            TrainArch::JumpRelu { .. } => {
                (Architecture::JumpRelu, Some(p.log_threshold.mapv(f32::exp)))
            }
        };
        let mut sae_cfg = SaeConfig::new(architecture, cfg.d_in, cfg.d_sae);
        sae_cfg.apply_b_dec_to_input = cfg.apply_b_dec_to_input;
        let mut sae = Sae::new(
            sae_cfg,
            SaeWeights {
                w_enc: p.w_enc.t().to_owned(),
                w_dec: p.w_dec.clone(),
                b_enc: p.b_enc.clone(),
                b_dec: p.b_dec.clone(),
                threshold,
                gated: None,
            },
        )?;
        sae.fold_activation_scale(self.state.input_scale)?;
        Ok(sae)
    }

    /// Writes parameters, Adam moments and the full training state to `path` atomically
    /// (temp file + rename): a crash mid-write leaves the previous checkpoint intact.
    ///
    /// # Errors
    /// [`Error::Tensors`] on write failure.
    pub fn save_checkpoint(&self, path: &Path) -> Result<()> {
        let sets = [
            ("params", &self.params),
            ("adam_m", &self.m),
            ("adam_v", &self.v),
        ];
        let mut names = Vec::new();
        for (prefix, _) in &sets {
            for t in TENSOR_NAMES {
                names.push(format!("{prefix}.{t}"));
            }
        }
        let shapes: Vec<Vec<usize>> = sets.iter().flat_map(|(_, p)| p.shapes()).collect();
        let values: Vec<&[f32]> = sets.iter().flat_map(|(_, p)| p.tensors()).collect();
        let state = serde_json::to_string(&self.state).expect("state serialises");
        interp_core::write_safetensors_with_metadata(
            path,
            names
                .iter()
                .zip(&shapes)
                .zip(&values)
                .filter(|((_, s), _)| s.iter().product::<usize>() > 0)
                .map(|((n, s), v)| (n.as_str(), s.as_slice(), *v)),
            BTreeMap::from([(STATE_KEY.to_string(), state)]),
        )?;
        Ok(())
    }

    /// Restores a trainer from a checkpoint and moves `source` to where it was, so that
    /// continuing gives exactly the run that was interrupted.
    ///
    /// # Errors
    /// [`Error::Tensors`] for unreadable files, [`Error::Data`] if it is not a training
    /// checkpoint or does not fit `source`.
    pub fn resume(path: &Path, source: &mut dyn ActivationSource) -> Result<Self> {
        let file = SafetensorsFile::open(path)?;
        let meta = file.metadata()?;
        let state: TrainState = meta
            .get(STATE_KEY)
            .ok_or_else(|| Error::Data {
                reason: format!("{} is not a training checkpoint", path.display()),
            })
            .and_then(|s| {
                serde_json::from_str(s).map_err(|e| Error::Data {
                    reason: format!("{}: bad training state: {e}", path.display()),
                })
            })?;
        state.config.validate()?;
        if source.d_in() != state.config.d_in {
            return Err(Error::InputWidth {
                expected: state.config.d_in,
                actual: source.d_in(),
            });
        }
        let jump = matches!(state.config.arch, TrainArch::JumpRelu { .. });
        let read = |prefix: &str| -> Result<ParamSet> {
            let mut p = ParamSet::zeros(&state.config, jump);
            let shapes = p.shapes();
            for ((name, shape), dst) in TENSOR_NAMES.iter().zip(&shapes).zip(p.tensors_mut()) {
                if dst.is_empty() {
                    continue;
                }
                let t = file.read(&format!("{prefix}.{name}"))?;
                crate::error::check_shape(&format!("{prefix}.{name}"), &t.shape, shape)?;
                dst.copy_from_slice(&t.data);
            }
            Ok(p)
        };
        let params = read("params")?;
        let (m, v) = (read("adam_m")?, read("adam_v")?);
        source.seek(&state.source_position)?;
        Ok(Trainer {
            grads: params_like(&params),
            params,
            m,
            v,
            state,
            engine: Box::<HandDerived>::default(),
        })
    }
}

/// The checkpoint in an output directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

fn params_like(p: &ParamSet) -> ParamSet {
    ParamSet {
        w_enc: Array2::zeros(p.w_enc.raw_dim()),
        b_enc: Array1::zeros(p.b_enc.len()),
        w_dec: Array2::zeros(p.w_dec.raw_dim()),
        b_dec: Array1::zeros(p.b_dec.len()),
        log_threshold: Array1::zeros(p.log_threshold.len()),
    }
}

fn progress_bar(show: bool, end: u64, at: u64) -> Option<indicatif::ProgressBar> {
    show.then(|| {
        let bar = indicatif::ProgressBar::new(end);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} steps, {per_sec} ({eta}) {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_position(at);
        bar
    })
}

fn cumulative(weights: &[f64]) -> Vec<f64> {
    let mut acc = 0.0;
    weights
        .iter()
        .map(|&w| {
            acc += w;
            acc
        })
        .collect()
}

/// Index `i` with probability ∝ `weights[i]`, given the cumulative sums and `u ∈ [0, 1)`.
fn sample_index(cumulative: &[f64], u: f64) -> usize {
    let target = u * cumulative.last().copied().unwrap_or(0.0);
    cumulative
        .partition_point(|&c| c <= target)
        .min(cumulative.len() - 1)
}

/// The geometric median of the rows of `x` by Weiszfeld's iterations from the mean.
pub fn geometric_median(x: ArrayView2<'_, f32>, iterations: usize) -> Array1<f32> {
    let mut y = x.mean_axis(Axis(0)).expect("rows > 0").mapv(|v| v as f64);
    for _ in 0..iterations {
        let mut num = Array1::<f64>::zeros(y.len());
        let mut den = 0.0;
        for row in x.rows() {
            let d = row
                .iter()
                .zip(&y)
                .map(|(&a, &b)| (a as f64 - b).powi(2))
                .sum::<f64>()
                .sqrt()
                .max(1e-8);
            num.zip_mut_with(&row, |n, &a| *n += a as f64 / d);
            den += 1.0 / d;
        }
        let next = num / den;
        let shift = (&next - &y).mapv(|v| v * v).sum().sqrt();
        y = next;
        if shift < 1e-6 * (1.0 + y.mapv(|v| v * v).sum().sqrt()) {
            break;
        }
    }
    y.mapv(|v| v as f32)
}
