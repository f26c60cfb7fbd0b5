//! Search algorithm tests on the committed `local-cpu` input-32 latency table, with an accuracy oracle
//! whose optimum is known (the algorithms are under test, not the supernet).

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;

use hsconas_devices::{LatencyModel, LatencyTable};
use hsconas_models::{Arch, LayerSpace, Op, SearchSpace, NUM_LAYERS};

use super::*;

pub(crate) fn model() -> LatencyModel {
    let path = hsconas_foundation::package_dir!().join("../../devices/tables/local-cpu-A-32.json");
    let table = LatencyTable::load(&path).expect("committed table");
    LatencyModel::from_table(&table).expect("complete table")
}

/// Wider is more accurate; `shuffle5` is the best operator, `skip` the worst. Counts its calls.
pub(crate) fn oracle(
    calls: Rc<Cell<usize>>,
) -> impl FnMut(&Arch) -> Result<f64, crate::OracleError> {
    move |arch: &Arch| {
        calls.set(calls.get() + 1);
        let total: f64 = arch
            .choices()
            .iter()
            .map(|c| match c.op() {
                Op::Skip => 0.3,
                Op::Shuffle5 => c.scale().value(),
                _ => 0.8 * c.scale().value(),
            })
            .sum();
        Ok(total / NUM_LAYERS as f64)
    }
}

pub(crate) fn evaluator(
    target_ms: f64,
    calls: Rc<Cell<usize>>,
) -> Evaluator<impl FnMut(&Arch) -> Result<f64, crate::OracleError>> {
    let objective = Objective::new(target_ms, -0.5, ObjectiveMode::Penalty).expect("objective");
    Evaluator::new(oracle(calls), model(), objective)
}

pub(crate) fn small_settings(seed: u64) -> EvolutionSettings {
    EvolutionSettings {
        population: 16,
        generations: 6,
        parents: 6,
        seed,
        ..EvolutionSettings::default()
    }
}

fn run(settings: EvolutionSettings, space: SearchSpace) -> (Evolution, Vec<Candidate>, usize) {
    let calls = Rc::new(Cell::new(0));
    let mut eval = evaluator(3.0, calls.clone());
    let mut evo = Evolution::new(settings, space).expect("settings");
    while !evo.is_done() {
        evo.step(&mut eval).expect("step");
    }
    (evo, eval.evaluated().to_vec(), calls.get())
}

#[test]
fn evolution_keeps_its_invariants() {
    let mut space = SearchSpace::full();
    let only = LayerSpace {
        ops: [Op::Shuffle7, Op::Xception].into(),
        scales: [2, 5, 9].into(),
        precisions: [hsconas_vocabulary::Precision::Fp32].into(),
    };
    space.set_layer(19, only.clone()).expect("valid");
    let calls = Rc::new(Cell::new(0));
    let mut eval = evaluator(3.0, calls.clone());
    let mut evo = Evolution::new(small_settings(4), space.clone()).expect("settings");
    while !evo.is_done() {
        assert_eq!(evo.population.len(), 16, "population size kept");
        let distinct: std::collections::HashSet<_> = evo.population.iter().collect();
        assert_eq!(distinct.len(), 16, "no duplicate in a population");
        for arch in &evo.population {
            space.check(arch).expect("every candidate inside the space");
            Arch::new(*arch.choices()).expect("valid");
        }
        evo.step(&mut eval).expect("step");
    }
    assert_eq!(evo.history.len(), 6);
    // The parents come back every generation: cache hits, never a second oracle call.
    assert_eq!(calls.get(), eval.evaluated().len());
    assert!(eval.cache_hits() >= 5 * 6, "{} hits", eval.cache_hits());
    // Elitism: the best F never gets worse.
    for w in evo.history.windows(2) {
        assert!(w[1].best_score >= w[0].best_score);
    }
}

