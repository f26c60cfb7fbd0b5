//! The per-piece terms of the `per-stage-macs` transfer level. Moving a table to another input size
//! changes what a piece's latency is made of: at a small input the fixed cost of a layer (its kernel
//! launches, its reads of the weights) weighs more against its arithmetic than at a large one, and the
//! source's entries carry the source's mix. So beside each piece's source entry this level fits two
//! terms the new table's configuration gives without measuring anything: the piece's MACs there, and
//! one per layer with a block (skips and the stem and head excluded: those two are in every network).
//! Each term is scaled to the source's milliseconds (MACs by the source's total time per MAC, the
//! layer term by the source's mean block entry), so that its coefficient is dimensionless like a
//! factor and one penalty shrinks every coefficient alike.

use std::collections::BTreeMap;

use hsconas_models::build::{self, all_pieces, Piece};
use hsconas_models::NetConfig;

use crate::table::LatencyTable;
use crate::transfer::TransferError;

/// The MACs term and the layer term of every piece of the space, in the source's milliseconds, with
/// the piece and its source value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PieceTerms {
    by_key: BTreeMap<String, (Piece, f64, [f64; 2])>,
}

impl PieceTerms {
    /// The terms at `target` (the new table's configuration), scaled by `source`'s entries.
    pub fn new(source: &LatencyTable, target: &NetConfig) -> Result<PieceTerms, TransferError> {
        let pieces = all_pieces();
        let mut macs = Vec::with_capacity(pieces.len());
        let mut values = Vec::with_capacity(pieces.len());
        let (mut source_ms, mut block_ms, mut blocks) = (0.0, 0.0, 0usize);
        for p in &pieces {
            let graph = build::piece(*p, target).map_err(|e| TransferError::Piece {
                key: p.key(),
                source: e,
            })?;
            macs.push(graph.macs() as f64);
            let ms = source.entry_ms(p)?;
            values.push(ms);
            source_ms += ms;
            if is_layer(p) {
                block_ms += ms;
                blocks += 1;
            }
        }
        let total_macs: f64 = macs.iter().sum();
        let per_mac = if total_macs > 0.0 {
            source_ms / total_macs
        } else {
            0.0
        };
        let per_layer = block_ms / blocks.max(1) as f64;
        let by_key = pieces
            .iter()
            .zip(macs)
            .zip(values)
            .map(|((p, m), ms)| {
                let layer = if is_layer(p) { per_layer } else { 0.0 };
                (p.key(), (*p, ms, [m * per_mac, layer]))
            })
            .collect();
        Ok(PieceTerms { by_key })
    }

    /// The MACs term and the layer term of `piece` (zero for a piece the space does not have).
    pub fn of(&self, piece: &Piece) -> [f64; 2] {
        self.by_key.get(&piece.key()).map_or([0.0; 2], |e| e.2)
    }

    /// Every piece of the space with its source value.
    pub fn pieces(&self) -> impl Iterator<Item = (&Piece, f64)> {
        self.by_key.values().map(|(p, ms, _)| (p, *ms))
    }
}

/// A block that computes something (not a skip, not the stem or head).
fn is_layer(piece: &Piece) -> bool {
    matches!(piece, Piece::Block { choice, .. } if !choice.is_skip())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::DeviceProfile;
    use crate::table::tests::table_for;
    use hsconas_models::Layout;

    #[test]
    fn terms_follow_the_macs_at_the_target_and_count_layers() {
        let source = table_for(&DeviceProfile::find("local-cpu").expect("shipped"));
        let at = |input_size| NetConfig {
            layout: Layout::A,
            input_size,
            classes: 10,
        };
        let terms = PieceTerms::new(&source, &at(32)).expect("terms");
        let pieces = all_pieces();
        let key = |k: &str| pieces.iter().find(|p| p.key() == k).copied().expect(k);
        let (wide, narrow, skip) = (
            key("L6:shuffle3:1.0"),
            key("L6:shuffle3:0.1"),
            key("L6:skip"),
        );
        // MACs scale: the wider block has more, the skip none; blocks share one layer term.
        assert!(terms.of(&wide)[0] > terms.of(&narrow)[0]);
        assert_eq!(terms.of(&skip), [0.0, 0.0]);
        assert_eq!(terms.of(&wide)[1], terms.of(&narrow)[1]);
        assert!(terms.of(&wide)[1] > 0.0);
        assert_eq!(terms.of(&Piece::Stem)[1], 0.0);
        // The MACs terms sum to the source's total time.
        let total: f64 = pieces.iter().map(|p| terms.of(p)[0]).sum();
        let source_total: f64 = pieces.iter().map(|p| source.entry_ms(p).expect("ms")).sum();
        assert!((total - source_total).abs() < 1e-9 * source_total);
        // Counted at the target: a last-stage block's MACs against a second-stage one's change with
        // the input size (at 24x24 the last stage shrinks less than the others), and the terms follow
        // the target's graphs.
        let late = key("L18:shuffle3:1.0");
        let macs = |p: Piece, size| build::piece(p, &at(size)).expect("graph").macs() as f64;
        let late_share = |size| macs(late, size) / macs(wide, size);
        assert!((late_share(24) / late_share(32) - 1.0).abs() > 0.1);
        for size in [24, 32] {
            let t = PieceTerms::new(&source, &at(size)).expect("terms");
            let share = t.of(&late)[0] / t.of(&wide)[0];
            assert!((share / late_share(size) - 1.0).abs() < 1e-9, "{size}");
        }
    }
}
