//! Device drift: a fixed reference network timed in every measured group, and measurements normalised to
//! the device state a table was built in.
//!
//! Devices change speed while they measure (a shared VM's neighbours, a Jetson's temperature and power
//! mode, a laptop's frequency). Every group of models a job measures (pieces, calibration and validation
//! networks, a search's re-measurements) also times the table's reference network in the same interleaved
//! rounds, so each group carries the device's speed at that moment. The model:
//!
//! - the **reference state** `r_table` is the reference network's latency recorded with the table (the
//!   median of its timings over the profiling run);
//! - a group `g` ran at the **speed factor** `f_g = r~_g / r_table`, where `r~_g` is the reference's
//!   latency in that group **smoothed** over neighbouring groups ([`DriftModel`]): one group's reference
//!   timing is itself noisy, while real drift moves slowly;
//! - a measurement `m` made in group `g` is **normalised** to `m / f_g`, the latency the device would have
//!   shown in the table's state. Raw values are kept beside normalised ones in every file.
//!
//! A [`DriftTrace`] is the reference's latency over a job's time; [`DriftTrace::summary`] says how far the
//! device moved during the job and how far it was from the table's state, which the commands turn into
//! warnings (or refusals) beyond a threshold.

use serde::{Deserialize, Serialize};

/// The reference network of a table: which network, and its latency in the table's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceNetwork {
    /// The architecture string (a network of the table's own space, layout and input size).
    pub arch: String,
    /// Its latency (the table's statistic) in the table's state: the median over the profiling run's
    /// groups, ms.
    pub latency_ms: f64,
    /// How the table's entries are normalised with the trace.
    #[serde(default = "default_model")]
    pub model: DriftModel,
    /// Runs of the reference back to back in every round of a group, of which the last is timed,
    /// whatever burst the group's other models use: the same in every job measured against this table,
    /// so that its timings differ only by the device's speed (a reference timed cold among pieces in
    /// one job and warm among networks in the next would read as drift). New tables use
    /// [`REFERENCE_BURST`]; tables profiled before the field existed timed it with the pieces' burst, 1.
    #[serde(default = "one")]
    pub burst: usize,
    /// Whether every job times the reference alone, half of its runs right before each group's
    /// interleaved rounds and half right after (`hsconas profile --reference-alone`), rather than
    /// interleaved with the group's models (the default, and tables profiled before the field existed).
    /// Alone, its company is the same in every job whatever the group holds.
    #[serde(default)]
    pub alone: bool,
    /// The reference over the profiling run, one point per group of pieces.
    pub trace: DriftTrace,
}

/// The reference network's burst in new tables (see [`ReferenceNetwork::burst`]): warm, as the
/// networks measured against a table are by default (`--burst 3`).
pub const REFERENCE_BURST: usize = 3;

fn default_model() -> DriftModel {
    DriftModel::DEFAULT
}

fn one() -> usize {
    1
}

impl ReferenceNetwork {
    /// The reference state of a finished profiling run: the median of the trace; `None` when empty.
    pub fn from_trace(
        arch: String,
        model: DriftModel,
        (burst, alone): (usize, bool),
        trace: DriftTrace,
    ) -> Option<ReferenceNetwork> {
        let latency_ms = median(&trace.values());
        latency_ms.is_finite().then_some(ReferenceNetwork {
            arch,
            latency_ms,
            model,
            burst,
            alone,
            trace,
        })
    }

    /// The speed factor of every point of a job's `trace` against this reference state, under the
    /// table's model.
    pub fn factors_of(&self, trace: &DriftTrace) -> Vec<f64> {
        self.model.factors(trace, self.latency_ms)
    }

    /// The speed factor of profiling group `group` under the table's model (1 for a group the trace
    /// does not hold).
    pub fn factor_at(&self, group: usize) -> f64 {
        self.factors_of(&self.trace)
            .get(group)
            .copied()
            .unwrap_or(1.0)
    }
}

/// The reference network's latency in one measured group.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DriftPoint {
    /// Seconds since the trace started (the group's end).
    pub seconds: f64,
    /// The reference's latency in that group (the table's statistic), ms.
    pub reference_ms: f64,
}

/// The reference network's latency over one job's time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DriftTrace {
    /// When the trace started (RFC 3339, UTC).
    pub started: String,
    /// One point per measured group, in measurement order.
    pub points: Vec<DriftPoint>,
}

/// How the per-group speed factors are estimated from the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "model")]
pub enum DriftModel {
    /// No normalisation (factor 1).
    Raw,
    /// Ratio to the reference smoothed by a centred running median of `window` groups (1: the group's
    /// own reference timing).
    Ratio {
        /// Groups in the median window (odd values are centred; clipped at the ends of the trace).
        window: usize,
    },
    /// Ratio to a least-squares line of the reference over time (a drift term linear in time).
    Linear,
}

