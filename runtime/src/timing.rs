//! The timing protocol (docs/DESIGN.md section 4).
//!
//! Shared hosts only ever add time, so a low percentile estimates the undisturbed latency far more
//! repeatably than the median; which statistic a table uses is a setting ([`Statistic`]), and every
//! measurement records all of them. Session creation, input creation and warm-up are never timed. Several
//! models are measured in interleaved rounds, so that drift on the machine hits all of them alike.

use hsconas_foundation::stats::percentile;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::backend::{HostTensor, LoadedModel, TensorSpec};
use crate::RuntimeError;

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

impl std::str::FromStr for Statistic {
    type Err = RuntimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "min" => Ok(Statistic::Min),
            "p10" => Ok(Statistic::P10),
            "median" => Ok(Statistic::Median),
            "mean" => Ok(Statistic::Mean),
            other => Err(RuntimeError::BadSetting(format!(
                "unknown statistic '{other}' (min, p10, median, mean)"
            ))),
        }
    }
}

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

    fn validate(&self) -> Result<(), RuntimeError> {
        if self.min_runs == 0 || self.max_runs < self.min_runs {
            return Err(RuntimeError::BadSetting(format!(
                "runs: need 1 <= min_runs ({}) <= max_runs ({})",
                self.min_runs, self.max_runs
            )));
        }
        if self.burst == 0 || self.last_burst == Some(0) {
            return Err(RuntimeError::BadSetting("burst must be at least 1".into()));
        }
        if !(self.min_time_ms >= 0.0 && self.min_time_ms.is_finite()) {
            return Err(RuntimeError::BadSetting(
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
        fn provider(&self) -> crate::backend::Provider {
            crate::backend::Provider::Cpu
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
