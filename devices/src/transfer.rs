//! A latency table for a new device from another device's table and a few networks measured end to end
//! on the new one: the source's entries rescaled, by one global factor, by one factor per operator type
//! (the stem and head sharing one), per stage, per stage plus a cost per MAC and per layer at the new
//! configuration ([`crate::transfer_terms`]), or per entry (an AdaProxy-style correction penalised
//! towards the per-operator factors). Each level's factors are fitted by penalised least squares on relative errors
//! (a network that takes 0.3 ms counts as much as one that takes 3 ms), shrunk towards the level above;
//! the level and its penalty are chosen among all candidates by the one-standard-error rule over their
//! leave-one-out errors ([`hsconas_foundation::stats::simplest_within_one_standard_error`]), so a richer
//! correction is used only when it predicts networks it did not see clearly better.

use std::collections::BTreeMap;

use hsconas_models::build::{all_pieces, Piece};
use hsconas_models::{Arch, Layout, NetConfig};
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::table::{EntryStats, LatencyTable, TableError};
pub use crate::transfer_error::TransferError;
use crate::transfer_terms::PieceTerms;
use hsconas_vocabulary::Stats;

/// How finely the source table's entries are rescaled, from the simplest to the richest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransferLevel {
    /// One factor for every entry.
    Global,
    /// One factor per operator type of the blocks (`shuffle3`, ..., `skip`) and one for the stem and
    /// head together (every network has both once, so a factor each could not be told apart).
    PerOperator,
    /// One factor per stage of the blocks and one for the stem and head together.
    PerStage,
    /// The per-stage factors plus two coefficients of terms the new configuration gives: each piece's
    /// MACs there and one per layer with a block ([`PieceTerms`]), shrunk towards the per-stage
    /// factors and no such terms. For another input size, where a layer's fixed cost weighs otherwise
    /// against its arithmetic than in the source.
    PerStageMacs,
    /// One factor per entry, shrunk towards the per-operator factors.
    PerEntry,
}

impl TransferLevel {
    /// Every level, simplest first.
    pub const ALL: [TransferLevel; 5] = [
        TransferLevel::Global,
        TransferLevel::PerOperator,
        TransferLevel::PerStage,
        TransferLevel::PerStageMacs,
        TransferLevel::PerEntry,
    ];

    /// Its name in files and messages (`global`, `per-operator`, `per-stage`, `per-stage-macs`,
    /// `per-entry`).
    pub fn name(self) -> &'static str {
        match self {
            TransferLevel::Global => "global",
            TransferLevel::PerOperator => "per-operator",
            TransferLevel::PerStage => "per-stage",
            TransferLevel::PerStageMacs => "per-stage-macs",
            TransferLevel::PerEntry => "per-entry",
        }
    }

    /// The group of a piece at this level (its factor's name).
    pub fn group_of(self, piece: &Piece) -> String {
        match (self, piece) {
            (TransferLevel::Global, _) => "all".into(),
            (TransferLevel::PerEntry, piece) => piece.key(),
            // In every network once each, so their two factors could not be told apart.
            (_, Piece::Stem | Piece::Head) => "stem-head".into(),
            (TransferLevel::PerOperator, Piece::Block { choice, .. }) => choice.op().to_string(),
            (TransferLevel::PerStage | TransferLevel::PerStageMacs, Piece::Block { layer, .. }) => {
                format!("stage{}", NetConfig::stage_of(*layer) + 1)
            }
        }
    }

    /// The level whose factors this one is shrunk towards (`None` for the global one, shrunk towards 1).
    fn parent(self) -> Option<TransferLevel> {
        match self {
            TransferLevel::Global => None,
            TransferLevel::PerOperator | TransferLevel::PerStage => Some(TransferLevel::Global),
            TransferLevel::PerStageMacs => Some(TransferLevel::PerStage),
            TransferLevel::PerEntry => Some(TransferLevel::PerOperator),
        }
    }

    /// Whether it fits the [`PieceTerms`] beside the factors.
    fn has_terms(self) -> bool {
        self == TransferLevel::PerStageMacs
    }
}

/// The names of the [`TransferLevel::PerStageMacs`] coefficients in [`TransferFit::factors`]: of the
/// MACs term and of the layer term.
pub const TERM_NAMES: [&str; 2] = ["macs", "layers"];

