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

/// Positions of the model-family forward benchmarks (one sequence).
pub const FAMILY_POS: usize = 256;

/// The model-family forward benchmarks: a Gemma-2-2B-shaped model cut to 6 of its 26 layers
/// (so that ours and the anchor's fit in memory together) and a Llama-3.2-1B-shaped one with
/// all 16 layers, random weights, and one sequence of [`FAMILY_POS`] pseudo-random tokens.
pub fn family_model(name: &str) -> Result<(HookedTransformer<Cpu>, Batch), String> {
    let cfg = match name {
        "gemma2" => {
            let mut cfg = ModelConfig::gemma2_2b();
            cfg.n_layers = 6;
            cfg.layer_types.truncate(6);
            cfg
        }
        "llama" => ModelConfig::llama32_1b(),
        other => return Err(format!("unknown family {other:?} (gemma2, llama)")),
    };
    let model = HookedTransformer::<Cpu>::random(cfg.clone(), 0, &Default::default());
    let tokens: Vec<u32> = (0..FAMILY_POS)
        .map(|p| ((p * 104_729 + 17) % cfg.d_vocab) as u32)
        .collect();
    Ok((model, Batch::single(&tokens)))
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

// ---- Feature flow (`flow_tables.rs`, the `flow` requests of `paired.rs`) ----

/// The shapes of a Feature Flow stack: `layers` blocks, each with `R_L` (`hook_resid_post`)
/// and `M_L` (`hook_mlp_out`) SAEs `d_sae × d_model` and an `A_L` SAE on `attn.hook_z`,
/// `d_sae × d_z`, mapped through a `d_z × d_model` `W_O`; block 0's residual predecessor is an
/// SAE on `blocks.0.hook_resid_pre`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowShape {
    /// Blocks.
    pub layers: usize,
    /// Features per SAE.
    pub d_sae: usize,
    /// Residual width.
    pub d_model: usize,
    /// `n_heads · d_head`, the width of `attn.hook_z`.
    pub d_z: usize,
}

impl FlowShape {
    /// Gemma 2 2B with Gemma Scope 16k SAEs: 26 layers, 16384 features, d_model 2304,
    /// `attn.hook_z` 8 heads × 256 = 2048.
    pub const GEMMA2_2B: FlowShape = FlowShape {
        layers: 26,
        d_sae: 16384,
        d_model: 2304,
        d_z: 2048,
    };

    /// The Gemma shape with `layers` layers and `d_sae` features (reduced runs).
    pub fn gemma2_2b(layers: usize, d_sae: usize) -> Self {
        FlowShape {
            layers,
            d_sae,
            ..Self::GEMMA2_2B
        }
    }
}

/// What the flow SAEs' encoders hold. Matching reads decoders only, but an SAE has an encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowEncoders {
    /// All zeros, allocated zeroed and never written: the pages stay unmapped (or map the
    /// kernel's shared zero page), so they cost address space but no resident memory — the
    /// peak RSS is that of the matching, as with the torch anchor, which makes decoders only.
    Zero,
    /// Random, like the decoders: the peak RSS of a stack whose SAEs were loaded whole
    /// (`FLOW_ENCODERS=random`).
    Random,
}

impl FlowEncoders {
    /// `FLOW_ENCODERS` (`zero`, the default, or `random`).
    pub fn from_env() -> Self {
        match std::env::var("FLOW_ENCODERS").as_deref() {
            Ok("random") => FlowEncoders::Random,
            Ok("zero") | Err(_) => FlowEncoders::Zero,
            Ok(other) => panic!("FLOW_ENCODERS={other}: use zero or random"),
        }
    }
}

