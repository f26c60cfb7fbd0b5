//! The timing protocol (docs/DESIGN.md section 4).
//!
//! Shared hosts only ever add time, so a low percentile estimates the undisturbed latency far more
//! repeatably than the median; which statistic a table uses is a setting (`hsconas_vocabulary::Statistic`), and every
//! measurement records all of them. Session creation, input creation and warm-up are never timed. Several
//! models are measured in interleaved rounds, so that drift on the machine hits all of them alike.

use std::time::{Duration, Instant};

use hsconas_vocabulary::{Protocol, Stats};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::backend::{HostTensor, LoadedModel, TensorSpec};
use crate::RuntimeError;

/// Standard-normal inputs of the model's declared shapes (symbolic dimensions set to `fill`), from `seed`.
pub fn random_inputs(specs: &[TensorSpec], fill: usize, seed: u64) -> Vec<HostTensor> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    specs
        .iter()
        .map(|spec| {
            let shape = spec.concrete_shape(fill);
            let n = shape.iter().product();
            HostTensor {
                shape,
                data: (0..n).map(|_| StandardNormal.sample(&mut rng)).collect(),
            }
        })
        .collect()
}

/// Pins the calling thread to the given CPUs (Linux `sched_setaffinity`).
pub fn pin_current_thread(cpus: &[usize]) -> Result<(), RuntimeError> {
    use nix::sched::{sched_setaffinity, CpuSet};
    use nix::unistd::Pid;
    let mut set = CpuSet::new();
    for &cpu in cpus {
        set.set(cpu)
            .map_err(|e| RuntimeError::BadSetting(format!("cannot pin to CPU {cpu}: {e}")))?;
    }
    sched_setaffinity(Pid::from_raw(0), &set)
        .map_err(|e| RuntimeError::BadSetting(format!("cannot pin to CPUs {cpus:?}: {e}")))
}

/// Measures one prepared model (see [`LoadedModel::prepare`]).
pub fn measure(model: &mut dyn LoadedModel, protocol: &Protocol) -> Result<Stats, RuntimeError> {
    let mut all = measure_interleaved(&mut [model], protocol, |_, _| {})?;
    Ok(all.remove(0))
}

/// Measures several prepared models in interleaved rounds: every round times each model that still needs
/// samples once, until every model has at least `min_runs` runs and `min_time_ms` of timed time (or
/// `max_runs`). `on_round(round, done)` is called after each round with the number of finished models.
/// With `Protocol::last_alone` (and more than one model) the last model is timed alone before and after
/// the others' rounds instead of among them.
pub fn measure_interleaved(
    models: &mut [&mut dyn LoadedModel],
    protocol: &Protocol,
    on_round: impl FnMut(usize, usize),
) -> Result<Vec<Stats>, RuntimeError> {
    protocol.validate()?;
    if !protocol.pin.is_empty() {
        pin_current_thread(&protocol.pin)?;
    }
    let samples = if protocol.last_alone && models.len() > 1 {
        let (others, last) = models.split_at_mut(models.len() - 1);
        let alone = Protocol {
            min_runs: protocol.min_runs.div_ceil(2),
            min_time_ms: protocol.min_time_ms / 2.0,
            max_runs: protocol.max_runs.div_ceil(2),
            burst: protocol.last_burst.unwrap_or(protocol.burst),
            last_burst: None,
            ..protocol.clone()
        };
        let mut before = timed_rounds(last, &alone, |_, _| {})?;
        let group = Protocol {
            last_burst: None,
            ..protocol.clone()
        };
        let mut samples = timed_rounds(others, &group, on_round)?;
        let after = timed_rounds(last, &alone, |_, _| {})?;
        before[0].extend_from_slice(&after[0]);
        samples.push(before.remove(0));
        samples
    } else {
        timed_rounds(models, protocol, on_round)?
    };
    Ok(samples
        .iter()
        .map(|s| Stats::from_samples(s).unwrap_or_else(|| unreachable!("min_runs >= 1")))
        .collect())
}

