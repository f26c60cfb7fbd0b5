//! A fleet: several devices of one profile that measure one table together, each its share of the pieces.
//!
//! Merging their measurements is only sound when the devices run the pieces at the same speed. Before
//! profiling, every device times a common set of calibration networks twice; [`FleetAgreement::judge`]
//! turns those timings into each device's speed relative to the fleet and the fleet's measurement noise,
//! and the fleet is refused when the devices' speeds spread further apart than the noise explains.
//!
//! The arithmetic, for devices `d` and calibration networks `n`, with `m1[d][n]` and `m2[d][n]` the two
//! timings (the table's statistic, ms):
//!
//! - a device's *noise* is the median over networks of `|m1 / m2 - 1|` (how far one timing of a network on
//!   that device is from the next); the fleet's noise is the largest device's;
//! - a device's *ratio* is the median over networks of `mean(m1, m2) / fleet median(mean(m1, m2))`: 1.10
//!   means 10% slower than the fleet's middle;
//! - the *spread* is `max ratio / min ratio - 1`, and the fleet is accepted when
//!   `spread <= max(factor x noise, floor)` (defaults 3 and 1%: a single timing's noise, tripled, with a
//!   floor so that a very steady fleet is not refused over differences no table would notice).

use hsconas_vocabulary::Fingerprint;
use serde::{Deserialize, Serialize};

use crate::drift::median;

/// One device of a fleet as a table records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetDevice {
    /// Where it was reached (the agent's address).
    pub agent: String,
    /// The runtime's fingerprint of the device.
    pub fingerprint: Fingerprint,
    /// Its speed relative to the fleet's middle on the calibration networks (1.10: 10% slower).
    pub ratio: f64,
    /// Its measurement noise on the calibration networks (median relative difference of two timings).
    pub noise: f64,
    /// Its two timings of each calibration network, ms (the table's statistic).
    pub calibration_ms: [Vec<f64>; 2],
    /// Groups of pieces it measured for the table.
    #[serde(default)]
    pub groups: usize,
}

/// Whether a fleet's devices agree, with the evidence; recorded in the table it measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetAgreement {
    /// The calibration networks (architecture strings), in the order of each device's timings.
    pub networks: Vec<String>,
    /// The devices, in the order given.
    pub devices: Vec<FleetDevice>,
    /// The fleet's noise: the largest device noise.
    pub noise: f64,
    /// `max ratio / min ratio - 1`.
    pub spread: f64,
    /// The largest spread accepted: `max(factor x noise, floor)`.
    pub tolerance: f64,
    /// The agreements of earlier sittings of the same table (oldest first), each with the groups its
    /// devices measured then: a table resumed by another fleet keeps the record of every device that
    /// measured it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<FleetAgreement>,
}

/// How much disagreement a fleet may show.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FleetRule {
    /// Multiple of the measured noise the spread may reach.
    pub factor: f64,
    /// The spread always accepted, however steady the devices are.
    pub floor: f64,
}

impl Default for FleetRule {
    fn default() -> FleetRule {
        FleetRule {
            factor: 3.0,
            floor: 0.01,
        }
    }
}

/// What a device contributes to the agreement check: where it is and its two rounds of timings.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationTimings {
    /// The agent's address.
    pub agent: String,
    /// The device's fingerprint.
    pub fingerprint: Fingerprint,
    /// Two timings of each calibration network, ms.
    pub rounds: [Vec<f64>; 2],
}

