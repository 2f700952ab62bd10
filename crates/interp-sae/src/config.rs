//! SAE configuration: architecture, sizes, input processing and provenance.
//!
//! Field names follow SAELens v6 `cfg.json` so that a Python user reads them without a glossary.

use serde_json::{Map, Value};

/// How latent activations are computed from pre-activations `pre = x' @ W_enc + b_enc`.
#[derive(Clone, Debug, PartialEq)]
pub enum Architecture {
    /// `relu(pre)` (SAELens "standard", OpenAI v1/v4 "ReLU").
    Standard,
    /// Keep the `k` largest pre-activations, then `relu` (SAELens "topk", OpenAI v5, sparsify).
    TopK {
        /// Latents kept per token.
        k: usize,
        /// Rank and scale by `pre_i · ‖W_dec[i]‖` and decode with `acts_i / ‖W_dec[i]‖`
        /// (SAELens `rescale_acts_by_decoder_norm`).
        rescale_acts_by_decoder_norm: bool,
    },
    /// `pre · [pre > threshold_i]` on top of `relu` (SAELens "jumprelu", Gemma Scope, Llama
    /// Scope, and SAELens BatchTopK / Matryoshka SAEs, which are saved as JumpReLU).
    JumpRelu,
    /// Gated SAE: `[x'W_enc + b_gate > 0] · relu(x'(W_enc ∘ exp(r_mag)) + b_mag)`.
    Gated,
}

impl Architecture {
    /// The SAELens `architecture` string.
    pub fn saelens_name(&self) -> &'static str {
        match self {
            Architecture::Standard => "standard",
            Architecture::TopK { .. } => "topk",
            Architecture::JumpRelu => "jumprelu",
            Architecture::Gated => "gated",
        }
    }
}

/// Input normalisation applied before encoding and undone after decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Normalization {
    /// Activations are used as they are.
    None,
    /// Trained on activations scaled so that `E‖x‖ = √d_in`; the scale is folded into the
    /// weights when known (see [`crate::Sae::fold_activation_scale`]), so inference is the
    /// identity, as in SAELens.
    ExpectedAverageOnlyIn,
    /// Per token `x · √d_in / ‖x‖`, divided back after decoding.
    ConstantNormRescale,
    /// Per token `(x − μ) / (σ + 1e-5)` with the unbiased standard deviation (torch `std`), as
    /// OpenAI's TopK SAEs and SAELens `layer_norm`; `· σ + μ` after decoding.
    LayerNorm,
}

