//! When a transfer alone does not predict well enough: profile only the pieces that matter most and refit
//! (issue 42, item 3). Pieces of one shape (the same choice in the layers of a stage after its first,
//! which see the same input) are twins: one profiled piece gives all of them. A shape matters by the
//! expected contribution of its pieces to a network of the space (each one's value times the chance
//! that a random network uses it) times how uncertain their value still is. Profiled pieces replace
//! their shape's source values; a shape not yet profiled takes the source's value times the ratio
//! measured on its kin ([`Unprofiled::KinRatios`]: the same operator in the same stage, else the same
//! stage, else any) or the factor of the transfer fitted on the networks alone
//! ([`Unprofiled::TransferFactors`]); and the transfer ([`crate::transfer::fit_transfer`]) is fitted
//! again on this refined source, its factors now bridging only what the pieces cannot see (a whole
//! network's overheads, the shapes still unprofiled).

use std::collections::BTreeMap;

use hsconas_models::build::{all_pieces, Piece};
use hsconas_models::{LayerSpace, NetConfig};

use crate::table::{LatencyTable, TableError};
use crate::transfer::{
    fit_transfer, transferred_entries, MeasuredNetwork, TransferError, TransferFit,
};

/// Pieces profiled between two refits.
pub const PIECES_PER_ROUND: usize = 48;

/// Measured pieces kin share a ratio with: this many at least before their spread is trusted as the
/// uncertainty of the kin still unmeasured.
pub const MIN_FOR_SPREAD: usize = 3;

/// The chance that a network drawn uniformly from the space uses `piece`: 1 for the stem and the head,
/// one over the layer's number of choices for a block.
pub fn appearance_probability(piece: &Piece) -> f64 {
    match piece {
        Piece::Stem | Piece::Head => 1.0,
        Piece::Block { layer, .. } => 1.0 / LayerSpace::full(*layer).choices().len() as f64,
    }
}

/// The kin of a piece, from the closest to the widest: its shape (its twins), its operator in its
/// stage, its stage, the whole space. The stem and the head are their own shape and operator. Only FP32
/// pieces are refined (a transfer moves FP32 tables only), so the precision is not part of the shape.
fn kin(piece: &Piece) -> [String; 4] {
    match piece {
        Piece::Stem | Piece::Head => [piece.key(), piece.key(), "stem-head".into(), "all".into()],
        Piece::Block { layer, choice, .. } => {
            let stage = NetConfig::stage_of(*layer) + 1;
            [
                piece.as_fp32().shape(),
                format!("stage{stage}:{}", choice.op()),
                format!("stage{stage}"),
                "all".into(),
            ]
        }
    }
}

/// What the pieces measured so far say about the ones not measured: the ratio (device / source) and
/// its uncertainty (relative) for any piece.
#[derive(Debug, Clone)]
pub struct MeasuredRatios {
    /// ln(device / source) of every measured piece, by key.
    log_ratios: BTreeMap<String, f64>,
    /// Per kin group: the ln-ratios of its measured pieces.
    groups: BTreeMap<String, Vec<f64>>,
    /// The relative uncertainty of a piece whose kin tell nothing yet.
    fallback: f64,
    /// With [`Unprofiled::TransferFactors`]: every piece's factor in the networks' transfer, by key.
    transfer_factors: Option<BTreeMap<String, f64>>,
}

/// What a piece none of whose twins is profiled is estimated from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unprofiled {
    /// The ratio measured on its closest kin with a profiled piece (the same operator in the same
    /// stage, else the same stage, else any).
    KinRatios,
    /// Its factor in the transfer fitted on the networks alone (the source's value as the plain
    /// transfer predicts it). That transfer saw every network, so the refit's leave-one-out error over
    /// the same networks is then optimistic: for comparisons offline, not for a tolerance.
    TransferFactors,
}