#[test]
fn evolution_is_reproducible_and_resumes_exactly() {
    let (a, ca, _) = run(small_settings(9), SearchSpace::full());
    let (b, cb, _) = run(small_settings(9), SearchSpace::full());
    assert_eq!(a, b);
    assert_eq!(ca, cb);
    let (c, _, _) = run(small_settings(10), SearchSpace::full());
    assert_ne!(a.history, c.history);

    // Interrupted after three generations: state and evaluated candidates through JSON, then continued.
    let calls = Rc::new(Cell::new(0));
    let mut eval = evaluator(3.0, calls.clone());
    let mut evo = Evolution::new(small_settings(9), SearchSpace::full()).expect("settings");
    for _ in 0..3 {
        evo.step(&mut eval).expect("step");
    }
    let state = serde_json::to_string(&evo).expect("json");
    let cache = serde_json::to_string(eval.evaluated()).expect("json");
    drop((evo, eval));
    let mut evo: Evolution = serde_json::from_str(&state).expect("state");
    let mut eval = evaluator(3.0, Rc::new(Cell::new(0)));
    eval.restore(serde_json::from_str::<Vec<Candidate>>(&cache).expect("cache"));
    while !evo.is_done() {
        evo.step(&mut eval).expect("step");
    }
    assert_eq!(evo, a);
    assert_eq!(eval.evaluated(), ca.as_slice());
}

#[test]
fn evolution_beats_random_search_with_the_same_budget() {
    let mut wins = 0;
    for seed in 0..4 {
        let settings = EvolutionSettings {
            population: 20,
            generations: 8,
            parents: 8,
            seed,
            ..EvolutionSettings::default()
        };
        let (_, evaluated, _) = run(settings, SearchSpace::full());
        let best_ea = evaluated.iter().map(|c| c.score).fold(f64::MIN, f64::max);
        let mut eval = evaluator(3.0, Rc::new(Cell::new(0)));
        let random = random_search(&mut eval, &SearchSpace::full(), evaluated.len(), seed)
            .expect("random search");
        assert_eq!(random.len(), evaluated.len());
        let best_random = random.iter().map(|c| c.score).fold(f64::MIN, f64::max);
        wins += usize::from(best_ea > best_random);
    }
    assert_eq!(wins, 4, "EA should beat random search for every seed");
}

#[test]
fn shrinking_keeps_the_operator_with_the_best_quality() {
    let calls = Rc::new(Cell::new(0));
    // A target no network reaches keeps the latency term from deciding: accuracy decides.
    let mut eval = Evaluator::new(
        oracle(calls.clone()),
        model(),
        Objective::new(1000.0, -1e-6, ObjectiveMode::Penalty).expect("objective"),
    );
    let mut space = SearchSpace::full();
    let mut ticks = 0;
    let decision = shrink_layer(&mut space, 19, 30, 1, &mut eval, || ticks += 1).expect("shrink");
    assert_eq!(decision.chosen, Op::Shuffle5);
    assert_eq!(ticks, 30 * 5, "five operators in a stride-1 layer");
    assert_eq!(decision.qualities.len(), 5);
    let best = decision
        .qualities
        .iter()
        .map(|q| q.q)
        .fold(f64::MIN, f64::max);
    assert_eq!(
        decision
            .qualities
            .iter()
            .find(|q| q.op == Op::Shuffle5)
            .map(|q| q.q),
        Some(best)
    );
    assert_eq!(space.layers()[19].ops, [Op::Shuffle5].into());
    assert!(decision.log10_size_after < decision.log10_size_before);
    assert!(
        (decision.log10_size_before - decision.log10_size_after - (41f64 / 10.0).log10()).abs()
            < 1e-9
    );
    // The next layer is scored with layer 20 already fixed.
    let next = shrink_layer(&mut space, 18, 10, 1, &mut eval, || {}).expect("shrink");
    assert_eq!(next.chosen, Op::Shuffle5);
    assert!(shrink_layer(&mut space, 25, 10, 1, &mut eval, || {}).is_err());
}

#[test]
fn a_strong_penalty_finds_networks_near_the_target() {
    let m = model();
    // A typical network's latency: the median of 101 uniformly drawn ones.
    let target = {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut lat: Vec<f64> = (0..101)
            .map(|_| m.predict_ms(&SearchSpace::full().sample(&mut rng)))
            .collect();
        lat.sort_by(f64::total_cmp);
        lat[50]
    };
    let calls = Rc::new(Cell::new(0));
    let objective = Objective::new(target, -5.0, ObjectiveMode::Penalty).expect("objective");
    let mut eval = Evaluator::new(oracle(calls), m, objective);
    let mut evo = Evolution::new(small_settings(3), SearchSpace::full()).expect("settings");
    while !evo.is_done() {
        evo.step(&mut eval).expect("step");
    }
    let best = eval.best().expect("evaluated");
    assert!(
        (best.latency_ms / target - 1.0).abs() < 0.05,
        "{} ms for a {target} ms target",
        best.latency_ms
    );
}

