//! A small accuracy predictor fitted on the ground truth: ridge regression of the trained accuracy on a
//! few architecture features ([`FEATURES`]). With a few dozen trained networks anything fitted scores
//! well on what it was fitted on, so it is only ever scored on networks it did not see: each network's
//! [`held_out_predictions`] comes from a model fitted on the others, whose ridge strength was itself
//! chosen by leave-one-out cross-validation among those others (nested leave-one-out). The model fitted
//! on every trained network ([`Predictor`]) is an estimator of its own (`--estimator predictor`): a
//! function of the architecture alone, built into the binary from the committed ground truth.

use std::path::Path;

use hsconas_models::{build, Arch, NetConfig, Op};

mod curve;
mod fit;
mod results;
mod ridge;
mod sample;

pub use curve::{few_shot_curve, CurvePoint, TauSpread, MIN_HELD_OUT};
pub use fit::{
    fit_predictor, fit_predictor_held_out, FitReport, PriorChoice, ADAPTATION_STRENGTHS,
    MIN_NETWORKS,
};
pub use results::{TrainedResult, TrainingResults};
pub(crate) use ridge::without;
pub use ridge::{held_out_predictions, rmse, Ridge, RIDGE_STRENGTHS};
pub use sample::{
    group_sizes, results_tsv, CollectedRun, Plan, PlannedNetwork, SampleGroup, EQUAL_TOLERANCE,
    MIN_SAMPLE, POOL,
};
use serde::{Deserialize, Serialize};

use crate::NasError;

/// The features, in the order [`features`] returns them.
pub const FEATURES: [&str; 13] = [
    "log MACs",
    "log params",
    "mean scale of the non-skip layers",
    "spread (standard deviation) of those scales",
    "fraction of shuffle3 layers",
    "fraction of shuffle5 layers",
    "fraction of shuffle7 layers",
    "fraction of xception layers",
    "fraction of skip layers",
    "mean scale of stage 1 (skip counts 0)",
    "mean scale of stage 2",
    "mean scale of stage 3",
    "mean scale of stage 4",
];

/// The features of `arch` (see [`FEATURES`]); `macs` and `params` are the built network's.
pub fn features(arch: &Arch, macs: usize, params: usize) -> Vec<f64> {
    let choices = arch.choices();
    let n = choices.len() as f64;
    let scales: Vec<f64> = choices
        .iter()
        .filter(|c| !c.is_skip())
        .map(|c| c.scale().value())
        .collect();
    let mean = scales.iter().sum::<f64>() / scales.len().max(1) as f64;
    let spread = (scales.iter().map(|s| (s - mean).powi(2)).sum::<f64>()
        / scales.len().max(1) as f64)
        .sqrt();
    let mut f = vec![
        (macs.max(1) as f64).ln(),
        (params.max(1) as f64).ln(),
        mean,
        spread,
    ];
    for op in Op::ALL {
        f.push(choices.iter().filter(|c| c.op() == op).count() as f64 / n);
    }
    let mut stages = [(0.0, 0usize); 4];
    for (layer, c) in choices.iter().enumerate() {
        let stage = &mut stages[NetConfig::stage_of(layer).min(3)];
        stage.0 += if c.is_skip() { 0.0 } else { c.scale().value() };
        stage.1 += 1;
    }
    f.extend(stages.iter().map(|&(sum, count)| sum / count.max(1) as f64));
    f
}

/// The features of `arch` built at `config` (its MACs and parameters counted there).
pub fn features_at(arch: &Arch, config: &NetConfig) -> Result<Vec<f64>, NasError> {
    let graph = build::network(arch, config)
        .map_err(|e| NasError::Estimator(format!("building {arch}: {e}")))?;
    Ok(features(arch, graph.macs(), graph.param_count()))
}

/// The predictor file format this build writes ([`Predictor::format`]); files of formats 0 (before it was
/// versioned) and 1 (a prior only of the predictor's own configuration) are read too, a newer one is
/// refused.
pub const PREDICTOR_FORMAT: u32 = 2;

/// What a predictor's training results were (a predictor file's `fitted_on`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FittedOn {
    /// The images the networks were trained on, as the results name them (e.g. a data file's name).
    pub data: String,
    /// How they were trained (the training command line or a description).
    pub recipe: String,
    /// The results file it was fitted from (its name).
    pub results: String,
    /// Trainings read (several seeds of one network count once each).
    pub trainings: usize,
}

