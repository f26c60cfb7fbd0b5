use hsconas_models::{Op, NUM_LAYERS};

use super::*;
use crate::profile::DeviceProfile;
use crate::table::tests::table_for;
use crate::transfer::{fit_transfer, network_pieces, MeasuredNetwork, TransferLevel};

fn source() -> LatencyTable {
    table_for(&DeviceProfile::find("local-cpu").expect("shipped"))
}

/// A device on which each operator of each stage runs at its own multiple of the source (the stem 1.3,
/// the head 0.8): the kind of change a new input size makes, which no single level of the transfer fits.
fn truth(p: &Piece) -> f64 {
    match p {
        Piece::Stem => 1.3,
        Piece::Head => 0.8,
        Piece::Block { layer, choice, .. } => {
            let stage = NetConfig::stage_of(*layer) as f64;
            let op = match choice.op() {
                Op::Shuffle3 => 1.0,
                Op::Shuffle5 => 1.4,
                Op::Shuffle7 => 1.9,
                Op::Xception => 0.6,
                Op::Skip => 1.1,
            };
            op * (1.0 + 0.5 * stage)
        }
    }
}

fn measured(source: &LatencyTable, pieces: &[Piece]) -> BTreeMap<String, f64> {
    pieces
        .iter()
        .map(|p| (p.key(), source.entry_ms(p).expect("entry") * truth(p)))
        .collect()
}

#[test]
fn every_layer_is_used_once_per_network() {
    let total: f64 = all_pieces().iter().map(appearance_probability).sum();
    assert!(
        (total - (NUM_LAYERS + 2) as f64).abs() < 1e-9,
        "{total}: the stem, the head and one choice per layer"
    );
}

/// One piece measured of each operator in each stage tells the refined source every piece's value on
/// the device exactly; refitted on networks measured there, the transfer needs no correction at all.
#[test]
fn measured_kin_make_the_refined_source_the_devices_own() {
    let source = source();
    let mut one_of_each: BTreeMap<String, Piece> = BTreeMap::new();
    for p in all_pieces() {
        one_of_each.entry(kin(&p)[1].clone()).or_insert(p);
    }
    let pieces: Vec<Piece> = one_of_each.into_values().collect();
    let ratios =
        MeasuredRatios::new(&source, &measured(&source, &pieces), 0.05, None).expect("ratios");
    assert_eq!(ratios.len(), pieces.len());
    let refined = refined_source(&source, &ratios).expect("refined");
    for p in all_pieces() {
        let want = source.entry_ms(&p).expect("source") * truth(&p);
        let got = refined.entry_ms(&p).expect("refined");
        assert!(
            (got / want - 1.0).abs() < 1e-9,
            "{}: {got} vs {want}",
            p.key()
        );
    }
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(3);
    let networks: Vec<MeasuredNetwork> = (0..20)
        .map(|_| {
            let arch = hsconas_models::SearchSpace::full().sample(&mut rng);
            let measured_ms = network_pieces(&source, &arch)
                .expect("pieces")
                .iter()
                .map(|(p, ms)| ms * truth(p))
                .sum();
            MeasuredNetwork { arch, measured_ms }
        })
        .collect();
    let before =
        fit_transfer(&source, &source.provenance.net_config(), &networks).expect("fits the source");
    let after = fit_transfer(&refined, &refined.provenance.net_config(), &networks)
        .expect("fits the refined source");
    assert_eq!(after.level, TransferLevel::Global, "{:?}", after.candidates);
    assert!((after.factors["all"] - 1.0).abs() < 1e-9);
    assert!(after.held_out_rmspe < 1e-6, "{}", after.held_out_rmspe);
    assert!(
        before.held_out_rmspe > 1.0,
        "the plain transfer could not fit this device: {}",
        before.held_out_rmspe
    );
}