impl Normalization {
    /// The SAELens `normalize_activations` string.
    pub fn saelens_name(&self) -> &'static str {
        match self {
            Normalization::None => "none",
            Normalization::ExpectedAverageOnlyIn => "expected_average_only_in",
            Normalization::ConstantNormRescale => "constant_norm_rescale",
            Normalization::LayerNorm => "layer_norm",
        }
    }

    /// Parses a SAELens `normalize_activations` value (strings, or the pre-6.0 booleans).
    pub fn from_saelens(value: &Value) -> Option<Self> {
        match value {
            Value::Null | Value::Bool(false) => Some(Normalization::None),
            Value::Bool(true) => Some(Normalization::ExpectedAverageOnlyIn),
            Value::String(s) => match s.as_str() {
                "none" => Some(Normalization::None),
                "expected_average_only_in" => Some(Normalization::ExpectedAverageOnlyIn),
                "constant_norm_rescale" => Some(Normalization::ConstantNormRescale),
                "layer_norm" => Some(Normalization::LayerNorm),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Everything needed to run and describe an SAE.
#[derive(Clone, Debug, PartialEq)]
pub struct SaeConfig {
    /// Activation function family.
    pub architecture: Architecture,
    /// Width of the activations the SAE reads.
    pub d_in: usize,
    /// Number of latents.
    pub d_sae: usize,
    /// Subtract `b_dec` from inputs before encoding (SAELens default true; Gemma Scope false).
    pub apply_b_dec_to_input: bool,
    /// Input normalisation.
    pub normalize_activations: Normalization,
    /// Inputs are `attn.hook_z` activations `[.., n_heads, d_head]` flattened to `d_in`.
    pub reshape_hook_z: bool,
    /// dtype the weights were stored in (`"float32"`, `"bfloat16"`, …); computation is f32.
    pub dtype: String,
    /// Where the SAE was trained: model, hook, data.
    pub metadata: SaeMetadata,
}

/// Provenance: which model and hook an SAE reads, and how it was trained.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SaeMetadata {
    /// The model (`"gpt2-small"`, `"gemma-2-2b"`).
    pub model_name: Option<String>,
    /// TransformerLens hook name (`"blocks.8.hook_resid_pre"`).
    pub hook_name: Option<String>,
    /// Attention head the SAE reads, if one.
    pub hook_head_index: Option<usize>,
    /// Training context length.
    pub context_size: Option<usize>,
    /// Whether training prompts started with BOS.
    pub prepend_bos: Option<bool>,
    /// Training dataset.
    pub dataset_path: Option<String>,
    /// Neuronpedia id.
    pub neuronpedia_id: Option<String>,
    /// Any other metadata keys, kept so that saving preserves them.
    pub extra: Map<String, Value>,
}

impl SaeMetadata {
    /// Whether prompts fed to the SAE should start with BOS: `prepend_bos`, or SAELens'
    /// default `true` when the config does not say.
    pub fn prepends_bos(&self) -> bool {
        self.prepend_bos.unwrap_or(true)
    }
}

impl SaeConfig {
    /// A config with SAELens defaults: b_dec subtracted, no normalisation, float32.
    pub fn new(architecture: Architecture, d_in: usize, d_sae: usize) -> Self {
        SaeConfig {
            architecture,
            d_in,
            d_sae,
            apply_b_dec_to_input: true,
            normalize_activations: Normalization::None,
            reshape_hook_z: false,
            dtype: "float32".into(),
            metadata: SaeMetadata::default(),
        }
    }

    /// The hook layer parsed from `metadata.hook_name` (`blocks.L.…`), if any.
    pub fn hook_layer(&self) -> Option<usize> {
        let name = self.metadata.hook_name.as_deref()?;
        name.strip_prefix("blocks.")?
            .split('.')
            .next()?
            .parse()
            .ok()
    }

    /// The SAELens v6 `cfg.json` object for this config.
    pub fn to_saelens_json(&self) -> Value {
        let m = &self.metadata;
        let mut metadata = m.extra.clone();
        let mut put = |key: &str, value: Value| {
            metadata.insert(key.to_string(), value);
        };
        put("model_name", m.model_name.clone().into());
        put("hook_name", m.hook_name.clone().into());
        put("hook_head_index", m.hook_head_index.into());
        put("context_size", m.context_size.into());
        put("prepend_bos", m.prepends_bos().into());
        put("dataset_path", m.dataset_path.clone().into());
        put("neuronpedia_id", m.neuronpedia_id.clone().into());
        put("sae_lens_training_version", Value::Null);
        // SAELens reads `sae_lens_version` as a version number to pick its config parser: we
        // write the v6 layout, so claim the oldest v6 unless the SAE came from SAELens.
        put("interp_sae_version", env!("CARGO_PKG_VERSION").into());
        metadata
            .entry("sae_lens_version")
            .or_insert_with(|| "6.0.0".into());
        let mut cfg = Map::new();
        cfg.insert(
            "architecture".into(),
            self.architecture.saelens_name().into(),
        );
        cfg.insert("d_in".into(), self.d_in.into());
        cfg.insert("d_sae".into(), self.d_sae.into());
        cfg.insert("dtype".into(), self.dtype.clone().into());
        cfg.insert("device".into(), "cpu".into());
        cfg.insert(
            "apply_b_dec_to_input".into(),
            self.apply_b_dec_to_input.into(),
        );
        cfg.insert(
            "normalize_activations".into(),
            self.normalize_activations.saelens_name().into(),
        );
        let reshape = if self.reshape_hook_z {
            "hook_z"
        } else {
            "none"
        };
        cfg.insert("reshape_activations".into(), reshape.into());
        if let Architecture::TopK {
            k,
            rescale_acts_by_decoder_norm,
        } = self.architecture
        {
            cfg.insert("k".into(), k.into());
            cfg.insert(
                "rescale_acts_by_decoder_norm".into(),
                rescale_acts_by_decoder_norm.into(),
            );
        }
        cfg.insert("metadata".into(), Value::Object(metadata));
        Value::Object(cfg)
    }
}