impl FleetAgreement {
    /// The agreement of devices that timed `networks` twice each; `None` when there are fewer than two
    /// devices, no networks, or a device's timings do not cover every network with positive values.
    pub fn judge(
        networks: Vec<String>,
        timings: Vec<CalibrationTimings>,
        rule: FleetRule,
    ) -> Option<FleetAgreement> {
        let n = networks.len();
        let valid = |t: &CalibrationTimings| {
            t.rounds
                .iter()
                .all(|r| r.len() == n && r.iter().all(|v| v.is_finite() && *v > 0.0))
        };
        if timings.len() < 2 || n == 0 || !timings.iter().all(valid) {
            return None;
        }
        let means: Vec<Vec<f64>> = timings
            .iter()
            .map(|t| {
                (0..n)
                    .map(|i| 0.5 * (t.rounds[0][i] + t.rounds[1][i]))
                    .collect()
            })
            .collect();
        let fleet_middle: Vec<f64> = (0..n)
            .map(|i| median(&means.iter().map(|m| m[i]).collect::<Vec<_>>()))
            .collect();
        let devices: Vec<FleetDevice> = timings
            .into_iter()
            .zip(&means)
            .map(|(t, m)| {
                let noise = median(
                    &(0..n)
                        .map(|i| (t.rounds[0][i] / t.rounds[1][i] - 1.0).abs())
                        .collect::<Vec<_>>(),
                );
                let ratio = median(&(0..n).map(|i| m[i] / fleet_middle[i]).collect::<Vec<_>>());
                FleetDevice {
                    agent: t.agent,
                    fingerprint: t.fingerprint,
                    ratio,
                    noise,
                    calibration_ms: t.rounds,
                    groups: 0,
                }
            })
            .collect();
        let noise = devices.iter().map(|d| d.noise).fold(0.0, f64::max);
        let max_ratio = devices.iter().map(|d| d.ratio).fold(f64::MIN, f64::max);
        let min_ratio = devices.iter().map(|d| d.ratio).fold(f64::MAX, f64::min);
        Some(FleetAgreement {
            networks,
            devices,
            noise,
            spread: max_ratio / min_ratio - 1.0,
            tolerance: (rule.factor * noise).max(rule.floor),
            earlier: Vec::new(),
        })
    }

    /// This sitting's agreement, continuing a table whose record was `previous`: `previous` and the
    /// sittings before it become [`FleetAgreement::earlier`], oldest first.
    pub fn continuing(mut self, mut previous: FleetAgreement) -> FleetAgreement {
        self.earlier = std::mem::take(&mut previous.earlier);
        self.earlier.push(previous);
        self
    }

    /// Groups of pieces measured by every sitting together.
    pub fn total_groups(&self) -> usize {
        let own: usize = self.devices.iter().map(|d| d.groups).sum();
        own + self
            .earlier
            .iter()
            .map(FleetAgreement::total_groups)
            .sum::<usize>()
    }

    /// Whether the devices agree within the tolerance.
    pub fn agrees(&self) -> bool {
        self.spread <= self.tolerance
    }

