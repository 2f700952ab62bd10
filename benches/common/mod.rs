//! Workloads shared by the criterion benches and the paired-anchor worker (`paired.rs`), so
//! that both time exactly the same thing.
// Each bench target uses only some of these.
#![allow(dead_code)]

use interp::models::prelude::*;
use interp::sae::prelude::*;
use interp_core::rng::SplitMix64;
use ndarray::{Array1, Array2};

/// Sequences × positions of the GPT-2 forward benchmark.
pub const GPT2_BATCH: usize = 8;
/// Positions per sequence of the GPT-2 forward benchmark.
pub const GPT2_POS: usize = 128;
/// Rows (tokens) per SAE call.
pub const SAE_BATCH: usize = 1024;

/// A GPT-2-small-shaped model with random weights and an 8 × 128 batch of deterministic
/// pseudo-random token ids.
pub fn gpt2_small() -> (HookedTransformer<Cpu>, Batch) {
    let device = Default::default();
    let cfg = ModelConfig::gpt2_small();
    let model = HookedTransformer::<Cpu>::random(cfg.clone(), 0, &device);
    let seqs: Vec<Vec<u32>> = (0..GPT2_BATCH)
        .map(|b| {
            (0..GPT2_POS)
                .map(|p| ((b * 7919 + p * 104_729) % cfg.d_vocab) as u32)
                .collect()
        })
        .collect();
    (model, Batch::padded(&seqs, PaddingSide::Right))
}

/// The filter of the `run_with_cache` benchmark: all 12 `hook_resid_pre`.
pub fn resid_pre() -> NameFilter {
    NameFilter::patterns(["blocks.*.hook_resid_pre"])
}

