//! A budget's search through the driver (`--mode constraint`), on the committed `local-cpu` input-32
//! table: the uniform scalings seeded, the winner at or under T, a model that over-predicts the device
//! corrected; and `--refine`, with a host whose trainings reach more than the built-in predictor says (by
//! an amount that depends on the architecture), so the refit has something to learn; interrupted
//! trainings and an interrupted search after the refit resume.

use std::path::Path;

use hsconas_devices::{LatencyTable, NetworkSample};
use hsconas_models::{Arch, Op, SearchSpace};

use crate::predictor::Predictor;
use crate::tests::{committed_table, driver_settings, test_driver, SlowDeviceHost};
use crate::*;

/// Answers accuracies with a predictor (the built-in one until the search hands it another), trains by
/// a known rule and measures at the table's own speed.
struct TrainingHost {
    predictor: Predictor,
    /// Measures (at `device.speed` times the table).
    device: SlowDeviceHost,
    trained: Vec<Arch>,
    adopted: usize,
    /// Fail the training with this index (0-based, over this host's trainings).
    fail_training_at: Option<usize>,
    /// Fail every measurement once a predictor was adopted.
    fail_measuring_after_adoption: bool,
}

impl TrainingHost {
    fn new(table: &LatencyTable) -> TrainingHost {
        let mut device = SlowDeviceHost::new(table);
        device.speed = 1.0;
        TrainingHost {
            predictor: Predictor::built_in().expect("built-in predictor"),
            device,
            trained: Vec::new(),
            adopted: 0,
            fail_training_at: None,
            fail_measuring_after_adoption: false,
        }
    }
}

/// What a training reaches, percent: the built-in prediction plus 6 points, plus 4 per `shuffle7`
/// layer's share (a recipe under which the big kernels pay more than the built-in model knows).
fn trained_top1(arch: &Arch) -> f64 {
    let built_in = Predictor::built_in().expect("built-in predictor");
    let shuffle7 = arch
        .choices()
        .iter()
        .filter(|c| c.op() == Op::Shuffle7)
        .count() as f64
        / arch.choices().len() as f64;
    built_in.predict(arch).expect("prediction") + 6.0 + 4.0 * shuffle7
}

impl SearchHost for TrainingHost {
    fn accuracy(&mut self, arch: &Arch) -> Result<f64, OracleError> {
        Ok((self.predictor.predict(arch)? / 100.0).clamp(0.0, 1.0))
    }

    fn finetune(&mut self, _space: &SearchSpace, _stage: usize) -> Result<(), OracleError> {
        Ok(())
    }

    fn measure(&mut self, archs: &[Arch], round: usize) -> Result<Vec<NetworkSample>, OracleError> {
        if self.fail_measuring_after_adoption && self.adopted > 0 {
            return Err("the device went away".into());
        }
        self.device.measure(archs, round)
    }

    fn train_accuracy(&mut self, arch: &Arch) -> Result<f64, OracleError> {
        if self.fail_training_at == Some(self.trained.len()) {
            self.fail_training_at = None;
            return Err("killed while training".into());
        }
        self.trained.push(arch.clone());
        Ok(trained_top1(arch) / 100.0)
    }

    fn adopt_predictor(&mut self, predictor: &Predictor) -> Result<(), OracleError> {
        self.predictor = predictor.clone();
        self.adopted += 1;
        Ok(())
    }
}

fn driver<'t>(table: &'t LatencyTable, out: &Path) -> SearchDriver<'t> {
    SearchDriver {
        table,
        correction: CorrectionSettings {
            remeasure: 3,
            tolerance: 0.03,
            tie_margin: 0.0,
            front_remeasure: 0,
            max_rounds: 2,
            extra_generations: 2,
        },
        random_baseline: false,
        out: out.to_path_buf(),
        show_progress: false,
    }
}

fn settings(k: usize) -> SearchSettings {
    SearchSettings {
        supernet: None,
        table: "table.json".into(),
        objective: Objective::new(0.7, -0.5, ObjectiveMode::Constraint).expect("objective"),
        stages: Vec::new(),
        shrink_samples: 2,
        evolution: EvolutionSettings {
            population: 30,
            generations: 6,
            parents: 10,
            seed: 3,
            ..EvolutionSettings::default()
        },
        finetune_epochs: 0,
        finetune_lr: 0.01,
        data: "data/cifar10-sample.tar.gz".into(),
        eval_images: 0,
        bn_batches: 1,
        rerank: 0,
        estimator: Estimator::Predictor,
        predictor: None,
        predicted_top1: true,
        refine: Some(RefineSettings {
            candidates: k,
            recipe: "epochs=1 test".into(),
        }),
        precisions: crate::report::fp32_only(),
    }
}

