//! The whole search of docs/DESIGN.md section 1 as one resumable procedure: progressive shrinking (with
//! supernet fine-tuning after each stage), the evolutionary search, re-measurement of the best candidates
//! on the device and correction of the latency model until a measured candidate meets the target, the
//! optional random-search baseline, and the report. The state is written atomically after every shrunk
//! layer, fine-tuning and generation, so a killed search continues where it stopped.
//!
//! What needs libtorch or the device (accuracies with the supernet's weights, fine-tuning, measuring)
//! comes from a [`SearchHost`]; this crate stays free of both.

use std::path::{Path, PathBuf};

use hsconas_devices::{LatencyModel, LatencyTable, NetworkSample};
use hsconas_foundation::write_atomic;
use hsconas_models::{Arch, SearchSpace};

use crate::predictor::Predictor;
use crate::{
    choose_winner, objective_front, random_search, shrink_layer, AccuracyOracle, Candidate,
    Evaluator, Evolution, LayerDecision, NasError, Objective, ObjectiveMode, OracleError,
    RandomBaseline, Remeasured, Reranked, SearchReport, SearchSettings, SearchState, WinnerReason,
};

/// What a search needs from its environment.
pub trait SearchHost {
    /// Validation accuracy (a fraction in `0..=1`) of `arch` with the current weights.
    fn accuracy(&mut self, arch: &Arch) -> Result<f64, OracleError>;
    /// The accuracies of `archs`, in order (one generation, one layer's shrinking samples, the random
    /// baseline): a host may spread them over several processes. Default: one by one.
    fn accuracies(&mut self, archs: &[Arch]) -> Result<Vec<f64>, OracleError> {
        archs.iter().map(|a| self.accuracy(a)).collect()
    }
    /// Fine-tunes the weights in the shrunk `space` after shrinking stage `stage` (1-based); afterwards
    /// [`SearchHost::accuracy`] uses the fine-tuned weights. Called again for the same stage after an
    /// interrupted fine-tuning, which it should then resume.
    fn finetune(&mut self, space: &SearchSpace, stage: usize) -> Result<(), OracleError>;
    /// Measures `archs` end to end on the device in correction round `round`: one sample per
    /// architecture, in their order.
    fn measure(&mut self, archs: &[Arch], round: usize) -> Result<Vec<NetworkSample>, OracleError>;
    /// The accuracy (a fraction in `0..=1`) of `arch` from the expensive estimator that re-ranks the best
    /// candidates (`SearchSettings::rerank`), e.g. a short training from scratch. Hosts without one
    /// refuse re-ranking.
    fn rerank_accuracy(&mut self, arch: &Arch) -> Result<f64, OracleError> {
        Err(format!("this search host cannot re-rank candidates ({arch})").into())
    }
    /// The test top-1 (a fraction in `0..=1`) of `arch` trained with the user's recipe
    /// (`SearchSettings::refine`), resuming an interrupted training of it. Hosts without one refuse
    /// refinement.
    fn train_accuracy(&mut self, arch: &Arch) -> Result<f64, OracleError> {
        Err(format!("this search host cannot train candidates ({arch})").into())
    }
    /// From now on, [`SearchHost::accuracy`] answers with `predictor` (the refit of `--refine`), as a
    /// fraction (its predicted top-1 / 100). Hosts without a predictor refuse.
    fn adopt_predictor(&mut self, predictor: &Predictor) -> Result<(), OracleError> {
        let _ = predictor;
        Err("this search host cannot change its accuracy estimator".into())
    }
}

/// How the search checks its result on the device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CorrectionSettings {
    /// Best not yet measured candidates measured after each search (0: none, the winner is predicted).
    pub remeasure: usize,
    /// Largest accepted |measured / T - 1| (penalty mode; the constraint accepts measured <= T).
    pub tolerance: f64,
    /// Constraint mode: the accuracy (a fraction) within which a faster candidate beats a more accurate
    /// one ([`choose_winner`]).
    pub tie_margin: f64,
    /// Correction rounds at most.
    pub max_rounds: usize,
    /// Generations added after each correction.
    pub extra_generations: usize,
    /// Constraint mode: candidates of the Pareto front (predicted at most the tolerance over T) measured
    /// after the search, at most this many, most accurate first.
    pub front_remeasure: usize,
}

