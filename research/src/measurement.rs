//! Latency of a list of networks measured together on a device whose speed drifts: the same list is
//! measured end to end several times (`hsconas latency validate --archs`, one run after another, each run
//! in its own order), and every network's latency is read *relative to the other networks of the same
//! run* before the runs are combined.
//!
//! On a shared VM the speed moves by tens of percent between runs a minute apart (docs/RESULTS.md, the
//! search-level proof): a plain median over runs then mixes device states, and whether a network lies
//! within ±3% of another depends on which runs caught a slow moment. Dividing each run by its own median
//! over the list removes the run's speed; shuffling the order of every run (the scripts do) turns where a
//! network sits in a run while the speed moves into noise, which the median over runs then suppresses.

use hsconas_devices::drift::median;

use crate::ResearchError;

/// Every network's latency from `runs[r][n]`, network `n` measured in run `r` (every run measures every
/// network, in ms): each measurement divided by its run's median over the networks (that run's speed),
/// each network's median of those ratios over the runs, scaled back to ms by the median of the runs'
/// medians (the device's typical state during the measurement). Ratios between networks are what the
/// result is for; with one run it is that run's measurements. Fails without a run, with runs of
/// different lengths, or with a measurement that is not a positive finite number.
pub fn run_normalised_ms(runs: &[Vec<f64>]) -> Result<Vec<f64>, ResearchError> {
    let refuse = |message: String| Err(ResearchError::Proof(message));
    let Some(first) = runs.first() else {
        return refuse("no measurement run to normalise".into());
    };
    let networks = first.len();
    for (r, run) in runs.iter().enumerate() {
        if run.len() != networks {
            return refuse(format!(
                "measurement run {} holds {} networks, run 1 holds {networks}: every run must measure \
                 the whole list (measure it again)",
                r + 1,
                run.len()
            ));
        }
        if let Some(bad) = run.iter().find(|ms| !(ms.is_finite() && **ms > 0.0)) {
            return refuse(format!(
                "measurement run {} has a latency of {bad} ms",
                r + 1
            ));
        }
    }
    if networks == 0 {
        return Ok(Vec::new());
    }
    let speeds: Vec<f64> = runs.iter().map(|run| median(run)).collect();
    let typical = median(&speeds);
    Ok((0..networks)
        .map(|n| {
            let ratios: Vec<f64> = runs
                .iter()
                .zip(&speeds)
                .map(|(run, speed)| run[n] / speed)
                .collect();
            median(&ratios) * typical
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9)
    }

    #[test]
    fn a_run_slower_as_a_whole_changes_nothing() {
        let base = vec![1.0, 1.2, 0.8, 2.0];
        let runs = vec![
            base.clone(),
            base.iter().map(|ms| ms * 1.25).collect(),
            base.iter().map(|ms| ms * 0.8).collect(),
        ];
        // The typical state is the median run (the first), and every ratio is the same in every run.
        assert!(close(&run_normalised_ms(&runs).expect("runs"), &base));
        // A plain median over the runs would have been the same here; what differs is a run that is
        // slow for some networks only: normalised, one slow measurement of a network is outvoted.
        let mut disturbed = runs.clone();
        disturbed[1][2] *= 1.3;
        let levels = run_normalised_ms(&disturbed).expect("runs");
        assert!(close(&levels, &base), "{levels:?}");
    }

    #[test]
    fn ratios_survive_a_drift_that_a_plain_median_mixes_up() {
        // B is 3% slower than A (C is a third, larger network); the runs' speeds fall by a third from
        // the first to the last, and B's measurements in the two fastest runs caught a quiet moment
        // (20% and 15% low). A plain median over the runs puts B 3.7% *below* A: it mixes the runs'
        // speeds with those two disturbances. Normalised per run, the two disturbed runs are outvoted.
        let speeds = [1.2, 1.1, 1.0, 0.9, 0.8];
        let disturbance = [0.8, 0.85, 1.0, 1.0, 1.0];
        let runs: Vec<Vec<f64>> = speeds
            .iter()
            .zip(disturbance)
            .map(|(s, d)| vec![1.0 * s, 1.03 * s * d, 2.0 * s])
            .collect();
        let plain = |n: usize| median(&runs.iter().map(|r| r[n]).collect::<Vec<_>>());
        assert!(
            (plain(1) / plain(0) - 0.963).abs() < 1e-3,
            "the plain median's ratio"
        );
        let levels = run_normalised_ms(&runs).expect("runs");
        assert!((levels[1] / levels[0] - 1.03).abs() < 1e-9, "{levels:?}");
        assert!((levels[2] / levels[0] - 2.0).abs() < 1e-9, "{levels:?}");
    }

    #[test]
    fn one_run_is_its_own_measurement_and_bad_runs_are_refused() {
        assert!(close(
            &run_normalised_ms(&[vec![0.5, 0.7]]).expect("one run"),
            &[0.5, 0.7]
        ));
        assert!(run_normalised_ms(&[]).is_err());
        let err = run_normalised_ms(&[vec![1.0, 2.0], vec![1.0]])
            .expect_err("ragged")
            .to_string();
        assert!(err.contains("run 2") && err.contains("whole list"), "{err}");
        assert!(run_normalised_ms(&[vec![1.0, f64::NAN]]).is_err());
        assert!(run_normalised_ms(&[vec![1.0, 0.0]]).is_err());
    }
}