/// Penalties tried at each level, relative to the mean squared feature (0: plain least squares, tried
/// only where there are more networks than factors).
pub const RELATIVE_PENALTIES: [f64; 6] = [0.0, 0.01, 0.1, 1.0, 10.0, 100.0];

/// One network measured on the new device.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasuredNetwork {
    /// The architecture.
    pub arch: Arch,
    /// Its latency on the new device, ms (normalised for drift where the measurement allows).
    pub measured_ms: f64,
}

/// One candidate's leave-one-out error over the measured networks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CandidateError {
    /// The level.
    pub level: TransferLevel,
    /// Its penalty, relative to the mean squared feature.
    pub penalty: f64,
    /// Root mean square of the held-out relative errors, percent (infinite when it cannot be fitted).
    pub held_out_rmspe: f64,
}

/// The chosen correction of the source table.
///
/// Serialised for reports only: it has no `Deserialize`, since its terms are not written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransferFit {
    /// The level chosen.
    pub level: TransferLevel,
    /// Its penalty, relative to the mean squared feature.
    pub penalty: f64,
    /// Its leave-one-out error over the networks it was fitted on (root mean square relative error,
    /// percent): an estimate of the transferred table's error on other networks, optimistic in the
    /// measured runs ([`Self::rmspe_on`] networks measured after the fit is the check).
    pub held_out_rmspe: f64,
    /// The factor of each group of the level, fitted on every network (and, for
    /// [`TransferLevel::PerStageMacs`], the coefficients of its terms, named [`TERM_NAMES`]).
    pub factors: BTreeMap<String, f64>,
    /// Every candidate tried, simplest first.
    pub candidates: Vec<CandidateError>,
    /// The configuration of the new table (its input size may differ from the source's).
    pub target: NetConfig,
    /// The pieces' terms at `target` (used by [`TransferLevel::PerStageMacs`]; not serialised).
    #[serde(skip)]
    pub terms: PieceTerms,
}

impl TransferFit {
    /// The transferred prediction of a network: the sum of its pieces' ([`Self::piece_ms`]).
    pub fn predict_ms(&self, source: &LatencyTable, arch: &Arch) -> Result<f64, TableError> {
        Ok(network_pieces(source, arch)?
            .iter()
            .map(|(p, ms)| self.piece_ms(p, *ms))
            .sum())
    }

    /// The transferred value of one piece whose source value is `source_ms`: times its factor, plus
    /// the level's terms where it has them.
    pub fn piece_ms(&self, piece: &Piece, source_ms: f64) -> f64 {
        piece_value(self.level, &self.factors, &self.terms, piece, source_ms)
    }

    /// What the source's entry of `piece` (value `source_ms`) is multiplied by in the transferred
    /// table ([`transferred_entries`]).
    pub fn entry_factor(&self, piece: &Piece, source_ms: f64) -> f64 {
        if source_ms > 0.0 {
            self.piece_ms(piece, source_ms) / source_ms
        } else {
            self.factor_of(piece)
        }
    }

    /// Root mean square relative error (percent) of this fit's predictions for `networks`: the honest
    /// check of [`Self::held_out_rmspe`] when the fit has not seen them (networks measured after it).
    pub fn rmspe_on(
        &self,
        source: &LatencyTable,
        networks: &[MeasuredNetwork],
    ) -> Result<f64, TableError> {
        if networks.is_empty() {
            return Ok(f64::NAN);
        }
        let mut sum = 0.0;
        for n in networks {
            sum += (self.predict_ms(source, &n.arch)? / n.measured_ms - 1.0).powi(2);
        }
        Ok(100.0 * (sum / networks.len() as f64).sqrt())
    }

    /// The factor of one piece's group (for [`TransferLevel::PerStageMacs`] without its terms: what a
    /// piece's source value is multiplied by is [`Self::entry_factor`]).
    pub fn factor_of(&self, piece: &Piece) -> f64 {
        self.factors
            .get(&self.level.group_of(piece))
            .copied()
            .unwrap_or(1.0)
    }
}

