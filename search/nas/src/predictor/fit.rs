//! Fitting a predictor on a user's training results (`hsconas predictor fit`): plainly, or adapted from a
//! prior predictor (the built-in one, or another file) when the results are few. The adapted model is the
//! prior's prediction plus a ridge regression fitted on the prior's residuals, whose strength
//! cross-validation chooses among values up to one that leaves only a shift of the prior, by the
//! one-standard-error rule (the strongest shrinkage within one standard error of the lowest error): so
//! with a handful of trainings it stays near the prior unless they clearly say otherwise, and with many
//! it can move far from it.
//!
//! The report scores the fitted model the only honest way on a few dozen networks: on networks it did
//! not see (nested leave-one-out, as [`super::held_out_predictions`]), beside the prior's own predictions
//! and MACs on the same networks, each Kendall tau with its bootstrap interval.

use serde::{Deserialize, Serialize};

use hsconas_models::NetConfig;

use super::{features_at, without, FittedOn, Predictor, Ridge, TrainingResults, PREDICTOR_FORMAT};
use crate::ground_truth::RankingScore;
use crate::NasError;

/// Ridge strengths of an adapted fit (on standardised features): the last leaves only a shift of the
/// prior's predictions.
pub const ADAPTATION_STRENGTHS: [f64; 6] = [1.0, 10.0, 100.0, 1000.0, 10_000.0, 1e7];

/// Fewest trained networks a fit accepts (each held-out model is cross-validated on the others).
pub const MIN_NETWORKS: usize = 4;

/// What a fit adapts (`--prior`).
#[derive(Debug, Clone, PartialEq)]
pub enum PriorChoice {
    /// Nothing: a plain ridge regression.
    None,
    /// The predictor built into hsconas.
    BuiltIn,
    /// A predictor file.
    File(std::path::PathBuf),
}

impl std::str::FromStr for PriorChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "none" => PriorChoice::None,
            "builtin" | "built-in" => PriorChoice::BuiltIn,
            "" => return Err("expected builtin, none or a predictor file".into()),
            path => PriorChoice::File(path.into()),
        })
    }
}

impl PriorChoice {
    /// The choice when none was given: the built-in predictor (`built_in`, [`Predictor::built_in`]) for
    /// networks of its layout and class count, at any input size (it predicts from its own 32x32
    /// features); nothing for others. Measured on three tasks (docs/accuracy-estimators.md, "Few-shot
    /// adaptation"): on a 3-epoch recipe a plain fit on 24 networks ranked the held-out ones backwards
    /// while the adapted one stayed near the prior; a plain fit ranked held-out networks below the prior
    /// alone at 16x16 inputs until 16 trainings, and on 1,000 images at every number measured; the
    /// one-standard-error rule still lets trainings that agree move the model away from the prior.
    pub fn automatic(config: &NetConfig, built_in: &Predictor) -> PriorChoice {
        let own = &built_in.config;
        if (config.layout, config.classes) == (own.layout, own.classes) {
            PriorChoice::BuiltIn
        } else {
            PriorChoice::None
        }
    }

    /// The prior predictor, if any (`built_in` is [`Predictor::built_in`], read once by the caller).
    pub fn load(&self, built_in: &Predictor) -> Result<Option<Predictor>, NasError> {
        match self {
            PriorChoice::None => Ok(None),
            PriorChoice::BuiltIn => Ok(Some(built_in.clone())),
            PriorChoice::File(path) => Predictor::load(path).map(Some),
        }
    }
}

/// How a fit went, scored on networks each model did not see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    /// Trained networks fitted on.
    pub networks: usize,
    /// Trainings read (seeds count apart).
    pub trainings: usize,
    /// What was adapted (`none`, `builtin` or the prior's file name).
    pub prior: String,
    /// The ridge strength chosen for the final model.
    pub strength: f64,
    /// The fitted model's held-out predictions against the trained accuracy (tau with its interval,
    /// rho, top-3 regret).
    pub held_out: RankingScore,
    /// Root mean square error of the held-out predictions, points of test top-1.
    pub held_out_rmse: f64,
    /// The prior's own predictions on the same networks (nothing fitted), when there is a prior.
    pub prior_alone: Option<RankingScore>,
    /// MACs as the estimator, on the same networks.
    pub macs: RankingScore,
}

