use hsconas_models::{Layout, NetConfig, Op, SearchSpace};
use rand::SeedableRng;

use super::*;
use crate::profile::DeviceProfile;
use crate::table::tests::table_for;

fn source() -> LatencyTable {
    table_for(&DeviceProfile::find("local-cpu").expect("shipped"))
}

/// `count` random networks of the space measured on a device whose every piece takes
/// `factor(piece)` times the source's.
fn measured_on(
    source: &LatencyTable,
    count: usize,
    factor: impl Fn(&Piece) -> f64,
) -> Vec<MeasuredNetwork> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let space = SearchSpace::full();
    (0..count)
        .map(|_| {
            let arch = space.sample(&mut rng);
            let measured_ms = network_pieces(source, &arch)
                .expect("every piece")
                .iter()
                .map(|(p, ms)| ms * factor(p))
                .sum();
            MeasuredNetwork { arch, measured_ms }
        })
        .collect()
}

/// A device 2.5 times slower everywhere: the global factor, found exactly.
#[test]
fn a_uniformly_slower_device_gets_one_factor() {
    let source = source();
    let networks = measured_on(&source, 12, |_| 2.5);
    let fit = fit_transfer(&source, &source.provenance.net_config(), &networks).expect("fits");
    assert_eq!(fit.level, TransferLevel::Global, "{:?}", fit.candidates);
    assert!((fit.factors["all"] - 2.5).abs() < 1e-9, "{:?}", fit.factors);
    assert!(fit.held_out_rmspe < 1e-6);
}

/// Each operator type (and the stem with the head) scaled by its own factor: the per-operator level is
/// chosen and recovers every factor, so the transferred entries are the device's own.
#[test]
fn a_known_per_operator_scaling_is_recovered_exactly() {
    let source = source();
    let truth = |p: &Piece| match p {
        Piece::Stem | Piece::Head => 1.8,
        Piece::Block { choice, .. } => match choice.op() {
            Op::Shuffle3 => 1.2,
            Op::Shuffle5 => 1.5,
            Op::Shuffle7 => 2.0,
            Op::Xception => 0.7,
            Op::Skip => 1.0,
        },
    };
    let networks = measured_on(&source, 30, truth);
    let fit = fit_transfer(&source, &source.provenance.net_config(), &networks).expect("fits");
    assert_eq!(
        fit.level,
        TransferLevel::PerOperator,
        "{:?}",
        fit.candidates
    );
    assert_eq!(fit.penalty, 0.0, "{:?}", fit.candidates);
    let entries = transferred_entries(&source, |p, ms| fit.entry_factor(p, ms)).expect("entries");
    for piece in all_pieces() {
        let want = source.entry_ms(&piece).expect("entry") * truth(&piece);
        let got = entries[&piece.key()].get(source.statistic);
        assert!(
            (got - want).abs() < 1e-9 * want.max(1.0),
            "{}: {got} vs {want}",
            piece.key()
        );
        assert_eq!(entries[&piece.key()].group, None);
    }
    // The global factor alone cannot fit it: its held-out error is far above the chosen one's.
    let global = fit.candidates[0];
    assert_eq!(global.level, TransferLevel::Global);
    assert!(global.held_out_rmspe > 1.0, "{global:?}");
}

