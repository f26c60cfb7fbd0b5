//! Choosing the search's winner once candidates have been measured on the device: a measurement beats a
//! prediction, and a candidate measured within the tolerance of the target beats one that is not.

use serde::{Deserialize, Serialize};

use super::evaluator::Candidate;
use super::objective::{Objective, ObjectiveMode};
use crate::{Remeasured, Reranked};

/// Why the winner was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WinnerReason {
    /// The best `F` (from measured latency) among the candidates measured within the tolerance of `T`
    /// (under the constraint: at or under `T`, the fastest of those within the tie margin of the most
    /// accurate).
    WithinTolerance,
    /// No measured candidate is within the tolerance: the measured one closest to `T`.
    ClosestMeasured,
    /// Nothing was measured on the device: the best `F` from predicted latency.
    NotMeasured,
}

/// The chosen candidate and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WinnerChoice {
    /// The winner (its `score` uses its measured latency when it has one).
    pub candidate: Candidate,
    /// Why it won.
    pub reason: WinnerReason,
    /// The accepted `|measured / T - 1|` (penalty mode; the constraint accepts `measured <= T`).
    pub tolerance: f64,
    /// Constraint mode: accuracy (a fraction) within which a faster candidate beats a more accurate one.
    pub tie_margin: f64,
    /// Constraint mode: how many acceptable candidates lie within the tie margin of the most accurate
    /// (the winner is the fastest of them; 1 when the most accurate wins alone).
    pub ties: usize,
    /// How many candidates had been measured on the device.
    pub measured_candidates: usize,
    /// How many of those measured within the tolerance of `T` (the pool the winner was chosen from when
    /// the reason is [`WinnerReason::WithinTolerance`]).
    pub within_tolerance: usize,
}

impl WinnerChoice {
    /// The winner's distance from the target, `measured / T - 1` (predicted when it was not measured).
    pub fn relative_to_target(&self, objective: &Objective) -> f64 {
        self.candidate.objective_latency_ms() / objective.target_ms - 1.0
    }

    /// One sentence for the report and the log: how many candidates were measured, how many of them met
    /// the tolerance, and which the winner is.
    pub fn explanation(&self, objective: &Objective) -> String {
        let pct = self.tolerance * 100.0;
        let off = self.relative_to_target(objective) * 100.0;
        let band = match objective.mode {
            ObjectiveMode::Penalty => format!("within ±{pct:.1}% of T"),
            ObjectiveMode::Constraint => "at or under T".to_string(),
        };
        match self.reason {
            WinnerReason::WithinTolerance if objective.mode == ObjectiveMode::Constraint => format!(
                "the fastest of the {} candidates predicted within {:.2} points of the most accurate, among \
                 the {} of {} measured on the device that lie {band} (it measured {off:+.1}% from T)",
                self.ties,
                self.tie_margin * 100.0,
                self.within_tolerance,
                self.measured_candidates
            ),
            WinnerReason::WithinTolerance => format!(
                "the best F among the {} of {} candidates measured on the device that lie {band} \
                 (it measured {off:+.1}% from T)",
                self.within_tolerance, self.measured_candidates
            ),
            WinnerReason::ClosestMeasured => format!(
                "none of the {} candidates measured on the device lies {band}: the one closest to T \
                 ({off:+.1}%)",
                self.measured_candidates
            ),
            WinnerReason::NotMeasured => format!(
                "nothing was measured on the device: the best F by predicted latency ({off:+.1}% from T, \
                 predicted)"
            ),
        }
    }
}

/// The winner among `candidates` (whose scores already use measured latencies where known):
/// the highest `F` among those measured within `tolerance` of the target ([`Objective::meets`]; under
/// the constraint: the fastest of those whose accuracy is within `tie_margin` of the most accurate one's,
/// so a slower network wins only when it is predicted better by more than the margin); else, when some
/// were measured, the measured one closest to the target (higher `F` on ties); else the highest `F` by
/// prediction. Ties keep the earlier candidate. `None` only for an empty list.
pub fn choose_winner(
    candidates: &[Candidate],
    objective: &Objective,
    tolerance: f64,
    tie_margin: f64,
) -> Option<WinnerChoice> {
    let measured: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.measured_ms.is_some())
        .collect();
    let best_score = |pool: &mut dyn Iterator<Item = &Candidate>| -> Option<Candidate> {
        pool.fold(None, |best: Option<&Candidate>, c| match best {
            Some(b) if b.score >= c.score => Some(b),
            _ => Some(c),
        })
        .cloned()
    };
    let distance = |c: &Candidate| (c.objective_latency_ms() / objective.target_ms - 1.0).abs();
    let within: Vec<&Candidate> = measured
        .iter()
        .copied()
        .filter(|c| objective.meets(c.objective_latency_ms(), tolerance))
        .collect();
    let mut ties = 1;
    let (candidate, reason) = if let Some(best) = best_score(&mut within.iter().copied()) {
        let c = match objective.mode {
            ObjectiveMode::Penalty => best,
            ObjectiveMode::Constraint => {
                let close: Vec<&Candidate> = within
                    .iter()
                    .copied()
                    .filter(|c| c.accuracy >= best.accuracy - tie_margin)
                    .collect();
                ties = close.len();
                close
                    .into_iter()
                    .fold(None, |fastest: Option<&Candidate>, c| match fastest {
                        Some(f)
                            if f.objective_latency_ms() < c.objective_latency_ms()
                                || (f.objective_latency_ms() == c.objective_latency_ms()
                                    && f.score >= c.score) =>
                        {
                            Some(f)
                        }
                        _ => Some(c),
                    })
                    .cloned()?
            }
        };
        (c, WinnerReason::WithinTolerance)
    } else if !measured.is_empty() {
        let closest = measured.iter().copied().fold(None, |best, c| match best {
            Some(b)
                if distance(b) < distance(c)
                    || (distance(b) == distance(c) && b.score >= c.score) =>
            {
                Some(b)
            }
            _ => Some(c),
        })?;
        (closest.clone(), WinnerReason::ClosestMeasured)
    } else {
        (
            best_score(&mut candidates.iter())?,
            WinnerReason::NotMeasured,
        )
    };
    Some(WinnerChoice {
        candidate,
        reason,
        tolerance,
        tie_margin,
        ties,
        measured_candidates: measured.len(),
        within_tolerance: within.len(),
    })
}