/// A model fitted on `x` (feature rows) and `y` (accuracies): plain (three rows or more), or on the
/// residuals from `base`, a prior's predictions of the same networks (two or more; with two, only the
/// prior's level moves).
pub(super) fn fit_model(
    x: &[Vec<f64>],
    y: &[f64],
    base: Option<&[f64]>,
) -> Result<Ridge, NasError> {
    match base {
        None => Ridge::fit_cross_validated(x, y),
        Some(base) => {
            let residual: Vec<f64> = y.iter().zip(base).map(|(v, b)| v - b).collect();
            if x.len() < 3 {
                // Too few to cross-validate a strength: the strongest shrinkage, which only moves the
                // prior's level (the mean residual).
                Ridge::fit(
                    x,
                    &residual,
                    ADAPTATION_STRENGTHS[ADAPTATION_STRENGTHS.len() - 1],
                )
            } else {
                Ridge::fit_cross_validated_one_se(x, &residual, &ADAPTATION_STRENGTHS)
            }
        }
    }
}

/// `prior`'s prediction of every network of `results` (from the features at the prior's own
/// configuration, which may differ from the results'), when there is a prior.
pub(super) fn prior_predictions(
    results: &TrainingResults,
    prior: Option<&Predictor>,
) -> Result<Option<Vec<f64>>, NasError> {
    prior
        .map(|p| {
            results
                .networks
                .iter()
                .map(|r| p.predict(&r.arch))
                .collect()
        })
        .transpose()
}

/// Fits a predictor on `results` at `config`, adapting `prior` when given, and scores it on held-out
/// networks. `fitted_on` is recorded in the predictor file.
pub fn fit_predictor(
    results: &TrainingResults,
    prior: Option<&Predictor>,
    prior_name: &str,
    config: NetConfig,
    fitted_on: FittedOn,
) -> Result<(Predictor, FitReport), NasError> {
    fit_predictor_held_out(results, prior, prior_name, config, fitted_on)
        .map(|(predictor, report, _)| (predictor, report))
}

/// [`fit_predictor`], also returning each network's held-out prediction (test top-1, percent, by the
/// model fitted without it), in the order of `results`.
pub fn fit_predictor_held_out(
    results: &TrainingResults,
    prior: Option<&Predictor>,
    prior_name: &str,
    config: NetConfig,
    fitted_on: FittedOn,
) -> Result<(Predictor, FitReport, Vec<f64>), NasError> {
    let n = results.networks.len();
    if n < MIN_NETWORKS {
        return Err(NasError::Estimator(format!(
            "{n} trained networks: a predictor needs {MIN_NETWORKS} or more (each one is scored by a model \
             fitted and cross-validated on the others)"
        )));
    }
    let x: Vec<Vec<f64>> = results
        .networks
        .iter()
        .map(|r| features_at(&r.arch, &config))
        .collect::<Result<_, _>>()?;
    let y: Vec<f64> = results.networks.iter().map(|r| r.mean_top1()).collect();
    let base = prior_predictions(results, prior)?;
    let held_out: Vec<f64> = (0..n)
        .map(|i| {
            let (rest_x, rest_y) = without(&x, &y, i);
            let rest_base: Option<Vec<f64>> = base.as_ref().map(|b| {
                let keep = b.iter().enumerate().filter(|&(j, _)| j != i);
                keep.map(|(_, v)| *v).collect()
            });
            let ridge = fit_model(&rest_x, &rest_y, rest_base.as_deref())?;
            Ok(base.as_ref().map_or(0.0, |b| b[i]) + ridge.predict(&x[i]))
        })
        .collect::<Result<_, NasError>>()?;
    let ridge = fit_model(&x, &y, base.as_deref())?;
    let score = |estimate: &[f64]| {
        RankingScore::of(estimate, &y)
            .ok_or_else(|| NasError::Estimator("too few networks to score".into()))
    };
    let rmse = super::rmse(&held_out, &y);
    let report = FitReport {
        networks: n,
        trainings: results.trainings(),
        prior: prior_name.to_string(),
        strength: ridge.strength,
        held_out: score(&held_out)?,
        held_out_rmse: rmse,
        prior_alone: base.as_deref().map(score).transpose()?,
        // The first feature is log MACs: the same order as MACs.
        macs: score(&x.iter().map(|r| r[0]).collect::<Vec<_>>())?,
    };
    let predictor = Predictor {
        // Format 1 where it says all (no prior of another geometry), so older builds still read it.
        format: match prior {
            Some(p) if p.config != config => PREDICTOR_FORMAT,
            _ => 1,
        },
        fitted_on: Some(fitted_on),
        prior: prior.map(|p| Box::new(p.clone())),
        held_out_rmse: Some(rmse),
        ..Predictor::of(config, ridge, n)
    };
    Ok((predictor, report, held_out))
}

