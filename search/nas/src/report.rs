//! The search report (`search.json`, docs/DESIGN.md section 3) and the resumable state of a search
//! (`search.partial.json`): written by `hsconas search`, read back through the same types by a resumed
//! search, by `hsconas run` and by the reproduce report.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hsconas_devices::{Correction, NetworkSample};
use hsconas_models::{Arch, SearchSpace};
use hsconas_vocabulary::Precision;
use serde::{Deserialize, Serialize};

use crate::{
    measured_front, pareto_front, AccuracyOracle, Candidate, Estimator, Evaluator, Evolution,
    EvolutionSettings, GenerationStats, LayerDecision, NasError, Objective, ObjectiveMode,
    RefineSettings, Refined, Refinement, WinnerChoice, WinnerReason,
};

/// What a search was run with; a resumed search must have the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchSettings {
    /// The supernet checkpoint, under the supernet estimator only (none with a cheap estimator).
    pub supernet: Option<PathBuf>,
    /// The latency table.
    pub table: PathBuf,
    /// `F` and the target.
    pub objective: Objective,
    /// 0-based layers shrunk in each stage.
    pub stages: Vec<Vec<usize>>,
    /// Samples per operator for a subspace quality.
    pub shrink_samples: usize,
    /// The evolution.
    pub evolution: EvolutionSettings,
    /// Supernet fine-tuning after each shrinking stage.
    pub finetune_epochs: usize,
    /// Its peak learning rate.
    pub finetune_lr: f64,
    /// The dataset.
    pub data: PathBuf,
    /// Validation images per candidate (0: all).
    pub eval_images: usize,
    /// Batch-norm recalibration batches per candidate.
    pub bn_batches: usize,
    /// Best candidates (by `F` with supernet accuracies) re-ranked with the host's expensive estimator
    /// before re-measurement; the winner is then chosen among them (0: no re-ranking).
    #[serde(default)]
    pub rerank: usize,
    /// The estimator of every candidate's accuracy, as `hsconas estimate` names it: `supernet` (the
    /// paper's, validation top-1 with inherited weights), `predictor` (its predicted test top-1; a
    /// percentile before 2026-12-02) or another cheap one on a percentile scale
    /// ([`crate::PercentileScale`]); searches checkpointed before the choice existed used the supernet.
    #[serde(default)]
    pub estimator: Estimator,
    /// The predictor model file under the `predictor` estimator (none: the built-in one, or another
    /// estimator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictor: Option<PathBuf>,
    /// Whether the predictor's score enters `F` as its predicted top-1 (a fraction): true for every
    /// `predictor` search since 2026-12-02; false for other estimators and for `predictor` searches
    /// checkpointed before, which entered its percentile, so resuming one of those is refused (its
    /// candidates' accuracies are on the other scale).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub predicted_top1: bool,
    /// `--refine`: the best candidates that meet the target trained with the user's recipe after
    /// re-measurement, the predictor refitted on them and the evolution continued (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refine: Option<RefineSettings>,
    /// The precisions every layer's blocks may take: FP32 only (absent: every search before
    /// precisions existed), INT8 only, or both (precision searched with operator and width; the table
    /// must be a mixed-precision one).
    #[serde(default = "fp32_only", skip_serializing_if = "is_fp32_only")]
    pub precisions: BTreeSet<Precision>,
}

/// FP32 alone: the precision of a search that does not search it.
pub fn fp32_only() -> BTreeSet<Precision> {
    [Precision::Fp32].into()
}

fn is_fp32_only(precisions: &BTreeSet<Precision>) -> bool {
    *precisions == fp32_only()
}

/// One candidate re-ranked with the expensive estimator (short training).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reranked {
    /// The architecture.
    pub arch: Arch,
    /// Its accuracy from the search's estimator (fraction; with the supernet's weights unless the
    /// search chose another estimator, then its predicted top-1 or percentile).
    pub supernet_accuracy: f64,
    /// Its accuracy from the expensive estimator (fraction), which its `F` uses from then on.
    pub accuracy: f64,
    /// Seconds the estimator took.
    pub seconds: f64,
}