impl MeasuredRatios {
    /// The ratios of `measured` (piece key -> its latency on the new device, ms, normalised for drift)
    /// against `source`; `prior_uncertainty` (relative, e.g. the transfer's held-out RMSPE / 100) is the
    /// uncertainty of a piece none of whose kin is measured, raised to the spread over all measured
    /// pieces once there are enough of them. A piece with no profiled twin takes its ratio from its kin
    /// or, given `transfer`, from that transfer's factor.
    pub fn new(
        source: &LatencyTable,
        measured: &BTreeMap<String, f64>,
        prior_uncertainty: f64,
        transfer: Option<&TransferFit>,
    ) -> Result<MeasuredRatios, TableError> {
        let mut log_ratios = BTreeMap::new();
        let mut groups: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for (key, &ms) in measured {
            let piece: Piece = key
                .parse()
                .map_err(|_| TableError::MissingEntry(key.clone()))?;
            let source_ms = source.entry_ms(&piece)?;
            if !(ms > 0.0 && source_ms > 0.0) {
                continue;
            }
            let r = (ms / source_ms).ln();
            log_ratios.insert(key.clone(), r);
            for group in kin(&piece) {
                groups.entry(group).or_default().push(r);
            }
        }
        let overall = groups.get("all").map_or(0.0, |v| spread(v));
        let fallback = if log_ratios.len() >= MIN_FOR_SPREAD {
            prior_uncertainty.max(overall)
        } else {
            prior_uncertainty
        };
        let transfer_factors = transfer
            .map(|fit| {
                all_pieces()
                    .iter()
                    .map(|p| Ok((p.key(), fit.entry_factor(p, source.entry_ms(p)?))))
                    .collect::<Result<_, TableError>>()
            })
            .transpose()?;
        Ok(MeasuredRatios {
            log_ratios,
            groups,
            fallback,
            transfer_factors,
        })
    }

    /// Whether `piece` or a twin of it (a piece of its shape) was measured.
    pub fn is_known(&self, piece: &Piece) -> bool {
        self.groups.contains_key(&kin(piece)[0])
    }

    /// Pieces measured.
    pub fn len(&self) -> usize {
        self.log_ratios.len()
    }

    /// Whether none was.
    pub fn is_empty(&self) -> bool {
        self.log_ratios.is_empty()
    }

    /// The device / source ratio of a piece: its own when measured, else the geometric mean over its
    /// profiled twins, else its transfer factor when given one, else the geometric mean over its closest
    /// kin with a profiled piece, else 1.
    pub fn ratio(&self, piece: &Piece) -> f64 {
        let key = piece.key();
        if let Some(r) = self.log_ratios.get(&key) {
            return r.exp();
        }
        let kin = kin(piece);
        if let Some(twins) = self.groups.get(&kin[0]) {
            return mean(twins).exp();
        }
        if let Some(factors) = &self.transfer_factors {
            return factors.get(&key).copied().unwrap_or(1.0);
        }
        kin[1..]
            .iter()
            .find_map(|g| self.groups.get(g).map(|v| mean(v).exp()))
            .unwrap_or(1.0)
    }

    /// The relative uncertainty of a piece's value: 0 when it or a twin was measured, else the spread
    /// of the ratios measured on its operator in its stage when at least [`MIN_FOR_SPREAD`] are, else the
    /// fallback.
    pub fn uncertainty(&self, piece: &Piece) -> f64 {
        if self.is_known(piece) {
            return 0.0;
        }
        match self.groups.get(&kin(piece)[1]) {
            Some(v) if v.len() >= MIN_FOR_SPREAD => spread(v),
            _ => self.fallback,
        }
    }
}

/// The source with every piece at its value on the new device as far as it is known: a measured piece's
/// measurement, another piece the source's value times [`MeasuredRatios::ratio`]. A table without a
/// reference network (its entries are already normalised), ready for `fit_transfer`.
pub fn refined_source(
    source: &LatencyTable,
    ratios: &MeasuredRatios,
) -> Result<LatencyTable, TableError> {
    let mut refined = source.clone();
    refined.entries = transferred_entries(source, |p, _| ratios.ratio(p))?;
    refined.reference = None;
    Ok(refined)
}

/// One piece of each of the `count` shapes that matter most, most first, among the shapes none of
/// whose pieces is measured: the sum over a shape's pieces of their expected contribution (value on the
/// new device as far as known, times [`appearance_probability`]) times [`MeasuredRatios::uncertainty`];
/// the first piece of a shape in the space's order stands for it, ties in that order too.
pub fn pieces_to_measure(
    source: &LatencyTable,
    ratios: &MeasuredRatios,
    count: usize,
) -> Result<Vec<Piece>, TableError> {
    let mut shapes: Vec<(Piece, f64)> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for p in all_pieces() {
        if ratios.is_known(&p) {
            continue;
        }
        let value = source.entry_ms(&p)? * ratios.ratio(&p);
        let score = value * appearance_probability(&p) * ratios.uncertainty(&p);
        let shape = kin(&p)[0].clone();
        match index.get(&shape) {
            Some(&i) => shapes[i].1 += score,
            None => {
                index.insert(shape, shapes.len());
                shapes.push((p, score));
            }
        }
    }
    shapes.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(shapes.into_iter().take(count).map(|(p, _)| p).collect())
}