/// What a transferred table's provenance records of its making: where its entries came from and how
/// they were fitted (`Provenance::transfer`; absent in profiled tables).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferRecord {
    /// The source table's device profile name.
    pub source_device: String,
    /// The source's CPU model, as its fingerprint names it.
    pub source_cpu: String,
    /// When the source was measured (its provenance's date).
    pub source_date: String,
    /// The source's input size (it may differ from the new table's).
    pub source_input_size: usize,
    /// Networks measured on the new device to fit the transfer.
    pub networks: usize,
    /// Seed those networks were drawn with.
    pub seed: u64,
    /// The level chosen.
    pub level: TransferLevel,
    /// Its penalty, relative to the mean squared feature.
    pub penalty: f64,
    /// The fit's leave-one-out estimate of its error, RMSPE percent.
    pub held_out_rmspe: f64,
    /// The source was measured on another device or machine, so the refusal of a foreign table was
    /// bypassed on purpose.
    pub foreign_source: bool,
    /// How the source differs from the new table's device (its profile's settings and machine).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_differences: Vec<String>,
    /// The tolerance (RMSPE, percent) more networks were measured for, when one was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance_percent: Option<f64>,
    /// The error (RMSPE, percent) measured at the stop on networks the fit before the final refit had
    /// not seen (the last round's, measured after it), which the tolerance was judged by; the final
    /// fit is refitted on every network, those included. Absent when no such round
    /// was measured (no tolerance, or `--max-samples` equal to `--samples`): the tolerance was then
    /// judged by the leave-one-out estimate, which was optimistic in the measured runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_rmspe: Option<f64>,
    /// Pieces of the space profiled on the new device after the networks (one per shape: their
    /// measurements replaced their shapes' source values, and the ratios measured on their kin those of
    /// the shapes not profiled, before the final fit); 0 when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pieces: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Checks that `source` can be transferred to a table of `layout`: the same stage widths (the input
/// size may differ) and exactly the pieces of this search space.
pub fn check_source(source: &LatencyTable, layout: Layout) -> Result<(), TransferError> {
    if source.provenance.layout != layout {
        return Err(TransferError::Layout {
            source_layout: source.provenance.layout,
            wanted: layout,
        });
    }
    if source.is_mixed() {
        return Err(TransferError::Mixed);
    }
    let keys: Vec<String> = all_pieces().iter().map(Piece::key).collect();
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !source.entries.contains_key(*k))
        .collect();
    let extra: Vec<&String> = source
        .entries
        .keys()
        .filter(|k| !keys.contains(k))
        .collect();
    if missing.is_empty() && extra.is_empty() {
        return Ok(());
    }
    Err(TransferError::Space {
        missing: missing.len(),
        total: keys.len(),
        extra: extra.len(),
        example: missing.first().or(extra.first()).map(|k| k.to_string()),
    })
}

/// The fewest measured networks a transfer is fitted on.
pub const MIN_NETWORKS: usize = 4;

/// Fits the correction of `source` (every piece present) to `networks` measured on the new device,
/// whose table has the configuration `target`.
pub fn fit_transfer(
    source: &LatencyTable,
    target: &NetConfig,
    networks: &[MeasuredNetwork],
) -> Result<TransferFit, TransferError> {
    if networks.len() < MIN_NETWORKS {
        return Err(TransferError::TooFew {
            needed: MIN_NETWORKS,
            got: networks.len(),
        });
    }
    if let Some((index, n)) = networks
        .iter()
        .enumerate()
        .find(|(_, n)| !(n.measured_ms.is_finite() && n.measured_ms > 0.0))
    {
        return Err(TransferError::Measurement {
            index,
            measured_ms: n.measured_ms,
        });
    }
    let pieces: Vec<Vec<(Piece, f64)>> = networks
        .iter()
        .map(|n| network_pieces(source, &n.arch))
        .collect::<Result<_, _>>()?;
    let targets: Vec<f64> = networks.iter().map(|n| n.measured_ms).collect();
    let terms = PieceTerms::new(source, target)?;
    let fit = |level, penalty, rows: &[usize]| {
        fit_level(level, penalty, (&pieces, &terms), &targets, rows)
    };
    let all: Vec<usize> = (0..networks.len()).collect();
    let mut candidates = Vec::new();
    let mut errors = Vec::new();
    for level in TransferLevel::ALL {
        // Richer fits of one level are those with a smaller penalty: largest first.
        for &penalty in RELATIVE_PENALTIES.iter().rev() {
            if level == TransferLevel::Global && penalty != 0.0 {
                continue;
            }
            let held_out: Vec<f64> = all
                .iter()
                .map(|&i| {
                    let rest: Vec<usize> = all.iter().copied().filter(|&j| j != i).collect();
                    fit(level, penalty, &rest)
                        .map(|factors| {
                            let predicted = predict(level, &factors, &terms, &pieces[i]);
                            (predicted / targets[i] - 1.0).powi(2)
                        })
                        .unwrap_or(f64::INFINITY)
                })
                .collect();
            let mean = held_out.iter().sum::<f64>() / held_out.len() as f64;
            candidates.push(CandidateError {
                level,
                penalty,
                held_out_rmspe: 100.0 * mean.sqrt(),
            });
            errors.push(held_out);
        }
    }
    // The chosen candidate fitted on every network; one that cannot be (a non-positive factor only
    // with all of them) drops out and the rule chooses again among the rest.
    let (chosen, factors) = loop {
        let chosen = hsconas_foundation::stats::simplest_within_one_standard_error(&errors)
            .ok_or(TransferError::NoFit)?;
        let c = candidates[chosen];
        match fit(c.level, c.penalty, &all) {
            Some(factors) => break (chosen, factors),
            None => {
                errors[chosen].fill(f64::INFINITY);
                candidates[chosen].held_out_rmspe = f64::INFINITY;
            }
        }
    };
    let CandidateError {
        level,
        penalty,
        held_out_rmspe,
    } = candidates[chosen];
    Ok(TransferFit {
        level,
        penalty,
        held_out_rmspe,
        factors,
        candidates,
        target: *target,
        terms,
    })
}