/// The K best candidates meeting T are trained once each across a kill in the middle of the trainings;
/// the refit learns the recipe's shift (its held-out error far under the built-in model's), is written
/// as a predictor file recording the recipe and its prior, and every candidate is scored with it (the
/// trained ones with their trained accuracy) while the evolution goes on.
#[test]
fn refinement_trains_the_best_meeting_t_refits_and_resumes() {
    let table = committed_table();
    let dir = tempfile::tempdir().expect("temp dir");
    let driver = driver(&table, dir.path());
    let state_file = driver::state_path(dir.path());
    let mut host = TrainingHost::new(&table);
    host.fail_training_at = Some(2);
    let state = SearchState::load_or_start(&state_file, false, &settings(4)).expect("start");
    let err = driver
        .run(state, &mut host)
        .err()
        .expect("the third training is killed");
    assert!(matches!(err, NasError::Host { .. }), "{err}");
    assert_eq!(host.trained.len(), 2);

    let state = SearchState::load_or_start(&state_file, true, &settings(4)).expect("resume");
    assert_eq!(
        state.refined.len(),
        2,
        "the finished trainings are in the state"
    );
    let report = driver.run(state, &mut host).expect("search").report;
    let refinement = report.refinement.as_ref().expect("a refinement");
    assert!(refinement.skipped.is_none(), "{refinement:?}");
    assert_eq!(refinement.refined.len(), 4);
    assert_eq!(host.trained.len(), 4, "no candidate trained twice");
    let trained: Vec<&Arch> = refinement.refined.iter().map(|r| &r.arch).collect();
    assert_eq!(host.trained.iter().collect::<Vec<_>>(), trained);
    for r in &refinement.refined {
        assert!(r.measured_ms <= 0.7, "trained candidates meet T: {r:?}");
        assert!((r.trained * 100.0 - trained_top1(&r.arch)).abs() < 1e-9);
        let c = report
            .candidates
            .iter()
            .find(|c| c.arch == r.arch)
            .expect("a candidate");
        assert_eq!(
            c.accuracy, r.trained,
            "a trained candidate keeps its trained accuracy"
        );
    }
    let before = refinement.rmse_before.expect("error before");
    let after = refinement.rmse_after_held_out.expect("error after");
    assert!(
        before > 5.0,
        "the built-in model misses the recipe's shift: {before}"
    );
    assert!(
        after < 2.0,
        "the refit learns it, held out: {after} (before {before})"
    );
    assert_eq!(host.adopted, 1);
    let file = refinement
        .predictor_file
        .as_ref()
        .expect("a predictor file");
    let refit = Predictor::load(file).expect("a predictor file");
    let fitted_on = refit.fitted_on.as_ref().expect("what it was fitted on");
    assert_eq!(fitted_on.recipe, "epochs=1 test");
    assert_eq!(fitted_on.trainings, 4);
    assert!(
        refit.prior.is_some(),
        "a correction of the predictor in use"
    );
    // Untrained candidates are scored with the refit.
    let untrained = report
        .candidates
        .iter()
        .find(|c| !trained.contains(&&c.arch))
        .expect("an untrained candidate");
    let expected = (refit.predict(&untrained.arch).expect("prediction") / 100.0).clamp(0.0, 1.0);
    assert!((untrained.accuracy - expected).abs() < 1e-12);
    assert!(
        report.generations.len() > 6,
        "the evolution went on after the refit: {} generations",
        report.generations.len()
    );
}

/// Killed after the refit: the resumed search takes the refitted predictor from its file and trains
/// nothing again.
#[test]
fn a_search_resumed_after_its_refit_uses_the_refit() {
    let table = committed_table();
    let dir = tempfile::tempdir().expect("temp dir");
    let driver = driver(&table, dir.path());
    let state_file = driver::state_path(dir.path());
    let mut host = TrainingHost::new(&table);
    host.fail_measuring_after_adoption = true;
    let state = SearchState::load_or_start(&state_file, false, &settings(4)).expect("start");
    driver
        .run(state, &mut host)
        .err()
        .expect("measuring after the refit fails");
    assert_eq!(host.trained.len(), 4);

    let mut resumed = TrainingHost::new(&table);
    let state = SearchState::load_or_start(&state_file, true, &settings(4)).expect("resume");
    let report = driver.run(state, &mut resumed).expect("search").report;
    assert!(resumed.trained.is_empty(), "nothing trained again");
    assert_eq!(resumed.adopted, 1, "the refit read back from its file");
    assert_eq!(report.refinement.expect("refinement").refined.len(), 4);
}

/// A device three times slower than its table, with no correction round: nothing measured meets T, so
/// nothing is trained and the report says why.
#[test]
fn refinement_is_skipped_with_its_reason_when_too_few_candidates_meet_t() {
    let table = committed_table();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut driver = driver(&table, dir.path());
    driver.correction.max_rounds = 0;
    let mut host = TrainingHost::new(&table);
    host.device.speed = 3.0;
    let state = SearchState::load_or_start(&driver::state_path(dir.path()), false, &settings(4))
        .expect("start");
    let report = driver.run(state, &mut host).expect("search").report;
    assert!(host.trained.is_empty());
    let refinement = report.refinement.expect("a refinement record");
    let reason = refinement.skipped.expect("skipped");
    assert!(reason.contains("meet T"), "{reason}");
    assert!(refinement.predictor_file.is_none());
}

