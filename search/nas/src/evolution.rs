//! The evolutionary search of paper section III-D: a population of architectures, the best `parents`
//! kept each generation, children by mutation and crossover of operator and channel genes, always valid
//! and inside the search space, never a re-evaluation of a known candidate. Every generation draws from
//! its own generator seeded by `(seed, generation)`, so a resumed search continues exactly.

use std::collections::HashSet;

use hsconas_models::{Arch, Choice, LayerSpace, Op, Scale, SearchSpace, NUM_LAYERS};
use hsconas_vocabulary::Precision;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::evaluator::{AccuracyOracle, Candidate, Evaluator};
use crate::NasError;

/// Settings of the evolutionary search (paper defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvolutionSettings {
    /// Candidates per generation (50).
    pub population: usize,
    /// Generations (20).
    pub generations: usize,
    /// Best candidates kept as parents (20).
    pub parents: usize,
    /// Per-gene probability that a crossover child takes the second parent's gene (0.25).
    pub crossover: f64,
    /// Per-gene probability that a mutation child's gene is redrawn (0.25).
    pub mutation: f64,
    /// Seed.
    pub seed: u64,
    /// Every candidate's layers set to the precision the latency model predicts faster (among those
    /// the space allows) before it is evaluated: `hsconas search --precision fastest`. No accuracy
    /// estimator sees precision, so in a mixed space this is the fastest predicted assignment for each
    /// candidate's operators and widths: what a budget (constraint mode) wants, not the paper's
    /// penalty, which favours latencies near T. Mutation and crossover still draw precision genes,
    /// which this setting then overrides.
    #[serde(default)]
    pub fastest_precision: bool,
}

impl Default for EvolutionSettings {
    fn default() -> Self {
        EvolutionSettings {
            population: 50,
            generations: 20,
            parents: 20,
            crossover: 0.25,
            mutation: 0.25,
            seed: 0,
            fastest_precision: false,
        }
    }
}

impl EvolutionSettings {
    /// Refuses settings the algorithm cannot run with.
    pub fn validate(&self) -> Result<(), NasError> {
        if self.population < 2 {
            return Err(NasError::Settings(
                "the population must hold at least 2 candidates".into(),
            ));
        }
        if self.parents == 0 || self.parents > self.population {
            return Err(NasError::Settings(format!(
                "parents must be between 1 and the population ({}), got {}",
                self.population, self.parents
            )));
        }
        for (name, p) in [("crossover", self.crossover), ("mutation", self.mutation)] {
            if !(0.0..=1.0).contains(&p) {
                return Err(NasError::Settings(format!(
                    "the {name} probability must be in 0..=1, got {p}"
                )));
            }
        }
        Ok(())
    }
}

/// Summary of one evaluated generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationStats {
    /// 0-based generation.
    pub generation: usize,
    /// Best `F` of the generation's population.
    pub best_score: f64,
    /// Mean `F`.
    pub mean_score: f64,
    /// Accuracy of the best-`F` candidate.
    pub best_accuracy: f64,
    /// Mean accuracy.
    pub mean_accuracy: f64,
    /// Latency of the best-`F` candidate, ms.
    pub best_latency_ms: f64,
    /// Mean latency, ms.
    pub mean_latency_ms: f64,
    /// The best-`F` architecture.
    pub best_arch: Arch,
    /// Distinct architectures evaluated so far.
    pub evaluations: usize,
}

/// The search state; serialisable as a checkpoint between generations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evolution {
    /// Settings.
    pub settings: EvolutionSettings,
    /// Where candidates live.
    pub space: SearchSpace,
    /// Generations evaluated so far.
    pub generation: usize,
    /// The population to evaluate next.
    pub population: Vec<Arch>,
    /// One entry per evaluated generation.
    pub history: Vec<GenerationStats>,
}

fn generation_rng(seed: u64, generation: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ (generation as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F))
}

/// The ten uniform channel scalings of `shuffle3`, narrowest first.
pub fn uniform_scalings() -> Vec<Arch> {
    Scale::all()
        .map(|s| Arch::uniform(Op::Shuffle3, s).expect("shuffle3 is allowed in every layer"))
        .collect()
}

impl Evolution {
    /// A search whose first population is drawn uniformly from `space` (distinct where the space allows).
    pub fn new(settings: EvolutionSettings, space: SearchSpace) -> Result<Evolution, NasError> {
        Evolution::seeded(settings, space, &[])
    }