/// A search writing into `out`: `search.partial.json` while it runs, then `search.json` (the report) and
/// `space.json` (the final space); the partial state is removed once the report is written.
pub struct SearchDriver<'a> {
    /// The device's latency table (its calibration, plus re-measured networks, corrects predictions).
    pub table: &'a LatencyTable,
    /// Re-measurement and correction.
    pub correction: CorrectionSettings,
    /// Also evaluate as many uniform draws from the final space as the search evaluated.
    pub random_baseline: bool,
    /// Output directory.
    pub out: PathBuf,
    /// Show progress bars (log lines go through `tracing` either way).
    pub show_progress: bool,
}

/// What a finished search leaves besides its files.
pub struct SearchOutcome {
    /// The report, as written to `search.json`.
    pub report: SearchReport,
    /// The evolution with its per-generation history.
    pub evolution: Evolution,
}

/// The state file of a search writing into `out`.
pub fn state_path(out: &Path) -> PathBuf {
    out.join("search.partial.json")
}

/// A host's accuracies as an oracle, borrowing the host for one evaluator's lifetime.
pub(crate) struct HostAccuracy<'h, H>(pub(crate) &'h mut H);

impl<H: SearchHost> AccuracyOracle for HostAccuracy<'_, H> {
    fn accuracy(&mut self, arch: &Arch) -> Result<f64, OracleError> {
        self.0.accuracy(arch)
    }

    fn accuracies(&mut self, archs: &[Arch]) -> Result<Vec<f64>, OracleError> {
        self.0.accuracies(archs)
    }
}

fn host_error(step: &'static str) -> impl FnOnce(OracleError) -> NasError {
    move |source| NasError::Host { step, source }
}

