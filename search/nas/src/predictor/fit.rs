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

use super::{features_at, without, FittedOn, Predictor, Ridge, TrainingResults};
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
    /// networks of its geometry (`config`), however many; nothing for others. Measured on a 3-epoch recipe (docs/accuracy-estimators.md,
    /// "Few-shot adaptation"): a plain fit on 24 networks ranked the held-out ones backwards while the
    /// adapted one stayed near the prior; the one-standard-error rule still lets trainings that agree
    /// move the model away from the prior.
    pub fn automatic(config: &NetConfig, built_in: &Predictor) -> PriorChoice {
        if *config == built_in.config {
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

/// A model fitted on `x` (feature rows) and `y` (accuracies): plain (three rows or more), or on `prior`'s
/// residuals (two or more; with two, only the prior's level moves).
pub(super) fn fit_model(
    x: &[Vec<f64>],
    y: &[f64],
    prior: Option<&Predictor>,
) -> Result<Ridge, NasError> {
    match prior {
        None => Ridge::fit_cross_validated(x, y),
        Some(p) => {
            let residual: Vec<f64> = x
                .iter()
                .zip(y)
                .map(|(row, v)| v - p.predict_features(row))
                .collect();
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
    if let Some(p) = prior {
        if p.config != config {
            return Err(NasError::Estimator(format!(
                "the prior reads networks at layout {}, {}x{} inputs and {} classes; these results are at \
                 {}, {}x{}, {} classes: fit without a prior (--prior none) or with one of this configuration",
                p.config.layout,
                p.config.input_size,
                p.config.input_size,
                p.config.classes,
                config.layout,
                config.input_size,
                config.input_size,
                config.classes
            )));
        }
    }
    let x: Vec<Vec<f64>> = results
        .networks
        .iter()
        .map(|r| features_at(&r.arch, &config))
        .collect::<Result<_, _>>()?;
    let y: Vec<f64> = results.networks.iter().map(|r| r.mean_top1()).collect();
    let held_out: Vec<f64> = (0..n)
        .map(|i| {
            let (rest_x, rest_y) = without(&x, &y, i);
            let ridge = fit_model(&rest_x, &rest_y, prior)?;
            Ok(prior.map_or(0.0, |p| p.predict_features(&x[i])) + ridge.predict(&x[i]))
        })
        .collect::<Result<_, NasError>>()?;
    let ridge = fit_model(&x, &y, prior)?;
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
        prior_alone: prior
            .map(|p| score(&x.iter().map(|r| p.predict_features(r)).collect::<Vec<_>>()))
            .transpose()?,
        // The first feature is log MACs: the same order as MACs.
        macs: score(&x.iter().map(|r| r[0]).collect::<Vec<_>>())?,
    };
    let predictor = Predictor {
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
    fn too_few_networks_or_a_prior_of_another_configuration_are_refused() {
        let prior = Predictor::built_in().expect("built in");
        let few = results(3, |_| 50.0);
        let err = fit_predictor(&few, None, "none", prior.config, fitted_on())
            .expect_err("three networks");
        assert!(err.to_string().contains("3 trained networks"), "{err}");
        let enough = results(5, |a| a.choices().len() as f64);
        let other = NetConfig {
            input_size: 64,
            ..prior.config
        };
        let err = fit_predictor(&enough, Some(&prior), "builtin", other, fitted_on())
            .expect_err("another configuration");
        assert!(err.to_string().contains("--prior none"), "{err}");
    }

    /// A predictor file keeps everything through a save and a load; a newer format, or a prior of
    /// another configuration, is refused with the reason.
    #[test]
    fn a_predictor_file_round_trips_and_a_newer_format_is_refused() {
        let prior = Predictor::built_in().expect("built in");
        let data = results(5, |a| prior.predict(a).expect("predicts") - 1.0);
        let (adapted, _) =
            fit_predictor(&data, Some(&prior), "builtin", prior.config, fitted_on()).expect("fits");
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
        json["prior"]["config"]["input_size"] = 64.into();
        std::fs::write(&path, json.to_string()).expect("write");
        let err = Predictor::load(&path)
            .expect_err("prior elsewhere")
            .to_string();
        assert!(err.contains("its prior reads networks at"), "{err}");

        std::fs::write(&path, &json.to_string()[..40]).expect("write");
        let err = Predictor::load(&path).expect_err("truncated").to_string();
        assert!(err.contains("not a predictor file"), "{err}");
    }
}
