//! The error type of interp-flow.

use std::path::PathBuf;

/// Everything that can go wrong while building an SAE stack, matching tables or flow graphs,
/// or running the data-driven experiments on them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model failed (unknown hook, bad tokens, a forward error).
    #[error(transparent)]
    Model(#[from] interp_models::Error),
    /// An SAE failed to load or run.
    #[error(transparent)]
    Sae(#[from] interp_sae::Error),
    /// A geometry computation failed.
    #[error(transparent)]
    Geometry(#[from] interp_geometry::Error),
    /// A steering plan failed.
    #[error(transparent)]
    Steer(#[from] interp_steer::Error),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file's content is not what it should be.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A node id is not `layer/module/feature` (`12/res/4230`).
    #[error("`{id}` is not a node id: {reason} (expected `layer/module/feature` with module res, mlp, att or emb, e.g. `2/res/10`)")]
    BadNodeId {
        /// The text given.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No SAE of the stack sits at this layer and module.
    #[error("the SAE stack has no {module} SAE at layer {layer} (it has: {available})")]
    NoSae {
        /// The layer.
        layer: usize,
        /// The module (`res`, `mlp`, `att`, `emb`).
        module: String,
        /// What the stack has.
        available: String,
    },
    /// A feature id is not below its SAE's `d_sae`.
    #[error("feature {feature} is out of range for {layer}/{module} with d_sae = {d_sae}")]
    FeatureOutOfRange {
        /// The layer.
        layer: usize,
        /// The module.
        module: String,
        /// The feature asked for.
        feature: usize,
        /// The SAE's number of latents.
        d_sae: usize,
    },
    /// Two SAEs claim one hook point.
    #[error("two SAEs sit on `{hook}`: {first} and {second}")]
    DuplicateHook {
        /// The hook.
        hook: String,
        /// Where the first came from.
        first: String,
        /// Where the second came from.
        second: String,
    },
    /// The SAEs of one layer read vectors of different widths.
    #[error("layer {layer}: {module} SAE has d_in = {d_in} in residual space, but {reference} has {expected}")]
    WidthMismatch {
        /// The layer.
        layer: usize,
        /// The module whose width differs.
        module: String,
        /// Its width.
        d_in: usize,
        /// The module it is compared with.
        reference: String,
        /// That module's width.
        expected: usize,
    },
    /// An SAE whose hook is not one the flow analysis uses, or that names no hook.
    #[error("{source_name}: {reason}")]
    UnusableSae {
        /// Where the SAE came from.
        source_name: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A threshold outside `[−1, 1]` (or not a number).
    #[error("{what} must be a cosine in [-1, 1], got {value}")]
    BadThreshold {
        /// Which threshold.
        what: String,
        /// Its value.
        value: f64,
    },
    /// An argument outside its domain.
    #[error("{what}: {reason}")]
    Invalid {
        /// Which argument.
        what: String,
        /// Why.
        reason: String,
    },
}

impl Error {
    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