/// A device at another input size whose pieces take a factor per stage of the source's time plus a
/// cost per MAC and per layer counted at the new size (24x24, where the last stage shrinks less than
/// the others, so MACs counted at the source's size would not fit): the per-stage-macs level is chosen
/// and recovers every stage factor, so the transferred entries are the device's own.
#[test]
fn a_known_stage_scaling_plus_macs_and_layer_costs_is_recovered_exactly() {
    let source = source();
    let target = NetConfig {
        input_size: 24,
        classes: 10,
        ..source.provenance.net_config()
    };
    assert_ne!(target, source.provenance.net_config());
    let stage_factor = |p: &Piece| match p {
        Piece::Stem | Piece::Head => 0.9,
        Piece::Block { layer, .. } => [0.5, 0.7, 1.1, 1.6][NetConfig::stage_of(*layer)],
    };
    // Milliseconds per MAC counted at 24x24 and per layer with a block, from the graphs themselves.
    let (per_mac, per_layer) = (1e-7, 0.02);
    let truth = |p: &Piece| {
        let macs = hsconas_models::build::piece(*p, &target)
            .expect("graph")
            .macs() as f64;
        let layer = matches!(p, Piece::Block { choice, .. } if !choice.is_skip());
        let ms = source.entry_ms(p).expect("entry");
        stage_factor(p) + (per_mac * macs + if layer { per_layer } else { 0.0 }) / ms
    };
    let networks = measured_on(&source, 30, truth);
    let fit = fit_transfer(&source, &target, &networks).expect("fits");
    assert_eq!(
        (fit.level, fit.penalty),
        (TransferLevel::PerStageMacs, 0.0),
        "{:?}",
        fit.factors
    );
    for (stage, want) in [0.5, 0.7, 1.1, 1.6].into_iter().enumerate() {
        let got = fit.factors[&format!("stage{}", stage + 1)];
        assert!((got - want).abs() < 1e-6, "{:?}", fit.factors);
    }
    assert!(fit.factors["macs"] > 0.0 && fit.factors["layers"] > 0.0);
    let entries = transferred_entries(&source, |p, ms| fit.entry_factor(p, ms)).expect("entries");
    for piece in all_pieces() {
        let want = source.entry_ms(&piece).expect("entry") * truth(&piece);
        let got = entries[&piece.key()].get(source.statistic);
        assert!(
            (got - want).abs() < 1e-6 * want.max(1.0),
            "{}: {got} vs {want}",
            piece.key()
        );
    }
    // Factors per stage alone cannot fit it.
    let per_stage = fit
        .candidates
        .iter()
        .filter(|c| c.level == TransferLevel::PerStage)
        .map(|c| c.held_out_rmspe)
        .fold(f64::INFINITY, f64::min);
    assert!(per_stage > 1.0, "{:?}", fit.candidates);
}

/// A device where every layer with a block takes a fixed amount *less* than the source, more than the
/// cheapest block's whole entry (and stem and head slower): the networks stay positive, but the exact
/// per-stage-macs fit would leave the cheapest pieces of the space no time, so it is refused (the
/// terms fit is checked on every piece, not only on the networks measured) and every transferred entry
/// of the chosen fit stays positive.
#[test]
fn a_terms_fit_that_leaves_a_piece_no_time_is_refused() {
    let source = source();
    let cheapest = all_pieces()
        .iter()
        .filter(|p| matches!(p, Piece::Block { choice, .. } if !choice.is_skip()))
        .map(|p| source.entry_ms(p).expect("entry"))
        .fold(f64::INFINITY, f64::min);
    let saving = 1.5 * cheapest;
    // The stem and head slower, so that the factors per stage alone (which take the saving as a
    // smaller constant) stay positive and only the terms can leave a piece no time.
    let truth = |p: &Piece| match p {
        Piece::Stem | Piece::Head => 10.0,
        Piece::Block { choice, .. } if !choice.is_skip() => {
            1.0 - saving / source.entry_ms(p).expect("entry")
        }
        Piece::Block { .. } => 1.0,
    };
    let networks = measured_on(&source, 30, truth);
    assert!(networks.iter().all(|n| n.measured_ms > 0.0));
    let fit = fit_transfer(&source, &source.provenance.net_config(), &networks).expect("fits");
    let held_out = |level: TransferLevel| {
        fit.candidates
            .iter()
            .find(|c| c.level == level && c.penalty == 0.0)
            .expect("tried")
            .held_out_rmspe
    };
    assert!(
        held_out(TransferLevel::PerStage).is_finite(),
        "the parent level fits: {:?}",
        fit.candidates
    );
    assert!(
        held_out(TransferLevel::PerStageMacs).is_infinite(),
        "{:?}",
        fit.candidates
    );
    assert_ne!(
        (fit.level, fit.penalty),
        (TransferLevel::PerStageMacs, 0.0),
        "{:?}",
        fit.factors
    );
    let entries = transferred_entries(&source, |p, ms| fit.entry_factor(p, ms)).expect("entries");
    assert!(
        entries.values().all(|e| e.get(source.statistic) > 0.0),
        "{:?}",
        fit.factors
    );
}

