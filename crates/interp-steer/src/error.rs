//! The error type of interp-steer.

use std::path::PathBuf;

/// Everything that can go wrong while building, checking or running a steering plan.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model failed (unknown hook, bad tokens, a forward error).
    #[error(transparent)]
    Model(#[from] interp_models::Error),
    /// An SAE failed to load or run.
    #[error(transparent)]
    Sae(#[from] interp_sae::Error),
    /// A feature index is not below the SAE's `d_sae`.
    #[error("feature {feature} is out of range for the SAE `{sae}` with d_sae = {d_sae}")]
    FeatureOutOfRange {
        /// The SAE's key in the plan.
        sae: String,
        /// The feature asked for.
        feature: usize,
        /// The SAE's number of latents.
        d_sae: usize,
    },
    /// An SAE's input width is not the width of the hook it is applied at.
    #[error("the SAE `{sae}` reads d_in = {d_in}, but `{hook}` has width {width}")]
    SaeWidth {
        /// The SAE's key in the plan.
        sae: String,
        /// The hook point.
        hook: String,
        /// The SAE's input width.
        d_in: usize,
        /// The hook's width.
        width: usize,
    },
    /// An SAE step sits at another hook than the one its SAE was trained on, and the step does
    /// not say the mismatch is meant ([`crate::Step::allow_hook_mismatch`]).
    #[error(
        "the SAE `{sae}` was trained on `{trained_on}` but the step applies it at `{hook}`; \
         allow it explicitly (SteeringPlan::allow_hook_mismatch, \"allow_hook_mismatch\": true \
         in a plan file, --hook on the command line) if that is meant"
    )]
    SaeHookMismatch {
        /// The SAE's key in the plan.
        sae: String,
        /// Its own hook (`metadata.hook_name`).
        trained_on: String,
        /// The step's hook.
        hook: String,
    },
    /// A direction's length is not the width of the hook it is added at.
    #[error("a direction of length {len} cannot be applied at `{hook}` of width {width}")]
    DirectionWidth {
        /// The hook point.
        hook: String,
        /// The direction's length.
        len: usize,
        /// The hook's width.
        width: usize,
    },
    /// A hook that has no per-position vector to steer (`hook_scale`, attention scores).
    #[error("`{hook}` cannot be steered: it has no per-position activation vector")]
    UnsteerableHook {
        /// The hook point.
        hook: String,
    },
    /// A coefficient, value or direction entry is NaN or infinite.
    #[error("{what} must be finite, got {value}")]
    NonFinite {
        /// Which number.
        what: String,
        /// Its value.
        value: f64,
    },
    /// A plan names an SAE it was not given.
    #[error("the plan uses the SAE `{sae}`, which is not in the SAE set (have: {known})")]
    UnknownSae {
        /// The key asked for.
        sae: String,
        /// The keys present.
        known: String,
    },
    /// A malformed plan, direction or setting.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was invalid.
        what: String,
        /// Why.
        reason: String,
    },
    /// A plan or direction file that cannot be parsed.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        reason: String,
    },
    /// A filesystem error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Writing a plot failed.
    #[error("plot: {0}")]
    Plot(#[from] interp_core::plot::PlotError),
    /// interp-core I/O failed.
    #[error(transparent)]
    Core(#[from] interp_core::Error),
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// Checks that `value` is finite.
pub(crate) fn finite(what: impl FnOnce() -> String, value: f32) -> Result<()> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(Error::NonFinite {
            what: what(),
            value: f64::from(value),
        })
    }
}
