//! Timing words: the statistic that stands for a latency, a model's timing summary and the timing protocol
//! with its defaults (the one definition of each; `hsconas-runtime` times models with them).

use hsconas_foundation::stats::percentile;
use serde::{Deserialize, Serialize};

use crate::VocabularyError;

/// Which statistic stands for "the latency".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Statistic {
    /// Minimum.
    Min,
    /// 10th percentile (the default: repeatable on shared hosts).
    #[default]
    P10,
    /// Median (for quiet, dedicated devices).
    Median,
    /// Arithmetic mean.
    Mean,
}

crate::engine::words!(Statistic, "statistic", "min, p10, median or mean", {
    Min => "min",
    P10 => "p10",
    Median => "median",
    Mean => "mean",
});

/// How long and how often to measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Protocol {
    /// Untimed runs per model before timing.
    pub warmup: usize,
    /// Timed runs per model, at least.
    pub min_runs: usize,
    /// Timed time per model, at least (milliseconds).
    pub min_time_ms: f64,
    /// Timed runs per model, at most (stops fast models in long interleaved sessions).
    pub max_runs: usize,
    /// Seed of the random inputs.
    pub seed: u64,
    /// CPUs to pin the measuring thread to (empty: no pinning).
    pub pin: Vec<usize>,
    /// Runs of a model back to back in each interleaved round, of which only the last is timed (the
    /// others warm the caches with its weights, as when it runs alone). 1: every run is timed.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub burst: usize,
    /// The burst of a group's last model instead of `burst` when set. A job that times a drift
    /// reference network beside its models (appended last) gives it the same burst in every job, so
    /// the reference's timings compare across jobs whose models use different bursts (a table's pieces
    /// and the networks measured against it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_burst: Option<usize>,
    /// Times the group's last model apart from the others when set: alone, half of its runs (and
    /// half of `min_time_ms`) right before the others' interleaved rounds and half right after, each
    /// half after its own warm-up, with `last_burst`. A drift reference timed this way runs in the
    /// same company in every job (itself), so its timings do not depend on what the group measures
    /// (microsecond pieces in one job, whole networks in the next), while the two halves still
    /// bracket the group in time.
    #[serde(default, skip_serializing_if = "is_false")]
    pub last_alone: bool,
}

/// How a group's last model, a drift reference network, is timed (`Protocol::last_burst` and
/// `Protocol::last_alone`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceTiming {
    /// Its runs back to back per round, only the last timed.
    pub burst: usize,
    /// Timed alone before and after the group instead of interleaved with it.
    pub alone: bool,
}

impl ReferenceTiming {
    /// `protocol` with its last model timed this way.
    pub fn apply(self, protocol: &Protocol) -> Protocol {
        Protocol {
            last_burst: Some(self.burst),
            last_alone: self.alone,
            ..protocol.clone()
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

impl Default for Protocol {
    /// 10 warm-up runs, at least 50 runs and 500 ms, at most 5,000 runs, seed 0, no pinning.
    fn default() -> Self {
        Protocol {
            warmup: 10,
            min_runs: 50,
            min_time_ms: 500.0,
            max_runs: 5000,
            seed: 0,
            pin: Vec::new(),
            burst: 1,
            last_burst: None,
            last_alone: false,
        }
    }
}

impl Protocol {
    /// The protocol of a latency table's pieces (`hsconas profile`): like [`Protocol::default`] but at
    /// least 200 ms and at most 2,000 runs per piece, because a table times hundreds of pieces (818 for
    /// the paper's space) and a piece takes well under a millisecond at small inputs. The one definition
    /// of the profiling defaults; `hsconas profile`'s flags start from it.
    pub fn for_profiling() -> Protocol {
        Protocol {
            min_time_ms: 200.0,
            max_runs: 2000,
            ..Protocol::default()
        }
    }

    /// Refuses values that do not make sense together (no runs, a maximum under the minimum, a zero burst, a
    /// negative or infinite minimum time).
    pub fn validate(&self) -> Result<(), VocabularyError> {
        if self.min_runs == 0 || self.max_runs < self.min_runs {
            return Err(VocabularyError::Protocol(format!(
                "runs: need 1 <= min_runs ({}) <= max_runs ({})",
                self.min_runs, self.max_runs
            )));
        }
        if self.burst == 0 || self.last_burst == Some(0) {
            return Err(VocabularyError::Protocol("burst must be at least 1".into()));
        }
        if !(self.min_time_ms >= 0.0 && self.min_time_ms.is_finite()) {
            return Err(VocabularyError::Protocol(
                "the minimum time must be a finite, non-negative number".into(),
            ));
        }
        Ok(())
    }
}

/// Summary of the timed runs of one model, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Fastest run.
    pub min_ms: f64,
    /// 10th percentile.
    pub p10_ms: f64,
    /// Median.
    pub median_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// Mean.
    pub mean_ms: f64,
    /// Sample standard deviation.
    pub stdev_ms: f64,
    /// Number of timed runs.
    pub runs: usize,
}

impl Stats {
    /// Summarises samples (milliseconds). `None` for an empty slice.
    pub fn from_samples(samples: &[f64]) -> Option<Stats> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            sorted.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Some(Stats {
            min_ms: sorted[0],
            p10_ms: percentile(&sorted, 0.10),
            median_ms: percentile(&sorted, 0.50),
            p90_ms: percentile(&sorted, 0.90),
            mean_ms: mean,
            stdev_ms: var.sqrt(),
            runs: n,
        })
    }

    /// The chosen statistic.
    pub fn get(&self, statistic: Statistic) -> f64 {
        match statistic {
            Statistic::Min => self.min_ms,
            Statistic::P10 => self.p10_ms,
            Statistic::Median => self.median_ms,
            Statistic::Mean => self.mean_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_of_known_samples() {
        let s = Stats::from_samples(&[5.0, 1.0, 3.0, 2.0, 4.0]).expect("non-empty");
        assert_eq!((s.min_ms, s.median_ms, s.runs), (1.0, 3.0, 5));
        assert!((s.p10_ms - 1.4).abs() < 1e-12);
        assert!((s.p90_ms - 4.6).abs() < 1e-12);
        assert!((s.mean_ms - 3.0).abs() < 1e-12);
        assert!((s.stdev_ms - 2.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(s.get(Statistic::P10), s.p10_ms);
        assert!(Stats::from_samples(&[]).is_none());
    }

    #[test]
    fn bad_protocols_are_refused() {
        let p = Protocol {
            min_runs: 0,
            ..Protocol::default()
        };
        assert!(p.validate().is_err());
        let p = Protocol {
            min_runs: 10,
            max_runs: 5,
            ..Protocol::default()
        };
        assert!(p.validate().is_err());
        let p = Protocol {
            min_time_ms: f64::NAN,
            ..Protocol::default()
        };
        assert!(p.validate().is_err());
        let p = Protocol {
            burst: 0,
            ..Protocol::default()
        };
        assert!(p.validate().is_err());
        // burst 1 is not written, so tables measured before the field existed still compare equal.
        let json = serde_json::to_value(Protocol::default()).expect("serialises");
        assert!(json.get("burst").is_none());
        let back: Protocol = serde_json::from_value(json).expect("reads back");
        assert_eq!(back.burst, 1);
        assert_eq!((back.last_burst, back.last_alone), (None, false));
        let p = Protocol {
            last_burst: Some(0),
            ..Protocol::default()
        };
        assert!(p.validate().is_err());
    }
}