/// Refused before anything runs: fewer than 4 candidates, or no re-measurement to find who meets T.
#[test]
fn refinement_settings_are_checked() {
    let few = RefineSettings {
        candidates: 3,
        recipe: String::new(),
    };
    let err = few.validate().expect_err("3 candidates");
    assert!(err.to_string().contains("4 or more"), "{err}");
    let table = committed_table();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut driver = driver(&table, dir.path());
    driver.correction.remeasure = 0;
    let state = SearchState::load_or_start(&driver::state_path(dir.path()), false, &settings(4))
        .expect("start");
    let err = driver
        .run(state, &mut TrainingHost::new(&table))
        .err()
        .expect("no re-measurement");
    assert!(err.to_string().contains("--remeasure"), "{err}");
}

/// A budget's search (`--mode constraint`): the uniform channel scalings are among the candidates from
/// the first generation on, the winner measures at or under T, and the report's own candidates give the
/// same winner under its tie margin.
#[test]
fn a_constraint_search_starts_from_the_uniform_scalings_and_ends_at_or_under_t() {
    let table = committed_table();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut driver = test_driver(&table, dir.path());
    driver.correction.tie_margin = 0.01;
    let mut settings = driver_settings();
    settings.objective = Objective::new(1.0, -0.5, ObjectiveMode::Constraint).expect("objective");
    settings.stages = Vec::new();
    let mut host = SlowDeviceHost::new(&table);
    let state = SearchState::load_or_start(&driver::state_path(dir.path()), false, &settings)
        .expect("start");
    let report = driver.run(state, &mut host).expect("search").report;
    let first = &report.generations[0];
    assert_eq!(first.generation, 0);
    for uniform in crate::evolution::uniform_scalings() {
        assert!(
            report.candidates.iter().any(|c| c.arch == uniform),
            "{uniform} was evaluated"
        );
    }
    let winner = report.winner.as_ref().expect("a winner");
    assert_eq!(winner.reason, WinnerReason::WithinTolerance, "{winner:?}");
    assert!(winner.measured_ms.expect("measured") <= 1.0, "{winner:?}");
    assert_eq!(winner.tie_margin, Some(0.01));
    assert_eq!(
        report.rechoose_winner().map(|c| c.candidate.arch),
        Some(winner.arch.clone())
    );
    // The predicted front at or near T was measured after the search, and the measured front is
    // reported with measured latencies.
    let front: Vec<&Remeasured> = report.remeasured.iter().filter(|r| r.front).collect();
    assert!(
        (1..=4).contains(&front.len()),
        "{} front members measured",
        front.len()
    );
    for r in &front {
        assert!(
            r.predicted_ms <= 1.03,
            "only members predicted near T: {r:?}"
        );
    }
    assert!(!report.measured_front.is_empty());
    for c in &report.measured_front {
        assert_eq!(Some(c.latency_ms), c.measured_ms, "{}", c.arch);
    }
    let fronts = report.measured_front.windows(2);
    assert!(fronts
        .into_iter()
        .all(|w| w[0].latency_ms <= w[1].latency_ms && w[0].accuracy < w[1].accuracy));
}

/// A device at 0.6 times its table under a 0.5 ms budget: every re-measured candidate meets T, but the
/// model over-predicts by far more than the tolerance, so the search corrects it and searches on, and
/// the winner then uses more of the budget than without the correction.
#[test]
fn a_budget_search_corrects_a_model_that_over_predicts_the_device() {
    let table = committed_table();
    let run = |max_rounds: usize| {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut driver = test_driver(&table, dir.path());
        driver.correction.max_rounds = max_rounds;
        driver.correction.front_remeasure = 0;
        let mut settings = driver_settings();
        settings.objective =
            Objective::new(0.5, -0.5, ObjectiveMode::Constraint).expect("objective");
        settings.stages = Vec::new();
        let mut host = SlowDeviceHost::new(&table);
        host.speed = 0.6;
        let state = SearchState::load_or_start(&driver::state_path(dir.path()), false, &settings)
            .expect("start");
        driver.run(state, &mut host).expect("search").report
    };
    let uncorrected = run(0);
    assert_eq!(uncorrected.correction_rounds, 0);
    let corrected = run(2);
    assert!(corrected.correction_rounds >= 1, "the model was corrected");
    let last = crate::winner::overprediction(&corrected.remeasured, corrected.correction_rounds)
        .expect("measured in the last round");
    assert!(
        last.abs() <= 0.03,
        "the corrected model predicts the device: {last}"
    );
    let measured = |r: &SearchReport| {
        let w = r.winner.as_ref().expect("a winner");
        assert_eq!(w.reason, WinnerReason::WithinTolerance, "{w:?}");
        w.measured_ms.expect("measured")
    };
    let (before, after) = (measured(&uncorrected), measured(&corrected));
    assert!(after <= 0.5, "{after}");
    assert!(
        after > before + 0.05,
        "the corrected search uses more of the budget: {after} ms against {before} ms"
    );
}