/// A host whose device is 5% slower than the table's sums, whose accuracies follow [`oracle`], which
/// records its fine-tunings and fails its measurements while `fail_measuring` is set.
pub(crate) struct SlowDeviceHost {
    table_model: LatencyModel,
    accuracy_calls: Rc<Cell<usize>>,
    finetuned: Vec<usize>,
    measured: Vec<Arch>,
    fail_measuring: bool,
    /// Architectures given to the re-ranking estimator, in order.
    reranked: Vec<Arch>,
    /// The re-ranking estimator fails once this many have been re-ranked.
    fail_rerank_at: Option<usize>,
    /// What the device measures, as a multiple of the table sum (1.05: slower than the table says).
    pub(crate) speed: f64,
}

impl driver::SearchHost for SlowDeviceHost {
    fn accuracy(&mut self, arch: &Arch) -> Result<f64, crate::OracleError> {
        oracle(self.accuracy_calls.clone())(arch)
    }

    fn finetune(&mut self, _space: &SearchSpace, stage: usize) -> Result<(), crate::OracleError> {
        self.finetuned.push(stage);
        Ok(())
    }

    /// An estimator that disagrees with the supernet: the reverse of its accuracies.
    fn rerank_accuracy(&mut self, arch: &Arch) -> Result<f64, crate::OracleError> {
        if self.fail_rerank_at == Some(self.reranked.len()) {
            return Err("interrupted".into());
        }
        self.reranked.push(arch.clone());
        Ok(1.0 - oracle(Rc::new(Cell::new(0)))(arch)?)
    }

    fn measure(
        &mut self,
        archs: &[Arch],
        _round: usize,
    ) -> Result<Vec<hsconas_devices::NetworkSample>, crate::OracleError> {
        if self.fail_measuring {
            return Err("the device went away".into());
        }
        self.measured.extend(archs.iter().cloned());
        Ok(archs
            .iter()
            .map(|arch| {
                let table_sum_ms = self.table_model.table_sum_ms(arch);
                hsconas_devices::NetworkSample {
                    arch: arch.clone(),
                    measured_ms: self.speed * table_sum_ms,
                    table_sum_ms,
                    raw_ms: None,
                    group: None,
                }
            })
            .collect())
    }
}

impl SlowDeviceHost {
    /// A host for `table` that measures, fine-tunes and re-ranks without failing.
    pub(crate) fn new(table: &LatencyTable) -> SlowDeviceHost {
        SlowDeviceHost {
            table_model: LatencyModel::from_table(table).expect("complete"),
            accuracy_calls: Rc::new(Cell::new(0)),
            finetuned: Vec::new(),
            measured: Vec::new(),
            fail_measuring: false,
            reranked: Vec::new(),
            fail_rerank_at: None,
            speed: 1.05,
        }
    }
}

/// The committed latency table of this machine at input 32.
pub(crate) fn committed_table() -> LatencyTable {
    let path = hsconas_foundation::package_dir!().join("../../devices/tables/local-cpu-A-32.json");
    LatencyTable::load(&path).expect("committed table")
}

/// A driver writing into `out`: 2 re-measured per round, ±3%, at most 4 rounds of 2 generations.
pub(crate) fn test_driver<'t>(table: &'t LatencyTable, out: &Path) -> SearchDriver<'t> {
    SearchDriver {
        table,
        correction: CorrectionSettings {
            remeasure: 2,
            tolerance: 0.03,
            tie_margin: 0.0,
            front_remeasure: 4,
            max_rounds: 4,
            extra_generations: 2,
        },
        random_baseline: false,
        out: out.to_path_buf(),
        show_progress: false,
    }
}

pub(crate) fn driver_settings() -> SearchSettings {
    SearchSettings {
        supernet: Some("supernet.safetensors".into()),
        table: "table.json".into(),
        objective: Objective::new(1.0, -0.5, ObjectiveMode::Penalty).expect("objective"),
        stages: vec![vec![19], vec![18]],
        shrink_samples: 2,
        evolution: EvolutionSettings {
            population: 10,
            generations: 3,
            parents: 4,
            seed: 5,
            ..EvolutionSettings::default()
        },
        finetune_epochs: 1,
        finetune_lr: 0.01,
        data: "data".into(),
        eval_images: 0,
        bn_batches: 1,
        rerank: 0,
        estimator: crate::Estimator::Supernet,
        predictor: None,
        predicted_top1: false,
        refine: None,
        precisions: crate::report::fp32_only(),
    }
}