/// With nothing measured, the stem and the head (in every network) come first; then a group whose
/// measured pieces agree is left for last, behind a group whose measured pieces disagree.
#[test]
fn the_pieces_that_matter_most_come_first() {
    let source = source();
    let none = MeasuredRatios::new(&source, &BTreeMap::new(), 0.05, None).expect("ratios");
    let first = pieces_to_measure(&source, &none, 3).expect("ranked");
    // The oracle: the shapes by the summed expected contribution of their pieces.
    let mut by_shape: BTreeMap<String, (f64, Piece)> = BTreeMap::new();
    for p in all_pieces() {
        let shape = match p {
            Piece::Block { layer, choice, .. } => format!(
                "{}-{}-{choice}",
                NetConfig::stage_of(layer),
                NetConfig::is_stride2(layer)
            ),
            _ => p.key(),
        };
        let e = by_shape.entry(shape).or_insert((0.0, p));
        e.0 += source.entry_ms(&p).expect("entry") * appearance_probability(&p);
    }
    let mut oracle: Vec<(f64, Piece)> = by_shape.into_values().collect();
    oracle.sort_by(|a, b| b.0.total_cmp(&a.0));
    let want: Vec<Piece> = oracle.iter().take(3).map(|(_, p)| *p).collect();
    assert_eq!(first, want);
    assert!(first.contains(&Piece::Head), "in every network: {first:?}");

    let group = |op: Op| -> Vec<Piece> {
        all_pieces()
            .into_iter()
            .filter(|p| matches!(p, Piece::Block { layer, choice, .. } if *layer == 0 && choice.op() == op))
            .collect()
    };
    let (agree, disagree) = (group(Op::Shuffle3), group(Op::Shuffle5));
    assert!(agree.len() > MIN_FOR_SPREAD && disagree.len() > MIN_FOR_SPREAD);
    let mut values = measured(&source, &agree[..MIN_FOR_SPREAD]);
    for (i, p) in disagree[..MIN_FOR_SPREAD].iter().enumerate() {
        values.insert(
            p.key(),
            source.entry_ms(p).expect("entry") * (1.0 + 0.3 * i as f64),
        );
    }
    let ratios = MeasuredRatios::new(&source, &values, 0.05, None).expect("ratios");
    assert_eq!(ratios.uncertainty(&agree[MIN_FOR_SPREAD]), 0.0);
    assert!(ratios.uncertainty(&disagree[MIN_FOR_SPREAD]) > 0.1);
    let ranked = pieces_to_measure(&source, &ratios, usize::MAX).expect("ranked");
    assert_eq!(
        ranked.len(),
        shapes() - 2 * MIN_FOR_SPREAD,
        "one piece per shape"
    );
    let position = |p: &Piece| ranked.iter().position(|q| q == p).expect("ranked");
    let last_disagreeing = disagree[MIN_FOR_SPREAD..].iter().map(position).max();
    let first_agreeing = agree[MIN_FOR_SPREAD..].iter().map(position).min();
    assert!(last_disagreeing < first_agreeing);
    // A group with fewer measured pieces than MIN_FOR_SPREAD keeps the fallback.
    let one =
        MeasuredRatios::new(&source, &measured(&source, &agree[..1]), 0.05, None).expect("ratios");
    assert_eq!(one.uncertainty(&agree[1]), 0.05);
    assert!((one.ratio(&agree[1]) - truth(&agree[1])).abs() < 1e-12);
}

/// How many shapes the space has.
fn shapes() -> usize {
    let mut all: Vec<String> = all_pieces().iter().map(|p| kin(p)[0].clone()).collect();
    all.sort();
    all.dedup();
    all.len()
}

/// The layers of a stage after its first see the same input: one of them profiled gives its twins
/// (their ratio, no uncertainty left), and none of them is asked for again.
#[test]
fn a_profiled_piece_gives_its_twins() {
    let source = source();
    assert!(shapes() < all_pieces().len() / 2, "{} shapes", shapes());
    let twins: Vec<Piece> = (1..4)
        .map(|layer| Piece::block(layer, "shuffle7:0.4".parse().expect("choice")))
        .collect();
    let first = Piece::block(0, "shuffle7:0.4".parse().expect("choice"));
    let ratios =
        MeasuredRatios::new(&source, &measured(&source, &twins[..1]), 0.05, None).expect("ratios");
    for twin in &twins[1..] {
        assert!(ratios.is_known(twin));
        assert_eq!(ratios.uncertainty(twin), 0.0);
        assert!((ratios.ratio(twin) - truth(twin)).abs() < 1e-12);
    }
    assert!(
        !ratios.is_known(&first),
        "the first layer of the stage has another input"
    );
    let ranked = pieces_to_measure(&source, &ratios, usize::MAX).expect("ranked");
    assert!(ranked.iter().all(|p| !twins.contains(p)));
    assert!(ranked.contains(&first));
    assert_eq!(ranked.len(), shapes() - 1);
}