/// A transfer refined by profiled pieces.
#[derive(Debug, Clone)]
pub struct Refinement {
    /// The source refined by the profiled pieces (the plain source when none was profiled).
    pub source: LatencyTable,
    /// The transfer of it, fitted on the networks.
    pub fit: TransferFit,
    /// Each profiled piece's latency on the new device, by key.
    pub measured: BTreeMap<String, f64>,
    /// After each round: pieces profiled so far and the refit's errors.
    pub rounds: Vec<RefineRound>,
}

/// One round of a refinement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefineRound {
    /// Pieces profiled so far.
    pub pieces: usize,
    /// The refit's leave-one-out error over the networks it was fitted on (RMSPE, percent).
    pub held_out_rmspe: f64,
    /// Its error on the check networks it was not fitted on (RMSPE, percent; `None` without them).
    pub checked_rmspe: Option<f64>,
}

impl Refinement {
    /// The error the tolerance is judged by: on the check networks when there are any, else the
    /// leave-one-out estimate over the networks fitted on.
    pub fn judged_rmspe(&self, check: &[MeasuredNetwork]) -> Result<f64, TableError> {
        match check {
            [] => Ok(self.fit.held_out_rmspe),
            check => self.fit.rmspe_on(&self.source, check),
        }
    }
}

/// Refines the transfer `start` of `source` (fitted on `networks`, judged on `check`) by profiling up to `max_pieces`
/// pieces, the most important first ([`pieces_to_measure`]), in rounds of [`PIECES_PER_ROUND`], refitting
/// after each round; stops early once the error is at most `tolerance` (RMSPE, percent): the error on
/// `check`, networks measured on the new device that no fit sees (the honest judge), or without them
/// the refit's leave-one-out error over `networks` (optimistic in the measured runs).
/// Pieces with no profiled twin are estimated as `unprofiled` says (from the start's factors for
/// [`Unprofiled::TransferFactors`]).
/// `measure` profiles the pieces asked for and returns every piece profiled so far with its latency
/// (ms, normalised for drift; a later group's reference timings may revise earlier ones); its first
/// call with no pieces returns what an interrupted run profiled already.
pub fn refine<E: From<TransferError> + From<TableError>>(
    source: &LatencyTable,
    (networks, check): (&[MeasuredNetwork], &[MeasuredNetwork]),
    start: TransferFit,
    max_pieces: usize,
    tolerance: Option<f64>,
    unprofiled: Unprofiled,
    mut measure: impl FnMut(&[Piece]) -> Result<BTreeMap<String, f64>, E>,
) -> Result<Refinement, E> {
    let prior_uncertainty = start.held_out_rmspe / 100.0;
    let networks_fit = (unprofiled == Unprofiled::TransferFactors).then(|| start.clone());
    let mut refinement = Refinement {
        source: source.clone(),
        fit: start,
        measured: BTreeMap::new(),
        rounds: Vec::new(),
    };
    let mut todo: Vec<Piece> = Vec::new();
    loop {
        let measured = measure(&todo)?;
        if !todo.is_empty() && measured.len() <= refinement.measured.len() {
            // Nothing new was profiled: asking again would ask for the same pieces.
            return Ok(refinement);
        }
        let ratios =
            MeasuredRatios::new(source, &measured, prior_uncertainty, networks_fit.as_ref())?;
        if !measured.is_empty() && measured.len() != refinement.measured.len() {
            refinement.source = refined_source(source, &ratios)?;
            let target = refinement.fit.target;
            refinement.fit = fit_transfer(&refinement.source, &target, networks)?;
            refinement.rounds.push(RefineRound {
                pieces: measured.len(),
                held_out_rmspe: refinement.fit.held_out_rmspe,
                checked_rmspe: (!check.is_empty())
                    .then(|| refinement.judged_rmspe(check))
                    .transpose()?,
            });
        }
        refinement.measured = measured;
        let judged = refinement.judged_rmspe(check)?;
        let met = tolerance.is_some_and(|t| judged <= t);
        let left = max_pieces.saturating_sub(refinement.measured.len());
        if met || left == 0 {
            return Ok(refinement);
        }
        todo = pieces_to_measure(source, &ratios, PIECES_PER_ROUND.min(left))?;
        if todo.is_empty() {
            return Ok(refinement);
        }
    }
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// Root mean square deviation from the mean (of ln-ratios: a relative spread).
fn spread(values: &[f64]) -> f64 {
    let m = mean(values);
    (values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / values.len() as f64).sqrt()
}

#[cfg(test)]
#[path = "transfer_refine_tests.rs"]
mod tests;