/// Noise the source's structure cannot explain does not buy a richer correction: with 2% noise on a
/// uniformly slower device, the global factor stays in use.
#[test]
fn noise_does_not_buy_a_richer_correction() {
    let source = source();
    let mut networks = measured_on(&source, 30, |_| 1.7);
    for (i, n) in networks.iter_mut().enumerate() {
        n.measured_ms *= 1.0 + 0.02 * (i as f64 * 12.9898 + 1.0).sin();
    }
    let fit = fit_transfer(&source, &source.provenance.net_config(), &networks).expect("fits");
    assert_eq!(fit.level, TransferLevel::Global, "{:?}", fit.candidates);
    assert!((fit.factors["all"] - 1.7).abs() < 0.02, "{:?}", fit.factors);
}

#[test]
fn too_few_or_impossible_measurements_are_refused() {
    let source = source();
    let networks = measured_on(&source, 3, |_| 1.0);
    let err = fit_transfer(&source, &source.provenance.net_config(), &networks)
        .expect_err("three networks");
    assert!(err.to_string().contains("at least 4"), "{err}");
    let mut networks = measured_on(&source, 6, |_| 1.0);
    networks[2].measured_ms = f64::NAN;
    let err = fit_transfer(&source, &source.provenance.net_config(), &networks).expect_err("a NaN");
    assert!(err.to_string().contains("network 2"), "{err}");
    let mut partial = source.clone();
    partial.entries.remove("head");
    let err = fit_transfer(
        &partial,
        &partial.provenance.net_config(),
        &measured_on(&source, 6, |_| 1.0),
    )
    .expect_err("no head");
    assert!(err.to_string().contains("head"), "{err}");
}