/// The whole search through the driver: both stages shrunk and fine-tuned, the first re-measurement
/// misses (the device is slower than the table says), the model is corrected with the measurements and
/// the search goes on until a measured candidate is within the tolerance; an interrupted search resumes
/// from its state without evaluating again what it had.
#[test]
fn the_driver_shrinks_corrects_and_resumes() {
    let table = committed_table();
    let dir = tempfile::tempdir().expect("temp dir");
    let driver = test_driver(&table, dir.path());
    let state_file = driver::state_path(dir.path());
    let mut host = SlowDeviceHost::new(&table);
    host.fail_measuring = true;
    let state = SearchState::load_or_start(&state_file, false, &driver_settings()).expect("start");
    let err = driver.run(state, &mut host).err().expect("measuring fails");
    assert!(matches!(err, NasError::Host { .. }), "{err}");
    assert_eq!(host.finetuned, vec![1, 2], "fine-tuned after each stage");
    let before = host.accuracy_calls.get();

    host.fail_measuring = false;
    let state = SearchState::load_or_start(&state_file, true, &driver_settings()).expect("resume");
    assert_eq!(state.decisions.len(), 2);
    assert!(state.evolution.as_ref().is_some_and(|e| e.is_done()));
    let restored = state.candidates.len();
    assert!(restored > 0);
    let outcome = driver.run(state, &mut host).expect("search");
    assert_eq!(host.finetuned, vec![1, 2], "no fine-tuning again");
    let report = outcome.report;
    assert_eq!(
        host.accuracy_calls.get() - before,
        report.evaluations - restored,
        "resumed: only the candidates of the extra generations are new"
    );
    assert!(report.correction_rounds >= 1, "the first measurements miss");
    let error_in = |round: usize| {
        let errors: Vec<f64> = report
            .remeasured
            .iter()
            .filter(|r| r.round == round)
            .map(|r| (r.predicted_ms / r.measured_ms - 1.0).abs())
            .collect();
        errors.iter().sum::<f64>() / errors.len() as f64
    };
    assert!(
        error_in(report.correction_rounds) < error_in(0),
        "the corrected model predicts the device better: {} vs {}",
        error_in(report.correction_rounds),
        error_in(0)
    );
    let winner = report.winner.as_ref().expect("a winner");
    assert_eq!(winner.reason, WinnerReason::WithinTolerance, "{winner:?}");
    let measured = winner.measured_ms.expect("measured");
    assert!((measured / 1.0 - 1.0).abs() <= 0.03, "{measured} ms");
    assert!(host.measured.contains(&winner.arch));
    assert_eq!(report.remeasured.len(), host.measured.len());
    assert!(report.random_baseline.is_none());
    assert!(
        !state_file.exists(),
        "the state is removed with the report written"
    );
    let written = SearchReport::load(&dir.path().join("search.json")).expect("report");
    assert_eq!(written.winner, report.winner);
    assert!(dir.path().join("space.json").exists());
}

/// A device running at 0.8 times its table's state (a shared machine on a fast day, or another machine of
/// the same kind): the first re-measurements miss T by about 20%, and the correction takes its level from
/// them, so the search meets T within the default two rounds (refitting the table's 50 calibration
/// samples with the few re-measured ones moved the predictions too little: 12% from T after two rounds on
/// a real device, docs/accuracy-estimators.md).
#[test]
fn the_correction_follows_a_device_faster_than_its_table() {
    let table = committed_table();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut driver = test_driver(&table, dir.path());
    driver.correction.max_rounds = 2;
    driver.correction.remeasure = 3;
    let mut host = SlowDeviceHost::new(&table);
    host.speed = 0.8;
    let state =
        SearchState::load_or_start(&driver::state_path(dir.path()), false, &driver_settings())
            .expect("start");
    let report = driver.run(state, &mut host).expect("search").report;
    let first = report.remeasured.iter().filter(|r| r.round == 0);
    assert!(
        first.clone().all(|r| r.measured_ms < 0.97),
        "the first re-measurements miss T = 1 ms"
    );
    assert!(report.correction_rounds >= 1 && report.correction_rounds <= 2);
    let winner = report.winner.as_ref().expect("a winner");
    assert_eq!(winner.reason, WinnerReason::WithinTolerance, "{winner:?}");
    assert!((winner.measured_ms.expect("measured") - 1.0).abs() <= 0.03);
    // The corrected model predicts this device: the last round's predictions are its measurements
    // (within what the table's own correction bends them by between networks of nearly one latency).
    for r in report
        .remeasured
        .iter()
        .filter(|r| r.round == report.correction_rounds)
    {
        assert!((r.predicted_ms / r.measured_ms - 1.0).abs() < 0.02, "{r:?}");
    }
}