#[cfg(test)]
mod tests {
    use hsconas_models::{Arch, SearchSpace};
    use rand::SeedableRng;

    use super::*;
    use crate::predictor::{TrainedResult, PREDICTOR_FORMAT};

    fn fitted_on() -> FittedOn {
        FittedOn {
            data: "test".into(),
            recipe: "test".into(),
            results: "results.tsv".into(),
            trainings: 0,
        }
    }

    /// `count` sampled architectures, each with the accuracy `truth` gives it.
    fn results(count: usize, truth: impl Fn(&Arch) -> f64) -> TrainingResults {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        TrainingResults {
            networks: (0..count)
                .map(|_| {
                    let arch = SearchSpace::full().sample(&mut rng);
                    let top1 = truth(&arch);
                    TrainedResult {
                        arch,
                        top1: vec![top1],
                    }
                })
                .collect(),
            data: None,
            recipe: None,
        }
    }

    /// A new task whose accuracies are the built-in predictor's plus 3 points: adapted from the built-in
    /// model, a handful of trainings predict the held-out ones almost exactly (the fit keeps the prior's
    /// ranking and learns the shift), and the report scores the prior alone and MACs beside it.
    #[test]
    fn an_adapted_fit_learns_a_shift_of_its_prior_from_a_few_networks() {
        let prior = Predictor::built_in().expect("built in");
        let shifted = results(6, |a| prior.predict(a).expect("predicts") + 3.0);
        let (adapted, report) =
            fit_predictor(&shifted, Some(&prior), "builtin", prior.config, fitted_on())
                .expect("fits");
        assert!(report.held_out_rmse < 0.05, "{report:?}");
        assert_eq!(report.held_out.kendall_tau, 1.0, "{report:?}");
        assert_eq!(
            report.prior_alone.as_ref().map(|s| s.kendall_tau),
            Some(1.0)
        );
        assert_eq!(report.networks, 6);
        for n in &shifted.networks {
            let p = adapted.predict(&n.arch).expect("predicts");
            assert!((p - n.mean_top1()).abs() < 0.05, "{p} vs {}", n.mean_top1());
        }
        // It keeps its prior and says what it was fitted on; a plain fit of the same six does worse.
        assert!(adapted.prior.is_some());
        assert_eq!(adapted.fitted_on, Some(fitted_on()));
        let (_, plain) =
            fit_predictor(&shifted, None, "none", prior.config, fitted_on()).expect("fits");
        assert!(plain.held_out_rmse > report.held_out_rmse, "{plain:?}");
    }

