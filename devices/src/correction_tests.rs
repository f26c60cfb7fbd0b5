//! Tests of corrections and calibration (`correction.rs`).

use super::*;

fn arch() -> Arch {
    vec!["shuffle3:0.5"; 20]
        .join(",")
        .parse()
        .expect("an architecture")
}

fn samples(measured: impl Fn(usize, f64) -> f64) -> Vec<NetworkSample> {
    (0..12)
        .map(|i| {
            let sum = 0.5 + 0.05 * i as f64;
            NetworkSample {
                arch: arch(),
                measured_ms: measured(i, sum),
                table_sum_ms: sum,
                raw_ms: None,
                group: None,
            }
        })
        .collect()
}

/// 50 networks whose table sums are right, measured in five groups of ten while the device ran at
/// `drift[group]` times its speed (a drift the reference did not remove), with `noise` relative
/// measurement noise.
fn measured_during_a_drift(drift: [f64; 5], noise: f64) -> Vec<NetworkSample> {
    (0..50)
        .map(|i| {
            let sum = 0.4 + 0.8 * (i as f64 * 0.618_033_988_7).fract();
            let wobble = 1.0 + noise * (i as f64 * 12.9898 + 1.0).sin();
            NetworkSample {
                arch: arch(),
                measured_ms: sum * drift[i / 10] * wobble,
                table_sum_ms: sum,
                raw_ms: None,
                group: Some(i / 10),
            }
        })
        .collect()
}

/// 1% slower in two of five groups, 1.5% noise: B has the lower leave-one-out error (it fits the
/// drift), but not by one standard error, so the right table stays in use.
#[test]
fn a_drift_during_calibration_leaves_a_right_table_uncorrected() {
    let calibration = Calibration::from_samples(
        1,
        50,
        measured_during_a_drift([1.0, 1.0, 1.01, 1.01, 1.0], 0.015),
    );
    let errors = calibration.held_out_rmse.expect("errors kept");
    assert!(errors.bias_ms < errors.none_ms, "{errors:?}");
    assert_eq!(calibration.correction, CorrectionKind::None, "{errors:?}");
    assert_eq!(calibration.active(), Correction::NONE);
}

/// 4% slower in two groups, 0.5% noise: B is clearly better than nothing; the line beats B by less
/// than one standard error, so B is used.
#[test]
fn a_line_ahead_by_noise_gives_way_to_b() {
    let calibration = Calibration::from_samples(
        1,
        50,
        measured_during_a_drift([1.0, 1.0, 1.04, 1.04, 1.0], 0.005),
    );
    let errors = calibration.held_out_rmse.expect("errors kept");
    assert!(errors.linear_ms < errors.bias_ms, "{errors:?}");
    assert_eq!(calibration.correction, CorrectionKind::Bias, "{errors:?}");
}

/// Clear cases: an offset gives B, a scale the line, a table already right on average nothing.
#[test]
fn the_correction_that_predicts_held_out_networks_clearly_better_is_chosen() {
    let offset = Calibration::from_samples(1, 12, samples(|i, s| s + 0.1 + 0.001 * (i % 2) as f64));
    assert_eq!(offset.correction, CorrectionKind::Bias);
    assert!((offset.active().offset_ms - 0.1005).abs() < 1e-9);
    let scaled = Calibration::from_samples(1, 12, samples(|_, s| 1.2 * s - 0.05));
    assert_eq!(scaled.correction, CorrectionKind::Linear);
    // Already right on average: fitting B only adds the noise of the other networks' mean.
    let none = Calibration::from_samples(
        1,
        12,
        samples(|i, s| s + if i % 2 == 0 { 0.01 } else { -0.01 }),
    );
    assert_eq!(none.correction, CorrectionKind::None);
    assert_eq!(none.active(), Correction::NONE);
}

/// 50 networks whose layers are INT8 with probability 0.4 (seeded); each measures its table sum +
/// 0.05 ms + `cost[stage]` per INT8 layer of that stage, with ±`noise` ms of alternating noise.
fn mixed_samples(cost: [f64; STAGES], noise: f64) -> Vec<NetworkSample> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    (0..50)
        .map(|i| {
            let layers: Vec<String> = (0..20)
                .map(|_| {
                    let int8 = rng.random_bool(0.4);
                    format!("shuffle3:0.5{}", if int8 { "@int8" } else { "" })
                })
                .collect();
            let arch: Arch = layers.join(",").parse().expect("an architecture");
            let sum = 0.4 + 0.8 * (i as f64 * 0.618_033_988_7).fract();
            let extra: f64 = int8_layers_per_stage(&arch)
                .iter()
                .zip(cost)
                .map(|(&n, c)| n as f64 * c)
                .sum();
            let wobble = if i % 2 == 0 { noise } else { -noise };
            NetworkSample {
                arch,
                measured_ms: sum + 0.05 + extra + wobble,
                table_sum_ms: sum,
                raw_ms: None,
                group: None,
            }
        })
        .collect()
}

