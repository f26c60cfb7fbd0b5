//! The Pareto front over (accuracy, latency): candidates no other candidate beats on both.

use super::evaluator::Candidate;

/// The candidates not dominated by any other (another is at least as accurate and at least as fast, and
/// strictly better in one), sorted by latency; among exact duplicates of both values the first is kept.
pub fn pareto_front(candidates: &[Candidate]) -> Vec<Candidate> {
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    // Fastest first; at equal latency the most accurate first.
    sorted.sort_by(|a, b| {
        a.latency_ms
            .total_cmp(&b.latency_ms)
            .then(b.accuracy.total_cmp(&a.accuracy))
    });
    let mut front: Vec<Candidate> = Vec::new();
    for c in sorted {
        if front.last().is_none_or(|best| c.accuracy > best.accuracy) {
            front.push(c.clone());
        }
    }
    front
}

/// The Pareto front over (accuracy, the latency `F` uses: measured where known, else predicted), each
/// candidate as it is (`latency_ms` stays the prediction).
pub fn objective_front(candidates: &[Candidate]) -> Vec<Candidate> {
    let by_objective: Vec<Candidate> = candidates
        .iter()
        .map(|c| Candidate {
            latency_ms: c.objective_latency_ms(),
            ..c.clone()
        })
        .collect();
    pareto_front(&by_objective)
        .into_iter()
        .filter_map(|f| candidates.iter().find(|c| c.arch == f.arch).cloned())
        .collect()
}

/// The Pareto front of the measured candidates over (accuracy, measured latency), each with its
/// measured latency as `latency_ms`.
pub fn measured_front(candidates: &[Candidate]) -> Vec<Candidate> {
    let measured: Vec<Candidate> = candidates
        .iter()
        .filter_map(|c| {
            Some(Candidate {
                latency_ms: c.measured_ms?,
                ..c.clone()
            })
        })
        .collect();
    pareto_front(&measured)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsconas_models::{Arch, Op, Scale};

    fn candidate(tenths: u8, accuracy: f64, latency_ms: f64) -> Candidate {
        Candidate {
            arch: Arch::uniform(Op::Shuffle3, Scale::from_tenths(tenths).expect("scale"))
                .expect("arch"),
            accuracy,
            latency_ms,
            measured_ms: None,
            score: 0.0,
        }
    }

    #[test]
    fn keeps_exactly_the_non_dominated_candidates() {
        let all = vec![
            candidate(1, 0.50, 5.0),
            candidate(2, 0.60, 6.0),
            candidate(3, 0.55, 7.0), // dominated by 2
            candidate(4, 0.70, 9.0),
            candidate(5, 0.70, 10.0), // dominated by 4 (same accuracy, slower)
            candidate(6, 0.40, 5.0),  // dominated by 1 (same latency, less accurate)
        ];
        let front = pareto_front(&all);
        let kept: Vec<f64> = front.iter().map(|c| c.latency_ms).collect();
        assert_eq!(kept, vec![5.0, 6.0, 9.0]);
        for c in &all {
            let dominated = all.iter().any(|o| {
                o.accuracy >= c.accuracy
                    && o.latency_ms <= c.latency_ms
                    && (o.accuracy > c.accuracy || o.latency_ms < c.latency_ms)
            });
            assert_eq!(!dominated, front.contains(c), "{c:?}");
        }
        assert!(pareto_front(&[]).is_empty());
    }
}