    /// A search whose first population starts with the architectures of `seeds` that `space` allows
    /// (distinct, at most the population), filled up with uniform draws from `space`.
    pub fn seeded(
        settings: EvolutionSettings,
        space: SearchSpace,
        seeds: &[Arch],
    ) -> Result<Evolution, NasError> {
        settings.validate()?;
        let mut rng = generation_rng(settings.seed, 0);
        let mut population = Vec::with_capacity(settings.population);
        let mut seen = HashSet::new();
        for arch in seeds {
            if population.len() < settings.population
                && space.check(arch).is_ok()
                && seen.insert(arch.clone())
            {
                population.push(arch.clone());
            }
        }
        let mut tries = 0;
        while population.len() < settings.population {
            let arch = space.sample(&mut rng);
            tries += 1;
            if seen.insert(arch.clone()) || tries > 100 * settings.population {
                population.push(arch);
            }
        }
        Ok(Evolution {
            settings,
            space,
            generation: 0,
            population,
            history: Vec::new(),
        })
    }

    /// Whether every planned generation has been evaluated.
    pub fn is_done(&self) -> bool {
        self.generation >= self.settings.generations
    }

    /// Plans `extra` more generations (the search continues from the current population).
    pub fn extend(&mut self, extra: usize) {
        self.settings.generations = self.generation.max(self.settings.generations) + extra;
    }

    /// Evaluates the current population, records its statistics and breeds the next one.
    pub fn step<O: AccuracyOracle>(
        &mut self,
        evaluator: &mut Evaluator<O>,
    ) -> Result<&GenerationStats, NasError> {
        // The model at this generation (a correction round may change it between generations).
        let model = self
            .settings
            .fastest_precision
            .then(|| evaluator.model().clone());
        let settle = |arch: Arch| match &model {
            Some(model) => model.fastest_precisions(&arch, &self.space),
            None => arch,
        };
        // The first population (and one planned before a correction changed the model).
        self.population = std::mem::take(&mut self.population)
            .into_iter()
            .map(settle)
            .collect();
        // One batch per generation: a distributed oracle spreads it over its ranks.
        let mut scored: Vec<Candidate> = evaluator.evaluate_all(&self.population)?;
        // Stable sort: ties keep population order, so the result is deterministic.
        scored.sort_by(|a, b| b.score.total_cmp(&a.score));
        let n = scored.len() as f64;
        let best = &scored[0];
        self.history.push(GenerationStats {
            generation: self.generation,
            best_score: best.score,
            mean_score: scored.iter().map(|c| c.score).sum::<f64>() / n,
            best_accuracy: best.accuracy,
            mean_accuracy: scored.iter().map(|c| c.accuracy).sum::<f64>() / n,
            best_latency_ms: best.latency_ms,
            mean_latency_ms: scored.iter().map(|c| c.latency_ms).sum::<f64>() / n,
            best_arch: best.arch.clone(),
            evaluations: evaluator.evaluated().len(),
        });
        let parents: Vec<Arch> = scored
            .iter()
            .take(self.settings.parents)
            .map(|c| c.arch.clone())
            .collect();
        self.generation += 1;
        self.population = self.breed(&parents, |a| evaluator.contains(a), settle);
        Ok(self
            .history
            .last()
            .unwrap_or_else(|| unreachable!("just pushed")))
    }

    /// The next population: the parents, then mutation children, then crossover children, each passed
    /// through `settle` and new (neither evaluated before nor already in the population) where the
    /// space allows.
    fn breed(
        &self,
        parents: &[Arch],
        known: impl Fn(&Arch) -> bool,
        settle: impl Fn(Arch) -> Arch,
    ) -> Vec<Arch> {
        let s = &self.settings;
        let mut rng = generation_rng(s.seed, self.generation);
        let mut next: Vec<Arch> = parents.to_vec();
        let mut members: HashSet<Arch> = next.iter().cloned().collect();
        let wanted = s.population - next.len();
        let mutants = wanted / 2;
        let max_tries = 100 * s.population;
        let mut tries = 0;
        while next.len() < s.population {
            let child = if tries >= max_tries {
                self.space.sample(&mut rng)
            } else if next.len() < parents.len() + mutants {
                let a = parents.choose(&mut rng).unwrap_or(&parents[0]);
                self.mutate(a, &mut rng)
            } else {
                let a = parents.choose(&mut rng).unwrap_or(&parents[0]);
                let b = parents.choose(&mut rng).unwrap_or(&parents[0]);
                self.crossover(a, b, &mut rng)
            };
            let child = settle(child);
            tries += 1;
            let fresh = !known(&child) && !members.contains(&child);
            if fresh || tries > 2 * max_tries {
                members.insert(child.clone());
                next.push(child);
            }
        }
        next
    }