/// A transferred table says so in its provenance, and the record survives the file.
#[test]
fn the_transfer_record_round_trips_through_the_table_file() {
    let source = source();
    let fit = fit_transfer(
        &source,
        &source.provenance.net_config(),
        &measured_on(&source, 12, |_| 2.0),
    )
    .expect("fits");
    let mut table = source.clone();
    table.entries = transferred_entries(&source, |p, ms| fit.entry_factor(p, ms)).expect("entries");
    table.provenance.transfer = Some(TransferRecord {
        source_device: source.provenance.device.clone(),
        source_cpu: source.provenance.fingerprint.cpu_model.clone(),
        source_date: source.provenance.date.clone(),
        source_input_size: source.provenance.input_size,
        networks: 12,
        seed: 1,
        level: fit.level,
        penalty: fit.penalty,
        held_out_rmspe: fit.held_out_rmspe,
        foreign_source: true,
        source_differences: vec!["cpu: the source's Xeon, this machine's EPYC".into()],
        tolerance_percent: Some(3.0),
        checked_rmspe: Some(2.5),
        pieces: 48,
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("transferred.json");
    table.save(&path).expect("saves");
    let loaded = LatencyTable::load(&path).expect("loads");
    assert_eq!(loaded, table);
    assert_eq!(
        loaded.provenance.transfer.as_ref().map(|t| t.level),
        Some(TransferLevel::Global)
    );
    // A profiled table has none, and says nothing of it in its file.
    source.save(&path).expect("saves");
    let text = std::fs::read_to_string(&path).expect("reads");
    assert!(!text.contains("\"transfer\""));
    assert!(LatencyTable::load(&path)
        .expect("loads")
        .provenance
        .transfer
        .is_none());
}

/// A source of other stage widths, or of another set of pieces, is named as such.
#[test]
fn a_source_of_another_layout_or_space_is_refused() {
    let source = source();
    check_source(&source, source.provenance.layout).expect("its own layout");
    let other: Layout = if source.provenance.layout == Layout::A {
        Layout::B
    } else {
        Layout::A
    };
    let err = check_source(&source, other).expect_err("another layout");
    assert!(err.to_string().contains("layout"), "{err}");
    let mut partial = source.clone();
    partial.entries.remove("head");
    let err = check_source(&partial, source.provenance.layout).expect_err("no head");
    let text = err.to_string();
    assert!(
        text.contains("1 of its") && text.contains("'head'"),
        "{text}"
    );
    let mut foreign = source.clone();
    let entry = foreign.entries["head"].clone();
    foreign.entries.insert("layer25/conv9:1.0".into(), entry);
    let err = check_source(&foreign, source.provenance.layout).expect_err("a foreign entry");
    assert!(
        err.to_string().contains("1 entries of another space"),
        "{err}"
    );
}

/// The names in files are the names in messages.
#[test]
fn level_names_are_their_serde_names() {
    for level in TransferLevel::ALL {
        assert_eq!(
            serde_json::to_value(level).expect("JSON"),
            serde_json::json!(level.name())
        );
    }
}

/// A device where every `skip` layer makes a network 0.3 ms faster than its pieces add up to, more
/// than any skip entry of the source takes: a per-operator fit can only explain it with a negative
/// factor for the skip entries, which is no latency, so those fits are refused (while the global one,
/// which cannot, still fits) and every entry of the chosen fit stays positive.
#[test]
fn a_fit_that_needs_a_negative_factor_is_refused() {
    let source = source();
    let skip_entry_max = all_pieces()
        .iter()
        .filter(|p| matches!(p, Piece::Block { choice, .. } if choice.op() == Op::Skip))
        .map(|p| source.entry_ms(p).expect("entry"))
        .fold(0.0, f64::max);
    let faster = 2.0 * skip_entry_max;
    let skips = |arch: &Arch| arch.choices().iter().filter(|c| c.op() == Op::Skip).count() as f64;
    let mut networks = measured_on(&source, 40, |_| 1.0);
    assert!(
        networks.iter().filter(|n| skips(&n.arch) > 0.0).count() >= 5,
        "enough networks hold a skip layer"
    );
    for n in &mut networks {
        n.measured_ms -= faster * skips(&n.arch);
    }
    let fit = fit_transfer(&source, &source.provenance.net_config(), &networks).expect("fits");
    let held_out = |level: TransferLevel, penalty: f64| {
        fit.candidates
            .iter()
            .find(|c| c.level == level && c.penalty == penalty)
            .expect("tried")
            .held_out_rmspe
    };
    assert!(
        held_out(TransferLevel::PerOperator, 0.0).is_infinite(),
        "the exact per-operator fit needs a negative skip factor: {:?}",
        fit.candidates
    );
    assert!(held_out(TransferLevel::Global, 0.0).is_finite());
    assert!(fit.factors.values().all(|f| *f > 0.0), "{:?}", fit.factors);
    let entries = transferred_entries(&source, |p, ms| fit.entry_factor(p, ms)).expect("entries");
    assert!(entries.values().all(|e| e.get(source.statistic) > 0.0));
}

/// The error on networks a fit did not see: none on more networks of the device it was fitted on, the
/// relative miss of a device that became 10% slower, and NaN (not zero) for no networks.
#[test]
fn rmspe_on_unseen_networks_is_the_relative_miss() {
    let source = source();
    let fit = fit_transfer(
        &source,
        &source.provenance.net_config(),
        &measured_on(&source, 12, |_| 2.0),
    )
    .expect("fits");
    let more = measured_on(&source, 30, |_| 2.0);
    assert!(fit.rmspe_on(&source, &more[12..]).expect("predicts") < 1e-9);
    let slower = measured_on(&source, 30, |_| 2.2);
    let miss = fit.rmspe_on(&source, &slower[12..]).expect("predicts");
    assert!((miss - 100.0 * (1.0 - 2.0 / 2.2)).abs() < 1e-9, "{miss}");
    assert!(fit.rmspe_on(&source, &[]).expect("empty").is_nan());
}
