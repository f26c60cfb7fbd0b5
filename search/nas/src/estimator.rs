//! The accuracy estimators a search or `hsconas estimate` can score architectures with (how well each
//! ranks trained networks: docs/accuracy-estimators.md).

use std::fmt;

use serde::{Deserialize, Serialize};

/// An accuracy estimator (larger scores are better for every one). Named in files and on the command
/// line in kebab case (`grad-norm`, `short-training`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Estimator {
    /// Trainable parameters (a size baseline).
    Params,
    /// Multiply-accumulates of one image (a size baseline).
    Macs,
    /// Synaptic flow of the untrained, all-positive network (data-free).
    Synflow,
    /// Connection sensitivity of the untrained network on one batch.
    Snip,
    /// Loss-gradient norms of the untrained network on one batch.
    GradNorm,
    /// Activation-pattern kernel of the untrained network on one batch (NASWOT).
    Naswot,
    /// The trained accuracy predicted from the architecture alone by a ridge regression fitted on the
    /// ground truth (the built-in model, or `--predictor FILE`; `crate::predictor::Predictor`).
    Predictor,
    /// Validation top-1 with the supernet's inherited weights (needs a supernet; the paper's).
    #[default]
    Supernet,
    /// Validation top-1 after a few hundred steps of training from scratch (minutes per network).
    ShortTraining,
}

impl Estimator {
    /// Its name on the command line and in result files.
    pub fn name(self) -> &'static str {
        match self {
            Estimator::Params => "params",
            Estimator::Macs => "macs",
            Estimator::Synflow => "synflow",
            Estimator::Snip => "snip",
            Estimator::GradNorm => "grad-norm",
            Estimator::Naswot => "naswot",
            Estimator::Predictor => "predictor",
            Estimator::Supernet => "supernet",
            Estimator::ShortTraining => "short-training",
        }
    }

    /// Whether the score is itself a predicted accuracy (percent), which enters `F` as that fraction;
    /// every other cheap estimator's score enters as its percentile in the space
    /// ([`crate::PercentileScale`], which ties every candidate above its sample's best).
    pub fn scores_accuracy(self) -> bool {
        self == Estimator::Predictor
    }

    /// What a candidate's accuracy is under this estimator in a search: the supernet's validation
    /// top-1, the predictor's predicted test top-1, or another cheap estimator's percentile in the
    /// space ([`crate::PercentileScale`]).
    pub fn accuracy_label(self) -> String {
        match self {
            Estimator::Supernet => "top-1".to_string(),
            Estimator::Predictor => "predicted top-1".to_string(),
            cheap => format!("{} percentile", cheap.name()),
        }
    }
}

impl fmt::Display for Estimator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn one_name_on_the_command_line_and_in_files() {
        for e in Estimator::value_variants() {
            let cli = e.to_possible_value().expect("listed");
            assert_eq!(cli.get_name(), e.name());
            assert_eq!(
                serde_json::to_value(e).expect("json"),
                serde_json::json!(e.name())
            );
            let back: Estimator =
                serde_json::from_value(serde_json::json!(e.name())).expect("read");
            assert_eq!(back, *e);
        }
        assert_eq!(Estimator::default(), Estimator::Supernet);
        assert_eq!(Estimator::Supernet.accuracy_label(), "top-1");
        assert_eq!(Estimator::Naswot.accuracy_label(), "naswot percentile");
        assert_eq!(Estimator::Predictor.accuracy_label(), "predicted top-1");
        assert!(Estimator::Predictor.scores_accuracy());
        assert!(!Estimator::Naswot.scores_accuracy() && !Estimator::Supernet.scores_accuracy());
    }
}