/// A fitted predictor as kept in a file (`hsconas predictor fit` writes one; the built-in one is
/// `search/nas/assets/predictor-model.json`): the features it reads, the network configuration whose
/// MACs and parameters it reads, the ridge regression, how many trained networks it was fitted on and,
/// since format 1, what they were and the model it was adapted from. The format is documented in
/// docs/file-formats.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Predictor {
    /// File format version ([`PREDICTOR_FORMAT`]; 0 in files written before it was recorded).
    #[serde(default)]
    pub format: u32,
    /// The names of its features; must be [`FEATURES`].
    pub features: Vec<String>,
    /// The configuration the features' MACs and parameters are counted at (the ground truth's).
    pub config: NetConfig,
    /// The fitted model.
    pub ridge: Ridge,
    /// Trained networks it was fitted on.
    pub networks: usize,
    /// What the networks were trained on and how (absent in format 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fitted_on: Option<FittedOn>,
    /// The predictor this one adapts, when it was fitted as a correction of another's predictions: the
    /// prediction is the prior's (from the features at the prior's own configuration, which may differ
    /// from this one's since format 2: a prior fitted at 32x32 inputs adapted to 16x16) plus `ridge`'s
    /// (fitted on the prior's residuals, from the features at this predictor's configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior: Option<Box<Predictor>>,
    /// Its error on networks it did not see: the root mean square of the nested leave-one-out
    /// predictions' errors over what it was fitted on, points of top-1 (absent in files written before it
    /// was kept). A constraint-mode search's tie margin by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out_rmse: Option<f64>,
}

/// The predictor fitted on the committed ground truth (`search/nas/assets/predictor-model.json`, an asset of
/// this crate; `research/scripts/ground-truth.sh score` writes it from `docs/evidence/ground-truth/ground-truth.json`).
const BUILT_IN: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/predictor-model.json"
));

impl Predictor {
    /// Fits one on the feature rows `x` (computed at `config`) and their accuracies `y`, its ridge
    /// strength cross-validated ([`Ridge::fit_cross_validated`]).
    pub fn fit(x: &[Vec<f64>], y: &[f64], config: NetConfig) -> Result<Predictor, NasError> {
        Ok(Predictor::of(
            config,
            Ridge::fit_cross_validated(x, y)?,
            x.len(),
        ))
    }

    /// A format-[`PREDICTOR_FORMAT`] predictor of `ridge` (fitted on `networks` networks at `config`),
    /// with neither `fitted_on` nor a prior.
    pub(crate) fn of(config: NetConfig, ridge: Ridge, networks: usize) -> Predictor {
        Predictor {
            format: PREDICTOR_FORMAT,
            features: FEATURES.iter().map(|f| f.to_string()).collect(),
            config,
            ridge,
            networks,
            fitted_on: None,
            prior: None,
            held_out_rmse: None,
        }
    }

    /// The one built into the binary: fitted on the committed ground truth (CIFAR-10 at 32x32).
    pub fn built_in() -> Result<Predictor, NasError> {
        Predictor::from_json(BUILT_IN)
            .map_err(|m| NasError::Estimator(format!("the built-in predictor: {m}")))
    }

    /// Reads a predictor file, refusing one that is not a predictor or reads other features.
    pub fn load(path: &Path) -> Result<Predictor, NasError> {
        let refuse = |message: String| NasError::State {
            path: path.to_path_buf(),
            message,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| refuse(format!("cannot be read ({e})")))?;
        Predictor::from_json(&text).map_err(refuse)
    }

