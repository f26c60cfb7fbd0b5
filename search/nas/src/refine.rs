//! Refinement during the search (`hsconas search --refine K`): once the latency re-measurement has found
//! candidates that meet the target, the K best of them (by `F`) are trained with the user's recipe, the
//! predictor is refitted on them (as a correction of the predictor the search used: the few-shot
//! adaptation of `hsconas predictor fit --prior`), every candidate is scored again with the refitted
//! predictor (the trained ones with their trained accuracy), and the evolution continues. The report
//! shows the predictor's error on the trained candidates before and after (the latter held out: each
//! candidate predicted by a refit without it).
//!
//! The training itself comes from the [`crate::SearchHost`]; this module chooses, records and refits.

use std::collections::HashMap;
use std::path::PathBuf;

use hsconas_models::Arch;
use serde::{Deserialize, Serialize};

use crate::predictor::{
    fit_predictor_held_out, FitReport, FittedOn, Predictor, TrainedResult, TrainingResults,
    MIN_NETWORKS,
};
use crate::{Candidate, NasError, Objective};

/// Rounds of measuring more candidates when fewer than K measured ones meet the target.
const MEASURING_ROUNDS: usize = 3;

/// What `--refine` asks for (a search setting: a resumed search must ask the same).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefineSettings {
    /// Candidates to train, at least [`MIN_NETWORKS`] (the refit scores each on a model fitted on the
    /// others).
    pub candidates: usize,
    /// The training recipe in words, as `hsconas predictor collect` writes it (the trained accuracies are
    /// the test top-1 this recipe reaches; it is recorded in the refitted predictor).
    pub recipe: String,
}

impl RefineSettings {
    /// Refuses fewer candidates than a refit can score.
    pub fn validate(&self) -> Result<(), NasError> {
        if self.candidates < MIN_NETWORKS {
            return Err(NasError::Estimator(format!(
                "--refine {}: the refit needs {MIN_NETWORKS} or more trained candidates (each is scored by \
                 a model fitted on the others)",
                self.candidates
            )));
        }
        Ok(())
    }
}

/// One candidate trained with the recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refined {
    /// The architecture.
    pub arch: Arch,
    /// Its latency measured on the device, ms.
    pub measured_ms: f64,
    /// The accuracy the search's predictor gave it (a fraction), before the refit.
    pub predicted: f64,
    /// The test top-1 its training reached (a fraction).
    pub trained: f64,
    /// The refitted predictor's accuracy for it when fitted without it (a fraction), once refitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out: Option<f64>,
    /// Seconds its training took (this process; a resumed training counts from the resume).
    pub seconds: f64,
}

/// What the refinement did (the search's state and report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refinement {
    /// The trained candidates, best `F` first.
    pub refined: Vec<Refined>,
    /// Root mean square of (predicted - trained) over them before the refit, points of top-1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rmse_before: Option<f64>,
    /// The same for the refitted predictor's held-out predictions, points of top-1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rmse_after_held_out: Option<f64>,
    /// The refit, scored on held-out candidates (with the prior alone and MACs beside it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit: Option<FitReport>,
    /// The refitted predictor (a predictor file like `hsconas predictor fit` writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictor_file: Option<PathBuf>,
    /// Why nothing was refitted, when nothing was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

impl Refinement {
    /// A refinement that trained nothing, for `reason`.
    pub fn skipped(reason: String) -> Refinement {
        Refinement {
            refined: Vec::new(),
            rmse_before: None,
            rmse_after_held_out: None,
            fit: None,
            predictor_file: None,
            skipped: Some(reason),
        }
    }
}

/// The candidates to train: the best by `F` among those measured on the device that meet the target
/// (`tolerance` as the winner's rule has it), at most `k`.
pub fn chosen(
    candidates: &[Candidate],
    objective: &Objective,
    tolerance: f64,
    k: usize,
) -> Vec<Candidate> {
    best_where(candidates, k, |c| {
        c.measured_ms.is_some_and(|m| objective.meets(m, tolerance))
    })
}

