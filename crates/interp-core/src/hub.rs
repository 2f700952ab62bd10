//! Files from the Hugging Face hub (the `hub` feature): downloaded into the standard HF cache,
//! or, with `HF_HUB_OFFLINE=1` (or `true`), looked up in that cache only.

use std::path::PathBuf;

/// Why a hub file could not be had.
#[derive(Debug, thiserror::Error)]
#[error("hub {repo}/{file}: {reason}")]
pub struct HubError {
    /// The repository id.
    pub repo: String,
    /// The file within it.
    pub file: String,
    /// What failed.
    pub reason: String,
}

/// Whether `HF_HUB_OFFLINE` asks for cache-only lookups.
pub fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// The local path of `file` in model repository `repo`: from the cache, downloading it first
/// unless offline.
///
/// # Errors
/// [`HubError`] naming the repository and file: not in the cache while offline, or the
/// download failed.
pub fn hub_file(repo: &str, file: &str) -> Result<PathBuf, HubError> {
    let err = |reason: String| HubError {
        repo: repo.to_string(),
        file: file.to_string(),
        reason,
    };
    if offline() {
        return hf_hub::Cache::from_env()
            .model(repo.to_string())
            .get(file)
            .ok_or_else(|| err("not in the local cache and HF_HUB_OFFLINE=1".into()));
    }
    hf_hub::api::sync::ApiBuilder::from_env()
        .build()
        .and_then(|api| api.model(repo.to_string()).get(file))
        .map_err(|e| err(e.to_string()))
}