impl DriftModel {
    /// The default for new tables: each group by its own reference timing (`ratio-1`), which normalised
    /// best at input 224 on the 2-core VM in every run with the reference interleaved
    /// (docs/latency-local-cpu.md); tables store their model, so older ones keep theirs.
    pub const DEFAULT: DriftModel = DriftModel::Ratio { window: 1 };

    /// Short name for reports: `raw`, `ratio-1`, `ratio-5`, `linear`.
    pub fn name(&self) -> String {
        match self {
            DriftModel::Raw => "raw".into(),
            DriftModel::Ratio { window } => format!("ratio-{window}"),
            DriftModel::Linear => "linear".into(),
        }
    }

    /// The speed factor of every point of `trace` against the reference state `reference_ms`
    /// (> 1: the device was slower than when the table was built). Empty for an empty trace.
    pub fn factors(&self, trace: &DriftTrace, reference_ms: f64) -> Vec<f64> {
        let values: Vec<f64> = trace.points.iter().map(|p| p.reference_ms).collect();
        let smoothed = match self {
            DriftModel::Raw => return vec![1.0; values.len()],
            DriftModel::Ratio { window } => running_median(&values, (*window).max(1)),
            DriftModel::Linear => {
                let times: Vec<f64> = trace.points.iter().map(|p| p.seconds).collect();
                match crate::metrics::fit_line(&times, &values) {
                    Some((slope, intercept)) => {
                        times.iter().map(|t| slope * t + intercept).collect()
                    }
                    // Fewer than 3 points or no spread in time: the mean level.
                    None => vec![mean(&values); values.len()],
                }
            }
        };
        smoothed
            .iter()
            .map(|&r| speed_factor(r, reference_ms))
            .collect()
    }
}

impl std::str::FromStr for DriftModel {
    type Err = String;

    /// `raw`, `linear`, `ratio` (window 5) or `ratio-N`.
    fn from_str(text: &str) -> Result<DriftModel, String> {
        let bad = || {
            format!("'{text}' is not a drift model: use raw, linear, ratio or ratio-N (N groups, N >= 1)")
        };
        match text {
            "raw" => Ok(DriftModel::Raw),
            "linear" => Ok(DriftModel::Linear),
            "ratio" => Ok(DriftModel::DEFAULT),
            _ => {
                let window: usize = text
                    .strip_prefix("ratio-")
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n >= 1)
                    .ok_or_else(bad)?;
                Ok(DriftModel::Ratio { window })
            }
        }
    }
}

/// `smoothed_ms / reference_ms`, or 1 when either is not a positive finite number (nothing to normalise by).
pub fn speed_factor(smoothed_ms: f64, reference_ms: f64) -> f64 {
    if smoothed_ms.is_finite()
        && reference_ms.is_finite()
        && smoothed_ms > 0.0
        && reference_ms > 0.0
    {
        smoothed_ms / reference_ms
    } else {
        1.0
    }
}

/// A raw measurement in the table's state: `raw_ms / factor`.
pub fn normalise(raw_ms: f64, factor: f64) -> f64 {
    raw_ms / factor
}

/// A sample's latency in the table's state: its raw value over the factor of its group when it has both
/// (`factors` from [`ReferenceNetwork::factors_of`] over its job's trace), else `measured_ms` as it is.
pub fn normalised_ms(
    measured_ms: f64,
    raw_ms: Option<f64>,
    group: Option<usize>,
    factors: &[f64],
) -> f64 {
    match (raw_ms, group.and_then(|g| factors.get(g))) {
        (Some(raw), Some(&factor)) => normalise(raw, factor),
        _ => measured_ms,
    }
}

/// The median of each centred window of `window` values (clipped at the ends).
pub fn running_median(values: &[f64], window: usize) -> Vec<f64> {
    let before = (window.max(1) - 1) / 2;
    let after = window.max(1) - 1 - before;
    (0..values.len())
        .map(|i| {
            let lo = i.saturating_sub(before);
            let hi = (i + after + 1).min(values.len());
            median(&values[lo..hi])
        })
        .collect()
}

/// The median (the workspace's one percentile definition: the mean of the middle two for an even count);
/// NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    hsconas_foundation::stats::percentile(&sorted, 0.5)
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// How far the device moved during a job and how far it was from the table's state.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DriftSummary {
    /// Groups in the trace.
    pub groups: usize,
    /// Smallest and largest speed factor (smoothed with the model used), e.g. 0.97 and 1.04.
    pub min_factor: f64,
    /// See `min_factor`.
    pub max_factor: f64,
    /// `max_factor / min_factor - 1`: how much the device's speed changed during the job.
    pub spread: f64,
    /// The median speed factor: how far the device was from the table's state over the job
    /// (1.05: 5% slower than when the table was built).
    pub median_factor: f64,
}

