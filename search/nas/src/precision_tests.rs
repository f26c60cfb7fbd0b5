//! The search over precision: a mixed space's evolution on the committed input-32 table with made-up INT8
//! entries, and what mutation and crossover do to the precision gene.

use std::cell::Cell;
use std::rc::Rc;

use hsconas_devices::{LatencyModel, LatencyTable};
use hsconas_models::{Arch, SearchSpace};

use super::tests::{oracle, small_settings};
use super::*;

/// The committed table with made-up INT8 entries (slower than FP32 in the first 10 layers, faster in the
/// last 10), compiled.
fn mixed_model() -> LatencyModel {
    use hsconas_models::build::{mixed_pieces, Piece};
    use hsconas_vocabulary::{Int8Flavour, Precision, WeightRange};
    let path = hsconas_foundation::package_dir!().join("../../devices/tables/local-cpu-A-32.json");
    let mut table = LatencyTable::load(&path).expect("committed table");
    table.provenance.int8 = Some(hsconas_devices::Int8Pieces {
        flavour: Int8Flavour::Cpu,
        weight_range: WeightRange::Full,
        calibration_inputs: 8,
    });
    for piece in mixed_pieces() {
        if let Piece::Block {
            layer,
            precision: Precision::Int8,
            ..
        } = piece
        {
            let mut entry = table.entries[&piece.as_fp32().key()].clone();
            let factor = if layer < 10 { 1.5 } else { 0.6 };
            entry.stats.p10_ms *= factor;
            entry.stats.median_ms *= factor;
            entry.stats.min_ms *= factor;
            table.entries.insert(piece.key(), entry);
        }
    }
    LatencyModel::from_table(&table).expect("complete mixed table")
}

#[test]
fn a_mixed_search_evolves_precision_and_asks_the_oracle_once_per_network() {
    use hsconas_vocabulary::Precision;
    let space = SearchSpace::full()
        .with_precisions(&[Precision::Fp32, Precision::Int8].into())
        .expect("valid");
    let calls = Rc::new(Cell::new(0));
    let objective = Objective::new(2.0, -0.5, ObjectiveMode::Penalty).expect("objective");
    let mut eval = Evaluator::new(oracle(calls.clone()), mixed_model(), objective);
    let mut evo = Evolution::new(small_settings(4), space.clone()).expect("settings");
    while !evo.is_done() {
        for arch in &evo.population {
            space
                .check(arch)
                .expect("every candidate inside the mixed space");
        }
        evo.step(&mut eval).expect("step");
    }
    let evaluated = eval.evaluated();
    let int8: usize = evaluated.iter().map(|c| c.arch.int8_layers().len()).sum();
    let blocks: usize = evaluated
        .iter()
        .map(|c| c.arch.choices().iter().filter(|c| !c.is_skip()).count())
        .sum();
    assert!(
        int8 > blocks / 4 && int8 < 3 * blocks / 4,
        "{int8} INT8 layers of {blocks}"
    );
    // Children of the same parents: some candidates differ only in precision; the oracle estimates the
    // FP32 network, once.
    let networks: std::collections::HashSet<Arch> =
        evaluated.iter().map(|c| c.arch.as_fp32()).collect();
    assert_eq!(calls.get(), networks.len());
    assert!(
        networks.len() < evaluated.len(),
        "precision variants evaluated"
    );
    for c in evaluated {
        let twin = evaluated
            .iter()
            .find(|d| d.arch.as_fp32() == c.arch.as_fp32());
        assert_eq!(twin.map(|d| d.accuracy), Some(c.accuracy));
    }
    // Mutation and crossover keep an FP32 space FP32.
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let fp32 = Evolution::new(small_settings(4), SearchSpace::full()).expect("settings");
    let (a, b) = (&fp32.population[0], &fp32.population[1]);
    for _ in 0..50 {
        assert!(fp32.mutate(a, &mut rng).is_fp32());
        assert!(fp32.crossover(a, b, &mut rng).is_fp32());
    }
    // ... and a mixed one moves precisions.
    let mixed = Evolution::new(small_settings(4), space).expect("settings");
    let parent = &mixed.population[0];
    let changed = (0..50)
        .filter(|_| mixed.mutate(parent, &mut rng).precisions() != parent.precisions())
        .count();
    assert!(changed > 25, "{changed} of 50 mutants changed a precision");
}
