//! Scoring candidates: accuracy from an oracle (the supernet with inherited weights, in the product),
//! latency from the latency model (or, once a candidate was measured on the device, from that
//! measurement), `F` from the objective; every architecture evaluated at most once.

use std::collections::HashMap;

use hsconas_devices::LatencyModel;
use hsconas_models::Arch;
use serde::{Deserialize, Serialize};

use super::objective::Objective;
use crate::{NasError, OracleError};

/// Where accuracies come from.
pub trait AccuracyOracle {
    /// Validation accuracy of `arch` as a fraction in `0..=1`.
    fn accuracy(&mut self, arch: &Arch) -> Result<f64, OracleError>;

    /// The accuracies of `archs`, in order: one batch of work, which an oracle may spread over several
    /// processes (the search's distributed evaluation). The default asks [`AccuracyOracle::accuracy`]
    /// for each in turn; an override must return what that would.
    fn accuracies(&mut self, archs: &[Arch]) -> Result<Vec<f64>, OracleError> {
        archs.iter().map(|a| self.accuracy(a)).collect()
    }
}

impl<F: FnMut(&Arch) -> Result<f64, OracleError>> AccuracyOracle for F {
    fn accuracy(&mut self, arch: &Arch) -> Result<f64, OracleError> {
        self(arch)
    }
}

/// One evaluated architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The architecture.
    pub arch: Arch,
    /// Validation accuracy, a fraction.
    pub accuracy: f64,
    /// Predicted latency, ms.
    pub latency_ms: f64,
    /// Latency measured end to end on the device, ms, once the candidate was re-measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_ms: Option<f64>,
    /// Objective `F`, from the measured latency when there is one, else from the predicted one.
    pub score: f64,
}

impl Candidate {
    /// The latency `F` is computed from: measured when known, else predicted.
    pub fn objective_latency_ms(&self) -> f64 {
        self.measured_ms.unwrap_or(self.latency_ms)
    }
}

/// Evaluates candidates through an oracle, the latency model and the objective, caching by architecture.
pub struct Evaluator<O> {
    oracle: O,
    model: LatencyModel,
    objective: Objective,
    /// Accuracies by architecture, in the order they were first evaluated.
    cache: HashMap<Arch, usize>,
    evaluated: Vec<Candidate>,
    hits: usize,
    /// Accuracies by FP32 network: the oracle estimates the FP32 network, so the precision variants of
    /// one network share its accuracy and the oracle is asked once for them.
    fp32_accuracy: HashMap<Arch, f64>,
}

impl<O: AccuracyOracle> Evaluator<O> {
    /// An evaluator with an empty cache.
    pub fn new(oracle: O, model: LatencyModel, objective: Objective) -> Evaluator<O> {
        Evaluator {
            oracle,
            model,
            objective,
            cache: HashMap::new(),
            evaluated: Vec::new(),
            hits: 0,
            fp32_accuracy: HashMap::new(),
        }
    }

    /// The oracle (for what else its owner does between evaluations).
    pub fn oracle_mut(&mut self) -> &mut O {
        &mut self.oracle
    }

    /// Restores previously evaluated candidates (from a checkpoint); their accuracies and measured
    /// latencies are trusted, their predicted latency and score recomputed with this evaluator's model and
    /// objective.
    pub fn restore(&mut self, candidates: impl IntoIterator<Item = Candidate>) {
        for c in candidates {
            if !self.cache.contains_key(&c.arch) {
                self.fp32_accuracy
                    .entry(c.arch.as_fp32())
                    .or_insert(c.accuracy);
                let c = self.rescored(c.arch, c.accuracy, c.measured_ms);
                self.cache.insert(c.arch.clone(), self.evaluated.len());
                self.evaluated.push(c);
            }
        }
    }

    fn rescored(&self, arch: Arch, accuracy: f64, measured_ms: Option<f64>) -> Candidate {
        let mut c = Candidate {
            latency_ms: self.model.predict_ms(&arch),
            arch,
            accuracy,
            measured_ms,
            score: 0.0,
        };
        c.score = self.objective.score(accuracy, c.objective_latency_ms());
        c
    }

    /// Records that `arch` measured `measured_ms` on the device: from now on its `F` uses that latency
    /// instead of the prediction. Returns the updated candidate, or `None` when `arch` was never
    /// evaluated (nothing is recorded then).
    pub fn record_measurement(&mut self, arch: &Arch, measured_ms: f64) -> Option<&Candidate> {
        let &i = self.cache.get(arch)?;
        let c = &self.evaluated[i];
        self.evaluated[i] = self.rescored(c.arch.clone(), c.accuracy, Some(measured_ms));
        Some(&self.evaluated[i])
    }

