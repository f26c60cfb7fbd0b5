//! The search objective (paper Eq. 4): `F(arch, T) = ACC(arch) + beta * |LAT(arch)/T - 1|` with
//! `beta < 0`, or a hard constraint `LAT <= T` under which accuracy is maximised.

use serde::{Deserialize, Serialize};

/// How latency enters the objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ObjectiveMode {
    /// The paper's soft penalty: `ACC + beta * |LAT/T - 1|`, best at `LAT = T`.
    #[default]
    Penalty,
    /// `LAT <= T` is required; among feasible networks the most accurate wins. An infeasible network
    /// scores `ACC - 1 - (LAT/T - 1)`: below every feasible one, and better the closer it is to `T`.
    Constraint,
}

/// The objective with its target.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// Latency target `T`, ms.
    pub target_ms: f64,
    /// Penalty weight (negative).
    pub beta: f64,
    /// Penalty or constraint.
    pub mode: ObjectiveMode,
}

/// Settings that make the objective meaningless.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ObjectiveError {
    /// `T` must be a positive number of milliseconds.
    #[error("the latency target must be a positive number of milliseconds, got {0}")]
    Target(f64),
    /// `beta` must be negative, or the search would reward missing the target.
    #[error("beta must be negative (it penalises distance from the target), got {0}")]
    Beta(f64),
}

impl Objective {
    /// The paper's default penalty weight (accuracy as a fraction in `0..=1`).
    pub const DEFAULT_BETA: f64 = -0.5;

    /// An objective; refuses `T <= 0`, non-finite values and `beta >= 0`.
    pub fn new(
        target_ms: f64,
        beta: f64,
        mode: ObjectiveMode,
    ) -> Result<Objective, ObjectiveError> {
        if !(target_ms.is_finite() && target_ms > 0.0) {
            return Err(ObjectiveError::Target(target_ms));
        }
        if !(beta.is_finite() && beta < 0.0) {
            return Err(ObjectiveError::Beta(beta));
        }
        Ok(Objective {
            target_ms,
            beta,
            mode,
        })
    }

    /// `F` of a network with `accuracy` (a fraction, `0..=1`) and latency `latency_ms`. Higher is better.
    pub fn score(&self, accuracy: f64, latency_ms: f64) -> f64 {
        let ratio = latency_ms / self.target_ms;
        match self.mode {
            ObjectiveMode::Penalty => accuracy + self.beta * (ratio - 1.0).abs(),
            ObjectiveMode::Constraint if ratio <= 1.0 => accuracy,
            ObjectiveMode::Constraint => accuracy - 1.0 - (ratio - 1.0),
        }
    }

    /// Whether `latency_ms` meets the target (`<= T`).
    pub fn feasible(&self, latency_ms: f64) -> bool {
        latency_ms <= self.target_ms
    }

    /// Whether a network measured at `latency_ms` is acceptable: within `tolerance` of the target under
    /// the penalty (`|LAT/T - 1| <= tolerance`: the target is a point), at or under it under the
    /// constraint (`LAT <= T`: a budget; the tolerance does not apply, and faster is always acceptable).
    pub fn meets(&self, latency_ms: f64, tolerance: f64) -> bool {
        match self.mode {
            ObjectiveMode::Penalty => (latency_ms / self.target_ms - 1.0).abs() <= tolerance,
            ObjectiveMode::Constraint => self.feasible(latency_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn penalty_is_largest_on_target_and_symmetric() {
        let f = Objective::new(10.0, -0.5, ObjectiveMode::Penalty).expect("valid");
        assert_eq!(f.score(0.8, 10.0), 0.8);
        assert!((f.score(0.8, 12.0) - (0.8 - 0.5 * 0.2)).abs() < 1e-12);
        assert!((f.score(0.8, 8.0) - f.score(0.8, 12.0)).abs() < 1e-12);
        assert!(f.score(0.8, 11.0) > f.score(0.8, 12.0));
        // More accuracy at the same latency is always better.
        assert!(f.score(0.9, 13.0) > f.score(0.8, 13.0));
        // A stronger penalty trades accuracy for closeness to T.
        let strong = Objective::new(10.0, -5.0, ObjectiveMode::Penalty).expect("valid");
        assert!(strong.score(0.7, 10.0) > strong.score(0.9, 11.0));
        assert!(f.score(0.7, 10.0) < f.score(0.9, 11.0));
    }

    #[test]
    fn constraint_ranks_every_feasible_network_above_every_infeasible_one() {
        let f = Objective::new(10.0, -0.5, ObjectiveMode::Constraint).expect("valid");
        assert_eq!(f.score(0.3, 10.0), 0.3);
        assert_eq!(f.score(0.3, 2.0), 0.3);
        assert!(f.score(0.01, 9.9) > f.score(0.99, 10.1));
        assert!(f.score(0.5, 10.5) > f.score(0.5, 12.0));
        assert!(f.feasible(10.0) && !f.feasible(10.01));
    }

    #[test]
    fn bad_settings_are_refused() {
        assert_eq!(
            Objective::new(10.0, 0.5, ObjectiveMode::Penalty),
            Err(ObjectiveError::Beta(0.5))
        );
        assert!(Objective::new(10.0, 0.0, ObjectiveMode::Penalty).is_err());
        assert!(Objective::new(0.0, -0.5, ObjectiveMode::Penalty).is_err());
        assert!(Objective::new(-3.0, -0.5, ObjectiveMode::Penalty).is_err());
        assert!(Objective::new(f64::NAN, -0.5, ObjectiveMode::Penalty).is_err());
        assert!(Objective::new(10.0, f64::NEG_INFINITY, ObjectiveMode::Penalty).is_err());
    }
}