/// One candidate measured end to end on the device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Remeasured {
    /// The architecture.
    pub arch: Arch,
    /// Its accuracy (fraction).
    pub accuracy: f64,
    /// Predicted latency before the measurement, ms.
    pub predicted_ms: f64,
    /// Measured latency, ms (normalised to the table's reference state when `raw_ms` is given).
    pub measured_ms: f64,
    /// The measurement as taken, before drift normalisation (tables with a reference network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_ms: Option<f64>,
    /// Its table sum, ms.
    pub table_sum_ms: f64,
    /// The correction round it was measured in.
    pub round: usize,
    /// Measured as a member of the Pareto front after the search (constraint mode), not as one of the
    /// best by `F`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub front: bool,
}

/// Everything a resumed search needs; written atomically after every step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchState {
    /// What the search runs with.
    pub settings: SearchSettings,
    /// The (shrunk) space.
    pub space: SearchSpace,
    /// Shrinking decisions so far.
    pub decisions: Vec<LayerDecision>,
    /// Every evaluated candidate.
    pub candidates: Vec<Candidate>,
    /// The evolution, once started.
    pub evolution: Option<Evolution>,
    /// Candidates measured on the device.
    pub remeasured: Vec<Remeasured>,
    /// Calibration samples added by re-measurement (on top of the table's).
    pub extra_samples: Vec<NetworkSample>,
    /// Correction rounds done.
    pub rounds: usize,
    /// Shrinking stages after which the supernet has been fine-tuned (its weights are in
    /// `finetune-<k>/checkpoint.safetensors`).
    #[serde(default)]
    pub finetuned: usize,
    /// Candidates re-ranked with the expensive estimator so far.
    #[serde(default)]
    pub reranked: Vec<Reranked>,
    /// Candidates trained for `--refine` so far (before the refit).
    #[serde(default)]
    pub refined: Vec<Refined>,
    /// The refinement, once refitted (or skipped).
    #[serde(default)]
    pub refinement: Option<Refinement>,
}

impl SearchState {
    /// The state in `path` when resuming (it must have been written with the same `settings`), else a
    /// fresh one over the full space; refuses to start over an unfinished search unless `resume`.
    pub fn load_or_start(
        path: &Path,
        resume: bool,
        settings: &SearchSettings,
    ) -> Result<SearchState, NasError> {
        let refuse = |message: &str| NasError::State {
            path: path.to_path_buf(),
            message: message.to_string(),
        };
        if resume && path.exists() {
            let bytes =
                std::fs::read(path).map_err(|e| refuse(&format!("cannot be read ({e})")))?;
            let state: SearchState = serde_json::from_slice(&bytes)
                .map_err(|e| refuse(&format!("is not a search checkpoint ({e})")))?;
            if &state.settings != settings {
                let percentile_era = SearchSettings {
                    predicted_top1: settings.predicted_top1,
                    ..state.settings.clone()
                };
                return Err(refuse(if &percentile_era == settings {
                    "belongs to a search with other settings: its predictor scores are percentiles \
                     (checkpointed before 2026-12-02), a search now uses the predicted top-1; start \
                     it again with another --out"
                } else {
                    "belongs to a search with other settings; use another --out or the same flags"
                }));
            }
            return Ok(state);
        }
        if path.exists() {
            return Err(refuse(
                "holds an unfinished search: pass --resume to continue it, or use another --out",
            ));
        }
        Ok(SearchState {
            settings: settings.clone(),
            space: SearchSpace::full().with_precisions(&settings.precisions)?,
            decisions: Vec::new(),
            candidates: Vec::new(),
            evolution: None,
            remeasured: Vec::new(),
            extra_samples: Vec::new(),
            rounds: 0,
            finetuned: 0,
            reranked: Vec::new(),
            refined: Vec::new(),
            refinement: None,
        })
    }
}