    /// The candidate for `arch`: from the cache, or measured by the oracle once.
    pub fn evaluate(&mut self, arch: &Arch) -> Result<Candidate, NasError> {
        Ok(self
            .evaluate_all(std::slice::from_ref(arch))?
            .pop()
            .unwrap_or_else(|| unreachable!("one candidate per architecture")))
    }

    /// The candidates for `archs`, in order: the ones not cached yet go to the oracle as one batch
    /// ([`AccuracyOracle::accuracies`], each distinct architecture once) and enter the cache in the order
    /// of `archs`, exactly as evaluating them one by one would have.
    pub fn evaluate_all(&mut self, archs: &[Arch]) -> Result<Vec<Candidate>, NasError> {
        let mut new: Vec<Arch> = Vec::new();
        for arch in archs {
            if !self.cache.contains_key(arch) && !new.contains(arch) {
                new.push(arch.clone());
            }
        }
        if !new.is_empty() {
            // The oracle sees FP32 networks (its accuracy is the FP32 network's, whatever the layers'
            // precisions), each once.
            let mut ask: Vec<Arch> = Vec::new();
            for arch in &new {
                let fp32 = arch.as_fp32();
                if !self.fp32_accuracy.contains_key(&fp32) && !ask.contains(&fp32) {
                    ask.push(fp32);
                }
            }
            if !ask.is_empty() {
                let accuracies = self.ask(&ask)?;
                for (arch, accuracy) in ask.into_iter().zip(accuracies) {
                    self.fp32_accuracy.insert(arch, accuracy);
                }
            }
            for arch in &new {
                let accuracy = self.fp32_accuracy[&arch.as_fp32()];
                let c = self.rescored(arch.clone(), accuracy, None);
                self.cache.insert(arch.clone(), self.evaluated.len());
                self.evaluated.push(c);
            }
        }
        // Architectures answered by the cache, as if evaluated one by one: every repeat after the first.
        let mut seen_new: Vec<&Arch> = Vec::new();
        let mut out = Vec::with_capacity(archs.len());
        for arch in archs {
            if new.contains(arch) && !seen_new.contains(&arch) {
                seen_new.push(arch);
            } else {
                self.hits += 1;
            }
            out.push(self.evaluated[self.cache[arch]].clone());
        }
        Ok(out)
    }

    /// The oracle's accuracies of `archs` (one batch), one per architecture, each a fraction in `0..=1`.
    fn ask(&mut self, archs: &[Arch]) -> Result<Vec<f64>, NasError> {
        let which = || match archs {
            [one] => one.to_string(),
            _ => format!("one of {} architectures", archs.len()),
        };
        let accuracies = self
            .oracle
            .accuracies(archs)
            .map_err(|source| NasError::Oracle {
                arch: which(),
                source,
            })?;
        if accuracies.len() != archs.len() {
            return Err(NasError::Oracle {
                arch: which(),
                source: OracleError::from(format!(
                    "{} accuracies for {} architectures",
                    accuracies.len(),
                    archs.len()
                )),
            });
        }
        for (arch, &accuracy) in archs.iter().zip(&accuracies) {
            NasError::check_accuracy(arch, accuracy)?;
        }
        Ok(accuracies)
    }

    /// Whether `arch` was evaluated already.
    pub fn contains(&self, arch: &Arch) -> bool {
        self.cache.contains_key(arch)
    }

    /// Every evaluated candidate, in evaluation order.
    pub fn evaluated(&self) -> &[Candidate] {
        &self.evaluated
    }

    /// How many evaluations the cache answered.
    pub fn cache_hits(&self) -> usize {
        self.hits
    }

    /// The best candidate so far (highest `F`; the first one on ties).
    pub fn best(&self) -> Option<&Candidate> {
        self.evaluated
            .iter()
            .fold(None, |best: Option<&Candidate>, c| match best {
                Some(b) if b.score >= c.score => Some(b),
                _ => Some(c),
            })
    }

    /// The objective.
    pub fn objective(&self) -> &Objective {
        &self.objective
    }

    /// The latency model.
    pub fn model(&self) -> &LatencyModel {
        &self.model
    }