impl SearchDriver<'_> {
    /// Runs (or continues) the search of `state` to its report. `state` is the one
    /// [`SearchState::load_or_start`] gave for [`state_path`]; the host must hold the weights of
    /// `state.finetuned` stages of fine-tuning.
    pub fn run<H: SearchHost>(
        &self,
        mut state: SearchState,
        host: &mut H,
    ) -> Result<SearchOutcome, NasError> {
        let settings = state.settings.clone();
        let objective = settings.objective;
        if settings.refine.is_some() && self.correction.remeasure == 0 {
            return Err(NasError::Estimator(
                "--refine trains candidates measured to meet T: it needs --remeasure 1 or more"
                    .into(),
            ));
        }
        for (s, stage) in settings.stages.iter().enumerate() {
            {
                let mut evaluator = self.evaluator(host, &state)?;
                for &layer in stage {
                    if state.decisions.iter().any(|d| d.layer == layer) {
                        continue;
                    }
                    let d = self.shrink(&mut state.space, layer, s, &settings, &mut evaluator)?;
                    state.decisions.push(d);
                    state.candidates = evaluator.evaluated().to_vec();
                    self.save(&state)?;
                }
            }
            if settings.finetune_epochs > 0 && state.finetuned <= s {
                tracing::info!(
                    "fine-tuning the supernet in the shrunk space for {} epoch(s)",
                    settings.finetune_epochs
                );
                host.finetune(&state.space, s + 1)
                    .map_err(host_error("fine-tuning the supernet"))?;
                state.finetuned = s + 1;
                // Accuracies measured with the weights before fine-tuning no longer hold.
                state.candidates.clear();
                self.save(&state)?;
            }
        }

        // A resumed search that refitted its predictor goes on with the refit.
        if let Some(file) = state
            .refinement
            .as_ref()
            .and_then(|r| r.predictor_file.as_ref())
        {
            host.adopt_predictor(&Predictor::load(file)?)
                .map_err(host_error("using the refitted predictor"))?;
        }
        let mut evaluator = self.evaluator(host, &state)?;
        // Checkpoints from before candidates carried their measurements.
        for r in &state.remeasured {
            evaluator.record_measurement(&r.arch, r.measured_ms);
        }
        let mut evo = match state.evolution.take() {
            Some(evo) => evo,
            // A budget's search starts from the uniform channel scalings (those the space still
            // allows): the baseline every winner is judged against is always among the candidates.
            None if objective.mode == ObjectiveMode::Constraint => Evolution::seeded(
                settings.evolution.clone(),
                state.space.clone(),
                &crate::evolution::uniform_scalings(),
            )?,
            None => Evolution::new(settings.evolution.clone(), state.space.clone())?,
        };
        let mut refine_pending = settings.refine.is_some() && state.refinement.is_none();
        // Killed while training the refinement's candidates: finish those first.
        if refine_pending && !state.refined.is_empty() {
            refine_pending = false;
            if self.refine(&mut state, &mut evaluator)? {
                evo.extend(self.correction.extra_generations.max(1));
            }
            self.checkpoint(&mut state, &evo, &evaluator)?;
        }
        loop {
            while !evo.is_done() {
                let g = evo.step(&mut evaluator)?;
                tracing::info!(
                    "generation {:>2}: best F {:.4} ({} {:.2}%, {:.3} ms), mean F {:.4}, {} evaluated",
                    g.generation,
                    g.best_score,
                    settings.estimator.accuracy_label(),
                    g.best_accuracy * 100.0,
                    g.best_latency_ms,
                    g.mean_score,
                    g.evaluations
                );
                self.checkpoint(&mut state, &evo, &evaluator)?;
            }
            self.rerank(&mut state, &mut evaluator)?;
            if self.correction.remeasure == 0 {
                break;
            }
            self.remeasure(&mut state, &mut evaluator)?;
            let choice = choose_winner(
                &pool(&state, evaluator.evaluated(), &objective),
                &objective,
                self.correction.tolerance,
                self.correction.tie_margin,
            );
            let met = choice
                .as_ref()
                .is_none_or(|c| c.reason == WinnerReason::WithinTolerance);
            // Under a budget, a model that over-predicts the device by more than the tolerance leaves
            // budget unused even when the winner is under T: correct it too.
            let over =
                crate::winner::overprediction(&state.remeasured, state.rounds).filter(|&o| {
                    objective.mode == ObjectiveMode::Constraint && o > self.correction.tolerance
                });
            if (met && over.is_none()) || state.rounds >= self.correction.max_rounds {
                self.checkpoint(&mut state, &evo, &evaluator)?;
                if refine_pending {
                    refine_pending = false;
                    let refitted = self.refine(&mut state, &mut evaluator)?;
                    if refitted {
                        evo.extend(self.correction.extra_generations.max(1));
                    }
                    self.checkpoint(&mut state, &evo, &evaluator)?;
                    if refitted {
                        continue;
                    }
                }
                if let Some(choice) = &choice {
                    tracing::info!("winner: {}", choice.explanation(&objective));
                }
                break;
            }
            state.rounds += 1;
            let why = match over {
                Some(o) if met => format!(
                    "the latency model over-predicts the re-measured candidates by {:.1}% (median), more \
                     than the ±{:.1}% tolerance, so the budget is not used",
                    o * 100.0,
                    self.correction.tolerance * 100.0
                ),
                _ => format!(
                    "no re-measured candidate is within ±{:.1}% of T (closest: {:+.1}%)",
                    self.correction.tolerance * 100.0,
                    choice.as_ref().map_or(f64::NAN, |c| c.relative_to_target(&objective) * 100.0)
                ),
            };
            tracing::info!(
                "{why}: correcting the latency model with {} re-measured networks and searching {} more generations",
                state.extra_samples.len(),
                self.correction.extra_generations
            );
            evaluator.set_model(corrected_model(self.table, &state.extra_samples)?);
            evo.extend(self.correction.extra_generations);
            self.checkpoint(&mut state, &evo, &evaluator)?;
        }

        // Once per search: a resumed one whose front was measured does not measure more.
        let front_done = state.remeasured.iter().any(|r| r.front);
        if objective.mode == ObjectiveMode::Constraint
            && self.correction.front_remeasure > 0
            && !front_done
        {
            // The front over the latency F uses (measured where known): a candidate predicted under T
            // but measured over it does not hide the ones behind it.
            let front: Vec<Candidate> = objective_front(evaluator.evaluated())
                .into_iter()
                .rev()
                .filter(|c| {
                    c.measured_ms.is_none()
                        && c.latency_ms <= objective.target_ms * (1.0 + self.correction.tolerance)
                })
                .take(self.correction.front_remeasure)
                .collect();
            if !front.is_empty() {
                tracing::info!(
                    "measuring {} candidates of the Pareto front at or near T",
                    front.len()
                );
                self.measure(&mut state, &mut evaluator, front, true)?;
                self.checkpoint(&mut state, &evo, &evaluator)?;
            }
        }
        let choice = choose_winner(
            &pool(&state, evaluator.evaluated(), &objective),
            &objective,
            self.correction.tolerance,
            self.correction.tie_margin,
        );
        let mut report = crate::report::assemble(&state, &evaluator, &evo, choice);
        let model = evaluator.model().clone();
        let search_best_score = evaluator.best().map(|c| c.score);
        drop(evaluator);
        if self.random_baseline {
            let evaluations = report.evaluations;
            tracing::info!("random-search baseline: {evaluations} uniformly drawn architectures");
            let mut baseline = Evaluator::new(HostAccuracy(host), model, objective);
            random_search(
                &mut baseline,
                &state.space,
                evaluations,
                settings.evolution.seed,
            )?;
            report.random_baseline = Some(RandomBaseline {
                evaluations,
                best: baseline.best().cloned(),
                search_best_score,
            });
        }
        write_json(&self.out.join("search.json"), &report)?;
        write_json(&self.out.join("space.json"), &state.space)?;
        // The report holds everything now; a rerun starts a new search.
        let path = state_path(&self.out);
        std::fs::remove_file(&path)
            .map_err(|e| hsconas_foundation::FsError::new("removing", &path, e))?;
        Ok(SearchOutcome {
            report,
            evolution: evo,
        })
    }

    /// An evaluator over the host's accuracies with the state's correction, holding its candidates.
    fn evaluator<'h, H: SearchHost>(
        &self,
        host: &'h mut H,
        state: &SearchState,
    ) -> Result<Evaluator<HostAccuracy<'h, H>>, NasError> {
        let model = corrected_model(self.table, &state.extra_samples)?;
        let mut evaluator = Evaluator::new(HostAccuracy(host), model, state.settings.objective);
        evaluator.restore(state.candidates.iter().cloned());
        Ok(evaluator)
    }

    /// Shrinks one layer with a progress bar and logs every subspace quality.
    fn shrink<O: AccuracyOracle>(
        &self,
        space: &mut SearchSpace,
        layer: usize,
        stage: usize,
        settings: &SearchSettings,
        evaluator: &mut Evaluator<O>,
    ) -> Result<LayerDecision, NasError> {
        let samples = settings.shrink_samples;
        let ops = space.layers()[layer].ops.len();
        let bar = hsconas_foundation::progress::progress_bar(
            ops * samples,
            Some(&format!("stage {} layer {}", stage + 1, layer + 1)),
            "subnets",
            self.show_progress,
        );
        let seed = settings.evolution.seed;
        let d = shrink_layer(space, layer, samples, seed, evaluator, || bar.inc(1))?;
        bar.finish_and_clear();
        tracing::info!(
            "stage {} layer {}: {} -> keep {} (space 10^{:.1} -> 10^{:.1})",
            stage + 1,
            layer + 1,
            d.qualities
                .iter()
                .map(|q| format!("{} Q={:.4}", q.op, q.q))
                .collect::<Vec<_>>()
                .join(", "),
            d.chosen,
            d.log10_size_before,
            d.log10_size_after
        );
        Ok(d)
    }

    /// Measures the best candidates not measured yet, records their latencies and keeps them as the
    /// samples the correction takes the device's level from ([`corrected_model`]).
    fn remeasure<H: SearchHost>(
        &self,
        state: &mut SearchState,
        evaluator: &mut Evaluator<HostAccuracy<'_, H>>,
    ) -> Result<(), NasError> {
        let objective = state.settings.objective;
        let best: Vec<Candidate> =
            crate::winner::ranked(&pool(state, evaluator.evaluated(), &objective))
                .into_iter()
                .filter(|c| !state.remeasured.iter().any(|r| r.arch == c.arch))
                .take(self.correction.remeasure)
                .collect();
        self.measure(state, evaluator, best, false)
    }

    /// Measures `best` on the device, records their latencies and keeps them as correction samples;
    /// `front`: they are members of the Pareto front measured after the search.
    pub(crate) fn measure<H: SearchHost>(
        &self,
        state: &mut SearchState,
        evaluator: &mut Evaluator<HostAccuracy<'_, H>>,
        best: Vec<Candidate>,
        front: bool,
    ) -> Result<(), NasError> {
        let objective = state.settings.objective;
        if best.is_empty() {
            return Ok(());
        }
        let archs: Vec<Arch> = best.iter().map(|c| c.arch.clone()).collect();
        let samples = evaluator
            .oracle_mut()
            .0
            .measure(&archs, state.rounds)
            .map_err(host_error("measuring on the device"))?;
        if samples.len() != archs.len() {
            return Err(NasError::Host {
                step: "measuring on the device",
                source: format!("{} samples for {} networks", samples.len(), archs.len()).into(),
            });
        }
        for (c, s) in best.iter().zip(&samples) {
            tracing::info!(
                "re-measured {}: measured {:.3} ms, {:+.1}% from T; predicted {:.3} ms (prediction error {:+.1}%)",
                c.arch,
                s.measured_ms,
                (s.measured_ms / objective.target_ms - 1.0) * 100.0,
                c.latency_ms,
                (c.latency_ms / s.measured_ms - 1.0) * 100.0
            );
            evaluator.record_measurement(&c.arch, s.measured_ms);
            state.remeasured.push(Remeasured {
                arch: c.arch.clone(),
                accuracy: c.accuracy,
                predicted_ms: c.latency_ms,
                measured_ms: s.measured_ms,
                raw_ms: s.raw_ms,
                table_sum_ms: s.table_sum_ms,
                round: state.rounds,
                front,
            });
        }
        state.extra_samples.extend(samples);
        Ok(())
    }

    /// Re-ranks the best `rerank` candidates by `F` (supernet accuracies) that have not been re-ranked
    /// yet with the host's expensive estimator, saving the state after each (minutes apiece).
    fn rerank<H: SearchHost>(
        &self,
        state: &mut SearchState,
        evaluator: &mut Evaluator<HostAccuracy<'_, H>>,
    ) -> Result<(), NasError> {
        let k = state.settings.rerank;
        let todo: Vec<Candidate> = crate::winner::ranked(evaluator.evaluated())
            .into_iter()
            .take(k)
            .filter(|c| !state.reranked.iter().any(|r| r.arch == c.arch))
            .collect();
        for (i, c) in todo.iter().enumerate() {
            let started = std::time::Instant::now();
            let accuracy = evaluator
                .oracle_mut()
                .0
                .rerank_accuracy(&c.arch)
                .map_err(host_error("re-ranking a candidate"))?;
            let accuracy = NasError::check_accuracy(&c.arch, accuracy)?;
            tracing::info!(
                "re-ranked {} of {}: {} top-1 {:.2}% ({} {:.2}%)",
                i + 1,
                todo.len(),
                c.arch,
                accuracy * 100.0,
                state.settings.estimator,
                c.accuracy * 100.0
            );
            state.reranked.push(Reranked {
                arch: c.arch.clone(),
                supernet_accuracy: c.accuracy,
                accuracy,
                seconds: started.elapsed().as_secs_f64(),
            });
            self.save(state)?;
        }
        Ok(())
    }

    fn checkpoint<O: AccuracyOracle>(
        &self,
        state: &mut SearchState,
        evo: &Evolution,
        evaluator: &Evaluator<O>,
    ) -> Result<(), NasError> {
        state.evolution = Some(evo.clone());
        state.candidates = evaluator.evaluated().to_vec();
        self.save(state)
    }

    pub(crate) fn save(&self, state: &SearchState) -> Result<(), NasError> {
        write_json(&state_path(&self.out), state)
    }
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), NasError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| NasError::State {
        path: path.to_path_buf(),
        message: format!("cannot serialise: {e}"),
    })?;
    write_atomic(path, &bytes)?;
    Ok(())
}