/// The winner as the report states it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WinnerSummary {
    /// The architecture (written as its string).
    #[serde(serialize_with = "as_string")]
    pub arch: Arch,
    /// Validation accuracy (fraction) with the supernet's weights, or from the re-ranking estimator when
    /// the search re-ranked (`SearchReport::reranked` holds both).
    pub accuracy: f64,
    /// Predicted latency, ms: for a re-measured winner, the prediction its measurement checked (the
    /// model's when it was chosen for measurement; later correction rounds rescale the model with the
    /// measurements, and can make it reproduce a measured network exactly), else the final model's.
    pub predicted_ms: f64,
    /// Measured latency, ms (when it was re-measured), in the table's reference state when the table
    /// normalises for drift: what `relative_to_target` compares with T.
    pub measured_ms: Option<f64>,
    /// The measurement as taken, before drift normalisation (tables with a reference network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_raw_ms: Option<f64>,
    /// `raw / normalised` when the winner was measured: the device's speed at that moment against the
    /// table's state (1.03: 3% slower than when the table was built).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_state: Option<f64>,
    /// `raw / T - 1`: how far the measurement as taken lies from the target, in the device's state at
    /// that moment (tables with a reference network; `relative_to_target` is the normalised one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_relative_to_target: Option<f64>,
    /// The target T, ms.
    pub target_ms: f64,
    /// `latency / T - 1` of the latency `F` used (measured when known).
    pub relative_to_target: f64,
    /// `predicted / measured - 1`, when measured.
    pub prediction_error: Option<f64>,
    /// The tolerance it was chosen with.
    pub tolerance: f64,
    /// How many candidates were measured on the device (absent in reports written before it was kept).
    #[serde(default)]
    pub measured_candidates: Option<usize>,
    /// How many of those lie within the tolerance of T (absent in reports written before it was kept).
    #[serde(default)]
    pub within_tolerance: Option<usize>,
    /// Its `F`.
    pub score: f64,
    /// Why it won.
    pub reason: WinnerReason,
    /// The reason in words.
    pub explanation: String,
    /// Constraint mode: the tie margin it was chosen with (accuracy as a fraction; absent: 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tie_margin: Option<f64>,
}

impl WinnerSummary {
    /// The summary of a chosen winner under `objective`.
    pub fn new(choice: &WinnerChoice, objective: &Objective) -> WinnerSummary {
        let c = &choice.candidate;
        WinnerSummary {
            arch: c.arch.clone(),
            accuracy: c.accuracy,
            predicted_ms: c.latency_ms,
            measured_ms: c.measured_ms,
            measured_raw_ms: None,
            device_state: None,
            raw_relative_to_target: None,
            target_ms: objective.target_ms,
            relative_to_target: choice.relative_to_target(objective),
            prediction_error: c.measured_ms.map(|m| c.latency_ms / m - 1.0),
            tolerance: choice.tolerance,
            measured_candidates: Some(choice.measured_candidates),
            within_tolerance: Some(choice.within_tolerance),
            score: c.score,
            reason: choice.reason,
            explanation: choice.explanation(objective),
            tie_margin: (objective.mode == ObjectiveMode::Constraint).then_some(choice.tie_margin),
        }
    }

    /// Takes the prediction its measurement checked from the re-measured candidates (the last record of
    /// the winner), with the prediction error against that measurement; unchanged when the winner was
    /// not re-measured.
    pub fn with_checked_prediction(mut self, remeasured: &[Remeasured]) -> WinnerSummary {
        if let Some(r) = remeasured.iter().rev().find(|r| r.arch == self.arch) {
            self.predicted_ms = r.predicted_ms;
            self.prediction_error = Some(r.predicted_ms / r.measured_ms - 1.0);
        }
        self
    }

    /// Adds the raw measurement of the winner from the re-measured candidates (when the table
    /// normalises for drift).
    pub fn with_raw(mut self, remeasured: &[Remeasured]) -> WinnerSummary {
        let raw = remeasured
            .iter()
            .rev()
            .find(|r| r.arch == self.arch)
            .and_then(|r| r.raw_ms.map(|raw| (raw, r.measured_ms)));
        if let Some((raw, normalised)) = raw {
            self.measured_raw_ms = Some(raw);
            self.device_state = Some(raw / normalised);
            self.raw_relative_to_target = Some(raw / self.target_ms - 1.0);
        }
        self
    }

    /// `measured 0.714 ms, +2.0% from the target 0.7 ms; predicted 0.717 ms (prediction error +0.4%)`,
    /// or the predicted latency alone when it was not measured; with the raw measurement and the device's
    /// state when the table normalises for drift.
    pub fn latency_line(&self) -> String {
        let (predicted, target) = (self.predicted_ms, self.target_ms);
        let off = self.relative_to_target * 100.0;
        match self.measured_ms {
            Some(m) => {
                let mut line = format!(
                    "measured {m:.3} ms, {off:+.1}% from the target {target} ms; predicted {predicted:.3} ms \
                     (prediction error {:+.1}%)",
                    self.prediction_error.unwrap_or(f64::NAN) * 100.0
                );
                if let (Some(raw), Some(state)) = (self.measured_raw_ms, self.device_state) {
                    line.push_str(&format!(
                        "; normalised to the table's state: raw {raw:.3} ms ({:+.1}% from the target) with the device {:.1}% {} than when the table was built",
                        100.0 * (raw / target - 1.0),
                        100.0 * (state - 1.0).abs(),
                        if state >= 1.0 { "slower" } else { "faster" }
                    ));
                }
                line
            }
            None => format!(
                "predicted {predicted:.3} ms, {off:+.1}% from the target {target} ms (not measured on the device)"
            ),
        }
    }
}