#[test]
fn int8_layers_are_counted_per_stage() {
    let arch: Arch = "shuffle3:0.5@int8,skip,shuffle3:0.5,shuffle5:1.0@int8,\
         shuffle3:0.5@int8,skip,skip,skip,\
         shuffle3:0.5,shuffle3:0.5@int8,skip,skip,skip,skip,skip,shuffle3:0.5@int8,\
         xception:0.2@int8,skip,skip,skip"
        .parse()
        .expect("an architecture");
    assert_eq!(int8_layers_per_stage(&arch), [2, 1, 2, 1]);
    let c = Correction {
        int8_ms_per_stage: [0.1, 0.2, 0.3, 0.4],
        ..Correction::line(2.0, 0.5)
    };
    let expected = 2.0 * 1.5 + 0.5 + 2.0 * 0.1 + 0.2 + 2.0 * 0.3 + 0.4;
    assert!((c.predict(1.5, &arch) - expected).abs() < 1e-12);
    assert!((c.scaled(1.1).predict(1.5, &arch) - 1.1 * expected).abs() < 1e-12);
    // Without INT8 terms the architecture's precisions do not matter.
    assert_eq!(Correction::line(2.0, 0.5).predict(1.5, &arch), 3.5);
}

/// INT8 layers of the first stage cost 0.2 ms more than their entries, later ones less: the per-stage
/// terms recover it and are chosen; the calibration of FP32 networks never offers them.
#[test]
fn per_stage_int8_costs_are_recovered_and_chosen() {
    let calibration =
        Calibration::from_samples(1, 50, mixed_samples([0.2, 0.1, 0.02, -0.03], 0.002));
    assert_eq!(calibration.correction, CorrectionKind::Int8Stages);
    let active = calibration.active();
    for (got, want) in active.int8_ms_per_stage.iter().zip([0.2, 0.1, 0.02, -0.03]) {
        assert!((got - want).abs() < 0.005, "{active:?}");
    }
    assert!((active.offset_ms - 0.05).abs() < 0.01, "{active:?}");
    let errors = calibration.held_out_rmse.expect("kept");
    assert!(errors.int8_stages_ms.expect("offered") < errors.int8_count_ms.expect("offered"));

    let fp32 = Calibration::from_samples(1, 12, samples(|_, s| s + 0.1));
    assert!(fp32.int8_count.is_none() && fp32.int8_stages.is_none());
    let errors = fp32.held_out_rmse.expect("kept");
    assert!(errors.int8_count_ms.is_none() && errors.int8_stages_ms.is_none());
}

/// The same cost in every stage: one INT8 term is as good and simpler, so it is chosen; with no INT8
/// cost at all, B.
#[test]
fn the_simplest_int8_correction_that_fits_is_chosen() {
    let uniform = Calibration::from_samples(1, 50, mixed_samples([0.1; STAGES], 0.002));
    assert_eq!(uniform.correction, CorrectionKind::Int8Count);
    assert!((uniform.active().int8_ms_per_stage[2] - 0.1).abs() < 0.005);
    let none = Calibration::from_samples(1, 50, mixed_samples([0.0; STAGES], 0.002));
    assert_eq!(none.correction, CorrectionKind::Bias);
}

#[test]
fn int8_terms_need_counts_that_vary() {
    // Every network has the same INT8 layers: the count is collinear with the offset.
    let same: Vec<NetworkSample> = samples(|_, s| s + 0.1)
        .into_iter()
        .map(|s| NetworkSample {
            arch: "shuffle3:0.5@int8,shuffle3:0.5,shuffle3:0.5,shuffle3:0.5,shuffle3:0.5,shuffle3:0.5,\
                   shuffle3:0.5,shuffle3:0.5,shuffle3:0.5,shuffle3:0.5,shuffle3:0.5,shuffle3:0.5,\
                   shuffle3:0.5,shuffle3:0.5,shuffle3:0.5,shuffle3:0.5,shuffle3:0.5,shuffle3:0.5,\
                   shuffle3:0.5,shuffle3:0.5"
                .parse()
                .expect("an architecture"),
            ..s
        })
        .collect();
    assert_eq!(CorrectionKind::Int8Count.fit(&same), None);
    assert_eq!(CorrectionKind::Int8Stages.fit(&same), None);
    let calibration = Calibration::from_samples(1, 12, same);
    assert_eq!(calibration.correction, CorrectionKind::Bias);
    assert_eq!(
        calibration.held_out_rmse.expect("kept").int8_count_ms,
        Some(f64::INFINITY)
    );
}

#[test]
fn correction_kinds_keep_their_file_names() {
    for (kind, name) in [
        (CorrectionKind::None, "\"none\""),
        (CorrectionKind::Bias, "\"bias\""),
        (CorrectionKind::Linear, "\"linear\""),
        (CorrectionKind::Int8Count, "\"int8-count\""),
        (CorrectionKind::Int8Stages, "\"int8-stages\""),
    ] {
        assert_eq!(serde_json::to_string(&kind).expect("serialises"), name);
    }
    // A correction without INT8 terms is written as before.
    let json = serde_json::to_string(&Correction::line(1.5, 0.25)).expect("serialises");
    assert_eq!(json, r#"{"scale":1.5,"offset_ms":0.25}"#);
}