/// Warms every model up, then times them in interleaved rounds (see [`measure_interleaved`]; the last
/// model gets `last_burst`, `last_alone` is not looked at); the samples of each model, ms.
fn timed_rounds(
    models: &mut [&mut dyn LoadedModel],
    protocol: &Protocol,
    mut on_round: impl FnMut(usize, usize),
) -> Result<Vec<Vec<f64>>, RuntimeError> {
    for model in models.iter_mut() {
        for _ in 0..protocol.warmup {
            model.run_prepared()?;
        }
    }
    let min_time = Duration::from_secs_f64(protocol.min_time_ms / 1e3);
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(protocol.min_runs); models.len()];
    let mut timed: Vec<Duration> = vec![Duration::ZERO; models.len()];
    let done = |s: &Vec<f64>, t: Duration| {
        s.len() >= protocol.max_runs || (s.len() >= protocol.min_runs && t >= min_time)
    };
    let last = models.len().saturating_sub(1);
    let mut round = 0;
    loop {
        let mut finished = 0;
        for (i, ((model, s), t)) in models
            .iter_mut()
            .zip(&mut samples)
            .zip(&mut timed)
            .enumerate()
        {
            if done(s, *t) {
                finished += 1;
                continue;
            }
            let burst = match protocol.last_burst {
                Some(b) if i == last => b,
                _ => protocol.burst,
            };
            for _ in 1..burst {
                model.run_prepared()?;
            }
            let start = Instant::now();
            model.run_prepared()?;
            let elapsed = start.elapsed();
            *t += elapsed;
            s.push(elapsed.as_secs_f64() * 1e3);
        }
        round += 1;
        on_round(round, finished);
        if finished == models.len() {
            break;
        }
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsconas_vocabulary::ReferenceTiming;

    /// Records, in one shared log, which model ran: the scheduler's order and counts of runs are what is
    /// under test, not a backend.
    struct Logged<'a> {
        name: char,
        log: &'a std::sync::Mutex<String>,
    }

    impl LoadedModel for Logged<'_> {
        fn inputs(&self) -> &[TensorSpec] {
            &[]
        }
        fn outputs(&self) -> &[TensorSpec] {
            &[]
        }
        fn provider(&self) -> hsconas_vocabulary::ExecutionProvider {
            hsconas_vocabulary::ExecutionProvider::Cpu
        }
        fn run(&mut self, _: &[HostTensor]) -> Result<Vec<HostTensor>, RuntimeError> {
            Ok(Vec::new())
        }
        fn prepare(&mut self, _: &[HostTensor]) -> Result<(), RuntimeError> {
            Ok(())
        }
        fn run_prepared(&mut self) -> Result<(), RuntimeError> {
            self.log.lock().expect("not poisoned").push(self.name);
            Ok(())
        }
    }

    /// Measures one logged model per character of `names`, in that order; their stats and the log.
    fn run_logged(names: &str, protocol: &Protocol) -> (Vec<Stats>, String) {
        let log = std::sync::Mutex::new(String::new());
        let mut models: Vec<Logged> = names
            .chars()
            .map(|name| Logged { name, log: &log })
            .collect();
        let mut refs: Vec<&mut dyn LoadedModel> = models
            .iter_mut()
            .map(|m| m as &mut dyn LoadedModel)
            .collect();
        let stats = measure_interleaved(&mut refs, protocol, |_, _| {}).expect("measures");
        (stats, log.into_inner().expect("not poisoned"))
    }

    #[test]
    fn the_last_model_gets_its_own_burst() {
        let protocol = Protocol {
            warmup: 2,
            min_runs: 5,
            min_time_ms: 0.0,
            max_runs: 5,
            burst: 2,
            last_burst: Some(4),
            ..Protocol::default()
        };
        let (stats, log) = run_logged("abr", &protocol);
        assert!(stats.iter().all(|s| s.runs == 5));
        let runs = |log: &str, name: char| log.chars().filter(|&c| c == name).count();
        // warm-up, then 5 rounds of `burst` runs (only the last of each timed)
        assert_eq!(
            (runs(&log, 'a'), runs(&log, 'b'), runs(&log, 'r')),
            (2 + 5 * 2, 2 + 5 * 2, 2 + 5 * 4)
        );
        let plain = Protocol {
            last_burst: None,
            ..protocol
        };
        assert_eq!(runs(&run_logged("c", &plain).1, 'c'), 2 + 5 * 2);
    }

    #[test]
    fn a_last_model_timed_alone_runs_before_and_after_the_group() {
        let protocol = ReferenceTiming {
            burst: 2,
            alone: true,
        }
        .apply(&Protocol {
            warmup: 1,
            min_runs: 4,
            min_time_ms: 0.0,
            max_runs: 4,
            ..Protocol::default()
        });
        let (stats, log) = run_logged("abr", &protocol);
        assert_eq!(stats.iter().map(|s| s.runs).collect::<Vec<_>>(), [4, 4, 4]);
        // the reference: 1 warm-up and 2 rounds of burst 2 alone; the group: warm-ups, 4 rounds
        // interleaved (burst 1); the reference alone again
        assert_eq!(log, "rrrrr".to_owned() + "ab" + "abababab" + "rrrrr");
        // one model alone, or `last_alone` unset: the plain interleaved rounds with the last burst
        assert_eq!(
            run_logged("r", &protocol).1,
            "r".to_owned() + &"rr".repeat(4)
        );
        let interleaved = Protocol {
            last_alone: false,
            ..protocol
        };
        assert_eq!(
            run_logged("ar", &interleaved).1,
            "ar".to_owned() + &"arr".repeat(4)
        );
    }

    #[test]
    fn random_inputs_fill_symbolic_dimensions() {
        let spec = TensorSpec {
            name: "input".into(),
            shape: vec![None, Some(3), Some(4), Some(4)],
        };
        let a = random_inputs(std::slice::from_ref(&spec), 2, 9);
        assert_eq!(a[0].shape, vec![2, 3, 4, 4]);
        assert_eq!(a[0].data.len(), 96);
        assert_eq!(a, random_inputs(&[spec], 2, 9));
    }
}