    /// Writes it as JSON (atomically).
    pub fn save(&self, path: &Path) -> Result<(), NasError> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| NasError::State {
            path: path.to_path_buf(),
            message: format!("cannot be written as JSON ({e})"),
        })?;
        hsconas_foundation::write_atomic(path, &json)?;
        Ok(())
    }

    fn from_json(text: &str) -> Result<Predictor, String> {
        let p: Predictor =
            serde_json::from_str(text).map_err(|e| format!("not a predictor file ({e})"))?;
        p.check()?;
        Ok(p)
    }

    /// Refuses a predictor this build cannot use: a newer format, other features, a model of another
    /// size, an invalid configuration, or a prior that is itself unusable.
    fn check(&self) -> Result<(), String> {
        let p = self;
        if p.format > PREDICTOR_FORMAT {
            return Err(format!(
                "predictor file format {} is newer than this hsconas reads ({PREDICTOR_FORMAT}); update hsconas",
                p.format
            ));
        }
        if p.features != FEATURES {
            return Err(format!(
                "fitted on other features ({:?}) than this version computes",
                p.features
            ));
        }
        let k = FEATURES.len();
        let r = &p.ridge;
        if r.mean.len() != k || r.scale.len() != k || r.weights.len() != k {
            return Err(format!("its model does not have {k} features"));
        }
        p.config.validate().map_err(|e| e.to_string())?;
        if let Some(prior) = &p.prior {
            prior.check().map_err(|m| format!("its prior: {m}"))?;
        }
        Ok(())
    }

    /// The predicted trained accuracy (test top-1, percent) of `arch`, from its features at the
    /// predictor's own configuration (whatever data a search runs on), plus its prior's prediction at
    /// the prior's configuration when adapted.
    pub fn predict(&self, arch: &Arch) -> Result<f64, NasError> {
        self.predict_with(arch, &self.features_of(arch)?)
    }

    /// [`Predictor::predict`] with `x`, the features of `arch` at this predictor's configuration,
    /// already computed (a prior of the same configuration reuses them).
    fn predict_with(&self, arch: &Arch, x: &[f64]) -> Result<f64, NasError> {
        let base = match &self.prior {
            None => 0.0,
            Some(prior) if prior.config == self.config => prior.predict_with(arch, x)?,
            Some(prior) => prior.predict(arch)?,
        };
        Ok(base + self.ridge.predict(x))
    }

    /// The features of `arch` at the predictor's configuration.
    pub fn features_of(&self, arch: &Arch) -> Result<Vec<f64>, NasError> {
        features_at(arch, &self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_of_a_uniform_scaling_and_a_network_with_skips() {
        let uniform: Arch = vec!["shuffle3:0.5"; 20].join(",").parse().expect("arch");
        let f = features(&uniform, 1000, 100);
        assert_eq!(f.len(), FEATURES.len());
        assert_eq!(f[0], 1000f64.ln());
        assert_eq!((f[2], f[3]), (0.5, 0.0));
        assert_eq!(&f[4..9], &[1.0, 0.0, 0.0, 0.0, 0.0]);
        assert!(f[9..].iter().all(|&s| (s - 0.5).abs() < 1e-12));

        // Layer 2 (stage 1) skipped, layer 5 (stage 2) xception:1.0.
        let mut layers = vec!["shuffle3:0.5".to_string(); 20];
        layers[1] = "skip".into();
        layers[4] = "xception:1.0".into();
        let mixed: Arch = layers.join(",").parse().expect("arch");
        let f = features(&mixed, 1000, 100);
        assert_eq!(f[8], 1.0 / 20.0, "skip fraction");
        assert_eq!(f[7], 1.0 / 20.0, "xception fraction");
        assert!(
            (f[9] - 1.5 / 4.0).abs() < 1e-12,
            "stage 1 counts the skip as 0"
        );
        assert!((f[10] - 2.5 / 4.0).abs() < 1e-12, "stage 2");
        assert!(f[3] > 0.0);
    }

    #[test]
    fn the_built_in_predictor_loads_and_ranks_wider_uniform_scalings_higher() {
        let p = Predictor::built_in().expect("built in");
        assert!(p.networks >= 20, "{}", p.networks);
        assert_eq!((p.config.input_size, p.config.classes), (32, 10));
        let uniform = |s: &str| -> Arch {
            vec![format!("shuffle3:{s}"); 20]
                .join(",")
                .parse()
                .expect("arch")
        };
        let (narrow, wide) = (
            p.predict(&uniform("0.2")).expect("narrow"),
            p.predict(&uniform("0.8")).expect("wide"),
        );
        assert!(wide > narrow, "{wide} <= {narrow}");
        assert!((10.0..=100.0).contains(&narrow), "{narrow}");
    }

    #[test]
    fn predictor_files_are_checked_and_round_trip() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("p.json");
        let p = Predictor::built_in().expect("built in");
        std::fs::write(&path, serde_json::to_string(&p).expect("json")).expect("write");
        assert_eq!(Predictor::load(&path).expect("load"), p);

        let mut other = serde_json::to_value(&p).expect("json");
        other["features"][0] = "log FLOPs".into();
        std::fs::write(&path, other.to_string()).expect("write");
        let err = Predictor::load(&path)
            .expect_err("other features")
            .to_string();
        assert!(err.contains("other features"), "{err}");

        let mut short = serde_json::to_value(&p).expect("json");
        short["ridge"]["weights"] = serde_json::json!([1.0]);
        std::fs::write(&path, short.to_string()).expect("write");
        assert!(Predictor::load(&path).is_err());

        std::fs::write(&path, "{\"features\": ").expect("write");
        let err = Predictor::load(&path).expect_err("truncated").to_string();
        assert!(err.contains("not a predictor file"), "{err}");
        assert!(Predictor::load(&dir.path().join("none.json")).is_err());
    }
}