impl DriftSummary {
    /// The largest relative distance from the table's state over the job (`max |factor - 1|`).
    pub fn max_offset(&self) -> f64 {
        (self.max_factor - 1.0)
            .abs()
            .max((1.0 - self.min_factor).abs())
    }

    /// What is wrong beyond `threshold` (a fraction, e.g. 0.05), in words; `None` when nothing is.
    pub fn beyond(&self, threshold: f64) -> Option<String> {
        let mut why = Vec::new();
        if self.spread > threshold {
            why.push(format!(
                "the device's speed changed by {:.1}% during the measurement (reference factor {:.3} to {:.3})",
                100.0 * self.spread,
                self.min_factor,
                self.max_factor
            ));
        }
        if (self.median_factor - 1.0).abs() > threshold {
            why.push(format!(
                "the device ran {:.1}% {} than when the table was built (median reference factor {:.3})",
                100.0 * (self.median_factor - 1.0).abs(),
                if self.median_factor > 1.0 { "slower" } else { "faster" },
                self.median_factor
            ));
        }
        (!why.is_empty()).then(|| why.join("; "))
    }
}

impl DriftTrace {
    /// An empty trace that starts now (`started`: RFC 3339).
    pub fn new(started: impl Into<String>) -> DriftTrace {
        DriftTrace {
            started: started.into(),
            points: Vec::new(),
        }
    }

    /// The reference values, in order.
    pub fn values(&self) -> Vec<f64> {
        self.points.iter().map(|p| p.reference_ms).collect()
    }