/// Candidates worth measuring so that `k` meet the target: the best by `F` not measured yet whose
/// predicted latency meets it, at most `k`.
pub fn to_measure(
    candidates: &[Candidate],
    objective: &Objective,
    tolerance: f64,
    k: usize,
) -> Vec<Candidate> {
    best_where(candidates, k, |c| {
        c.measured_ms.is_none() && objective.meets(c.latency_ms, tolerance)
    })
}

/// The `k` best by `F` of `candidates` that pass `keep` ([`crate::winner::ranked`]'s order).
fn best_where(
    candidates: &[Candidate],
    k: usize,
    keep: impl Fn(&Candidate) -> bool,
) -> Vec<Candidate> {
    crate::winner::ranked(candidates)
        .into_iter()
        .filter(|c| keep(c))
        .take(k)
        .collect()
}

/// Refits `prior` on the trained candidates (as a correction of its predictions) and fills in each
/// one's held-out prediction: the refitted predictor, and the refinement without its file.
pub fn refit(
    mut refined: Vec<Refined>,
    prior: &Predictor,
    prior_name: &str,
    data: String,
    recipe: &str,
) -> Result<(Predictor, Refinement), NasError> {
    let results = TrainingResults {
        networks: refined
            .iter()
            .map(|r| TrainedResult {
                arch: r.arch.clone(),
                top1: vec![r.trained * 100.0],
            })
            .collect(),
        data: Some(data.clone()),
        recipe: Some(recipe.to_string()),
    };
    let fitted_on = FittedOn {
        data,
        recipe: recipe.to_string(),
        results: "hsconas search --refine".to_string(),
        trainings: refined.len(),
    };
    let (predictor, fit, held_out) =
        fit_predictor_held_out(&results, Some(prior), prior_name, prior.config, fitted_on)?;
    for (r, p) in refined.iter_mut().zip(&held_out) {
        r.held_out = Some(p / 100.0);
    }
    let points = |f: &dyn Fn(&Refined) -> f64| {
        let predicted: Vec<f64> = refined.iter().map(|r| f(r) * 100.0).collect();
        let trained: Vec<f64> = refined.iter().map(|r| r.trained * 100.0).collect();
        crate::predictor::rmse(&predicted, &trained)
    };
    let rmse_before = points(&|r| r.predicted);
    let rmse_after = points(&|r| r.held_out.unwrap_or(f64::NAN));
    Ok((
        predictor,
        Refinement {
            rmse_before: Some(rmse_before),
            rmse_after_held_out: Some(rmse_after),
            fit: Some(fit),
            refined,
            predictor_file: None,
            skipped: None,
        },
    ))
}

/// The trained accuracies of a refinement, by architecture (what the search then uses for them).
pub fn trained_accuracies(refined: &[Refined]) -> HashMap<Arch, f64> {
    refined
        .iter()
        .map(|r| (r.arch.clone(), r.trained))
        .collect()
}