/// The candidates re-measurement and the winner choice draw from (the driver's pool, and
/// [`crate::SearchReport::rechoose_winner`]'s): every evaluated one, or with re-ranking only the
/// re-ranked ones, their accuracy and `F` from the expensive estimator.
pub(crate) fn winner_pool(
    rerank: usize,
    reranked: &[Reranked],
    evaluated: &[Candidate],
    objective: &Objective,
) -> Vec<Candidate> {
    if rerank == 0 {
        return evaluated.to_vec();
    }
    evaluated
        .iter()
        .filter_map(|c| {
            let r = reranked.iter().find(|r| r.arch == c.arch)?;
            let mut c = c.clone();
            c.accuracy = r.accuracy;
            c.score = objective.score(r.accuracy, c.objective_latency_ms());
            Some(c)
        })
        .collect()
}

/// Evaluated candidates, best `F` first (evaluation order on ties).
pub(crate) fn ranked(candidates: &[Candidate]) -> Vec<Candidate> {
    let mut all = candidates.to_vec();
    all.sort_by(|a, b| b.score.total_cmp(&a.score));
    all
}

/// How much the latency model over-predicted the candidates measured in correction round `round`: the
/// median of predicted / measured - 1 (positive: the device is faster than the model says); `None`
/// when none was measured in that round.
pub(crate) fn overprediction(remeasured: &[Remeasured], round: usize) -> Option<f64> {
    let ratios: Vec<f64> = remeasured
        .iter()
        .filter(|r| r.round == round && r.measured_ms > 0.0)
        .map(|r| r.predicted_ms / r.measured_ms - 1.0)
        .collect();
    (!ratios.is_empty()).then(|| hsconas_devices::drift::median(&ratios))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsconas_models::{Arch, Op, Scale};

    fn objective(mode: ObjectiveMode) -> Objective {
        Objective::new(0.7, -0.5, mode).expect("valid objective")
    }

    /// A candidate of uniform width `tenths` scored by `objective` from its measured latency when given.
    fn candidate(
        objective: &Objective,
        tenths: u8,
        accuracy: f64,
        predicted_ms: f64,
        measured_ms: Option<f64>,
    ) -> Candidate {
        Candidate {
            arch: Arch::uniform(Op::Shuffle3, Scale::from_tenths(tenths).expect("scale"))
                .expect("arch"),
            accuracy,
            latency_ms: predicted_ms,
            measured_ms,
            score: objective.score(accuracy, measured_ms.unwrap_or(predicted_ms)),
        }
    }

    /// The quickstart run that reported a winner 5.0% over T: the best candidate by *predicted* F
    /// (0.717 ms) measured 0.735 ms in an earlier round, while the last round measured three candidates
    /// at 0.714, 0.715 and 0.701 ms. The winner must be one of those three, the best of them by F.
    #[test]
    fn a_candidate_measured_outside_the_tolerance_loses_to_those_measured_inside_it() {
        let f = objective(ObjectiveMode::Penalty);
        let all = vec![
            candidate(&f, 5, 0.180, 0.717, Some(0.735)),
            candidate(&f, 6, 0.170, 0.702, Some(0.714)),
            candidate(&f, 7, 0.172, 0.705, Some(0.715)),
            candidate(&f, 8, 0.165, 0.698, Some(0.701)),
            // Never measured, predicted on target and more accurate: a prediction does not win against
            // measurements.
            candidate(&f, 9, 0.200, 0.700, None),
        ];
        let choice = choose_winner(&all, &f, 0.03, 0.0).expect("a winner");
        assert_eq!(choice.reason, WinnerReason::WithinTolerance);
        assert_eq!(choice.measured_candidates, 4);
        // 0.735 ms is +5.0% from T: three of the four measured candidates are within ±3%.
        assert_eq!(choice.within_tolerance, 3);
        let scores: Vec<f64> = all[1..4].iter().map(|c| c.score).collect();
        let best = all[1..4]
            .iter()
            .max_by(|a, b| a.score.total_cmp(&b.score))
            .expect("three");
        assert_eq!(choice.candidate, *best, "best F among {scores:?}");
        assert_eq!(choice.candidate.measured_ms, Some(0.701));
        assert!(choice.relative_to_target(&f).abs() <= 0.03);
        assert!(
            choice.explanation(&f).contains(
                "the 3 of 4 candidates measured on the device that lie within ±3.0% of T"
            ),
            "{}",
            choice.explanation(&f)
        );
    }

    #[test]
    fn without_a_measured_candidate_in_tolerance_the_closest_measured_one_wins() {
        let f = objective(ObjectiveMode::Penalty);
        let all = vec![
            candidate(&f, 5, 0.30, 0.70, Some(0.80)),
            candidate(&f, 6, 0.10, 0.70, Some(0.66)),
            candidate(&f, 7, 0.50, 0.70, None),
        ];
        let choice = choose_winner(&all, &f, 0.03, 0.0).expect("a winner");
        assert_eq!(choice.reason, WinnerReason::ClosestMeasured);
        assert_eq!(choice.candidate.measured_ms, Some(0.66));
        assert_eq!(choice.within_tolerance, 0);
        assert!(choice
            .explanation(&f)
            .contains("none of the 2 candidates measured on the device lies within ±3.0% of T"));
    }

    #[test]
    fn without_measurements_the_best_predicted_f_wins() {
        let f = objective(ObjectiveMode::Penalty);
        let all = vec![
            candidate(&f, 5, 0.30, 0.90, None),
            candidate(&f, 6, 0.25, 0.70, None),
        ];
        let choice = choose_winner(&all, &f, 0.03, 0.0).expect("a winner");
        assert_eq!(choice.reason, WinnerReason::NotMeasured);
        assert_eq!(choice.candidate, all[1]);
        assert!(choose_winner(&[], &f, 0.03, 0.0).is_none());
    }

    #[test]
    fn under_the_constraint_the_winner_is_at_or_under_t_whatever_the_tolerance() {
        let f = objective(ObjectiveMode::Constraint);
        assert!(f.meets(0.35, 0.03));
        assert!(f.meets(0.70, 0.03));
        assert!(!f.meets(0.705, 0.03), "the tolerance is the penalty's");
        let p = objective(ObjectiveMode::Penalty);
        assert!(!p.meets(0.35, 0.03) && p.meets(0.705, 0.03));
        let all = vec![
            candidate(&f, 5, 0.40, 0.70, Some(0.60)),
            // 1% over T and more accurate: not within the budget.
            candidate(&f, 6, 0.45, 0.70, Some(0.707)),
        ];
        let choice = choose_winner(&all, &f, 0.03, 0.0).expect("a winner");
        assert_eq!(choice.reason, WinnerReason::WithinTolerance);
        assert_eq!(choice.candidate.measured_ms, Some(0.60));
        assert_eq!(
            (choice.within_tolerance, choice.measured_candidates),
            (1, 2)
        );
        assert!(
            choice
                .explanation(&f)
                .contains("among the 1 of 2 measured on the device that lie at or under T"),
            "{}",
            choice.explanation(&f)
        );
    }

    /// The tie rule: a faster network wins unless a slower one is predicted better by more than the
    /// margin.
    #[test]
    fn under_the_constraint_a_faster_network_within_the_margin_wins() {
        let f = objective(ObjectiveMode::Constraint);
        let all = vec![
            candidate(&f, 5, 0.500, 0.70, Some(0.69)),
            candidate(&f, 6, 0.495, 0.70, Some(0.55)),
            candidate(&f, 7, 0.400, 0.70, Some(0.50)),
        ];
        let strict = choose_winner(&all, &f, 0.03, 0.0).expect("a winner");
        assert_eq!(strict.candidate, all[0], "no margin: the most accurate");
        assert_eq!(strict.ties, 1);
        let tied = choose_winner(&all, &f, 0.03, 0.01).expect("a winner");
        assert_eq!(
            tied.candidate, all[1],
            "half a point less accurate, 20% faster"
        );
        assert_eq!(tied.ties, 2);
        assert!(
            tied.explanation(&f)
                .starts_with("the fastest of the 2 candidates predicted within 1.00 points"),
            "{}",
            tied.explanation(&f)
        );
        // The fastest is ten points behind: outside any sensible margin.
        assert_eq!(
            choose_winner(&all, &f, 0.03, 0.05)
                .expect("a winner")
                .candidate,
            all[1]
        );
        // The penalty ignores the margin.
        let p = objective(ObjectiveMode::Penalty);
        let rescored: Vec<Candidate> = all
            .iter()
            .map(|c| Candidate {
                score: p.score(c.accuracy, c.measured_ms.expect("measured")),
                ..c.clone()
            })
            .collect();
        let penalty = choose_winner(&rescored, &p, 0.03, 0.05).expect("a winner");
        assert_eq!(penalty.candidate.arch, all[0].arch);
    }
}