/// `--rerank K`: the K best candidates by supernet `F` get the expensive estimator (here one that
/// reverses the supernet's ranking), each once even across an interruption and correction rounds; only
/// re-ranked candidates are re-measured and can win, with their re-ranked accuracy.
#[test]
fn the_driver_reranks_the_best_and_chooses_among_them() {
    let table = committed_table();
    let dir = tempfile::tempdir().expect("temp dir");
    let driver = test_driver(&table, dir.path());
    let settings = SearchSettings {
        stages: Vec::new(),
        finetune_epochs: 0,
        rerank: 4,
        ..driver_settings()
    };
    let state_file = driver::state_path(dir.path());
    let mut host = SlowDeviceHost::new(&table);
    host.fail_rerank_at = Some(2);
    let state = SearchState::load_or_start(&state_file, false, &settings).expect("start");
    let err = driver
        .run(state, &mut host)
        .err()
        .expect("re-ranking fails");
    assert!(matches!(err, NasError::Host { .. }), "{err}");
    assert!(
        host.measured.is_empty(),
        "nothing measured before re-ranking"
    );
    let state = SearchState::load_or_start(&state_file, true, &settings).expect("resume");
    assert_eq!(
        state.reranked.len(),
        2,
        "the two finished re-rankings were saved"
    );

    host.fail_rerank_at = None;
    let report = driver.run(state, &mut host).expect("search").report;
    let mut distinct = host.reranked.clone();
    distinct.sort_by_key(|a| a.to_string());
    distinct.dedup();
    assert_eq!(distinct.len(), host.reranked.len(), "each re-ranked once");
    assert_eq!(report.reranked.len(), host.reranked.len());
    assert!(report.reranked.len() >= 4);
    for r in &report.reranked {
        assert!(
            (r.accuracy - (1.0 - r.supernet_accuracy)).abs() < 1e-12,
            "{r:?}"
        );
    }
    let reranked = |arch: &Arch| report.reranked.iter().find(|r| &r.arch == arch);
    assert!(
        host.measured.iter().all(|a| reranked(a).is_some()),
        "only re-ranked candidates are measured"
    );
    let winner = report.winner.as_ref().expect("a winner");
    let r = reranked(&winner.arch).expect("the winner was re-ranked");
    assert_eq!(
        winner.accuracy, r.accuracy,
        "F of the winner uses the re-ranked accuracy"
    );
    assert!(winner.measured_ms.is_some());
}

/// A `predictor` search checkpointed before its score entered `F` as a predicted top-1 (its candidates'
/// accuracies are percentiles) is refused on resume; a supernet checkpoint, whose file is the same
/// before and after, resumes.
#[test]
fn a_predictor_checkpoint_on_the_percentile_scale_is_not_resumed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("search.partial.json");
    let percentile_era = SearchSettings {
        estimator: crate::Estimator::Predictor,
        supernet: None,
        ..driver_settings()
    };
    let state = SearchState::load_or_start(&path, false, &percentile_era).expect("start");
    let json = serde_json::to_string(&state).expect("json");
    assert!(!json.contains("predicted_top1"), "written as before");
    std::fs::write(&path, &json).expect("write");
    let now = SearchSettings {
        predicted_top1: true,
        ..percentile_era.clone()
    };
    let err = SearchState::load_or_start(&path, true, &now).expect_err("other scale");
    assert!(err.to_string().contains("other settings"), "{err}");
    assert!(err.to_string().contains("percentiles"), "{err}");

    let supernet = driver_settings();
    let state =
        SearchState::load_or_start(&dir.path().join("s.json"), false, &supernet).expect("start");
    std::fs::write(&path, serde_json::to_string(&state).expect("json")).expect("write");
    SearchState::load_or_start(&path, true, &supernet).expect("a supernet checkpoint resumes");
}