impl crate::SearchDriver<'_> {
    /// The refinement of `state.settings.refine`: measures more candidates when fewer than K measured
    /// ones meet the target, trains the K best that do (saving the state after each training), refits
    /// the predictor, writes it to `predictor-refined.json`, hands it to the host and scores every
    /// candidate again. Returns whether a refitted predictor is now in use (false: skipped, the reason
    /// recorded in `state.refinement`).
    pub(crate) fn refine<H: crate::SearchHost>(
        &self,
        state: &mut crate::SearchState,
        evaluator: &mut crate::Evaluator<crate::driver::HostAccuracy<'_, H>>,
    ) -> Result<bool, NasError> {
        let Some(settings) = state.settings.refine.clone() else {
            return Ok(false);
        };
        let objective = state.settings.objective;
        let tolerance = self.correction.tolerance;
        let k = settings.candidates;
        let host_error = |step: &'static str| move |source| NasError::Host { step, source };
        // The best meeting T not trained yet (after a kill the same choice again: an interrupted
        // training resumes from its checkpoint).
        let mut todo: Vec<Candidate> = Vec::new();
        if state.refined.len() < k {
            // Measuring takes seconds, training minutes: measure twice the shortfall, up to three times.
            for _ in 0..MEASURING_ROUNDS {
                let meeting = chosen(evaluator.evaluated(), &objective, tolerance, k).len();
                if meeting >= k {
                    break;
                }
                let more = to_measure(
                    evaluator.evaluated(),
                    &objective,
                    tolerance,
                    2 * (k - meeting),
                );
                if more.is_empty() {
                    break;
                }
                tracing::info!(
                    "--refine {k}: {meeting} measured candidates meet T; measuring {} more",
                    more.len()
                );
                self.measure(state, evaluator, more, false)?;
            }
            todo = chosen(evaluator.evaluated(), &objective, tolerance, k)
                .into_iter()
                .filter(|c| !state.refined.iter().any(|r| r.arch == c.arch))
                .take(k - state.refined.len())
                .collect();
        }
        if state.refined.len() + todo.len() < MIN_NETWORKS {
            let reason = format!(
                "only {} measured candidates meet T; the refit needs {MIN_NETWORKS} (--mode constraint \
                 accepts every candidate under T; a larger --population or more --generations finds more \
                 near it)",
                state.refined.len() + todo.len()
            );
            tracing::warn!("--refine skipped: {reason}");
            state.refinement = Some(Refinement::skipped(reason));
            return Ok(false);
        }
        let total = state.refined.len() + todo.len();
        for c in todo {
            let started = std::time::Instant::now();
            tracing::info!(
                "refining {} of {total}: training {} (predicted {:.2}%, measured {:.3} ms)",
                state.refined.len() + 1,
                c.arch,
                c.accuracy * 100.0,
                c.objective_latency_ms()
            );
            let trained = evaluator
                .oracle_mut()
                .0
                .train_accuracy(&c.arch)
                .map_err(host_error("training a candidate for --refine"))?;
            let trained = NasError::check_accuracy(&c.arch, trained)?;
            tracing::info!(
                "trained {}: test top-1 {:.2}% (predicted {:.2}%)",
                c.arch,
                trained * 100.0,
                c.accuracy * 100.0
            );
            state.refined.push(Refined {
                measured_ms: c.objective_latency_ms(),
                predicted: c.accuracy,
                trained,
                held_out: None,
                seconds: started.elapsed().as_secs_f64(),
                arch: c.arch,
            });
            self.save(state)?;
        }
        let (prior, prior_name) = match &state.settings.predictor {
            Some(path) => (
                Predictor::load(path)?,
                path.file_name()
                    .map_or("predictor".into(), |n| n.to_string_lossy().into_owned()),
            ),
            None => (Predictor::built_in()?, "builtin".to_string()),
        };
        let data = state
            .settings
            .data
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let (predictor, mut refinement) = refit(
            state.refined.clone(),
            &prior,
            &prior_name,
            data,
            &settings.recipe,
        )?;
        let file = self.out.join("predictor-refined.json");
        predictor.save(&file)?;
        refinement.predictor_file = Some(file);
        tracing::info!(
            "refitted the predictor on {} trained candidates: error on them {:.2} points before, {:.2} \
             held out after; scoring every candidate again",
            refinement.refined.len(),
            refinement.rmse_before.unwrap_or(f64::NAN),
            refinement.rmse_after_held_out.unwrap_or(f64::NAN)
        );
        evaluator
            .oracle_mut()
            .0
            .adopt_predictor(&predictor)
            .map_err(host_error("using the refitted predictor"))?;
        evaluator.reassess(&trained_accuracies(&refinement.refined))?;
        state.refinement = Some(refinement);
        Ok(true)
    }
}