/// Writes a value through its `Display` (the architecture string).
fn as_string<S: serde::Serializer>(value: &Arch, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// The random-search baseline of `--random-baseline`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RandomBaseline {
    /// Architectures drawn (as many as the search evaluated).
    pub evaluations: usize,
    /// The best of them.
    pub best: Option<Candidate>,
    /// The search's best `F`, for comparison.
    pub search_best_score: Option<f64>,
}

/// `search.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchReport {
    /// What the search ran with.
    pub settings: SearchSettings,
    /// The latency model's final correction.
    pub correction: Correction,
    /// The shrunk space.
    pub space: SearchSpace,
    /// Its size, log10 of the number of architectures.
    pub log10_space_size: f64,
    /// The shrinking decisions.
    pub shrinking: Vec<LayerDecision>,
    /// Per-generation statistics.
    pub generations: Vec<GenerationStats>,
    /// Candidates evaluated.
    pub evaluations: usize,
    /// Evaluations answered from the cache.
    pub cache_hits: usize,
    /// Every evaluated candidate.
    pub candidates: Vec<Candidate>,
    /// The Pareto front over (accuracy, predicted latency).
    pub pareto_front: Vec<Candidate>,
    /// The Pareto front over (accuracy, measured latency) of the candidates measured on the device, each
    /// with its measured latency as `latency_ms` (constraint mode measures the predicted front's
    /// candidates at or near T for it, so that a faster network of the same accuracy is not hidden).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measured_front: Vec<Candidate>,
    /// Candidates measured on the device.
    pub remeasured: Vec<Remeasured>,
    /// Candidates re-ranked with the expensive estimator (empty without `--rerank`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reranked: Vec<Reranked>,
    /// What `--refine` trained and how the refitted predictor did on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refinement: Option<Refinement>,
    /// Correction rounds.
    pub correction_rounds: usize,
    /// The winner (none when nothing was evaluated).
    pub winner: Option<WinnerSummary>,
    /// The random-search baseline, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_baseline: Option<RandomBaseline>,
}

impl SearchReport {
    /// The winner chosen again from the report's own candidates, with the winner's tolerance, as the search
    /// chose it: a check that a committed report's winner and its sentence are what its data say. `None`
    /// when the report has no winner.
    pub fn rechoose_winner(&self) -> Option<WinnerChoice> {
        let winner = self.winner.as_ref()?;
        let (tolerance, tie_margin) = (winner.tolerance, winner.tie_margin.unwrap_or(0.0));
        let objective = &self.settings.objective;
        let pool = crate::winner::winner_pool(
            self.settings.rerank,
            &self.reranked,
            &self.candidates,
            objective,
        );
        crate::choose_winner(&pool, objective, tolerance, tie_margin)
    }
}