/// The source's value of each piece of `arch` (stem, head, the 20 layers).
pub fn network_pieces(source: &LatencyTable, arch: &Arch) -> Result<Vec<(Piece, f64)>, TableError> {
    let mut pieces = vec![Piece::Stem, Piece::Head];
    pieces.extend(
        arch.choices()
            .iter()
            .enumerate()
            .map(|(layer, &choice)| Piece::block(layer, choice)),
    );
    pieces
        .into_iter()
        .map(|p| Ok((p, source.entry_ms(&p)?)))
        .collect()
}

/// The predicted latency of a network from its pieces and the factors of a level.
fn predict(
    level: TransferLevel,
    factors: &BTreeMap<String, f64>,
    terms: &PieceTerms,
    pieces: &[(Piece, f64)],
) -> f64 {
    pieces
        .iter()
        .map(|(p, ms)| piece_value(level, factors, terms, p, *ms))
        .sum()
}

/// One piece's transferred value: its source value times its group's factor, plus the level's terms.
fn piece_value(
    level: TransferLevel,
    factors: &BTreeMap<String, f64>,
    terms: &PieceTerms,
    piece: &Piece,
    source_ms: f64,
) -> f64 {
    let scaled = source_ms * factors.get(&level.group_of(piece)).copied().unwrap_or(1.0);
    if !level.has_terms() {
        return scaled;
    }
    let coefficient = |name: &str| factors.get(name).copied().unwrap_or(0.0);
    let [macs, layer] = terms.of(piece);
    scaled + coefficient(TERM_NAMES[0]) * macs + coefficient(TERM_NAMES[1]) * layer
}