    #[test]
    fn too_few_networks_are_refused() {
        let prior = Predictor::built_in().expect("built in");
        let few = results(3, |_| 50.0);
        let err = fit_predictor(&few, None, "none", prior.config, fitted_on())
            .expect_err("three networks");
        assert!(err.to_string().contains("3 trained networks"), "{err}");
    }

    /// A task at 24x24 inputs whose accuracies are the built-in (32x32) predictor's plus 2 points: the
    /// adapted model reads the prior at the prior's own configuration and its correction at 24x24, so it
    /// predicts the task exactly; the prior fed the features counted at 24x24 would not (the stages
    /// shrink by different factors there), and the file keeps both configurations.
    #[test]
    fn a_prior_of_another_input_size_predicts_at_its_own() {
        let prior = Predictor::built_in().expect("built in");
        let at_24 = NetConfig {
            input_size: 24,
            ..prior.config
        };
        let task = results(8, |a| prior.predict(a).expect("predicts") + 2.0);
        let (adapted, report) =
            fit_predictor(&task, Some(&prior), "builtin", at_24, fitted_on()).expect("fits");
        assert_eq!(report.held_out.kendall_tau, 1.0, "{report:?}");
        assert_eq!(
            report.prior_alone.as_ref().map(|s| s.kendall_tau),
            Some(1.0)
        );
        let mut misread = Vec::new();
        for n in &task.networks {
            let p = adapted.predict(&n.arch).expect("predicts");
            assert!((p - n.mean_top1()).abs() < 0.05, "{p} vs {}", n.mean_top1());
            let at_24 = features_at(&n.arch, &at_24).expect("features");
            misread.push(prior.ridge.predict(&at_24) + 2.0 - n.mean_top1());
        }
        let spread = misread.iter().cloned().fold(f64::MIN, f64::max)
            - misread.iter().cloned().fold(f64::MAX, f64::min);
        assert!(
            spread > 0.1,
            "the test cannot tell the configurations apart: {misread:?}"
        );
        assert_eq!(adapted.config.input_size, 24);
        let kept = adapted.prior.as_ref().expect("a prior");
        assert_eq!(kept.config.input_size, 32);
        assert_eq!(
            adapted.format, PREDICTOR_FORMAT,
            "a format older builds refuse"
        );

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.json");
        adapted.save(&path).expect("saves");
        assert_eq!(Predictor::load(&path).expect("loads"), adapted);
    }

    /// A predictor file keeps everything through a save and a load; a newer format, or a prior this
    /// build cannot read, is refused with the reason.
    #[test]
    fn a_predictor_file_round_trips_and_a_newer_format_is_refused() {
        let prior = Predictor::built_in().expect("built in");
        let data = results(5, |a| prior.predict(a).expect("predicts") - 1.0);
        let (adapted, _) =
            fit_predictor(&data, Some(&prior), "builtin", prior.config, fitted_on()).expect("fits");
        assert_eq!(
            adapted.format, 1,
            "a prior of its own geometry: a format older builds read"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.json");
        adapted.save(&path).expect("saves");
        assert_eq!(Predictor::load(&path).expect("loads"), adapted);

        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        json["format"] = (PREDICTOR_FORMAT + 1).into();
        std::fs::write(&path, json.to_string()).expect("write");
        let err = Predictor::load(&path).expect_err("newer").to_string();
        assert!(err.contains("newer than this hsconas reads"), "{err}");

        json["format"] = PREDICTOR_FORMAT.into();
        json["prior"]["features"][0] = "log FLOPs".into();
        std::fs::write(&path, json.to_string()).expect("write");
        let err = Predictor::load(&path).expect_err("bad prior").to_string();
        assert!(err.contains("its prior: fitted on other features"), "{err}");

        std::fs::write(&path, &json.to_string()[..40]).expect("write");
        let err = Predictor::load(&path).expect_err("truncated").to_string();
        assert!(err.contains("not a predictor file"), "{err}");
    }
}