    /// The summary of the trace under `model` against `reference_ms`; `None` for an empty trace.
    pub fn summary(&self, model: DriftModel, reference_ms: f64) -> Option<DriftSummary> {
        let factors = model.factors(self, reference_ms);
        if factors.is_empty() {
            return None;
        }
        let min_factor = factors.iter().copied().fold(f64::INFINITY, f64::min);
        let max_factor = factors.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(DriftSummary {
            groups: factors.len(),
            min_factor,
            max_factor,
            spread: max_factor / min_factor - 1.0,
            median_factor: median(&factors),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(values: &[f64]) -> DriftTrace {
        DriftTrace {
            started: "2026-12-01T00:00:00Z".into(),
            points: values
                .iter()
                .enumerate()
                .map(|(i, &r)| DriftPoint {
                    seconds: 10.0 * i as f64,
                    reference_ms: r,
                })
                .collect(),
        }
    }

    #[test]
    fn running_median_is_centred_and_clipped() {
        let v = [1.0, 5.0, 2.0, 8.0, 3.0];
        assert_eq!(running_median(&v, 1), v.to_vec());
        assert_eq!(running_median(&v, 3), vec![3.0, 2.0, 5.0, 3.0, 5.5]);
        assert_eq!(running_median(&v, 5), vec![2.0, 3.5, 3.0, 4.0, 3.0]);
        assert!(running_median(&[], 3).is_empty());
    }

    #[test]
    fn a_steady_device_is_left_alone() {
        let t = trace(&[2.0; 7]);
        for model in [
            DriftModel::Raw,
            DriftModel::DEFAULT,
            DriftModel::Ratio { window: 1 },
            DriftModel::Linear,
        ] {
            assert!(
                model
                    .factors(&t, 2.0)
                    .iter()
                    .all(|&f| (f - 1.0).abs() < 1e-12),
                "{model:?}"
            );
        }
        let s = t.summary(DriftModel::DEFAULT, 2.0).expect("a summary");
        assert_eq!(s.groups, 7);
        assert!(s.spread.abs() < 1e-12 && s.beyond(0.01).is_none());
    }

    /// A device that slows down by 6% in a ramp: normalising a network measured alongside the reference
    /// recovers its latency in the table's state, where the raw values drift with the device.
    #[test]
    fn normalisation_removes_a_slow_ramp() {
        let true_network_ms = 0.8;
        let speeds: Vec<f64> = (0..11).map(|i| 1.0 + 0.006 * i as f64).collect();
        let reference: Vec<f64> = speeds.iter().map(|s| 1.5 * s).collect();
        let t = trace(&reference);
        let raw: Vec<f64> = speeds.iter().map(|s| true_network_ms * s).collect();
        for model in [DriftModel::Ratio { window: 1 }, DriftModel::Linear] {
            let factors = model.factors(&t, 1.5);
            for (r, f) in raw.iter().zip(&factors) {
                assert!(
                    (normalise(*r, *f) - true_network_ms).abs() < 1e-9,
                    "{model:?}: {r} / {f}"
                );
            }
        }
        // The centred median is exact inside a linear ramp and off by at most one step at the ends.
        let factors = DriftModel::Ratio { window: 3 }.factors(&t, 1.5);
        for (i, (r, f)) in raw.iter().zip(&factors).enumerate() {
            let error = (normalise(*r, *f) / true_network_ms - 1.0).abs();
            let bound = if i == 0 || i == raw.len() - 1 {
                0.007
            } else {
                1e-9
            };
            assert!(error <= bound, "group {i}: error {error}");
        }
        let s = t
            .summary(DriftModel::Ratio { window: 1 }, 1.5)
            .expect("summary");
        assert!((s.spread - 0.06).abs() < 1e-9, "{s:?}");
        let warning = s.beyond(0.05).expect("6% is beyond 5%");
        assert!(warning.contains("changed by 6.0%"), "{warning}");
        assert!(s.beyond(0.07).is_none());
    }

    /// One disturbed group (a burst on a shared machine) moves the running median little, the group's
    /// own reference timing fully.
    #[test]
    fn the_running_median_ignores_a_single_burst() {
        let mut values = vec![1.0; 9];
        values[4] = 1.4;
        let t = trace(&values);
        let own = DriftModel::Ratio { window: 1 }.factors(&t, 1.0);
        let smoothed = DriftModel::Ratio { window: 5 }.factors(&t, 1.0);
        assert!((own[4] - 1.4).abs() < 1e-12);
        assert!(
            smoothed.iter().all(|f| (f - 1.0).abs() < 1e-12),
            "{smoothed:?}"
        );
    }

    #[test]
    fn a_device_off_the_table_state_is_named() {
        let t = trace(&[1.1, 1.1, 1.1]);
        let s = t.summary(DriftModel::DEFAULT, 1.0).expect("summary");
        assert!((s.median_factor - 1.1).abs() < 1e-12);
        assert!((s.max_offset() - 0.1).abs() < 1e-12);
        let warning = s.beyond(0.05).expect("10% slower");
        assert!(warning.contains("10.0% slower"), "{warning}");
        assert!(!warning.contains("changed"), "{warning}");
    }

    #[test]
    fn degenerate_references_do_not_normalise() {
        assert_eq!(speed_factor(0.0, 1.0), 1.0);
        assert_eq!(speed_factor(1.0, f64::NAN), 1.0);
        assert_eq!(speed_factor(-1.0, 1.0), 1.0);
        // Only a sample with a raw value and a group the factors cover is normalised.
        assert_eq!(normalised_ms(1.0, Some(2.2), Some(1), &[1.0, 1.1]), 2.0);
        assert_eq!(normalised_ms(1.0, Some(2.2), Some(5), &[1.0, 1.1]), 1.0);
        assert_eq!(normalised_ms(1.0, None, Some(1), &[1.0, 1.1]), 1.0);
        assert!(DriftModel::DEFAULT
            .factors(&DriftTrace::default(), 1.0)
            .is_empty());
        assert!(DriftTrace::default()
            .summary(DriftModel::DEFAULT, 1.0)
            .is_none());
        // Two points cannot fit a line with a spread check: the mean level is used.
        let f = DriftModel::Linear.factors(&trace(&[1.0, 1.2]), 1.0);
        assert!(f.iter().all(|f| (f - 1.1).abs() < 1e-12), "{f:?}");
    }

    #[test]
    fn a_table_reference_is_the_median_of_its_run() {
        let r = ReferenceNetwork::from_trace(
            "a".into(),
            DriftModel::Ratio { window: 1 },
            (REFERENCE_BURST, true),
            trace(&[1.0, 1.2, 1.1]),
        )
        .expect("a reference");
        assert!((r.latency_ms - 1.1).abs() < 1e-12);
        assert!((r.factor_at(1) - 1.2 / 1.1).abs() < 1e-12);
        assert_eq!(r.factor_at(7), 1.0);
        assert!(ReferenceNetwork::from_trace(
            "a".into(),
            DriftModel::DEFAULT,
            (1, false),
            DriftTrace::default()
        )
        .is_none());
    }

    #[test]
    fn models_serialise_with_their_parameters() {
        let json = serde_json::to_string(&DriftModel::Ratio { window: 5 }).expect("json");
        assert_eq!(json, r#"{"model":"ratio","window":5}"#);
        let back: DriftModel = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, DriftModel::Ratio { window: 5 });
        assert_eq!(DriftModel::DEFAULT.name(), "ratio-1");
        assert_eq!(DriftModel::Linear.name(), "linear");
        for model in [
            DriftModel::Raw,
            DriftModel::Linear,
            DriftModel::Ratio { window: 3 },
        ] {
            assert_eq!(model.name().parse::<DriftModel>(), Ok(model));
        }
        assert_eq!("ratio".parse::<DriftModel>(), Ok(DriftModel::DEFAULT));
        for bad in ["ratio-0", "ratio-x", "smooth", ""] {
            let err = bad.parse::<DriftModel>().expect_err(bad);
            assert!(err.contains("is not a drift model"), "{err}");
        }
    }
}