impl SearchReport {
    /// Reads `search.json`.
    pub fn load(path: &Path) -> Result<SearchReport, NasError> {
        let refuse = |message: String| NasError::State {
            path: path.to_path_buf(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| refuse(format!("cannot be read ({e})")))?;
        serde_json::from_slice(&bytes).map_err(|e| refuse(format!("is not a search report ({e})")))
    }
}

/// The report of a finished search (docs/DESIGN.md section 3); `choice` is the winner
/// ([`crate::choose_winner`]).
pub(crate) fn assemble<O: AccuracyOracle>(
    state: &SearchState,
    evaluator: &Evaluator<O>,
    evo: &Evolution,
    choice: Option<WinnerChoice>,
) -> SearchReport {
    let objective = evaluator.objective();
    SearchReport {
        settings: state.settings.clone(),
        correction: evaluator.model().correction(),
        space: state.space.clone(),
        log10_space_size: state
            .space
            .layers()
            .iter()
            .map(|l| (l.len() as f64).log10())
            .sum::<f64>(),
        shrinking: state.decisions.clone(),
        generations: evo.history.clone(),
        evaluations: evaluator.evaluated().len(),
        cache_hits: evaluator.cache_hits(),
        candidates: evaluator.evaluated().to_vec(),
        pareto_front: pareto_front(evaluator.evaluated()),
        measured_front: measured_front(evaluator.evaluated()),
        remeasured: state.remeasured.clone(),
        reranked: state.reranked.clone(),
        refinement: state.refinement.clone(),
        correction_rounds: state.rounds,
        winner: choice.map(|w| {
            WinnerSummary::new(&w, objective)
                .with_raw(&state.remeasured)
                .with_checked_prediction(&state.remeasured)
        }),
        random_baseline: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{choose_winner, ObjectiveMode};
    use hsconas_models::{Op, Scale};

    /// A winner measured 0.707 ms normalised (1% over T = 0.7 ms) while the device ran 4% slower than
    /// when the table was built (raw 0.735 ms, 5% over T): the report states both, and which is which.
    #[test]
    fn the_winner_is_stated_raw_and_normalised_against_the_target() {
        let objective = Objective::new(0.7, -0.5, ObjectiveMode::Penalty).expect("objective");
        let arch =
            Arch::uniform(Op::Shuffle3, Scale::from_tenths(5).expect("scale")).expect("arch");
        let (normalised, raw) = (0.707, 0.735);
        let candidate = Candidate {
            arch: arch.clone(),
            accuracy: 0.5,
            latency_ms: 0.70,
            measured_ms: Some(normalised),
            score: objective.score(0.5, normalised),
        };
        let choice = choose_winner(&[candidate], &objective, 0.03, 0.0).expect("a winner");
        let remeasured = |arch: &Arch, raw_ms| Remeasured {
            arch: arch.clone(),
            accuracy: 0.5,
            predicted_ms: 0.70,
            measured_ms: normalised,
            raw_ms,
            table_sum_ms: 0.69,
            round: 0,
            front: false,
        };
        let other =
            Arch::uniform(Op::Shuffle3, Scale::from_tenths(6).expect("scale")).expect("arch");
        let summary = WinnerSummary::new(&choice, &objective)
            .with_raw(&[remeasured(&arch, Some(raw)), remeasured(&other, Some(9.0))]);
        assert!((summary.relative_to_target - 0.01).abs() < 1e-9);
        assert_eq!(summary.measured_raw_ms, Some(raw));
        assert!((summary.device_state.expect("state") - raw / normalised).abs() < 1e-12);
        assert!((summary.raw_relative_to_target.expect("raw vs T") - 0.05).abs() < 1e-9);
        let line = summary.latency_line();
        assert!(
            line.starts_with("measured 0.707 ms, +1.0% from the target 0.7 ms"),
            "{line}"
        );
        assert!(
            line.contains("raw 0.735 ms (+5.0% from the target)"),
            "{line}"
        );
        assert!(
            line.contains("4.0% slower than when the table was built"),
            "{line}"
        );

        // The prediction the measurement checked, not the final (corrected) model's.
        let checked =
            WinnerSummary::new(&choice, &objective).with_checked_prediction(&[Remeasured {
                predicted_ms: 0.75,
                ..remeasured(&arch, Some(raw))
            }]);
        assert_eq!(checked.predicted_ms, 0.75);
        // The last record of the winner counts; another network's does not.
        let last = WinnerSummary::new(&choice, &objective).with_checked_prediction(&[
            Remeasured {
                predicted_ms: 0.60,
                ..remeasured(&arch, None)
            },
            Remeasured {
                predicted_ms: 0.65,
                ..remeasured(&arch, None)
            },
            Remeasured {
                predicted_ms: 9.0,
                ..remeasured(&other, None)
            },
        ]);
        assert_eq!(last.predicted_ms, 0.65);
        let unmeasured = WinnerSummary::new(&choice, &objective)
            .with_checked_prediction(&[remeasured(&other, None)]);
        assert_eq!(
            unmeasured.predicted_ms, 0.70,
            "the final model's, unchanged"
        );
        assert!(
            (checked.prediction_error.expect("measured") - (0.75 / normalised - 1.0)).abs() < 1e-12
        );
        assert_eq!(checked.measured_ms, Some(normalised));

        // A table without a reference network: nothing raw to state.
        let plain = WinnerSummary::new(&choice, &objective).with_raw(&[remeasured(&arch, None)]);
        assert_eq!(
            (plain.measured_raw_ms, plain.raw_relative_to_target),
            (None, None)
        );
        assert!(
            !plain.latency_line().contains("raw"),
            "{}",
            plain.latency_line()
        );
        let json = serde_json::to_value(&plain).expect("json");
        assert!(json.get("raw_relative_to_target").is_none());
    }
}