/// `[rows, cols]` uniform in `[-1, 1)`, deterministic in `seed` (one SplitMix64 stream per
/// block of 256 rows, the blocks filled by all cores: the same matrix whatever the cores).
pub fn uniform_matrix(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    const BLOCK: usize = 256;
    let mut data = vec![0f32; rows * cols];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let blocks: Vec<(usize, &mut [f32])> =
        data.chunks_mut(BLOCK * cols.max(1)).enumerate().collect();
    let per_thread = blocks.len().div_ceil(threads).max(1);
    let mut blocks = blocks.into_iter();
    std::thread::scope(|s| loop {
        let mine: Vec<_> = blocks.by_ref().take(per_thread).collect();
        if mine.is_empty() {
            break;
        }
        s.spawn(move || {
            for (b, chunk) in mine {
                let mut rng = SplitMix64::stream(seed, b as u64);
                for v in chunk {
                    *v = (rng.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
                }
            }
        });
    });
    Array2::from_shape_vec((rows, cols), data).expect("sized")
}

/// A JumpReLU SAE reading `hook`, `d_sae × d_in`, with a random decoder (seed `seed`).
pub fn flow_sae(hook: &str, d_in: usize, d_sae: usize, seed: u64, encoders: FlowEncoders) -> Sae {
    let mut cfg = SaeConfig::new(Architecture::JumpRelu, d_in, d_sae);
    cfg.metadata.hook_name = Some(hook.to_string());
    let w_enc = match encoders {
        FlowEncoders::Zero => Array2::zeros((d_in, d_sae)),
        FlowEncoders::Random => uniform_matrix(d_in, d_sae, seed ^ 0x0e4c_0de5),
    };
    let weights = SaeWeights {
        w_enc,
        w_dec: uniform_matrix(d_sae, d_in, seed),
        b_enc: Array1::zeros(d_sae),
        b_dec: Array1::zeros(d_in),
        threshold: Some(Array1::from_elem(d_sae, 0.1)),
        gated: None,
    };
    Sae::new(cfg, weights).expect("a valid SAE")
}

/// The seed of layer `layer`'s SAE of kind `what` (0 res, 1 mlp, 2 att, 3 `W_O`; the
/// `blocks.0.hook_resid_pre` SAE has its own).
fn flow_seed(layer: usize, what: u64) -> u64 {
    0xf10e_0000 + 4 * layer as u64 + what
}

/// One layer of a random [`FlowShape`] stack, exactly what its three tables read: `R_{L−1}`
/// (block 0: the `hook_resid_pre` SAE), `R_L`, `M_L`, `A_L` on `attn.hook_z` and that
/// layer's `W_O`. `R_{L−1}` is made again from its seed, so it is the very SAE that was
/// `R_L` of layer `L − 1`: a run over all layers matches the whole stack while holding one
/// layer's four SAEs at a time.
pub struct FlowLayer {
    /// The block.
    pub layer: usize,
    /// The stack's shape.
    pub shape: FlowShape,
    /// The four SAEs.
    pub stack: interp::flow::SaeStack,
    /// `[d_z, d_model]`.
    pub w_o: Array2<f32>,
}

impl FlowLayer {
    /// Makes layer `layer` of `shape`.
    pub fn new(shape: FlowShape, layer: usize, encoders: FlowEncoders) -> Self {
        let FlowShape {
            d_sae,
            d_model,
            d_z,
            ..
        } = shape;
        let mut stack = interp::flow::SaeStack::new();
        let prev = match layer {
            0 => flow_sae(
                "blocks.0.hook_resid_pre",
                d_model,
                d_sae,
                0xf10e_e3b0,
                encoders,
            ),
            l => flow_sae(
                &format!("blocks.{}.hook_resid_post", l - 1),
                d_model,
                d_sae,
                flow_seed(l - 1, 0),
                encoders,
            ),
        };
        let hooks = [
            (format!("blocks.{layer}.hook_resid_post"), d_model, 0),
            (format!("blocks.{layer}.hook_mlp_out"), d_model, 1),
            (format!("blocks.{layer}.attn.hook_z"), d_z, 2),
        ];
        stack.insert("prev", prev).expect("a free slot");
        for (hook, d_in, what) in hooks {
            let sae = flow_sae(&hook, d_in, d_sae, flow_seed(layer, what), encoders);
            stack.insert(hook, sae).expect("a free slot");
        }
        let w_o = uniform_matrix(d_z, d_model, flow_seed(layer, 3));
        FlowLayer {
            layer,
            shape,
            stack,
            w_o,
        }
    }

    /// One call of the benchmark: `A_L`'s decoder mapped through `W_O`, then the three
    /// top-`k` tables of `R_L` (against `R_{L−1}`, `M_L`, `A_L`), each decoder normalised
    /// inside `MatchTables::compute`.
    pub fn tables(&mut self, k: usize) -> interp::flow::MatchTables {
        self.stack
            .map_attention_z_with(self.layer, self.w_o.view())
            .expect("W_O fits");
        interp::flow::MatchTables::compute(&self.stack, k).expect("three tables")
    }
}

/// This process's peak resident memory so far (`VmHWM` of `/proc/self/status`), MiB.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
