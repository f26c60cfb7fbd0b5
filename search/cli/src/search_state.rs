//! The state of `hsconas search` between steps: what a resumed search needs (`search.partial.json`,
//! written atomically after every shrunk layer and generation) and what the report is made of.

use std::path::Path;

use anyhow::Context;
use hsconas_devices::NetworkSample;
use hsconas_models::{Arch, SearchSpace};
use hsconas_nas::{Candidate, Evolution, LayerDecision};
use serde::{Deserialize, Serialize};

/// One candidate measured end to end on the device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Remeasured {
    pub(super) arch: Arch,
    pub(super) accuracy: f64,
    pub(super) predicted_ms: f64,
    pub(super) measured_ms: f64,
    pub(super) table_sum_ms: f64,
    pub(super) round: usize,
}

/// Everything a resumed search needs; written atomically after every step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct SearchState {
    pub(super) settings: serde_json::Value,
    pub(super) space: SearchSpace,
    pub(super) decisions: Vec<LayerDecision>,
    pub(super) candidates: Vec<Candidate>,
    pub(super) evolution: Option<Evolution>,
    pub(super) remeasured: Vec<Remeasured>,
    /// Calibration samples added by re-measurement (on top of the table's).
    pub(super) extra_samples: Vec<NetworkSample>,
    pub(super) rounds: usize,
    /// Shrinking stages after which the supernet has been fine-tuned (its weights are in
    /// `finetune-<k>/checkpoint.safetensors`).
    #[serde(default)]
    pub(super) finetuned: usize,
}

/// The state in `path` when resuming (it must have been written with the same `settings`), else a fresh
/// one; refuses to start over an unfinished search unless `resume` is given.
pub(super) fn load_state(
    path: &Path,
    resume: bool,
    settings: &serde_json::Value,
) -> anyhow::Result<SearchState> {
    if resume && path.exists() {
        let state: SearchState = serde_json::from_slice(&std::fs::read(path)?)
            .with_context(|| format!("{} is not a search checkpoint", path.display()))?;
        anyhow::ensure!(
            &state.settings == settings,
            "{} belongs to a search with other settings; use another --out or the same flags",
            path.display()
        );
        return Ok(state);
    }
    anyhow::ensure!(
        !path.exists(),
        "{} holds an unfinished search: pass --resume to continue it, or use another --out",
        path.display()
    );
    Ok(SearchState {
        settings: settings.clone(),
        space: SearchSpace::full(),
        decisions: Vec::new(),
        candidates: Vec::new(),
        evolution: None,
        remeasured: Vec::new(),
        extra_samples: Vec::new(),
        rounds: 0,
        finetuned: 0,
    })
}