/// The SAE shapes of `../shared/anchors/saelens_kernels.py`: name, architecture, d_in, d_sae.
pub fn sae_cases() -> [(&'static str, Architecture, usize, usize); 4] {
    let topk = |k| Architecture::TopK {
        k,
        rescale_acts_by_decoder_norm: false,
    };
    [
        ("relu_768x24576", Architecture::Standard, 768, 24576),
        ("jumprelu_2304x16384", Architecture::JumpRelu, 2304, 16384),
        ("topk32_768x32768", topk(32), 768, 32768),
        ("topk32_768x131072", topk(32), 768, 131072),
    ]
}

/// Deterministic uniform values in `[-a, a)`.
pub fn uniform(n: usize, a: f32, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| ((rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * a)
        .collect()
}

/// An SAE with uniform weights of the anchor's standard deviation (0.02), thresholds 0.01.
pub fn random_sae(arch: Architecture, d_in: usize, d_sae: usize) -> Sae {
    // Uniform on [-a, a) has standard deviation a/√3.
    let a = 0.02 * 3f32.sqrt();
    let weights = SaeWeights {
        w_enc: Array2::from_shape_vec((d_in, d_sae), uniform(d_in * d_sae, a, 1)).unwrap(),
        w_dec: Array2::from_shape_vec((d_sae, d_in), uniform(d_sae * d_in, a, 2)).unwrap(),
        b_enc: Array1::from(uniform(d_sae, a, 3)),
        b_dec: Array1::from(uniform(d_in, a, 4)),
        threshold: (arch == Architecture::JumpRelu).then(|| Array1::from_elem(d_sae, 0.01)),
        gated: None,
    };
    Sae::new(SaeConfig::new(arch, d_in, d_sae), weights).unwrap()
}

/// `[SAE_BATCH, d_in]` inputs with unit standard deviation.
pub fn sae_inputs(d_in: usize) -> Array2<f32> {
    Array2::from_shape_vec((SAE_BATCH, d_in), uniform(SAE_BATCH * d_in, 3f32.sqrt(), 5)).unwrap()
}

/// The SAE whose sparse codes are benchmarked: TopK as is; ReLU / JumpReLU with the encoder
/// bias shifted so that about 64 latents fire per token (a realistic L0; SAELens' decode is a
/// dense GEMM whatever the L0).
pub fn at_realistic_l0(sae: &Sae, x: &Array2<f32>) -> Sae {
    if matches!(sae.config().architecture, Architecture::TopK { .. }) {
        return sae.clone();
    }
    let l0 = 64;
    let pre = sae.pre_activations(x.slice(ndarray::s![..64, ..])).unwrap();
    let mut all: Vec<f32> = pre.iter().copied().collect();
    let rank = all.len() - l0 * 64;
    let (_, cut, _) = all.select_nth_unstable_by(rank, |a, b| a.total_cmp(b));
    let cut = *cut;
    let mut w = sae.weights().clone();
    w.b_enc -= cut;
    Sae::new(sae.config().clone(), w).unwrap()
}

/// One SAE benchmark case, ready to run: the random SAE, its copy at a realistic L0, the
/// inputs and that copy's sparse codes of them.
pub struct SaeCase {
    pub name: &'static str,
    sae: Sae,
    sparse: Sae,
    x: Array2<f32>,
    codes: SparseCodes,
}

impl SaeCase {
    /// The case of [`sae_cases`] called `name`.
    pub fn named(name: &str) -> Result<Self, String> {
        let (name, arch, d_in, d_sae) = sae_cases()
            .into_iter()
            .find(|c| c.0 == name)
            .ok_or_else(|| format!("unknown SAE case {name}"))?;
        Ok(Self::new(name, arch, d_in, d_sae))
    }

    /// Builds a case of [`sae_cases`].
    pub fn new(name: &'static str, arch: Architecture, d_in: usize, d_sae: usize) -> Self {
        let sae = random_sae(arch, d_in, d_sae);
        let x = sae_inputs(d_in);
        let sparse = at_realistic_l0(&sae, &x);
        let codes = sparse.encode_sparse(x.view()).unwrap();
        Self {
            name,
            sae,
            sparse,
            x,
            codes,
        }
    }

    /// Mean active latents per row of the decoded codes.
    pub fn l0(&self) -> f64 {
        self.codes.nnz() as f64 / SAE_BATCH as f64
    }

    /// The operations benchmarked on this case (described in `sae_kernels.rs`); TopK's
    /// encode is benchmarked with sparse output only.
    pub fn ops(&self) -> &'static [&'static str] {
        if matches!(self.sae.config().architecture, Architecture::TopK { .. }) {
            &["encode_sparse", "decode_sparse", "forward"]
        } else {
            &["encode_dense", "encode_sparse", "decode_sparse", "forward"]
        }
    }

    /// Runs `op` once, dropping its output.
    pub fn run(&self, op: &str) -> Result<(), String> {
        let x = self.x.view();
        match op {
            "encode_dense" => self.sae.encode(x).map(drop),
            "encode_sparse" => self.sparse.encode_sparse(x).map(drop),
            "decode_sparse" => self.sparse.decode_sparse(&self.codes).map(drop),
            "forward" => self.sparse.forward(x).map(drop),
            _ => return Err(format!("unknown SAE op {op}")),
        }
        .map_err(|e| e.to_string())
    }
}

/// Samples per call of the steered-generation benchmark.
pub const STEER_SAMPLES: usize = 8;
/// New tokens per sample of the steered-generation benchmark.
pub const STEER_NEW_TOKENS: usize = 64;
/// Prompt length of the steered-generation benchmark.
pub const STEER_PROMPT: usize = 16;

/// The steered-generation workload: the GPT-2-small-shaped random model, a 16-token prompt, and
/// one direction (a random unit vector ×8, standing in for an SAE decoder row) added at
/// `blocks.6.hook_resid_pre` at every position and step; 8 samples × 64 new tokens at
/// temperature 1, no early stop, KV cache on.
pub struct SteerCase {
    /// The model.
    pub model: HookedTransformer<Cpu>,
    /// The prompt.
    pub prompt: Vec<u32>,
    /// The compiled plan.
    pub spec: HookSpec<Cpu>,
    /// Sampling settings.
    pub opts: GenerateOptions,
}

impl SteerCase {
    /// Builds the workload.
    pub fn new() -> Self {
        use interp::steer::{Direction, Positions, SaeSet, SteeringPlan};
        let (model, _) = gpt2_small();
        let d = model.cfg().d_model;
        let raw = uniform(d, 1.0, 7);
        let norm = raw.iter().map(|v| v * v).sum::<f32>().sqrt();
        let v: Vec<f32> = raw.iter().map(|x| 8.0 * x / norm).collect();
        let direction = Direction::new(v, "bench").expect("finite");
        let spec = SteeringPlan::new()
            .add(HookPoint::resid_pre(6), &direction, 1.0, Positions::All)
            .hook_spec(&model, &SaeSet::new())
            .expect("a valid plan");
        let prompt = (0..STEER_PROMPT)
            .map(|p| ((p * 104_729 + 17) % model.cfg().d_vocab) as u32)
            .collect();
        let opts = GenerateOptions {
            max_new_tokens: STEER_NEW_TOKENS,
            temperature: 1.0,
            stop_at_eos: false,
            ..Default::default()
        };
        SteerCase {
            model,
            prompt,
            spec,
            opts,
        }
    }

    /// One call: the 8 samples; returns the number of generated tokens.
    pub fn run(&self) -> Result<usize, String> {
        let samples = interp::steer::generate_samples(
            &self.model,
            &self.prompt,
            &self.spec,
            &self.opts,
            STEER_SAMPLES,
        )
        .map_err(|e| e.to_string())?;
        Ok(samples.iter().map(|s| s.tokens.len()).sum())
    }
}