    /// Asks the oracle again for the accuracy of every evaluated candidate (one batch, after the oracle
    /// changed: a refitted predictor), except those in `known`, which take the accuracy given there;
    /// scores are recomputed, measured latencies kept, the evaluation order unchanged.
    pub fn reassess(&mut self, known: &HashMap<Arch, f64>) -> Result<(), NasError> {
        let ask: Vec<Arch> = self
            .evaluated
            .iter()
            .filter(|c| !known.contains_key(&c.arch))
            .map(|c| c.arch.clone())
            .collect();
        let answers = self.ask(&ask)?;
        for (arch, &accuracy) in known {
            NasError::check_accuracy(arch, accuracy)?;
        }
        let mut fresh: HashMap<&Arch, f64> = ask.iter().zip(answers).collect();
        let old = std::mem::take(&mut self.evaluated);
        self.evaluated = old
            .into_iter()
            .map(|c| {
                let accuracy = known
                    .get(&c.arch)
                    .copied()
                    .or_else(|| fresh.remove(&c.arch))
                    .unwrap_or(c.accuracy);
                self.rescored(c.arch, accuracy, c.measured_ms)
            })
            .collect();
        Ok(())
    }

    /// Replaces the latency model (a new correction after re-measurement) and rescores every cached
    /// candidate; accuracies and measurements are kept.
    pub fn set_model(&mut self, model: LatencyModel) {
        self.model = model;
        let old = std::mem::take(&mut self.evaluated);
        self.evaluated = old
            .into_iter()
            .map(|c| self.rescored(c.arch, c.accuracy, c.measured_ms))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::collections::HashMap;
    use std::rc::Rc;

    use hsconas_models::SearchSpace;

    use super::*;
    use crate::tests::evaluator;
    use crate::Objective;
    use crate::ObjectiveMode;

    #[test]
    fn a_batch_is_evaluated_as_one_by_one_would_be() {
        let space = SearchSpace::full();
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(4);
        let a = space.sample(&mut rng);
        let b = space.sample(&mut rng);
        let c = space.sample(&mut rng);
        let batch = [a.clone(), b.clone(), a.clone(), c.clone(), b.clone()];
        let (one_calls, batch_calls) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let mut one = evaluator(3.0, one_calls.clone());
        one.evaluate(&c).expect("evaluates");
        let mut all = evaluator(3.0, batch_calls.clone());
        all.evaluate(&c).expect("evaluates");
        let singly: Vec<Candidate> = batch
            .iter()
            .map(|x| one.evaluate(x).expect("evaluates"))
            .collect();
        let together = all.evaluate_all(&batch).expect("evaluates");
        assert_eq!(together, singly);
        assert_eq!(all.evaluated(), one.evaluated(), "same cache order");
        assert_eq!(
            (all.cache_hits(), batch_calls.get()),
            (one.cache_hits(), one_calls.get())
        );
        assert_eq!(batch_calls.get(), 3, "a, b and c once each");
    }

    /// `Evaluator::reassess`: known accuracies replace the oracle's, the others are asked again in one
    /// batch, measurements stay, and an accuracy out of range is refused.
    #[test]
    fn reassessing_asks_again_and_keeps_what_is_known() {
        let model = crate::tests::model();
        let objective = Objective::new(0.7, -0.5, ObjectiveMode::Penalty).expect("objective");
        let space = SearchSpace::full();
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
        let archs: Vec<Arch> = (0..3).map(|_| space.sample(&mut rng)).collect();
        // Restored with 0.5 each; the oracle now says 0.6.
        let mut evaluator = Evaluator::new(|_: &Arch| Ok(0.6), model, objective);
        evaluator.restore(archs.iter().map(|a| Candidate {
            arch: a.clone(),
            accuracy: 0.5,
            latency_ms: 0.0,
            measured_ms: (a == &archs[1]).then_some(0.7),
            score: 0.0,
        }));
        let known: HashMap<Arch, f64> = [(archs[0].clone(), 0.9)].into();
        evaluator.reassess(&known).expect("reassessed");
        let accuracies: Vec<f64> = evaluator.evaluated().iter().map(|c| c.accuracy).collect();
        assert_eq!(accuracies, vec![0.9, 0.6, 0.6]);
        assert_eq!(evaluator.evaluated()[1].measured_ms, Some(0.7));
        assert_eq!(
            evaluator.evaluated()[1].score,
            objective.score(0.6, 0.7),
            "scored with its measurement"
        );
        let bad: HashMap<Arch, f64> = [(archs[2].clone(), 1.5)].into();
        assert!(matches!(
            evaluator.reassess(&bad),
            Err(NasError::AccuracyOutOfRange { .. })
        ));
    }
}