/// The table's model; with networks re-measured during the search, its predictions scaled to the
/// device's state now: multiplied by the median of `measured / predicted` over those networks.
///
/// The table's own calibration describes the device when the table was made (another hour, another
/// speed on a shared machine, perhaps another machine of the same kind), the re-measured networks describe
/// it during this search, near the target where the choice is made. Refitting the table's calibration
/// samples together with the few re-measured ones (what this did before) let 50 old samples outvote 3 new
/// ones: on a device running at 0.8 times the table's state the search ended its rounds 12% from T
/// (docs/accuracy-estimators.md, the proof's second attempt). A ratio keeps the table's shape (its
/// correction) and takes the level from the device.
pub fn corrected_model(
    table: &LatencyTable,
    extra: &[NetworkSample],
) -> Result<LatencyModel, NasError> {
    let base = LatencyModel::from_table(table)?;
    let correction = base.correction();
    let ratios: Vec<f64> = extra
        .iter()
        .map(|s| s.measured_ms / correction.predict(s.table_sum_ms, &s.arch))
        .filter(|r| r.is_finite() && *r > 0.0)
        .collect();
    if ratios.is_empty() {
        return Ok(base);
    }
    let level = hsconas_devices::drift::median(&ratios);
    Ok(LatencyModel::new(table, correction.scaled(level))?)
}

/// The candidates re-measurement and the winner choice draw from: every evaluated one, or with
/// re-ranking only the re-ranked ones, their accuracy and `F` from the expensive estimator (a supernet
/// accuracy and a short-training one are not on the same scale, so they are never compared).
fn pool(state: &SearchState, evaluated: &[Candidate], objective: &Objective) -> Vec<Candidate> {
    crate::winner::winner_pool(state.settings.rerank, &state.reranked, evaluated, objective)
}