#[test]
fn a_measurement_of_a_piece_outside_the_space_is_an_error() {
    let source = source();
    let values: BTreeMap<String, f64> = [("L99:shuffle3:0.5".to_string(), 1.0)].into();
    assert!(MeasuredRatios::new(&source, &values, 0.05, None).is_err());
}

fn networks_on_truth(source: &LatencyTable, count: usize) -> Vec<MeasuredNetwork> {
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(11);
    (0..count)
        .map(|_| {
            let arch = hsconas_models::SearchSpace::full().sample(&mut rng);
            let measured_ms = network_pieces(source, &arch)
                .expect("pieces")
                .iter()
                .map(|(p, ms)| ms * truth(p))
                .sum();
            MeasuredNetwork { arch, measured_ms }
        })
        .collect()
}

/// A device measured by `refine`: each piece asked for at its true value, every call recorded.
struct Device<'a> {
    source: &'a LatencyTable,
    asked: Vec<Vec<Piece>>,
    profiled: BTreeMap<String, f64>,
}

impl<'a> Device<'a> {
    fn new(source: &'a LatencyTable) -> Device<'a> {
        Device {
            source,
            asked: Vec::new(),
            profiled: BTreeMap::new(),
        }
    }

    /// `refine` of `start` with this device, every piece of the space in the budget.
    fn refine(
        &mut self,
        (networks, check): (&[MeasuredNetwork], &[MeasuredNetwork]),
        start: &TransferFit,
        tolerance: Option<f64>,
        unprofiled: Unprofiled,
    ) -> Refinement {
        let source = self.source;
        refine(
            source,
            (networks, check),
            start.clone(),
            all_pieces().len(),
            tolerance,
            unprofiled,
            |todo: &[Piece]| self.measure(todo),
        )
        .expect("refines")
    }

    fn measure(&mut self, todo: &[Piece]) -> Result<BTreeMap<String, f64>, TransferError> {
        self.asked.push(todo.to_vec());
        for p in todo {
            self.profiled
                .insert(p.key(), self.source.entry_ms(p)? * truth(p));
        }
        Ok(self.profiled.clone())
    }
}

/// Round by round up to the budget, each refit on the networks; with every shape profiled the
/// refined source is the device's own and nothing is left to ask for.
#[test]
fn refine_profiles_in_rounds_until_every_shape_is_known() {
    let source = source();
    let networks = networks_on_truth(&source, 20);
    let start = fit_transfer(&source, &source.provenance.net_config(), &networks).expect("fits");
    for unprofiled in [Unprofiled::KinRatios, Unprofiled::TransferFactors] {
        let mut device = Device::new(&source);
        let refined = device.refine((&networks, &[]), &start, None, unprofiled);
        let rounds = shapes().div_ceil(PIECES_PER_ROUND);
        let sizes: Vec<usize> = device.asked.iter().map(Vec::len).collect();
        assert_eq!(
            sizes.len(),
            rounds + 1,
            "a first call for what was profiled already"
        );
        assert_eq!(sizes[0], 0);
        assert!(sizes[1..rounds].iter().all(|&n| n == PIECES_PER_ROUND));
        let mut all: Vec<Piece> = device.asked.concat();
        all.sort_by_key(Piece::key);
        all.dedup();
        assert_eq!(all.len(), shapes(), "one piece per shape, none asked twice");
        assert_eq!(refined.rounds.len(), rounds);
        assert_eq!(refined.rounds.last().map(|r| r.pieces), Some(shapes()));
        assert_eq!(refined.measured.len(), shapes());
        assert!(
            (refined.fit.factors["all"] - 1.0).abs() < 1e-9,
            "{unprofiled:?}"
        );
        assert!(refined.rounds.last().expect("a round").held_out_rmspe < 1e-6);
    }
}

/// A tolerance met after some rounds stops there; one already met profiles nothing; the pieces an
/// interrupted run profiled (the first call's answer) count and are not asked again; a measurer that
/// profiles nothing new ends the rounds instead of asking forever.
#[test]
fn refine_stops_at_the_tolerance_and_resumes_what_was_profiled() {
    let source = source();
    let networks = networks_on_truth(&source, 20);
    let start = fit_transfer(&source, &source.provenance.net_config(), &networks).expect("fits");
    let total = all_pieces().len();
    let kin = Unprofiled::KinRatios;
    let mut device = Device::new(&source);
    let all = device.refine((&networks, &[]), &start, None, kin);
    // A tolerance between the second and third rounds' errors stops after the second round exactly.
    let (second, third) = (all.rounds[1].held_out_rmspe, all.rounds[2].held_out_rmspe);
    assert!(third < second, "{:?}", all.rounds);
    let tolerance = (second + third) / 2.0;
    let mut device = Device::new(&source);
    let stopped = device.refine((&networks, &[]), &start, Some(tolerance), kin);
    let rounds_to_stop = all
        .rounds
        .iter()
        .position(|r| r.held_out_rmspe <= tolerance)
        .expect("met")
        + 1;
    assert_eq!(stopped.rounds.len(), rounds_to_stop);
    assert_eq!(stopped.rounds, all.rounds[..rounds_to_stop]);
    assert!(stopped.fit.held_out_rmspe <= tolerance);

    // Resumed: the first call answers with the first round's pieces, which are never asked again.
    let first_round = device.asked[1].clone();
    let mut resumed = Device::new(&source);
    resumed.measure(&first_round).expect("profiled before");
    resumed.asked.clear();
    let again = resumed.refine((&networks, &[]), &start, Some(tolerance), kin);
    assert!(resumed
        .asked
        .iter()
        .flatten()
        .all(|p| !first_round.contains(p)));
    assert_eq!(again.measured, stopped.measured);

    let mut calls = 0;
    let met = refine(
        &source,
        (&networks, &[]),
        start.clone(),
        total,
        Some(1e6),
        kin,
        |_: &[Piece]| {
            calls += 1;
            Ok::<_, TransferError>(BTreeMap::new())
        },
    )
    .expect("met");
    assert_eq!((calls, met.rounds.len(), met.measured.len()), (1, 0, 0));
    assert_eq!(met.fit, start);

    let mut calls = 0;
    let stuck = refine(
        &source,
        (&networks, &[]),
        start,
        total,
        None,
        kin,
        |_: &[Piece]| {
            calls += 1;
            Ok::<_, TransferError>(BTreeMap::new())
        },
    )
    .expect("stops");
    assert_eq!((calls, stuck.measured.len()), (2, 0));
}

/// With check networks the tolerance is judged on them, not on the refit's leave-one-out error: check
/// networks measured 10% slower than the device the fit saw (a device that moved after the fit) keep
/// a tolerance unmet that the leave-one-out error meets, every round records the refit's error on
/// them, and the same tolerance without them stops before the budget.
#[test]
fn refine_judges_the_tolerance_on_networks_no_fit_sees() {
    let source = source();
    let all = networks_on_truth(&source, 40);
    let (fit_set, check) = all.split_at(20);
    let start = fit_transfer(&source, &source.provenance.net_config(), fit_set).expect("fits");
    let kin = Unprofiled::KinRatios;

    let mut device = Device::new(&source);
    let honest = device.refine((fit_set, check), &start, None, kin);
    assert!(honest.rounds.iter().all(|r| r.checked_rmspe.is_some()));
    let last = honest.rounds.last().expect("rounds");
    let expected = honest
        .fit
        .rmspe_on(&honest.source, check)
        .expect("predicts");
    assert_eq!(last.checked_rmspe, Some(expected));
    assert!(expected < 1e-6, "every shape profiled: exact, {expected}");

    let slower: Vec<MeasuredNetwork> = check
        .iter()
        .map(|n| MeasuredNetwork {
            arch: n.arch.clone(),
            measured_ms: n.measured_ms * 1.1,
        })
        .collect();
    let tolerance = 5.0;
    let mut device = Device::new(&source);
    let judged = device.refine((fit_set, &slower), &start, Some(tolerance), kin);
    assert_eq!(
        judged.measured.len(),
        shapes(),
        "never met: the whole budget"
    );
    let last = judged.rounds.last().expect("rounds");
    assert!(last.held_out_rmspe < tolerance, "{last:?}");
    let off = 100.0 * (1.0 - 1.0 / 1.1);
    assert!(
        (last.checked_rmspe.expect("checked") - off).abs() < 1e-6,
        "{last:?}"
    );

    let mut device = Device::new(&source);
    let by_leave_one_out = device.refine((fit_set, &[]), &start, Some(tolerance), kin);
    assert!(by_leave_one_out.measured.len() < shapes());
    assert!(by_leave_one_out.fit.held_out_rmspe <= tolerance);
}