    /// One line per device (`agent: ratio, noise`), for messages.
    pub fn describe(&self) -> String {
        self.devices
            .iter()
            .map(|d| {
                format!(
                    "{}: {:+.1}% from the fleet's middle (noise {:.1}%)",
                    d.agent,
                    100.0 * (d.ratio - 1.0),
                    100.0 * d.noise
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(name: &str, rounds: [Vec<f64>; 2]) -> CalibrationTimings {
        CalibrationTimings {
            agent: name.into(),
            fingerprint: Fingerprint::default(),
            rounds,
        }
    }

    fn nets(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("net{i}")).collect()
    }

    #[test]
    fn equal_devices_agree_and_their_ratios_are_one() {
        let a = device("a", [vec![1.0, 2.0, 4.0], vec![1.02, 1.96, 4.0]]);
        let b = device("b", [vec![1.01, 1.98, 4.04], vec![0.99, 2.02, 3.96]]);
        let f = FleetAgreement::judge(nets(3), vec![a, b], FleetRule::default()).expect("judged");
        // Noise of a: median(|1/1.02-1|, |2/1.96-1|, 0) = 1 - 1/1.02; of b: median(0.0202, 0.0198, 0.0202).
        assert!((f.devices[0].noise - (1.0 - 1.0 / 1.02)).abs() < 1e-12);
        assert!((f.noise - (1.01 / 0.99 - 1.0)).abs() < 1e-12);
        assert!(f.spread < 0.01, "{f:?}");
        assert!((f.tolerance - 3.0 * f.noise).abs() < 1e-12);
        assert!(f.agrees());
    }

    #[test]
    fn a_device_slower_beyond_the_noise_is_refused_and_named() {
        let steady = [vec![1.0, 2.0, 4.0], vec![1.0, 2.0, 4.0]];
        let slow = [vec![1.2, 2.4, 4.8], vec![1.2, 2.4, 4.8]];
        let f = FleetAgreement::judge(
            nets(3),
            vec![
                device("a", steady.clone()),
                device("b", steady),
                device("c", slow),
            ],
            FleetRule::default(),
        )
        .expect("judged");
        // Middle = the steady devices; c is 20% slower; noise 0, so the 1% floor applies.
        assert!((f.devices[2].ratio - 1.2).abs() < 1e-12);
        assert!((f.spread - 0.2).abs() < 1e-12);
        assert_eq!(f.tolerance, 0.01);
        assert!(!f.agrees());
        assert!(f.describe().contains("c: +20.0% from the fleet's middle"));
    }

    #[test]
    fn noisy_devices_may_differ_by_more() {
        // About 9% noise on each device (1 against 1.1): a 20% difference is within 3 x 9%.
        let a = device("a", [vec![1.0, 1.0], vec![1.1, 1.1]]);
        let b = device("b", [vec![1.2, 1.2], vec![1.32, 1.32]]);
        let f = FleetAgreement::judge(nets(2), vec![a, b], FleetRule::default()).expect("judged");
        assert!((f.spread - 0.2).abs() < 1e-9);
        assert!(f.agrees(), "{f:?}");
        let strict = FleetRule {
            factor: 1.0,
            floor: 0.0,
        };
        let a = device("a", [vec![1.0, 1.0], vec![1.1, 1.1]]);
        let b = device("b", [vec![1.2, 1.2], vec![1.32, 1.32]]);
        assert!(!FleetAgreement::judge(nets(2), vec![a, b], strict)
            .expect("judged")
            .agrees());
    }

    #[test]
    fn a_resumed_table_keeps_every_sitting() {
        let judge = |names: [&str; 2]| {
            let timings = names
                .map(|n| device(n, [vec![1.0, 2.0], vec![1.0, 2.0]]))
                .to_vec();
            FleetAgreement::judge(nets(2), timings, FleetRule::default()).expect("judged")
        };
        let mut first = judge(["a", "b"]);
        (first.devices[0].groups, first.devices[1].groups) = (3, 4);
        let mut second = judge(["b", "c"]).continuing(first.clone());
        second.devices[1].groups = 5;
        let third = judge(["c", "d"]).continuing(second.clone());
        assert_eq!(third.earlier.len(), 2);
        assert_eq!(third.earlier[0], first, "oldest first");
        assert_eq!(third.earlier[1].devices[1].agent, "c");
        assert!(
            third.earlier[1].earlier.is_empty(),
            "no sitting is recorded twice"
        );
        assert_eq!(third.total_groups(), 12);
        let json = serde_json::to_value(&third).expect("serialises");
        let back: FleetAgreement = serde_json::from_value(json).expect("reads back");
        assert_eq!(back, third);
        // A record from before this field reads as one sitting.
        let mut old = serde_json::to_value(&first).expect("serialises");
        assert!(old.get("earlier").is_none());
        old.as_object_mut().expect("object").remove("earlier");
        let read: FleetAgreement = serde_json::from_value(old).expect("reads");
        assert!(read.earlier.is_empty());
    }

    #[test]
    fn incomplete_timings_are_not_judged() {
        let a = device("a", [vec![1.0, 2.0], vec![1.0, 2.0]]);
        let short = device("b", [vec![1.0], vec![1.0, 2.0]]);
        let zero = device("b", [vec![1.0, 0.0], vec![1.0, 2.0]]);
        assert!(
            FleetAgreement::judge(nets(2), vec![a.clone(), short], FleetRule::default()).is_none()
        );
        assert!(
            FleetAgreement::judge(nets(2), vec![a.clone(), zero], FleetRule::default()).is_none()
        );
        assert!(FleetAgreement::judge(nets(2), vec![a], FleetRule::default()).is_none());
    }
}