    /// Each layer's operator gene and channel gene redrawn from the space with probability `mutation`,
    /// and, where the layer allows more than one precision, its precision gene too (a layer that becomes
    /// `skip` is FP32; one that stops being `skip` draws its precision).
    pub fn mutate(&self, parent: &Arch, rng: &mut impl Rng) -> Arch {
        let mut choices = *parent.choices();
        let mut precisions = *parent.precisions();
        for (layer, (slot, precision)) in choices.iter_mut().zip(&mut precisions).enumerate() {
            let allowed = &self.space.layers()[layer];
            let mut op = slot.op();
            let mut scale = (!slot.is_skip()).then(|| slot.scale());
            if rng.random_bool(self.settings.mutation) {
                let ops: Vec<Op> = allowed.ops.iter().copied().collect();
                op = *ops.choose(rng).unwrap_or(&op);
            }
            if scale.is_none() || rng.random_bool(self.settings.mutation) {
                let scales: Vec<u8> = allowed.scales.iter().copied().collect();
                scale = scales.choose(rng).and_then(|&t| Scale::from_tenths(t));
            }
            let was_skip = slot.is_skip();
            *slot = make_choice(op, scale);
            *precision = precision_gene(
                allowed,
                *slot,
                *precision,
                was_skip,
                |rng: &mut _| rng.random_bool(self.settings.mutation),
                rng,
            );
        }
        valid(choices, precisions, parent)
    }

    /// Each layer's operator gene, channel gene and (where the layer allows more than one) precision
    /// gene taken from `b` with probability `crossover`, else from `a`.
    pub fn crossover(&self, a: &Arch, b: &Arch, rng: &mut impl Rng) -> Arch {
        let mut choices = *a.choices();
        let mut precisions = *a.precisions();
        let genes = choices
            .iter_mut()
            .zip(&mut precisions)
            .zip(b.choices().iter().zip(b.precisions()));
        for (layer, ((slot, precision), (other, other_precision))) in genes.enumerate() {
            let allowed = &self.space.layers()[layer];
            let mut op = slot.op();
            let mut scale = (!slot.is_skip()).then(|| slot.scale());
            if rng.random_bool(self.settings.crossover) {
                op = other.op();
            }
            if !other.is_skip() && (scale.is_none() || rng.random_bool(self.settings.crossover)) {
                scale = Some(other.scale());
            }
            *slot = make_choice(op, scale);
            if allowed.precisions.len() > 1 && rng.random_bool(self.settings.crossover) {
                *precision = *other_precision;
            }
            if slot.is_skip() {
                *precision = Precision::Fp32;
            } else if !allowed.allows(*slot, *precision) {
                *precision = draw_precision(allowed, rng);
            }
        }
        valid(choices, precisions, a)
    }
}

/// A layer's precision gene after its choice became `choice`: FP32 for `skip`; drawn from the layer's
/// precisions when the layer was `skip` before, when `redraw` says so (asked only where the layer
/// allows more than one precision, so an FP32 space draws no extra random numbers), or when the old
/// precision is not allowed; otherwise kept.
fn precision_gene<R: Rng>(
    allowed: &LayerSpace,
    choice: Choice,
    old: Precision,
    was_skip: bool,
    redraw: impl FnOnce(&mut R) -> bool,
    rng: &mut R,
) -> Precision {
    if choice.is_skip() {
        return Precision::Fp32;
    }
    let several = allowed.precisions.len() > 1;
    if was_skip || (several && redraw(rng)) || !allowed.allows(choice, old) {
        return draw_precision(allowed, rng);
    }
    old
}

/// One of the layer's precisions, uniformly (no random number when there is one).
fn draw_precision(allowed: &LayerSpace, rng: &mut impl Rng) -> Precision {
    let options: Vec<Precision> = allowed.precisions.iter().copied().collect();
    match options.len() {
        1 => options[0],
        _ => *options.choose(rng).unwrap_or(&Precision::Fp32),
    }
}

fn make_choice(op: Op, scale: Option<Scale>) -> Choice {
    match op {
        Op::Skip => Choice::SKIP,
        _ => Choice::new(op, scale.unwrap_or(Scale::FULL)),
    }
}

/// Genes come from the space's per-layer sets, which never put `skip` in a stride-2 layer nor INT8 on
/// `skip`, so the architecture is valid; `fallback` guards the impossible case.
fn valid(
    choices: [Choice; NUM_LAYERS],
    precisions: [Precision; NUM_LAYERS],
    fallback: &Arch,
) -> Arch {
    Arch::with_precisions(choices, precisions).unwrap_or_else(|_| fallback.clone())
}

/// The baseline: `evaluations` distinct architectures drawn uniformly from `space` (seeded); returns
/// them in draw order.
pub fn random_search<O: AccuracyOracle>(
    evaluator: &mut Evaluator<O>,
    space: &SearchSpace,
    evaluations: usize,
    seed: u64,
) -> Result<Vec<Candidate>, NasError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut drawn: Vec<Arch> = Vec::with_capacity(evaluations);
    let mut tries = 0;
    while drawn.len() < evaluations {
        let arch = space.sample(&mut rng);
        tries += 1;
        if (evaluator.contains(&arch) || drawn.contains(&arch)) && tries < 100 * evaluations {
            continue;
        }
        drawn.push(arch);
    }
    evaluator.evaluate_all(&drawn)
}
