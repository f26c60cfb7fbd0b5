//! The search over precision: a mixed space's evolution on the committed input-32 table with made-up INT8
//! entries, what mutation and crossover do to the precision gene, and `--precision fastest`.

use std::cell::Cell;
use std::rc::Rc;

use hsconas_devices::{LatencyModel, LatencyTable};
use hsconas_models::{Arch, SearchSpace};

use super::tests::{oracle, small_settings};
use super::*;

/// The committed table with made-up INT8 entries (slower than FP32 in the first 10 layers, faster in the
/// last 10), compiled.
fn mixed_model() -> LatencyModel {
    LatencyModel::from_table(&mixed_table()).expect("complete mixed table")
}

fn mixed_table() -> LatencyTable {
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
    table
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

fn mixed_space() -> SearchSpace {
    use hsconas_vocabulary::Precision;
    SearchSpace::full()
        .with_precisions(&[Precision::Fp32, Precision::Int8].into())
        .expect("valid")
}

/// INT8 entries are 1.5x the FP32 ones in the first 10 layers and 0.6x in the last 10: each layer takes
/// the faster precision, `skip` stays FP32, and the correction's per-stage INT8 term counts.
#[test]
fn fastest_precisions_take_each_layers_faster_entry() {
    use hsconas_devices::Correction;
    use hsconas_vocabulary::Precision;
    use rand::SeedableRng;
    let space = mixed_space();
    let model = mixed_model();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    for _ in 0..20 {
        let arch = space.sample(&mut rng);
        let fast = model.fastest_precisions(&arch, &space);
        assert_eq!(fast.as_fp32(), arch.as_fp32(), "operators and widths kept");
        for (layer, (choice, precision)) in fast.choices().iter().zip(fast.precisions()).enumerate()
        {
            let want = if choice.is_skip() || layer < 10 {
                Precision::Fp32
            } else {
                Precision::Int8
            };
            assert_eq!(*precision, want, "layer {layer} of {fast}");
        }
        assert!(model.predict_ms(&fast) <= model.predict_ms(&arch));
        assert_eq!(model.fastest_precisions(&fast, &space), fast, "settled");
    }
    // INT8 layers of the last stage cost 1 ms more each: they stay FP32 there (0-based layers 16-19).
    let correction = Correction {
        int8_ms_per_stage: [0.0, 0.0, 0.0, 1.0],
        ..Correction::NONE
    };
    let costly = LatencyModel::new(&mixed_table(), correction).expect("complete");
    let arch: Arch = vec!["shuffle3:0.5"; 20]
        .join(",")
        .parse()
        .expect("an architecture");
    let fast = costly.fastest_precisions(&arch, &space);
    assert_eq!(fast.int8_layers(), (10..=15).collect::<Vec<usize>>());
    // A space that allows FP32 only leaves precisions alone, even where INT8 is predicted faster.
    let late_int8: Arch = (0..20)
        .map(|l| {
            if l >= 16 {
                "shuffle3:0.5@int8"
            } else {
                "shuffle3:0.5"
            }
        })
        .collect::<Vec<_>>()
        .join(",")
        .parse()
        .expect("an architecture");
    assert_eq!(
        model.fastest_precisions(&late_int8, &SearchSpace::full()),
        late_int8
    );
    assert_eq!(model.fastest_precisions(&arch, &SearchSpace::full()), arch);
}

/// `--precision fastest`: every candidate the evolution evaluates is settled at its faster precisions.
#[test]
fn a_fastest_precision_search_evaluates_settled_candidates_only() {
    let space = mixed_space();
    let model = mixed_model();
    let objective = Objective::new(2.0, -0.5, ObjectiveMode::Penalty).expect("objective");
    let calls = Rc::new(Cell::new(0));
    let mut eval = Evaluator::new(oracle(calls), mixed_model(), objective);
    let settings = EvolutionSettings {
        fastest_precision: true,
        ..small_settings(4)
    };
    let mut evo = Evolution::new(settings, space.clone()).expect("settings");
    while !evo.is_done() {
        evo.step(&mut eval).expect("step");
    }
    for c in eval.evaluated() {
        assert_eq!(
            model.fastest_precisions(&c.arch, &space),
            c.arch,
            "{}",
            c.arch
        );
        space.check(&c.arch).expect("inside the space");
    }
    assert!(eval
        .evaluated()
        .iter()
        .any(|c| !c.arch.int8_layers().is_empty()));
}
