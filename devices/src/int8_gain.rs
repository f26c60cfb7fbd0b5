//! Where INT8 pays on a device: the FP32/INT8 speed-up of every block of a mixed-precision table, and its
//! medians per layer, operator and width (what `hsconas latency precision` prints).

use hsconas_models::build::Piece;
use hsconas_models::Choice;
use hsconas_vocabulary::Precision;
use serde::{Deserialize, Serialize};

use crate::table::{LatencyTable, TableError};

/// One block measured in both precisions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockGain {
    /// 1-based layer.
    pub layer: usize,
    /// The block's choice.
    pub choice: Choice,
    /// Its FP32 entry, ms (normalised to the table's reference state, as predictions use it).
    pub fp32_ms: f64,
    /// Its INT8 entry, ms.
    pub int8_ms: f64,
    /// `fp32_ms / int8_ms`: above 1, INT8 is faster.
    pub speedup: f64,
}

/// The speed-ups of a group of blocks (one layer, one operator or one width).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GainGroup {
    /// `L5`, `shuffle3` or `0.5`.
    pub name: String,
    /// Blocks in the group.
    pub blocks: usize,
    /// Median speed-up.
    pub median: f64,
    /// Smallest speed-up.
    pub min: f64,
    /// Largest speed-up.
    pub max: f64,
    /// Blocks whose INT8 entry is smaller than their FP32 one.
    pub int8_faster: usize,
}

/// Every block's speed-up and the groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Int8Gains {
    /// Per block, in table order (left out of validation reports, which keep the groups).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<BlockGain>,
    /// Per layer, in order.
    pub by_layer: Vec<GainGroup>,
    /// Per operator.
    pub by_op: Vec<GainGroup>,
    /// Per channel scale, narrow to wide.
    pub by_scale: Vec<GainGroup>,
    /// Over every block.
    pub all: GainGroup,
}

/// The INT8 speed-ups of a mixed-precision table; an FP32 table is refused.
pub fn int8_gains(table: &LatencyTable) -> Result<Int8Gains, TableError> {
    if !table.is_mixed() {
        return Err(TableError::NotMixed);
    }
    let mut blocks = Vec::new();
    for piece in table.expected_pieces() {
        if let Piece::Block {
            layer,
            choice,
            precision: Precision::Int8,
        } = piece
        {
            let fp32_ms = table.entry_ms(&piece.as_fp32())?;
            let int8_ms = table.entry_ms(&piece)?;
            blocks.push(BlockGain {
                layer: layer + 1,
                choice,
                fp32_ms,
                int8_ms,
                speedup: fp32_ms / int8_ms,
            });
        }
    }
    let group = |key: &dyn Fn(&BlockGain) -> String| {
        let mut names: Vec<String> = Vec::new();
        for b in &blocks {
            let name = key(b);
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
            .into_iter()
            .map(|name| summarise(name.clone(), blocks.iter().filter(|b| key(b) == name)))
            .collect::<Vec<_>>()
    };
    let by_layer = group(&|b| format!("L{}", b.layer));
    let by_op = group(&|b| b.choice.op().to_string());
    let mut by_scale = group(&|b| b.choice.scale().to_string());
    by_scale.sort_by(|a, b| a.name.cmp(&b.name));
    let all = summarise("all".into(), blocks.iter());
    Ok(Int8Gains {
        blocks,
        by_layer,
        by_op,
        by_scale,
        all,
    })
}

fn summarise<'a>(name: String, blocks: impl Iterator<Item = &'a BlockGain>) -> GainGroup {
    let mut speedups: Vec<f64> = blocks.map(|b| b.speedup).collect();
    speedups.sort_by(f64::total_cmp);
    let n = speedups.len();
    let median = crate::drift::median(&speedups);
    GainGroup {
        name,
        blocks: n,
        median,
        min: speedups.first().copied().unwrap_or(f64::NAN),
        max: speedups.last().copied().unwrap_or(f64::NAN),
        int8_faster: speedups.iter().filter(|&&s| s > 1.0).count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::tests::mixed_table_for;
    use crate::DeviceProfile;

    #[test]
    fn speedups_are_entry_ratios_and_groups_summarise_them() {
        let profile = DeviceProfile::find("local-cpu").expect("shipped");
        let table = mixed_table_for(&profile);
        let gains = int8_gains(&table).expect("mixed");
        assert_eq!(gains.blocks.len(), 800, "every block but skip");
        for b in &gains.blocks {
            let fp32 = table.entries[&format!("L{}:{}", b.layer, b.choice)]
                .stats
                .p10_ms;
            let int8 = table.entries[&format!("L{}:{}@int8", b.layer, b.choice)]
                .stats
                .p10_ms;
            assert!((b.speedup - fp32 / int8).abs() < 1e-12);
        }
        assert_eq!(gains.by_layer.len(), 20);
        assert_eq!(gains.by_op.len(), 4);
        assert_eq!(gains.by_scale.len(), 10);
        assert_eq!(gains.by_scale[0].name, "0.1");
        assert_eq!(gains.by_layer.iter().map(|g| g.blocks).sum::<usize>(), 800);
        for g in gains
            .by_layer
            .iter()
            .chain(&gains.by_op)
            .chain(&gains.by_scale)
        {
            assert!(g.min <= g.median && g.median <= g.max, "{g:?}");
        }
        let faster = gains.blocks.iter().filter(|b| b.speedup > 1.0).count();
        assert_eq!(gains.all.int8_faster, faster);
        assert!(faster > 0 && faster < 800, "the made-up table has both");
    }

    #[test]
    fn an_fp32_table_has_no_gains() {
        let profile = DeviceProfile::find("local-cpu").expect("shipped");
        let table = crate::table::tests::table_for(&profile);
        let err = int8_gains(&table).expect_err("FP32 only").to_string();
        assert!(err.contains("--precision mixed"), "{err}");
    }
}