/// The factors of `level` fitted on the networks `rows` (their pieces, and every piece's terms):
/// penalised least squares on relative errors, shrunk towards the parent level's factors (fitted on the
/// same rows with the same relative penalty) and the terms' coefficients towards 0; the global factor
/// is plain least squares. `None` when the system cannot be solved, a factor comes out non-positive,
/// or (with terms) a piece of the space would take no time or less.
fn fit_level(
    level: TransferLevel,
    penalty: f64,
    (pieces, terms): (&[Vec<(Piece, f64)>], &PieceTerms),
    targets: &[f64],
    rows: &[usize],
) -> Option<BTreeMap<String, f64>> {
    // One factor, fitted on many networks: never shrunk (a new device may well be several times slower).
    let penalty = if level == TransferLevel::Global {
        0.0
    } else {
        penalty
    };
    let prior: BTreeMap<String, f64> = match level.parent() {
        Some(parent) => fit_level(parent, penalty, (pieces, terms), targets, rows)?,
        None => BTreeMap::new(),
    };
    let parent_group = |p: &Piece| level.parent().map_or("all".to_string(), |l| l.group_of(p));
    // Every group of the space, so that a piece none of these networks uses keeps its parent's factor
    // (its column is zero: only the penalty acts on it).
    let mut groups: Vec<String> = all_pieces().iter().map(|p| level.group_of(p)).collect();
    groups.sort();
    groups.dedup();
    // The terms' coefficients after the factors, shrunk towards 0.
    let factor_groups = groups.len();
    if level.has_terms() {
        groups.extend(TERM_NAMES.iter().map(|n| n.to_string()));
    }
    let index: BTreeMap<&str, usize> = groups
        .iter()
        .enumerate()
        .map(|(k, g)| (g.as_str(), k))
        .collect();
    let mut prior_of_group = vec![1.0; groups.len()];
    prior_of_group[factor_groups..].fill(0.0);
    for p in all_pieces() {
        prior_of_group[index[level.group_of(&p).as_str()]] =
            prior.get(&parent_group(&p)).copied().unwrap_or(1.0);
    }
    // Rows divided by the measurement (relative errors); the prior's prediction moved to the target.
    let (n, g) = (rows.len(), groups.len());
    let mut x = DMatrix::<f64>::zeros(n, g);
    let mut r = DVector::<f64>::zeros(n);
    for (row, &i) in rows.iter().enumerate() {
        let mut prior_prediction = 0.0;
        for (p, ms) in &pieces[i] {
            let k = index[level.group_of(p).as_str()];
            x[(row, k)] += ms / targets[i];
            prior_prediction += prior_of_group[k] * ms / targets[i];
            if level.has_terms() {
                for (t, value) in terms.of(p).into_iter().enumerate() {
                    x[(row, factor_groups + t)] += value / targets[i];
                }
            }
        }
        r[row] = 1.0 - prior_prediction;
    }
    let used = (0..g)
        .filter(|&k| x.column(k).iter().any(|v| *v != 0.0))
        .count()
        .max(1);
    let mean_square = x.iter().map(|v| v * v).sum::<f64>() / used as f64;
    let lambda = penalty * mean_square;
    let delta = if g <= n {
        if lambda == 0.0 && g + 1 > n {
            return None;
        }
        let lhs = x.transpose() * &x + DMatrix::<f64>::identity(g, g) * lambda;
        lhs.cholesky()?.solve(&(x.transpose() * &r))
    } else {
        // More factors than networks: the dual form, an n x n system.
        if lambda == 0.0 {
            return None;
        }
        let lhs = &x * x.transpose() + DMatrix::<f64>::identity(n, n) * lambda;
        x.transpose() * lhs.cholesky()?.solve(&r)
    };
    let factors: BTreeMap<String, f64> = groups
        .into_iter()
        .enumerate()
        .map(|(k, group)| (group, prior_of_group[k] + delta[k]))
        .collect();
    // A latency cannot be scaled to nothing or below: a fit that needs a non-positive factor (groups
    // the networks cannot tell apart, such as near-constant ones, traded against each other) is no fit;
    // with terms, neither is one that leaves a piece of the space no time.
    let sound = factors
        .iter()
        .all(|(group, f)| f.is_finite() && (*f > 0.0 || TERM_NAMES.contains(&group.as_str())))
        && (!level.has_terms()
            || terms
                .pieces()
                .all(|(p, ms)| piece_value(level, &factors, terms, p, ms) > 0.0));
    sound.then_some(factors)
}

/// Every piece of the space with a factor applied to the source's entry (`factor(piece, source_ms)`,
/// given the source's normalised value: `|p, ms| fit.entry_factor(p, ms)`), keyed as a table's entries: every statistic of the source's entry, normalised for the source's
/// drift, times the piece's factor, with no profiling group (a transferred entry was not measured in
/// one; the source's runs are kept).
pub fn transferred_entries(
    source: &LatencyTable,
    factor: impl Fn(&Piece, f64) -> f64,
) -> Result<BTreeMap<String, EntryStats>, TableError> {
    all_pieces()
        .iter()
        .map(|p| {
            let key = p.key();
            let entry = source
                .entries
                .get(&key)
                .ok_or_else(|| TableError::MissingEntry(key.clone()))?;
            let raw = entry.get(source.statistic);
            let normalised = source.entry_ms(p)?;
            let scale = if raw > 0.0 {
                normalised / raw * factor(p, normalised)
            } else {
                factor(p, normalised)
            };
            let s = &entry.stats;
            let stats = Stats {
                min_ms: s.min_ms * scale,
                p10_ms: s.p10_ms * scale,
                median_ms: s.median_ms * scale,
                p90_ms: s.p90_ms * scale,
                mean_ms: s.mean_ms * scale,
                stdev_ms: s.stdev_ms * scale,
                runs: s.runs,
            };
            Ok((key, EntryStats { stats, group: None }))
        })
        .collect()
}

#[cfg(test)]
#[path = "transfer_tests.rs"]
mod tests;
