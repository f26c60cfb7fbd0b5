//! Why a latency transfer ([`crate::transfer`]) cannot be made.

use hsconas_models::Layout;

use crate::table::TableError;

/// Why a transfer cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The source table cannot give a network's sum.
    #[error("the source table: {0}")]
    Source(#[from] TableError),
    /// Too few networks to judge a fit.
    #[error("a transfer needs at least {needed} measured networks, got {got}")]
    TooFew {
        /// The minimum.
        needed: usize,
        /// Given.
        got: usize,
    },
    /// A measurement that is not a positive latency.
    #[error("network {index} measured {measured_ms} ms: not a positive latency")]
    Measurement {
        /// 0-based index among the networks.
        index: usize,
        /// The value.
        measured_ms: f64,
    },
    /// A piece of the space could not be built at the new table's configuration.
    #[error("piece {key} at the new table's configuration: {source}")]
    Piece {
        /// The piece's key.
        key: String,
        /// Why.
        source: hsconas_models::ModelError,
    },
    /// No candidate could be fitted.
    #[error("no transfer could be fitted on these networks")]
    NoFit,
    /// The source's stage widths differ from the new table's: its entries measure other layers.
    #[error("the source table has layout {source_layout}, the new table layout {wanted}: its entries measure other layers")]
    Layout {
        /// The source's layout.
        source_layout: Layout,
        /// The new table's.
        wanted: Layout,
    },
    /// The source measured INT8 pieces too: transfer moves FP32 tables only.
    #[error("the source table is a mixed-precision table (FP32 and INT8 pieces); transfer moves FP32 tables \
             only: profile this device with `hsconas profile --precision mixed` instead")]
    Mixed,
    /// The source does not hold exactly the pieces of this search space.
    #[error("the source table is not a complete table of this search space: {missing} of its {total} pieces missing{}{}", .example.as_ref().map_or(String::new(), |e| format!(" (e.g. '{e}')")), if *.extra > 0 { format!(", {} entries of another space", .extra) } else { String::new() })]
    Space {
        /// Pieces of the space the source lacks.
        missing: usize,
        /// Pieces of the space.
        total: usize,
        /// Entries the space does not have.
        extra: usize,
        /// One missing piece or foreign entry.
        example: Option<String>,
    },
}
